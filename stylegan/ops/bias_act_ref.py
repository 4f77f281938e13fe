"""Reference fused bias + activation: y = clamp(act(x + b) * gain).

Plain PyTorch; the ground truth for the fast CPU and CUDA paths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["bias_act_ref"]


def bias_act_ref(
    x: torch.Tensor,
    b: torch.Tensor | None,
    dim: int,
    act: str,
    alpha: float,
    gain: float,
    clamp: float | None,
) -> torch.Tensor:
    """Reference implementation; arguments are already normalised by :func:`bias_act`.

    Args:
        x: input of any shape.
        b: 1-D bias broadcast along ``dim`` (or None).
        act: "linear" or "lrelu".
        alpha: negative slope for "lrelu".
        gain: scale applied after the activation (sqrt(2) for lrelu keeps the
            signal variance, the StyleGAN2 convention).
        clamp: if given, clamp the result to [-clamp, clamp].
    """
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.reshape(shape).to(x.dtype)
    if act == "lrelu":
        x = F.leaky_relu(x, alpha)
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}")
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x
