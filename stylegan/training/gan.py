"""Adversarial training of a StyleGAN2 generator on an image folder.

Losses follow StyleGAN2 (Karras et al. 2020): the non-saturating logistic loss
for G and D, and lazy R1 regularisation of D on real images every
``r1_interval`` steps (gamma scaled by the interval). Path-length
regularisation and style mixing are left out: they cost about a third more
per step and matter little at the small scales this trainer targets on CPU.
An exponential moving average of G (``G_ema``, half-life ``ema_kimg``) is what
gets sampled, scored and saved.

Best checkpoint criterion: the lowest pixel Fréchet distance at 16x16
(:func:`stylegan.training.metrics.pixel_frechet_distance`) between
``eval_samples`` G_ema images and the held-out validation images.

Conditional training (a generator with ``c_dim`` > 0, a projection
discriminator and an image set with labels): every batch draws its classes
uniformly (class-balanced), real images of those classes, and fakes generated
for the same one-hot labels; D sees the label with every image, R1 included.
"""

from __future__ import annotations

import copy
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import atomic_torch_save, read_checkpoint, save_generator
from ..errors import UserError
from ..fileio import atomic_write_text
from ..imageio import image_grid, save_image, to_uint8
from ..networks import Generator
from .dataset import ImageSet
from .discriminator import Discriminator
from .logging import CsvLog, plot_losses
from .report import write_report
from .metrics import pixel_frechet_distance

__all__ = ["GanTrainConfig", "train_gan"]

STATE_FORMAT = "stylegan-morph/gan-train-state/v1"


@dataclass
class GanTrainConfig:
    batch_size: int = 16
    g_lr: float = 2e-3
    d_lr: float = 2e-3
    r1_gamma: float = 1.0
    r1_interval: int = 16
    ema_kimg: float = 2.5
    bf16: bool = True
    mirror: bool = True
    total_steps: int = 100000
    max_minutes: float | None = None
    eval_every: int = 500
    sample_every: int = 500
    ckpt_every: int = 500
    eval_samples: int = 512
    truncation_psi: float = 1.0
    seed: int = 0


def _autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def _sample(G: Generator, z: torch.Tensor, c: torch.Tensor | None = None, psi: float = 1.0,
            batch: int = 64) -> torch.Tensor:
    out = [G.synthesis(G.mapping(z[i:i + batch], None if c is None else c[i:i + batch], truncation_psi=psi),
                       noise_mode="const").float()
           for i in range(0, len(z), batch)]
    return torch.cat(out).clamp(-1, 1)


def _one_hot(labels: torch.Tensor | np.ndarray, num_classes: int) -> torch.Tensor:
    return F.one_hot(torch.as_tensor(labels, dtype=torch.int64), num_classes).float()


def train_gan(G: Generator, D: Discriminator, train: ImageSet, val: ImageSet, run_dir: str | os.PathLike,
              cfg: GanTrainConfig, resume: bool = True, meta: dict[str, Any] | None = None,
              log: Callable[[str], None] = print) -> Path:
    """Train ``G`` against ``D``; returns the path of the best generator file (our format).

    Files in ``run_dir``: ``log.csv``, ``losses.png``, ``samples/step_XXXXXX.png``
    (fixed latents; one row per class when conditional), ``state.pt`` (resumable),
    ``best.pt`` and ``last.pt`` (G_ema in our generator format), ``best.json`` (why
    the best was kept) and ``report.html`` (:func:`stylegan.training.report.write_report`).
    """
    run_dir = Path(run_dir)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    if D.img_resolution != G.img_resolution:
        raise UserError(f"discriminator is {D.img_resolution}px but the generator is {G.img_resolution}px")
    num_classes = G.config.c_dim
    if D.c_dim != num_classes:
        raise UserError(f"discriminator has c_dim={D.c_dim} but the generator has c_dim={num_classes}")
    if num_classes and (train.labels is None or val.labels is None):
        raise UserError("a conditional generator needs labelled training and validation images")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    G.train().requires_grad_(True)
    D.train().requires_grad_(True)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    # Adam betas (0, 0.99) as in StyleGAN2; the lazy R1 step rescales D's lr/betas.
    mb = cfg.r1_interval / (cfg.r1_interval + 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(0.0, 0.99), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.d_lr * mb, betas=(0.0, 0.99**mb), eps=1e-8)

    step, best, elapsed_before = 0, float("inf"), 0.0
    state_path = run_dir / "state.pt"
    if resume and state_path.exists():
        st = read_checkpoint(state_path)
        if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
            raise UserError(f"{state_path}: not a GAN training state")
        for obj, key in ((G, "G"), (D, "D"), (G_ema, "G_ema"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            obj.load_state_dict(st[key])
        step, best, elapsed_before = st["step"], st["best"], st["seconds"]
        rng = np.random.default_rng(cfg.seed + step)
        log(f"resumed from {state_path} at step {step}")
    atomic_write_text(run_dir / "train_config.json", json.dumps(asdict(cfg), indent=2))
    atomic_write_text(run_dir / "run.json", json.dumps({"class_names": list(G.config.class_names),
                                                       "generator_config": G.config.to_dict(), "meta": meta or {}},
                                                      indent=1))

    # Fixed noise for the sample grids; conditional grids reuse the same z in every
    # class row, so rows differ only by label and columns only by noise.
    n_cols = 8 if num_classes else 16
    z_fixed = torch.randn(n_cols, G.z_dim, generator=torch.Generator().manual_seed(cfg.seed))
    c_fixed = None
    if num_classes:
        z_fixed = z_fixed.repeat(num_classes, 1)
        c_fixed = _one_hot(torch.arange(num_classes).repeat_interleave(n_cols), num_classes)
    z_eval = torch.randn(cfg.eval_samples, G.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 1))
    # Evaluation labels follow the validation set's class frequencies, so the pixel FD
    # compares like with like.
    c_eval = None if not num_classes else _one_hot(val.labels[np.arange(cfg.eval_samples) % len(val)], num_classes)
    val_images = val.batch(np.arange(len(val)))
    ema_beta = 0.5 ** (cfg.batch_size / max(cfg.ema_kimg * 1000, 1e-8))
    csv_log = CsvLog(run_dir / "log.csv", ["loss_g", "loss_d", "r1", "d_real", "d_fake", "d_acc_real",
                                           "d_acc_fake", "pixel_fd16", "sec_per_step"])
    t0 = t_last = time.time()
    steps_since = 0
    r1_val = 0.0
    # Means over the steps since the last evaluation (one batch is too noisy to plot).
    acc = dict.fromkeys(("loss_g", "loss_d", "d_real", "d_fake", "d_acc_real", "d_acc_fake"), 0.0)

    def save_state() -> None:
        atomic_torch_save({"format": STATE_FORMAT, "G": G.state_dict(), "D": D.state_dict(),
                           "G_ema": G_ema.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                           "step": step, "best": best, "seconds": elapsed_before + time.time() - t0,
                           "config": asdict(cfg)}, state_path)

    def gen_meta() -> dict[str, Any]:
        return {**(meta or {}), "step": step, "train_config": asdict(cfg),
                "seconds": round(elapsed_before + time.time() - t0)}

    try:
        while step < cfg.total_steps:
            if cfg.max_minutes is not None and (elapsed_before + time.time() - t0) / 60 >= cfg.max_minutes:
                log(f"time budget of {cfg.max_minutes} min reached at step {step}")
                break
            c = None
            if num_classes:
                real, labels = train.sample_balanced(cfg.batch_size, num_classes, rng, mirror=cfg.mirror)
                c = _one_hot(labels, num_classes)
            else:
                real = train.sample(cfg.batch_size, rng, mirror=cfg.mirror)
            z = torch.randn(cfg.batch_size, G.z_dim)

            # G step: non-saturating loss softplus(-D(G(z))).
            D.requires_grad_(False)
            with _autocast(cfg.bf16):
                fake = G.synthesis(G.mapping(z, c, update_w_avg_beta=0.995), noise_mode="random")
                loss_g = F.softplus(-D(fake, c).float()).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            D.requires_grad_(True)

            # D step: softplus(D(fake)) + softplus(-D(real)).
            with _autocast(cfg.bf16):
                d_fake = D(fake.detach(), c).float()
                d_real = D(real, c).float()
                loss_d = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            # Lazy R1 on reals, in fp32 (its double backward is sensitive to precision).
            if step % cfg.r1_interval == 0:
                real_r1 = real.detach().requires_grad_(True)
                (grad,) = torch.autograd.grad(D(real_r1, c).sum(), real_r1, create_graph=True)
                r1 = grad.square().sum(dim=[1, 2, 3]).mean()
                opt_d.zero_grad(set_to_none=True)
                (r1 * (cfg.r1_gamma / 2) * cfg.r1_interval).backward()
                opt_d.step()
                r1_val = r1.item()

            with torch.no_grad():
                for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                    p_ema.lerp_(p.detach(), 1 - ema_beta)
                for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)
            step += 1
            steps_since += 1
            for k, v in (("loss_g", loss_g.item()), ("loss_d", loss_d.item()), ("d_real", d_real.mean().item()),
                         ("d_fake", d_fake.mean().item()), ("d_acc_real", (d_real > 0).float().mean().item()),
                         ("d_acc_fake", (d_fake < 0).float().mean().item())):
                acc[k] += v

            if step % cfg.eval_every == 0 or step == cfg.total_steps:
                now = time.time()
                fd = pixel_frechet_distance(val_images, _sample(G_ema, z_eval, c_eval, cfg.truncation_psi))
                row = {"step": step, "seconds": round(elapsed_before + now - t0, 1),
                       **{k: v / max(steps_since, 1) for k, v in acc.items()}, "r1": r1_val, "pixel_fd16": fd,
                       "sec_per_step": (now - t_last) / max(steps_since, 1)}
                t_last, steps_since = now, 0
                acc = dict.fromkeys(acc, 0.0)
                csv_log.write(row)
                plot_losses(run_dir / "log.csv", run_dir / "losses.png", ["loss_g", "loss_d", "r1", "pixel_fd16"])
                improved = fd < best
                if improved:
                    prev, best = best, fd
                    save_generator(run_dir / "best.pt", G_ema, gen_meta())
                    why = (f"lowest pixel_fd16 so far ({fd:.3f}" +
                           (f", previous best {prev:.3f})" if prev < float("inf") else ", first evaluation)"))
                    atomic_write_text(run_dir / "best.json", json.dumps(
                        {"step": step, "metric": "pixel_fd16", "value": fd, "file": "best.pt", "reason": why}))
                log(f"step {step}: loss_g {row['loss_g']:.3f} loss_d {row['loss_d']:.3f} pixel_fd16 {fd:.2f} "
                    f"{row['sec_per_step']:.2f} s/step{' *best*' if improved else ''}")
            if step % cfg.sample_every == 0:
                save_image(image_grid(to_uint8(_sample(G_ema, z_fixed, c_fixed, cfg.truncation_psi)), cols=n_cols),
                           run_dir / "samples" / f"step_{step:06d}.png")
            if step % cfg.eval_every == 0:
                _report(run_dir, log)
            if step % cfg.ckpt_every == 0:
                save_state()
    finally:
        csv_log.close()
    save_state()
    save_generator(run_dir / "last.pt", G_ema, gen_meta())
    if not (run_dir / "best.pt").exists():
        save_generator(run_dir / "best.pt", G_ema, gen_meta())
    if step % cfg.eval_every:  # the last evaluation step already wrote it
        _report(run_dir, log)
    return run_dir / "best.pt"


def _report(run_dir: Path, log: Callable[[str], None]) -> None:
    """Rewrite ``report.html``; a report problem must never stop a long training run."""
    try:
        write_report(run_dir)
    except Exception as e:  # noqa: BLE001
        log(f"warning: report not written ({type(e).__name__}: {e})")
