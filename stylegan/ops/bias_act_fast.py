"""Fast bias + activation in plain PyTorch: the default on CPU, and the fallback on CUDA.

At 1024^2 one activation of the generator is 128 MiB, so the op is bound by memory
traffic and allocations, not arithmetic. The reference makes a new tensor for each of
add, leaky ReLU, gain and clamp; here the gain is folded into the bias add (a single
``torch.add(b*gain, x, alpha=gain)`` pass, valid because leaky ReLU is positively
homogeneous: lrelu(g*v) = g*lrelu(v) for g > 0), and the activation and clamp run in
place on that fresh tensor. Autograd supports both in-place ops (leaky ReLU's backward
reads the sign of its output, which equals the sign of its input for a slope > 0).

Results agree with :mod:`bias_act_ref` to float rounding (``g*x + g*b`` against
``(x + b)*g``), checked in ``tests/stylegan/test_ops_bias_act.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
    """Fast implementation; arguments are already normalised by :func:`stylegan.ops.bias_act`.

    Args:
        x: input of any shape.
        b: [x.shape[dim]] bias or None.
        dim: the dimension ``b`` runs along.
        act: "linear" or "lrelu".
        alpha: negative slope of "lrelu".
        gain: scale after the activation.
        clamp: clamp the result to [-clamp, clamp] if not None.

    Returns:
        Tensor shaped like ``x``.
    """
    if act not in ("linear", "lrelu"):
        raise ValueError(f"unknown activation {act!r}")
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        b = b.reshape(shape)

    fold = gain > 0  # fold the gain into the add (needs lrelu(g*v) == g*lrelu(v))
    if b is not None:
        if fold and gain != 1:
            y = torch.add((b * gain).to(x.dtype), x, alpha=gain)
        else:
            y = x + b.to(x.dtype)
    elif fold and gain != 1:
        y = x * gain
    else:
        y = x  # no copy yet: nothing below may write into the caller's tensor
    fresh = y is not x

    if act == "lrelu":
        # In place only on our own tensor, and only for a positive slope: with alpha <= 0
        # the output's sign no longer tells autograd the input's sign.
        y = F.leaky_relu(y, alpha, inplace=fresh and alpha > 0)
        fresh = True
    if not fold and gain != 1:
        y = y * gain
        fresh = True
    if clamp is not None:
        # Leaky ReLU's backward reads its output, so under autograd that output must stay intact.
        keep = act == "lrelu" and torch.is_grad_enabled() and y.requires_grad
        y = y.clamp_(-clamp, clamp) if fresh and not keep else y.clamp(-clamp, clamp)
    return y
