"""bias_act on CUDA: the compiled kernels wrapped in autograd Functions.

Forward is one pass. The backward multiplies the upstream gradient by the local slope
(gain, times alpha where the pre-activation was <= 0, zero where the clamp cut). The
second kernel reads that slope from the saved output y when y is sure to tell it
(:func:`backward_mode`), so x itself need not be kept alive; otherwise it saves x and
recomputes x + b. The backward is linear in the upstream gradient with a
piecewise-constant mask, so its own backward is the same kernel again: second
derivatives work (R1 / path-length regularisation).

Importing this module compiles nothing: the extension is built on the first call.
"""

from __future__ import annotations

from typing import Any

import torch

from . import custom_ops
from .bias_act_fast import bias_act_fast

__all__ = ["bias_act_cuda", "bias_act_with_ops", "backward_mode"]

_ACT_CODES = {"linear": 0, "lrelu": 1}  # sgm::BiasActKind in bias_act_kernel.h
_EXACT_STORE = (torch.float32, torch.float64)  # the kernels accumulate in these very types


def backward_mode(act: str, alpha: float, gain: float, clamp: float | None, dtype: torch.dtype) -> str:
    """What the backward keeps: "gain" (nothing), "output" (y) or "input" (x and b).

    The output is enough only if storing it kept what the slope depends on:

    * its sign: with gain >= 1 (and alpha >= 0) a positive pre-activation gives an
      output of at least its own size, so it cannot underflow to 0 and read as negative
      (fp16 x = 2**-24 with gain 0.4 stores 0);
    * the clamp: a clamped output equals the clamp exactly only when the store does not
      round, i.e. for float32/float64; fp16 stores a clamp of 0.1 as 0.09998, bf16 a
      clamp of 0.7 as 0.69922, which would read as "not clamped".

    Otherwise the input is kept (one more activation alive until the backward).
    """
    if act == "linear" and clamp is None:
        return "gain"
    sign_kept = gain >= 1 and (act == "linear" or alpha >= 0)
    clamp_kept = clamp is None or dtype in _EXACT_STORE
    return "output" if sign_kept and clamp_kept else "input"


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
    def forward(ctx: Any, x: torch.Tensor, b: torch.Tensor | None, params: tuple, ops: Any,
                mode: str) -> torch.Tensor:
        y = ops.bias_act(x, b, *params)
        ctx.params, ctx.ops, ctx.mode = params, ops, mode
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
        return dx if ctx.needs_input_grad[0] else None, db, None, None, None


def _check_device(x: torch.Tensor) -> None:
    if not x.is_cuda:
        raise ValueError("impl='cuda' needs CUDA tensors; use impl=None or 'fast' on the CPU")


def bias_act_with_ops(x: torch.Tensor, b: torch.Tensor | None, dim: int, act: str, alpha: float, gain: float,
                      clamp: float | None, ops: Any) -> torch.Tensor:
    """The op through ``ops`` (the compiled extension, or a stand-in with its three functions)."""
    if act not in _ACT_CODES:
        raise ValueError(f"unknown activation {act!r}")
    if b is not None:
        b = b.to(x.dtype)  # differentiable: the bias gradient flows back to b's own dtype
    params = (dim, _ACT_CODES[act], float(alpha), float(gain), -1.0 if clamp is None else float(clamp))
    return _BiasActCuda.apply(x, b, params, ops, backward_mode(act, alpha, gain, clamp, x.dtype))


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
    _check_device(x)
    if act not in _ACT_CODES:
        raise ValueError(f"unknown activation {act!r}")
    ops = custom_ops.get_ops()
    if ops is None:
        return bias_act_fast(x, b, dim, act, alpha, gain, clamp)
    return bias_act_with_ops(x, b, dim, act, alpha, gain, clamp, ops)
