"""Fast upfirdn2d in plain PyTorch: the default on CPU, and the fallback on CUDA.

It computes the same sums as :mod:`upfirdn2d_ref`, in a form that oneDNN runs much faster:

* all channels are filtered by ONE depthwise conv (``groups=C``) instead of one
  image per channel ([N*C, 1, H, W]);
* upsampling is a depthwise ``conv_transpose2d`` with ``stride=up``: it multiplies
  only the real samples by the filter, whereas zero insertion materialises an
  ``up_x*up_y`` times larger tensor that is mostly zeros and filters it;
* downsampling is the conv stride, so the dropped samples are never computed;
* as much padding as possible is handed to the conv itself rather than to ``F.pad``,
  which would copy the whole input.

Everything is built from differentiable torch ops, so gradients (w.r.t. ``x`` and
``f``) and double gradients come from autograd. Only the summation order differs
from the reference, so results agree to float rounding (tested in
``tests/stylegan/test_ops_upfirdn2d.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["upfirdn2d_fast"]


def _pad_or_crop(x: torch.Tensor, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """Add zeros (positive values) or drop samples (negative values) at each border of [N, C, H, W]."""
    if max(y0, y1, x0, x1) > 0:
        x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    # Crop after padding, as the reference does: a crop at one border may reach into the
    # zeros just added at the other. Slicing is a free view.
    return x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]


def _split(p0: int, p1: int) -> tuple[int, int, int]:
    """Split a (p0, p1) border into (symmetric part for the conv, rest at start, rest at end)."""
    sym = max(min(p0, p1), 0)  # a conv can only pad, and equally on both sides
    return sym, p0 - sym, p1 - sym


def upfirdn2d_fast(
    x: torch.Tensor,
    f: torch.Tensor,
    up: tuple[int, int],
    down: tuple[int, int],
    padding: tuple[int, int, int, int],
    flip_filter: bool,
    gain: float,
) -> torch.Tensor:
    """Fast implementation; arguments are already normalised by :func:`stylegan.ops.upfirdn2d`.

    Args:
        x: [N, C, H, W] input (any memory format).
        f: [fh, fw] FIR filter.
        up, down: integer factors (x, y).
        padding: (pad_x0, pad_x1, pad_y0, pad_y1) in upsampled coordinates; negative crops.
        flip_filter: correlate with ``f`` instead of convolving.
        gain: multiplies the filter.

    Returns:
        [N, C, H', W'], the same as :func:`stylegan.ops.upfirdn2d_ref.upfirdn2d_ref`.
    """
    c = x.shape[1]
    upx, upy = up
    downx, downy = down
    px0, px1, py0, py1 = padding
    fh, fw = f.shape
    # Same rounding as the reference: the gain is applied in the filter's own dtype.
    weight = (f * gain).to(x.dtype)

    if upx == 1 and upy == 1:
        # conv2d correlates; flip to convolve (unless asked not to).
        if not flip_filter:
            weight = weight.flip([0, 1])
        sy, ry0, ry1 = _split(py0, py1)
        sx, rx0, rx1 = _split(px0, px1)
        x = _pad_or_crop(x, ry0, ry1, rx0, rx1)
        weight = weight[None, None].expand(c, 1, fh, fw)
        return F.conv2d(x, weight, stride=(downy, downx), padding=(sy, sx), groups=c)

    # Upsampling. A transposed conv with stride `up` computes
    #   full[j] = sum_i x[i] * k[j - i*up],   j in [0, (H-1)*up + fh),
    # which is the zero-inserted signal convolved with k (k = f: no flip needed, the
    # transposed conv already convolves). The reference output y[o] (before `down`)
    # equals full[o + fh - 1 - pad0], for o in [0, H*up + pad0 + pad1 - fh + 1).
    # So we need full[fh - 1 - pad0 : H*up + pad1]; the transposed conv's own padding
    # trims equally at both ends, and _pad_or_crop fixes the rest.
    if flip_filter:
        weight = weight.flip([0, 1])
    h, w = x.shape[2], x.shape[3]
    start_y, end_y = fh - 1 - py0, (h - 1) * upy + fh - (h * upy + py1)  # to trim at each end
    start_x, end_x = fw - 1 - px0, (w - 1) * upx + fw - (w * upx + px1)
    ty, tx = max(min(start_y, end_y), 0), max(min(start_x, end_x), 0)
    weight = weight[None, None].expand(c, 1, fh, fw)
    y = F.conv_transpose2d(x, weight, stride=(upy, upx), padding=(ty, tx), groups=c)
    y = _pad_or_crop(y, ty - start_y, ty - end_y, tx - start_x, tx - end_x)
    if downx > 1 or downy > 1:
        y = y[:, :, ::downy, ::downx]
    return y
