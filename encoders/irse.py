"""IR-SE residual backbone (the ArcFace-style ResNet that e4e uses as its trunk).

The module layout and attribute names reproduce the state_dict keys of the
original omertov/encoder4editing checkpoints (``models/encoders/helpers.py``
there), so that an ``encoder.*`` state dict from ``e4e_ffhq_encode.pt`` loads
without renaming:

- ``input_layer.{0,1,2}``: Conv3x3 (no bias), BatchNorm, PReLU.
- ``body.{N}``: one :class:`BottleneckIRSE` per unit, numbered across stages.
- ``body.{N}.res_layer.{0..5}``: BN, Conv3x3, PReLU, Conv3x3 (carries the
  stride), BN, :class:`SqueezeExcite` (``fc1``/``fc2``, no bias).
- ``body.{N}.shortcut_layer.{0,1}``: Conv1x1 + BN when the width changes,
  otherwise a parameter-free subsampling.

Example:
    >>> body = make_body(widths=(8, 16, 16, 32), units=(1, 1, 2, 1), se_reduction=4)
    >>> stage_end_indices((1, 1, 2, 1))
    [0, 1, 3, 4]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "SqueezeExcite",
    "Subsample",
    "BottleneckIRSE",
    "make_input_layer",
    "make_body",
    "stage_end_indices",
]


class SqueezeExcite(nn.Module):
    """Channel attention: x * sigmoid(fc2(relu(fc1(mean_hw(x))))).

    Args:
        channels: number of input (and output) channels.
        reduction: the bottleneck has ``channels // reduction`` channels (16 in e4e).

    Shape:
        [B, C, H, W] -> [B, C, H, W]
    """

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(f"SE reduction {reduction} leaves no channels out of {channels}")
        # 1x1 convs rather than Linear layers: the checkpoint stores 4-D weights.
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3), keepdim=True)  # [B, C, 1, 1]
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(gate))))
        return x * gate


class Subsample(nn.Module):
    """Keep every ``stride``-th pixel; the identity for stride 1.

    This equals the original's ``MaxPool2d(kernel_size=1, stride)`` (a 1x1 max
    pool just picks pixels) and, like it, has no parameters.
    """

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x
        return x[:, :, :: self.stride, :: self.stride]

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class BottleneckIRSE(nn.Module):
    """One improved-residual unit with squeeze-excitation.

    Args:
        in_channels: input width.
        out_channels: output width.
        stride: 1 or 2; applied by the second 3x3 conv and by the shortcut.
        se_reduction: SE bottleneck ratio.

    Shape:
        [B, in, H, W] -> [B, out, ceil(H / stride), ceil(W / stride)]
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, se_reduction: int = 16) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        if in_channels == out_channels:
            self.shortcut_layer: nn.Module = Subsample(stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        # Pre-activation ordering (BN first, no activation after the last BN) as in
        # the ArcFace "IR" unit; indices 0..5 are part of the checkpoint keys.
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            SqueezeExcite(out_channels, se_reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)

    def extra_repr(self) -> str:
        return f"{self.in_channels}->{self.out_channels}, stride={self.stride}"


def make_input_layer(width: int) -> nn.Sequential:
    """The stem: Conv3x3(3 -> width, no bias), BatchNorm, PReLU, at full resolution.

    Args:
        width: output channels (64 in IR-SE50).

    Returns:
        ``nn.Sequential`` whose children are keyed 0, 1, 2 as in the checkpoint.
    """
    return nn.Sequential(
        nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.PReLU(width),
    )


def make_body(widths: Sequence[int], units: Sequence[int], se_reduction: int = 16) -> nn.Sequential:
    """All residual stages as one flat ``nn.Sequential`` (keys ``body.0`` ... ``body.N``).

    Each stage starts with a stride-2 unit that changes the width; the first
    stage's input width is ``widths[0]``, i.e. the stem's width. IR-SE50 is
    ``widths=(64, 128, 256, 512), units=(3, 4, 14, 3)``.

    Args:
        widths: output channels of each stage.
        units: number of units in each stage.
        se_reduction: SE bottleneck ratio.

    Returns:
        ``nn.Sequential`` of :class:`BottleneckIRSE`, ``sum(units)`` long.
    """
    if len(widths) != len(units):
        raise ValueError(f"got {len(widths)} stage widths but {len(units)} unit counts")
    modules: list[nn.Module] = []
    in_ch = widths[0]
    for width, count in zip(widths, units):
        if count < 1:
            raise ValueError(f"every stage needs at least one unit, got {tuple(units)}")
        for k in range(count):
            modules.append(BottleneckIRSE(in_ch, width, stride=2 if k == 0 else 1, se_reduction=se_reduction))
            in_ch = width
    return nn.Sequential(*modules)


def stage_end_indices(units: Sequence[int]) -> list[int]:
    """Index into ``body`` of the last unit of each stage.

    For IR-SE50 this is ``[2, 6, 20, 23]``; e4e taps 6, 20 and 23 (c1, c2, c3).

    Args:
        units: number of units in each stage.

    Returns:
        One index per stage.
    """
    ends, total = [], 0
    for count in units:
        total += count
        ends.append(total - 1)
    return ends
