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

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from stylegan.errors import UserError
from stylegan.imageio import image_grid, save_image, to_uint8
from stylegan.networks import Generator
from stylegan.training.dataset import ImageSet
from stylegan.training.loop import Autocast, Schedule, TrainTask, run_training, training_device_and_autocast

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
    bf16: bool = True            # bf16 autocast on the training device; fp32 master weights
    channels_last: bool = True
    mirror: bool = True
    total_steps: int = 100000
    max_minutes: float | None = None
    val_every: int = 200
    sample_every: int = 200
    ckpt_every: int = 200
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def schedule(self) -> Schedule:
        return Schedule(self.total_steps, self.max_minutes, self.val_every, self.sample_every, self.ckpt_every,
                        self.seed)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


@torch.no_grad()
def evaluate_reconstruction(G: Generator, E: Encoder4Editing, images: torch.Tensor, mask: torch.Tensor,
                            batch: int = 64, bf16: bool = False) -> dict[str, float]:
    """Masked MSE, plain MSE and PSNR of E->G reconstructions of ``images`` ([-1, 1]), on their device."""
    G.eval()
    E.eval()
    amp = Autocast(images.device.type, torch.bfloat16 if bf16 else torch.float32)
    se = mse_masked = 0.0
    n = 0
    for i in range(0, len(images), batch):
        x = images[i:i + batch]
        with amp():
            y = G.synthesis(E.encode(_resize(x, E.config.input_size)), noise_mode="const").float()
        y = _resize(y, x.shape[-1])
        se += ((y - x) ** 2).mean(dim=(1, 2, 3)).sum().item()
        mse_masked += (((y - x) ** 2) * mask).mean(dim=(1, 2, 3)).sum().item() / mask.mean().item()
        n += len(x)
    mse = se / n
    # PSNR on the [0, 1] scale: MSE in [-1, 1] units is 4x larger.
    return {"val_mse": mse, "val_mse_face": mse_masked / n, "val_psnr": 10 * math.log10(4 / max(mse, 1e-12))}


class _EncoderTask(TrainTask):
    """The e4e losses (and the joint generator update) for :func:`stylegan.training.loop.run_training`."""

    state_format = TRAIN_STATE_FORMAT
    kind = "encoder"
    metric = "val_mse_face"  # the stated criterion for best.pt
    log_fields = ("loss", "l1", "lap", "delta", "syn_w", "val_mse", "val_mse_face", "val_psnr")
    plot_keys = ("loss", "l1", "lap", "val_mse", "val_mse_face")
    show_keys = ("loss", "val_mse_face", "val_psnr")

    def __init__(self, G: Generator, E: Encoder4Editing, train: ImageSet, val: ImageSet, cfg: EncoderTrainConfig,
                 device: torch.device, amp: Autocast) -> None:
        self.G, self.E, self.train, self.cfg, self.device, self.amp = G, E, train, cfg, device, amp
        G.to(device).requires_grad_(cfg.joint)
        E.to(device).requires_grad_(True)
        E.latent_avg.copy_(G.w_avg.detach().unsqueeze(0).expand_as(E.latent_avg))
        if cfg.channels_last:
            G.to(memory_format=torch.channels_last)
            E.to(memory_format=torch.channels_last)
        self.opt_e = torch.optim.Adam(E.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        self.opt_g = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(0.9, 0.99)) if cfg.joint else None
        self.mask = face_mask(G.img_resolution, cfg.mask_floor).to(device)
        self.val_images = val.batch(np.arange(len(val))).to(device)
        self.fixed = self.val_images[:: max(1, len(self.val_images) // 8)][:8]  # spread over the (name-sorted) set
        self.eval_key = val.fingerprint()

    def state_dict(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "E": self.E.state_dict(), "opt_e": self.opt_e.state_dict(),
                "opt_g": self.opt_g.state_dict() if self.opt_g else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.E.load_state_dict(state["E"])
        self.opt_e.load_state_dict(state["opt_e"])
        if self.opt_g is not None and state.get("opt_g"):
            self.opt_g.load_state_dict(state["opt_g"])
        # The learning rates come from this run's options, not the saved state, so a
        # resumed run can finish with a lower rate (a cheap final-phase decay).
        for opt, lr in ((self.opt_e, self.cfg.lr), (self.opt_g, self.cfg.g_lr)):
            for group in (opt.param_groups if opt is not None else []):
                group["lr"] = lr

    def _synthetic_loss(self, n: int) -> torch.Tensor:
        """L2 in W between known codes and the encoder's codes of the images G made from them."""
        G, E = self.G, self.E
        with torch.no_grad():
            w_true = G.mapping(torch.randn(n, G.z_dim, device=self.device))
            x_syn = G.synthesis(w_true, noise_mode="const").float().clamp(-1, 1)
        w_syn = E.encode(_resize(x_syn, E.config.input_size))
        return F.mse_loss(w_syn.float(), w_true)

    def _losses(self, x: torch.Tensor, n_syn: int) -> dict[str, torch.Tensor]:
        cfg, E = self.cfg, self.E
        with self.amp():
            syn = self._synthetic_loss(n_syn) if n_syn else x.new_zeros(())
            x_in = _resize(x, E.config.input_size)
            if cfg.channels_last:
                x_in = x_in.contiguous(memory_format=torch.channels_last)
            ws = E.encode(x_in)
            y = self.G.synthesis(ws, noise_mode="const").float()
        y = _resize(y, x.shape[-1])
        parts = {"l1": ((y - x).abs() * self.mask).mean(), "lap": laplacian_l1(y, x, self.mask),
                 "delta": delta_regularization(ws.float()), "syn_w": syn}
        parts["loss"] = (cfg.l1_weight * parts["l1"] + cfg.lap_weight * parts["lap"]
                         + cfg.delta_weight * parts["delta"] + cfg.synthetic_w_weight * syn)
        return parts

    def train_step(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        self.G.train(cfg.joint)
        self.E.train()
        n_syn = int(round(cfg.batch_size * cfg.synthetic_fraction))
        x = self.train.sample(cfg.batch_size - n_syn, rng, mirror=cfg.mirror).to(self.device)
        parts = self._losses(x, n_syn)
        opts = [o for o in (self.opt_e, self.opt_g) if o is not None]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        for opt in opts:
            opt.step()
        return {k: v.detach() for k, v in parts.items()}

    def evaluate(self) -> dict[str, float]:
        return evaluate_reconstruction(self.G, self.E, self.val_images, self.mask, bf16=self.amp.enabled)

    @torch.no_grad()
    def save_sample(self, path: Path) -> None:
        """Validation inputs above their reconstructions."""
        self.E.eval()
        self.G.eval()
        with self.amp():
            rec = self.G.synthesis(self.E.encode(_resize(self.fixed, self.E.config.input_size)),
                                   noise_mode="const").float()
        save_image(image_grid(to_uint8(torch.cat([self.fixed, _resize(rec, self.G.img_resolution)])),
                              cols=len(self.fixed)), path)

    def save_model(self, path: Path, meta: dict[str, Any]) -> None:
        save_model(path, self.G, self.E, meta)


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
    device: str | torch.device | None = None,
) -> Path:
    """Train ``E`` (and ``G`` if ``cfg.joint``) on ``train``; returns the path of the best model file.

    Files in ``run_dir``: ``log.csv``, ``losses.png``, ``samples/step_XXXXXX.png``
    (validation inputs above their reconstructions), ``state.pt`` (resumable
    training state, written atomically every ``ckpt_every`` steps), ``best.pt``
    (model file with the lowest validation face-masked MSE, the stated
    criterion), ``best.json`` (why) and ``last.pt``. The loop around the steps is
    :func:`stylegan.training.loop.run_training`.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``; G and E move there. None: where G is.
            ``cfg.bf16`` autocasts on that device (:func:`stylegan.training.loop.choose_autocast`).
    """
    if E.num_ws != G.num_ws or E.w_dim != G.w_dim:
        raise UserError(f"encoder gives {E.num_ws}x{E.w_dim} codes but the generator needs {G.num_ws}x{G.w_dim}")
    dev, amp = training_device_and_autocast(device, "bf16" if cfg.bf16 else "fp32", model=G, log=log)
    torch.manual_seed(cfg.seed)
    task = _EncoderTask(G, E, train, val, cfg, dev, amp)
    return run_training(task, run_dir, cfg.schedule(), asdict(cfg), resume=resume, meta=meta, log=log)
