"""bias_act on CUDA: the compiled kernels wrapped in autograd Functions.

Forward is one pass. The backward multiplies the upstream gradient by the local slope
(gain, times alpha where the pre-activation was <= 0, zero where the clamp cut), which
the second kernel reads from the saved output y: y > 0 exactly when x + b > 0 if
gain > 0 and alpha >= 0, so x itself need not be kept alive. Otherwise (negative
gain or slope) it saves x and recomputes x + b. The backward is linear in the
upstream gradient with a piecewise-constant mask, so its own backward is the same
kernel again: second derivatives work (R1 / path-length regularisation).

Importing this module compiles nothing: the extension is built on the first call.
"""

from __future__ import annotations

from typing import Any

import torch

from . import custom_ops
from .bias_act_fast import bias_act_fast

__all__ = ["bias_act_cuda"]

_ACT_CODES = {"linear": 0, "lrelu": 1}  # sgm::BiasActKind in bias_act_kernel.h


class _BiasActGradCuda(torch.autograd.Function):
    """dx = dy * slope(saved); linear in dy, so its backward is itself."""

    @staticmethod
    def forward(ctx: Any, dy: torch.Tensor, saved: torch.Tensor, b: torch.Tensor | None, params: tuple,
                saved_is_output: bool, ops: Any) -> torch.Tensor:
        ctx.save_for_backward(saved, b)
        ctx.params, ctx.saved_is_output, ctx.ops = params, saved_is_output, ops
        return ops.bias_act_grad(dy, saved, b, *params, saved_is_output)

    @staticmethod
    def backward(ctx: Any, ddx: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved, b = ctx.saved_tensors
        ddy = _BiasActGradCuda.apply(ddx, saved, b, ctx.params, ctx.saved_is_output, ctx.ops)
        return ddy, None, None, None, None, None  # the slope is piecewise constant: no gradient


class _BiasActCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, b: torch.Tensor | None, params: tuple, ops: Any) -> torch.Tensor:
        dim, act, alpha, gain, clamp = params
        y = ops.bias_act(x, b, *params)
        ctx.params, ctx.ops = params, ops
        ctx.mode = "gain"  # linear without clamp: dx = dy * gain, nothing to keep
        if act != _ACT_CODES["linear"] or clamp >= 0:
            ctx.mode = "output" if gain > 0 and (act == _ACT_CODES["linear"] or alpha >= 0) else "input"
        if ctx.mode == "output":
            ctx.save_for_backward(y, None)
        elif ctx.mode == "input":
            ctx.save_for_backward(x, b)
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        dim, _, _, gain, _ = ctx.params
        if ctx.mode == "gain":
            dx = dy * gain
        else:
            saved, b = ctx.saved_tensors
            dx = _BiasActGradCuda.apply(dy, saved, b, ctx.params, ctx.mode == "output", ctx.ops)
        db = None
        if ctx.needs_input_grad[1]:
            db = dx.sum([d for d in range(dx.ndim) if d != dim]) if dx.ndim > 1 else dx
        return dx if ctx.needs_input_grad[0] else None, db, None, None


def bias_act_cuda(
    x: torch.Tensor,
    b: torch.Tensor | None,
    dim: int,
    act: str,
    alpha: float,
    gain: float,
    clamp: float | None,
) -> torch.Tensor:
    """CUDA implementation; arguments are already normalised by :func:`stylegan.ops.bias_act`.

    Falls back to :func:`bias_act_fast` (with one warning) if the extension cannot be
    built, unless ``STYLEGAN_MORPH_CUDA_STRICT=1``.

    Raises:
        ValueError: ``x`` is not a CUDA tensor.
    """
    if not x.is_cuda:
        raise ValueError("impl='cuda' needs CUDA tensors; use impl=None or 'fast' on the CPU")
    if act not in _ACT_CODES:
        raise ValueError(f"unknown activation {act!r}")
    ops = custom_ops.get_ops()
    if ops is None:
        return bias_act_fast(x, b, dim, act, alpha, gain, clamp)
    if b is not None:
        b = b.to(x.dtype)  # differentiable: the bias gradient flows back to b's own dtype
    params = (dim, _ACT_CODES[act], float(alpha), float(gain), -1.0 if clamp is None else float(clamp))
    return _BiasActCuda.apply(x, b, params, ops)
