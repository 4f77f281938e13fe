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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import save_generator
from ..errors import UserError
from ..fileio import atomic_write_text
from ..imageio import image_grid, save_image, to_uint8
from ..networks import Generator
from .dataset import ImageSet
from .discriminator import Discriminator
from .loop import Autocast, Schedule, TrainTask, run_training, training_device_and_autocast
from .metrics import pixel_frechet_distance
from .report import write_report

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
    bf16: bool = True            # bf16 autocast on the training device (see stylegan.training.loop); fp32 weights
    mirror: bool = True
    total_steps: int = 100000
    max_minutes: float | None = None
    eval_every: int = 500
    sample_every: int = 500
    ckpt_every: int = 500
    eval_samples: int = 512
    truncation_psi: float = 1.0
    seed: int = 0

    def schedule(self) -> Schedule:
        return Schedule(self.total_steps, self.max_minutes, self.eval_every, self.sample_every, self.ckpt_every,
                        self.seed)


@torch.no_grad()
def _sample(G: Generator, z: torch.Tensor, c: torch.Tensor | None = None, psi: float = 1.0,
            batch: int = 64) -> torch.Tensor:
    out = [G.synthesis(G.mapping(z[i:i + batch], None if c is None else c[i:i + batch], truncation_psi=psi),
                       noise_mode="const").float()
           for i in range(0, len(z), batch)]
    return torch.cat(out).clamp(-1, 1)


def _one_hot(labels: torch.Tensor | np.ndarray, num_classes: int) -> torch.Tensor:
    return F.one_hot(torch.as_tensor(labels, dtype=torch.int64), num_classes).float()


def _check_pair(G: Generator, D: Discriminator, train: ImageSet, val: ImageSet) -> None:
    if D.img_resolution != G.img_resolution:
        raise UserError(f"discriminator is {D.img_resolution}px but the generator is {G.img_resolution}px")
    num_classes = G.config.c_dim
    if D.c_dim != num_classes:
        raise UserError(f"discriminator has c_dim={D.c_dim} but the generator has c_dim={num_classes}")
    if num_classes and (train.labels is None or val.labels is None):
        raise UserError("a conditional generator needs labelled training and validation images")


class _GanTask(TrainTask):
    """StyleGAN2's G and D steps, lazy R1 and the G EMA, for :func:`stylegan.training.loop.run_training`."""

    state_format = STATE_FORMAT
    kind = "GAN"
    metric = "pixel_fd16"
    log_fields = ("loss_g", "loss_d", "r1", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "pixel_fd16")
    plot_keys = ("loss_g", "loss_d", "r1", "pixel_fd16")
    show_keys = ("loss_g", "loss_d", "pixel_fd16")

    def __init__(self, G: Generator, D: Discriminator, train: ImageSet, val: ImageSet, run_dir: Path,
                 cfg: GanTrainConfig, device: torch.device, amp: Autocast, log: Callable[[str], None]) -> None:
        self.G, self.D, self.train, self.cfg, self.device, self.amp = G, D, train, cfg, device, amp
        self.run_dir, self.log = run_dir, log
        self.num_classes = G.config.c_dim
        G.to(device).train().requires_grad_(True)
        D.to(device).train().requires_grad_(True)
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        # Adam betas (0, 0.99) as in StyleGAN2; the lazy R1 step rescales D's lr/betas.
        mb = cfg.r1_interval / (cfg.r1_interval + 1)
        self.opt_g = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(0.0, 0.99), eps=1e-8)
        self.opt_d = torch.optim.Adam(D.parameters(), lr=cfg.d_lr * mb, betas=(0.0, 0.99**mb), eps=1e-8)
        self.ema_beta = 0.5 ** (cfg.batch_size / max(cfg.ema_kimg * 1000, 1e-8))
        self.steps_done = 0  # R1 runs on steps 0, r1_interval, ... of the whole run (set on resume)
        self._fixed_latents(val)

    def _fixed_latents(self, val: ImageSet) -> None:
        """Fixed noise for the sample grids and the evaluation, drawn on the CPU so every device shows the same.

        Conditional grids reuse the same z in every class row, so rows differ only by
        label and columns only by noise. Evaluation labels follow the validation set's
        class frequencies, so the pixel FD compares like with like.
        """
        cfg, k, dev = self.cfg, self.num_classes, self.device
        self.n_cols = 8 if k else 16
        z = torch.randn(self.n_cols, self.G.z_dim, generator=torch.Generator().manual_seed(cfg.seed))
        self.z_fixed, self.c_fixed = z.to(dev), None
        if k:
            self.z_fixed = z.repeat(k, 1).to(dev)
            self.c_fixed = _one_hot(torch.arange(k).repeat_interleave(self.n_cols), k).to(dev)
        self.z_eval = torch.randn(cfg.eval_samples, self.G.z_dim,
                                  generator=torch.Generator().manual_seed(cfg.seed + 1)).to(dev)
        self.c_eval = None if not k else _one_hot(val.labels[np.arange(cfg.eval_samples) % len(val)], k).to(dev)
        self.val_images = val.batch(np.arange(len(val))).to(dev)
        self.eval_key = val.fingerprint()

    def state_dict(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for obj, key in ((self.G, "G"), (self.D, "D"), (self.G_ema, "G_ema"), (self.opt_g, "opt_g"),
                         (self.opt_d, "opt_d")):
            obj.load_state_dict(state[key])
        self.steps_done = state["step"]

    def _batch(self, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Real images and, when conditional, class-balanced one-hot labels (the fakes use the same)."""
        cfg, dev = self.cfg, self.device
        if not self.num_classes:
            return self.train.sample(cfg.batch_size, rng, mirror=cfg.mirror).to(dev), None
        real, labels = self.train.sample_balanced(cfg.batch_size, self.num_classes, rng, mirror=cfg.mirror)
        return real.to(dev), _one_hot(labels, self.num_classes).to(dev)

    def _g_step(self, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Non-saturating loss softplus(-D(G(z))); returns (loss, the fakes for D's step)."""
        z = torch.randn(self.cfg.batch_size, self.G.z_dim, device=self.device)
        self.D.requires_grad_(False)
        with self.amp():
            fake = self.G.synthesis(self.G.mapping(z, c, update_w_avg_beta=0.995), noise_mode="random")
            loss = F.softplus(-self.D(fake, c).float()).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return loss, fake.detach()

    def _d_step(self, real: torch.Tensor, fake: torch.Tensor, c: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """softplus(D(fake)) + softplus(-D(real)); returns the loss and D's scores for the log."""
        with self.amp():
            d_fake = self.D(fake, c).float()
            d_real = self.D(real, c).float()
            loss = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return {"loss_d": loss.detach(), "d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean(),
                "d_acc_real": (d_real.detach() > 0).float().mean(), "d_acc_fake": (d_fake.detach() < 0).float().mean()}

    def _r1_step(self, real: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Lazy R1 on reals, outside autocast: its double backward is sensitive to precision."""
        real = real.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(self.D(real, c).sum(), real, create_graph=True)
        r1 = grad.square().sum(dim=[1, 2, 3]).mean()
        self.opt_d.zero_grad(set_to_none=True)
        (r1 * (self.cfg.r1_gamma / 2) * self.cfg.r1_interval).backward()
        self.opt_d.step()
        return r1.detach()

    @torch.no_grad()
    def _update_ema(self) -> None:
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p.detach(), 1 - self.ema_beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    def train_step(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        real, c = self._batch(rng)
        loss_g, fake = self._g_step(c)
        scalars = {"loss_g": loss_g.detach(), **self._d_step(real, fake, c)}
        if self.steps_done % self.cfg.r1_interval == 0:
            scalars["r1"] = self._r1_step(real, c)
        self._update_ema()
        self.steps_done += 1
        return scalars

    def evaluate(self) -> dict[str, float]:
        fake = _sample(self.G_ema, self.z_eval, self.c_eval, self.cfg.truncation_psi)
        return {"pixel_fd16": pixel_frechet_distance(self.val_images, fake)}

    def save_sample(self, path: Path) -> None:
        fakes = _sample(self.G_ema, self.z_fixed, self.c_fixed, self.cfg.truncation_psi)
        save_image(image_grid(to_uint8(fakes), cols=self.n_cols), path)

    def save_model(self, path: Path, meta: dict[str, Any]) -> None:
        save_generator(path, self.G_ema, meta)

    def after_eval(self) -> None:
        _report(self.run_dir, self.log)


def train_gan(G: Generator, D: Discriminator, train: ImageSet, val: ImageSet, run_dir: str | os.PathLike,
              cfg: GanTrainConfig, resume: bool = True, meta: dict[str, Any] | None = None,
              log: Callable[[str], None] = print, device: str | torch.device | None = None) -> Path:
    """Train ``G`` against ``D``; returns the path of the best generator file (our format).

    Files in ``run_dir``: ``log.csv``, ``losses.png``, ``samples/step_XXXXXX.png``
    (fixed latents; one row per class when conditional), ``state.pt`` (resumable),
    ``best.pt`` and ``last.pt`` (G_ema in our generator format), ``best.json`` (why
    the best was kept) and ``report.html`` (:func:`stylegan.training.report.write_report`).
    The loop around the steps is :func:`stylegan.training.loop.run_training`.

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``; G and D move there. None: where G is.
            ``cfg.bf16`` autocasts on that device (:func:`stylegan.training.loop.choose_autocast`).
    """
    _check_pair(G, D, train, val)
    dev, amp = training_device_and_autocast(device, "bf16" if cfg.bf16 else "fp32", model=G, log=log)
    torch.manual_seed(cfg.seed)
    run_dir = Path(run_dir)
    task = _GanTask(G, D, train, val, run_dir, cfg, dev, amp, log)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "run.json", json.dumps({"class_names": list(G.config.class_names),
                                                       "generator_config": G.config.to_dict(), "meta": meta or {}},
                                                      indent=1))
    return run_training(task, run_dir, cfg.schedule(), asdict(cfg), resume=resume, meta=meta, log=log)


def _report(run_dir: Path, log: Callable[[str], None]) -> None:
    """Rewrite ``report.html``; a report problem must never stop a long training run."""
    try:
        write_report(run_dir)
    except Exception as e:  # noqa: BLE001
        log(f"warning: report not written ({type(e).__name__}: {e})")
