"""upfirdn2d on CUDA: the compiled kernel wrapped in an autograd Function.

The backward of upfirdn2d is again an upfirdn2d: the adjoint of "upsample by u, pad,
convolve with f, keep every d-th sample" is "upsample by d, pad, convolve with the
flipped f, keep every u-th sample", with the padding chosen so that the result has
the input's size (derivation in notes/ops.md). Because the backward calls the same
Function, second derivatives work too.

The kernel takes no gradient for the filter (StyleGAN's filters are constant
buffers); when the filter requires a gradient, the PyTorch path is used instead.
Importing this module compiles nothing: the extension is built on the first call.
"""

from __future__ import annotations

from typing import Any

import torch

from . import custom_ops
from .upfirdn2d_fast import upfirdn2d_fast

__all__ = ["upfirdn2d_cuda"]


def _filter_for_kernel(f: torch.Tensor, gain: float, dtype: torch.dtype) -> torch.Tensor:
    """filter*gain in the kernel's accumulation dtype (float64 for float64 inputs, else float32)."""
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    return (f * gain).to(acc).contiguous()  # same rounding as the reference: gain applied in f's dtype


class _Upfirdn2dCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, f: torch.Tensor, up: tuple[int, int], down: tuple[int, int],
                padding: tuple[int, int, int, int], flip_filter: bool, gain: float, ops: Any) -> torch.Tensor:
        (upx, upy), (downx, downy), (px0, px1, py0, py1) = up, down, padding
        y = ops.upfirdn2d(x, _filter_for_kernel(f, gain, x.dtype), upx, upy, downx, downy, px0, px1, py0, py1,
                          flip_filter)
        ctx.save_for_backward(f)
        ctx.args = (up, down, padding, flip_filter, gain, ops)
        ctx.in_size = (x.shape[2], x.shape[3])
        return y

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (f,) = ctx.saved_tensors
        up, down, (px0, _, py0, _), flip_filter, gain, ops = ctx.args
        dx = None
        if ctx.needs_input_grad[0]:
            fh, fw = f.shape
            h, w = ctx.in_size
            oh, ow = dy.shape[2], dy.shape[3]
            # pad0' = taps - 1 - pad0; pad1' makes the output exactly [H, W].
            padding = (fw - 1 - px0, w * up[0] - ow * down[0] + px0 - up[0] + 1,
                       fh - 1 - py0, h * up[1] - oh * down[1] + py0 - up[1] + 1)
            dx = _Upfirdn2dCuda.apply(dy, f, down, up, padding, not flip_filter, gain, ops)
        return dx, None, None, None, None, None, None, None


def _check_device(x: torch.Tensor) -> None:
    if not x.is_cuda:
        raise ValueError("impl='cuda' needs CUDA tensors; use impl=None or 'fast' on the CPU")


def upfirdn2d_cuda(
    x: torch.Tensor,
    f: torch.Tensor,
    up: tuple[int, int],
    down: tuple[int, int],
    padding: tuple[int, int, int, int],
    flip_filter: bool,
    gain: float,
) -> torch.Tensor:
    """CUDA implementation; arguments are already normalised by :func:`stylegan.ops.upfirdn2d`.

    Falls back to :func:`upfirdn2d_fast` (with one warning) if the extension cannot be
    built, unless ``STYLEGAN_MORPH_CUDA_STRICT=1``.

    Raises:
        ValueError: ``x`` is not a CUDA tensor.
    """
    _check_device(x)
    f = f.to(x.device)  # a filter made on the CPU: every path below needs it next to x (differentiable)
    if f.requires_grad and torch.is_grad_enabled():
        return upfirdn2d_fast(x, f, up, down, padding, flip_filter, gain)  # the kernel has no filter gradient
    ops = custom_ops.get_ops()
    if ops is None:
        return upfirdn2d_fast(x, f, up, down, padding, flip_filter, gain)
    return _Upfirdn2dCuda.apply(x, f, up, down, padding, flip_filter, gain, ops)
