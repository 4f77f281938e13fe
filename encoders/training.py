"""Training an e4e encoder for a generator, or both jointly as an autoencoder.

Losses (weights are options of :class:`EncoderTrainConfig`):

* reconstruction: L1 on pixels plus L1 on a 3-level Laplacian pyramid (keeps
  edges sharper than plain L1), both weighted by a soft face mask: FFHQ-aligned
  faces sit at a fixed place, and the corners of the training crops are often
  reflected padding that is not worth modelling;
* e4e's delta regularisation: the mean L2 norm of w_i - w_0 over positions
  i >= 1 (Tov et al., 2021), which keeps codes near W and so keeps
  interpolations and edits well behaved;
* optional synthetic pairs: the generator renders an image from a known w and
  the encoder must recover it (L2 in W); useful when the generator is a trained
  GAN, useless for a generator trained jointly from scratch.

With ``joint=True`` the generator's weights train too; on a CPU this is the
only way to a usable face model in a couple of hours (see README).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from stylegan.checkpoint import atomic_torch_save, read_checkpoint
from stylegan.errors import UserError
from stylegan.fileio import atomic_write_text
from stylegan.imageio import image_grid, save_image, to_uint8
from stylegan.networks import Generator
from stylegan.training.dataset import ImageSet
from stylegan.training.logging import CsvLog, plot_losses

from .e4e import Encoder4Editing
from .losses import delta_regularization, face_mask, laplacian_l1
from .model_file import save_model

__all__ = ["EncoderTrainConfig", "train_encoder", "face_mask", "laplacian_l1", "delta_regularization"]

TRAIN_STATE_FORMAT = "stylegan-morph/encoder-train-state/v1"


@dataclass
class EncoderTrainConfig:
    """Options of :func:`train_encoder`; saved in every checkpoint (JSON-able)."""

    batch_size: int = 16
    lr: float = 2e-3
    joint: bool = False          # also train the generator
    g_lr: float = 2e-3
    l1_weight: float = 1.0
    lap_weight: float = 1.0
    delta_weight: float = 2e-4
    synthetic_fraction: float = 0.0  # share of each batch made of generator images with known w
    synthetic_w_weight: float = 1.0
    mask_floor: float = 0.25     # weight of the padded corners relative to the face
    bf16: bool = True            # CPU autocast; fp32 master weights
    channels_last: bool = True
    mirror: bool = True
    total_steps: int = 100000
    max_minutes: float | None = None
    val_every: int = 200
    sample_every: int = 200
    ckpt_every: int = 200
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def evaluate_reconstruction(G: Generator, E: Encoder4Editing, images: torch.Tensor, mask: torch.Tensor,
                            batch: int = 64, bf16: bool = False) -> dict[str, float]:
    """Masked MSE, plain MSE and PSNR of E->G reconstructions of ``images`` ([-1, 1])."""
    G.eval()
    E.eval()
    se = mse_masked = 0.0
    n = 0
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        with _autocast(bf16):
            y = G.synthesis(E.encode(_resize(x, E.config.input_size)), noise_mode="const").float()
        y = _resize(y, x.shape[-1])
        se += ((y - x) ** 2).mean(dim=(1, 2, 3)).sum().item()
        mse_masked += (((y - x) ** 2) * mask).mean(dim=(1, 2, 3)).sum().item() / mask.mean().item()
        n += len(x)
    mse = se / n
    # PSNR on the [0, 1] scale: MSE in [-1, 1] units is 4x larger.
    return {"val_mse": mse, "val_mse_face": mse_masked / n, "val_psnr": 10 * math.log10(4 / max(mse, 1e-12))}


def train_encoder(
    G: Generator,
    E: Encoder4Editing,
    train: ImageSet,
    val: ImageSet,
    run_dir: str | os.PathLike,
    cfg: EncoderTrainConfig,
    resume: bool = True,
    meta: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train ``E`` (and ``G`` if ``cfg.joint``) on ``train``; returns the path of the best model file.

    Files in ``run_dir``: ``log.csv``, ``losses.png``, ``samples/step_XXXXXX.png``
    (validation inputs above their reconstructions), ``state.pt`` (resumable
    training state, written atomically every ``ckpt_every`` steps), ``best.pt``
    (model file with the lowest validation face-masked MSE, the stated
    criterion) and ``last.pt``.
    """
    run_dir = Path(run_dir)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    res = G.img_resolution
    if E.num_ws != G.num_ws or E.w_dim != G.w_dim:
        raise UserError(f"encoder gives {E.num_ws}x{E.w_dim} codes but the generator needs {G.num_ws}x{G.w_dim}")

    G.requires_grad_(cfg.joint)
    E.requires_grad_(True)
    E.latent_avg.copy_(G.w_avg.detach().unsqueeze(0).expand_as(E.latent_avg))
    if cfg.channels_last:
        G.to(memory_format=torch.channels_last)
        E.to(memory_format=torch.channels_last)
    opt_e = torch.optim.Adam(E.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(0.9, 0.99)) if cfg.joint else None

    step, best, elapsed_before = 0, float("inf"), 0.0
    val_key = hashlib.sha1(val.images[:, ::8, ::8].tobytes()).hexdigest()[:16]
    state_path = run_dir / "state.pt"
    if resume and state_path.exists():
        st = read_checkpoint(state_path)
        if st.get("format") != TRAIN_STATE_FORMAT:
            raise UserError(f"{state_path}: not an encoder training state")
        G.load_state_dict(st["G"])
        E.load_state_dict(st["E"])
        opt_e.load_state_dict(st["opt_e"])
        if opt_g is not None and st.get("opt_g"):
            opt_g.load_state_dict(st["opt_g"])
        # The learning rates come from this run's options, not the saved state, so a
        # resumed run can finish with a lower rate (a cheap final-phase decay).
        for opt, lr in ((opt_e, cfg.lr), (opt_g, cfg.g_lr)):
            for group in (opt.param_groups if opt is not None else []):
                group["lr"] = lr
        step, best, elapsed_before = st["step"], st["best"], st["seconds"]
        if st.get("val_key") != val_key:
            best = float("inf")  # scores on another validation set are not comparable
        rng = np.random.default_rng(cfg.seed + step)
        log(f"resumed from {state_path} at step {step} (best val_mse_face {best:.5f})")
    atomic_write_text(run_dir / "train_config.json", json.dumps(asdict(cfg), indent=2))

    mask = face_mask(res, cfg.mask_floor)
    val_images = val.batch(np.arange(len(val)))
    fixed = val_images[:: max(1, len(val_images) // 8)][:8]  # spread over the (name-sorted) set
    csv_log = CsvLog(run_dir / "log.csv", ["loss", "l1", "lap", "delta", "syn_w", "val_mse", "val_mse_face",
                                           "val_psnr", "sec_per_step"])
    t0 = time.time()
    t_last, steps_since = t0, 0

    def save_state() -> None:
        atomic_torch_save({"format": TRAIN_STATE_FORMAT, "G": G.state_dict(), "E": E.state_dict(),
                           "opt_e": opt_e.state_dict(), "opt_g": opt_g.state_dict() if opt_g else None,
                           "step": step, "best": best, "seconds": elapsed_before + time.time() - t0,
                           "val_key": val_key, "config": asdict(cfg)}, state_path)

    def model_meta() -> dict[str, Any]:
        return {**(meta or {}), "step": step, "train_config": asdict(cfg),
                "seconds": round(elapsed_before + time.time() - t0)}

    try:
        while step < cfg.total_steps:
            if cfg.max_minutes is not None and (elapsed_before + time.time() - t0) / 60 >= cfg.max_minutes:
                log(f"time budget of {cfg.max_minutes} min reached at step {step}")
                break
            G.train(cfg.joint)
            E.train()
            n_syn = int(round(cfg.batch_size * cfg.synthetic_fraction))
            x = train.sample(cfg.batch_size - n_syn, rng, mirror=cfg.mirror)
            with _autocast(cfg.bf16):
                syn_loss = x.new_zeros(())
                if n_syn:
                    with torch.no_grad():
                        w_true = G.mapping(torch.randn(n_syn, G.z_dim))
                        x_syn = G.synthesis(w_true, noise_mode="const").float().clamp(-1, 1)
                    w_syn = E.encode(_resize(x_syn, E.config.input_size))
                    syn_loss = F.mse_loss(w_syn.float(), w_true)
                x_in = _resize(x, E.config.input_size)
                if cfg.channels_last:
                    x_in = x_in.contiguous(memory_format=torch.channels_last)
                ws = E.encode(x_in)
                y = G.synthesis(ws, noise_mode="const").float()
            y = _resize(y, res)
            l1 = ((y - x).abs() * mask).mean()
            lap = laplacian_l1(y, x, mask)
            delta = delta_regularization(ws.float())
            loss = (cfg.l1_weight * l1 + cfg.lap_weight * lap + cfg.delta_weight * delta
                    + cfg.synthetic_w_weight * syn_loss)
            opt_e.zero_grad(set_to_none=True)
            if opt_g is not None:
                opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_e.step()
            if opt_g is not None:
                opt_g.step()
            step += 1
            steps_since += 1

            row: dict[str, Any] = {}
            if step % cfg.val_every == 0 or step == cfg.total_steps:
                now = time.time()
                row = {"step": step, "seconds": round(elapsed_before + now - t0, 1), "loss": loss.item(),
                       "l1": l1.item(), "lap": lap.item(), "delta": delta.item(), "syn_w": syn_loss.item(),
                       "sec_per_step": (now - t_last) / steps_since}
                t_last, steps_since = now, 0
                row.update(evaluate_reconstruction(G, E, val_images, mask, bf16=cfg.bf16))
                csv_log.write(row)
                plot_losses(run_dir / "log.csv", run_dir / "losses.png",
                            ["loss", "l1", "lap", "val_mse", "val_mse_face"])
                improved = row["val_mse_face"] < best
                if improved:
                    best = row["val_mse_face"]
                    save_model(run_dir / "best.pt", G, E, model_meta())
                log(f"step {step}: loss {row['loss']:.4f} val_mse_face {row['val_mse_face']:.5f} "
                    f"psnr {row['val_psnr']:.2f} dB {row['sec_per_step']:.2f} s/step{' *best*' if improved else ''}")
            if step % cfg.sample_every == 0:
                with torch.no_grad(), _autocast(cfg.bf16):
                    E.eval()
                    G.eval()
                    rec = G.synthesis(E.encode(_resize(fixed, E.config.input_size)), noise_mode="const").float()
                save_image(image_grid(to_uint8(torch.cat([fixed, _resize(rec, res)])), cols=len(fixed)),
                           run_dir / "samples" / f"step_{step:06d}.png")
            if step % cfg.ckpt_every == 0:
                save_state()
    finally:
        csv_log.close()
    save_state()
    save_model(run_dir / "last.pt", G, E, model_meta())
    if not (run_dir / "best.pt").exists():
        save_model(run_dir / "best.pt", G, E, model_meta())
    return run_dir / "best.pt"
