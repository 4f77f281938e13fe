"""Reference upfirdn2d: upsample (zero insertion), pad, FIR filter, downsample.

Plain, readable PyTorch. It is the ground truth that every faster path is tested
against; it favours clarity over speed (it filters every channel as its own
image, [N*C, 1, H, W], which is what makes it slow at 1024^2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["upfirdn2d_ref"]


def upfirdn2d_ref(
    x: torch.Tensor,
    f: torch.Tensor,
    up: tuple[int, int],
    down: tuple[int, int],
    padding: tuple[int, int, int, int],
    flip_filter: bool,
    gain: float,
) -> torch.Tensor:
    """Reference implementation; arguments are already normalised by :func:`upfirdn2d`.

    Args:
        x: [N, C, H, W] input.
        f: [fh, fw] FIR filter (not flipped unless ``flip_filter``: the op is a true
            convolution, i.e. the filter is flipped before correlating, as in scipy's
            ``upfirdn``).
        up, down: integer factors (x, y).
        padding: (pad_x0, pad_x1, pad_y0, pad_y1), applied after upsampling;
            negative values crop.
        gain: multiplies the filter, e.g. ``up_x * up_y`` to keep the mean when
            upsampling by zero insertion.

    Returns:
        [N, C, H', W'] with H' = (H*up_y + pad_y0 + pad_y1 - fh) // down_y + 1.
    """
    n, c, h, w = x.shape
    upx, upy = up
    downx, downy = down
    px0, px1, py0, py1 = padding

    # One image per channel keeps the filter a plain 2-D conv.
    out = x.reshape(n * c, 1, h, w)

    # Upsample by inserting (up - 1) zeros after every sample.
    if upx > 1 or upy > 1:
        out = out.reshape(n * c, 1, h, 1, w, 1)
        out = F.pad(out, [0, upx - 1, 0, 0, 0, upy - 1])
        out = out.reshape(n * c, 1, h * upy, w * upx)

    # Positive padding adds zeros, negative padding crops.
    out = F.pad(out, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    out = out[:, :, max(-py0, 0): out.shape[2] - max(-py1, 0), max(-px0, 0): out.shape[3] - max(-px1, 0)]

    # conv2d correlates; flipping the filter makes this a true convolution.
    weight = (f * gain).to(out.dtype)
    if not flip_filter:
        weight = weight.flip([0, 1])
    out = F.conv2d(out, weight[None, None])

    out = out[:, :, ::downy, ::downx]
    return out.reshape(n, c, out.shape[2], out.shape[3])
