"""Refining an encoder's code by optimisation ("hybrid" inversion).

An encoder gives a good code in one pass; a few dozen gradient steps on the code
itself then pull the render closer to the photo. This is the encoder-initialised
optimisation of Zhu et al., "In-Domain GAN Inversion for Real Image Editing"
(ECCV 2020), and the reason the HyperStyle paper's table lists W+ optimisation
far above e4e on identity (0.78 vs 0.50) at a much higher cost. Only the code
changes; the generator stays as it is, so morphs between refined codes work as
before.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
import torch.nn.functional as F

from stylegan.errors import UserError
from stylegan.networks import Generator
from stylegan.precision import autocast, resolve_precision

from .losses import delta_regularization, face_mask, masked_reconstruction_loss

__all__ = ["refine_latent", "auto_refine_steps", "steps_for_budget", "AUTO_REFINE_MAX_RESOLUTION",
           "AUTO_REFINE_STEPS", "DEFAULT_REFINE_BUDGET"]

#: ``refine="auto"`` refines only generators up to this size, where a step is cheap on a CPU
#: (about 0.06 s at 128 px, against about 3 s at 1024 px).
AUTO_REFINE_MAX_RESOLUTION = 256
AUTO_REFINE_STEPS = 100

#: Seconds of refinement per photo that ``steps="auto"`` in :func:`refine_latent` aims for.
#: A step costs 0.06 s at 128 px but 2.5-4 s with a 256 px official-width generator on a
#: busy CPU, so a fixed count (100 steps: minutes per photo) cannot suit both; 20 s buys
#: the full 100 small steps, or 5-8 large ones.
DEFAULT_REFINE_BUDGET = 20.0


def steps_for_budget(step_seconds: float, budget: float, max_steps: int = AUTO_REFINE_STEPS) -> int:
    """How many steps of ``step_seconds`` fit in ``budget`` seconds: at least 1 (the timed one), at most ``max_steps``."""
    if not math.isfinite(budget) or budget < 0:
        raise UserError(f"budget must be a finite number of seconds >= 0, got {budget}")
    if budget == 0:
        return 0
    fit = int(budget // max(step_seconds, 1e-9))
    return max(1, min(max_steps, fit))


def auto_refine_steps(G: Generator) -> int:
    """The number of refinement steps ``"auto"`` means for this generator."""
    return AUTO_REFINE_STEPS if G.img_resolution <= AUTO_REFINE_MAX_RESOLUTION else 0


def refine_latent(G: Generator, image: torch.Tensor, ws: torch.Tensor, steps: int | str = AUTO_REFINE_STEPS,
                  lr: float = 0.02, delta_weight: float = 0.0, mask_floor: float = 0.25, *,
                  budget: float = DEFAULT_REFINE_BUDGET, max_steps: int = AUTO_REFINE_STEPS,
                  precision: str | torch.dtype = "fp32", clock: Callable[[], float] = time.perf_counter,
                  log: Callable[[str], None] | None = None) -> torch.Tensor:
    """Optimise W+ codes so that ``G`` renders ``image`` more faithfully.

    The loss is the encoder trainer's: face-masked L1 plus Laplacian-pyramid L1 at the
    generator's resolution, optionally with e4e's delta regularisation to keep the
    code close to W. Adam, constant ``lr``, noise fixed to the stored buffers.

    Args:
        G: the generator (its weights are not changed).
        image: [B, 3, H, W] target in [-1, 1], the aligned face the code came from.
        ws: [B, num_ws, w_dim] starting codes (e.g. ``E.encode(image)``).
        steps: optimisation steps; 0 returns ``ws`` unchanged. ``"auto"`` times the first
            step and then takes as many as fit in ``budget`` seconds (at most ``max_steps``,
            at least the timed one), and says so through ``log``.
        budget: seconds of refinement for ``"auto"`` (for the whole batch ``ws``).
        max_steps: the cap of ``"auto"``: a cheap generator stops there, not at the budget.
        precision: ``"fp32"``, ``"bf16"``, ``"auto"``... (see :mod:`stylegan.precision`); the
            code and the loss stay float32.
        clock: seconds now (for tests).
        log: receives one line with the steps ``"auto"`` chose.

    Returns:
        [B, num_ws, w_dim] refined codes (detached, same device and dtype as ``ws``).
    """
    auto = steps == "auto"
    if not auto and not isinstance(steps, int):
        raise UserError(f"steps must be a number of steps or 'auto', got {steps!r}")
    if auto:
        steps_for_budget(1.0, budget)  # checks the budget
        if budget == 0 or max_steps <= 0:
            return ws
    elif steps <= 0:
        return ws
    res = G.img_resolution
    device = ws.device
    target = image.to(device=device, dtype=torch.float32)
    if target.shape[-1] != res or target.shape[-2] != res:
        target = F.interpolate(target, size=(res, res), mode="bilinear", align_corners=False, antialias=True)
    mask = face_mask(res, mask_floor).to(device)
    dtype = resolve_precision(precision, device, model=G)
    was_training = G.training
    G.eval()
    w = ws.detach().clone().float().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)

    def step() -> None:
        with autocast(dtype, device):
            y = G.synthesis(w, noise_mode="const")
        loss = masked_reconstruction_loss(y.float(), target, mask)
        if delta_weight:
            loss = loss + delta_weight * delta_regularization(w)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    try:
        with torch.enable_grad():
            if auto:
                start = clock()
                step()
                slowest = took = clock() - start
                steps = steps_for_budget(took, budget, max_steps)
                done = 1
                # Keep to the budget even when later steps run slower than the first (a busy
                # machine): stop when the slowest step so far would no longer fit.
                while done < steps:
                    t0 = clock()
                    if t0 - start + slowest > budget:
                        break
                    step()
                    slowest = max(slowest, clock() - t0)
                    done += 1
                if log is not None:
                    why = "the cap" if done == max_steps else f"the {budget:g} s budget"
                    log(f"refine auto: one step took {took:.2f} s, so {done} step{'s' * (done != 1)} "
                        f"in {clock() - start:.1f} s ({why})")
                steps = 0
            for _ in range(steps):
                step()
    finally:
        G.train(was_training)
    return w.detach().to(ws.dtype)
