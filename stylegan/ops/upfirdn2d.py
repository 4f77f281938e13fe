"""upfirdn2d: upsample, FIR-filter and downsample a batch of images.

Public entry point with implementation selection:

* ``impl="ref"``  -- :mod:`stylegan.ops.upfirdn2d_ref`, readable ground truth;
* ``impl="fast"`` -- :mod:`stylegan.ops.upfirdn2d_fast`, the default on CPU;
* ``impl="cuda"`` -- compiled kernels, built on first use (see :mod:`stylegan.ops.custom_ops`);
* ``impl=None``   -- "cuda" for CUDA tensors, else "fast".
"""

from __future__ import annotations

from typing import Sequence

import torch

from .upfirdn2d_ref import upfirdn2d_ref
from .upfirdn2d_fast import upfirdn2d_fast

__all__ = ["upfirdn2d", "setup_filter", "upsample2d", "downsample2d", "filter2d", "IMPLS"]

IMPLS = ("ref", "fast", "cuda")


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


def _padding4(p: int | Sequence[int]) -> tuple[int, int, int, int]:
    if isinstance(p, int):
        return p, p, p, p
    p = tuple(int(v) for v in p)
    if len(p) == 2:  # (pad_x, pad_y)
        return p[0], p[0], p[1], p[1]
    if len(p) != 4:
        raise ValueError(f"padding must have 1, 2 or 4 values, got {p}")
    return p  # type: ignore[return-value]


def setup_filter(taps: Sequence[float] = (1, 3, 3, 1), normalize: bool = True) -> torch.Tensor:
    """Build the 2-D separable FIR filter used by StyleGAN2.

    The 1-D taps [1, 3, 3, 1] (a binomial low-pass) are turned into their outer
    product and, by default, normalised to sum to 1.

    Returns:
        [len(taps), len(taps)] float32 tensor.
    """
    k = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(k, k)
    if normalize:
        f = f / f.sum()
    return f


def _resolve_impl(x: torch.Tensor, impl: str | None) -> str:
    if impl is None:
        return "cuda" if x.is_cuda else "fast"
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: str | None = None,
) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with ``f``, then keep every ``down``-th sample.

    Args:
        x: [N, C, H, W] images.
        f: [fh, fw] filter.
        up, down: factor, or (x, y) factors.
        padding: int, (px, py) or (px0, px1, py0, py1); negative values crop.
        flip_filter: correlate instead of convolve.
        gain: overall scaling of the filter.
        impl: "ref", "fast", "cuda" or None (automatic).

    Returns:
        [N, C, H', W'] tensor.

    Example:
        >>> x = torch.randn(1, 3, 8, 8)
        >>> upfirdn2d(x, setup_filter(), up=2, padding=(2, 1), gain=4).shape
        torch.Size([1, 3, 16, 16])
    """
    if x.ndim != 4:
        raise ValueError(f"expected [N, C, H, W], got shape {tuple(x.shape)}")
    if f.ndim != 2:
        raise ValueError(f"expected a 2-D filter, got shape {tuple(f.shape)}")
    args = (x, f, _pair(up), _pair(down), _padding4(padding), bool(flip_filter), float(gain))
    impl = _resolve_impl(x, impl)
    if impl == "ref":
        return upfirdn2d_ref(*args)
    if impl == "cuda":
        from .upfirdn2d_cuda import upfirdn2d_cuda  # built lazily, never at import

        return upfirdn2d_cuda(*args)
    return upfirdn2d_fast(*args)


def filter2d(x: torch.Tensor, f: torch.Tensor, padding: int | Sequence[int] = 0, impl: str | None = None) -> torch.Tensor:
    """Filter without resampling, padding so that the output size is unchanged plus ``padding``."""
    fh, fw = f.shape
    px0, px1, py0, py1 = _padding4(padding)
    pad = (px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2)
    return upfirdn2d(x, f, padding=pad, impl=impl)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2, impl: str | None = None) -> torch.Tensor:
    """Upsample 2x (default) with the FIR filter ``f``, output exactly ``up`` times larger."""
    fh, fw = f.shape
    pad = ((fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=pad, gain=up * up, impl=impl)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2, impl: str | None = None) -> torch.Tensor:
    """Downsample 2x (default) with the FIR filter ``f``, output exactly ``down`` times smaller."""
    fh, fw = f.shape
    pad = ((fw - down + 1) // 2, (fw - down) // 2, (fh - down + 1) // 2, (fh - down) // 2)
    return upfirdn2d(x, f, down=down, padding=pad, impl=impl)
