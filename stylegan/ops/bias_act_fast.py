"""Fast CPU bias + activation.

Same math as :mod:`bias_act_ref`; it folds the gain into the slope so that lrelu
costs one fused ``torch.where`` pass instead of three elementwise passes.
"""

from __future__ import annotations

import torch

__all__ = ["bias_act_fast"]


def bias_act_fast(
    x: torch.Tensor,
    b: torch.Tensor | None,
    dim: int,
    act: str,
    alpha: float,
    gain: float,
    clamp: float | None,
) -> torch.Tensor:
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape).to(x.dtype)
    if act == "lrelu":
        # gain*lrelu(x) == where(x >= 0, gain*x, gain*alpha*x)
        x = torch.where(x >= 0, x * gain, x * (gain * alpha))
    elif gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x
