"""StyleGAN2 residual discriminator (config F layout), used only for training.

Blocks ``b{res}`` go from the image resolution down to 8; each has two 3x3
convs (the second downsamples 2x after the [1,3,3,1] filter) and a 1x1
residual skip, summed with a 1/sqrt(2) gain (Karras et al. 2020, fig. 7).
The 4x4 epilogue adds a minibatch standard-deviation feature (ProGAN), then a
conv and two fully connected layers.

A conditional discriminator (``c_dim`` > 0) is a projection discriminator
(Miyato & Koyama 2018) laid out as in NVIDIA's stylegan2-ada: its own mapping
network turns the label into ``cmap`` [B, cmap_dim], the last layer outputs
``cmap_dim`` features instead of one logit, and the logit is their dot product
scaled by 1/sqrt(cmap_dim), so D judges "a real image *of this class*".
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import resolutions_for
from ..networks import FullyConnectedLayer
from ..ops import bias_act, setup_filter, upfirdn2d

__all__ = ["Discriminator", "Conv2dLayer", "LabelMapping"]


class Conv2dLayer(nn.Module):
    """Equalized-LR conv with optional 2x FIR downsampling and fused bias + activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "lrelu", down: bool = False) -> None:
        super().__init__()
        self.activation, self.down, self.kernel_size = activation, down, kernel_size
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.register_buffer("resample_filter", setup_filter(), persistent=False)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        if self.down:
            # Filter first (pad so that the stride-2 conv lands on exact halves).
            p = (4 - 2) + (self.kernel_size - 1)
            x = upfirdn2d(x, self.resample_filter, padding=((p + 1) // 2, p // 2, (p + 1) // 2, p // 2))
            x = F.conv2d(x, w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.kernel_size // 2)
        act_gain = (math.sqrt(2) if self.activation == "lrelu" else 1.0) * gain
        b = None if self.bias is None else self.bias.to(x.dtype)
        return bias_act(x, b, act=self.activation, gain=act_gain)


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, has_fromrgb: bool) -> None:
        super().__init__()
        if has_fromrgb:
            self.fromrgb = Conv2dLayer(3, tmp_channels, 1)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, down=True)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, activation="linear", down=True)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if x is None:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


class LabelMapping(nn.Module):
    """c [B, c_dim] -> cmap [B, cmap_dim]: ADA's discriminator mapping (a mapping network with z_dim = 0).

    The label is embedded linearly, normalised by its second moment, then passed
    through ``num_layers`` leaky-ReLU layers with the mapping network's lr multiplier.
    """

    def __init__(self, c_dim: int, cmap_dim: int, num_layers: int = 8, lr_mul: float = 0.01) -> None:
        super().__init__()
        self.c_dim, self.cmap_dim, self.num_layers = c_dim, cmap_dim, num_layers
        self.embed = FullyConnectedLayer(c_dim, cmap_dim)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(cmap_dim, cmap_dim, lr_mul=lr_mul, activation="lrelu"))

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        x = self.embed(c)
        x = x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        return x


class Discriminator(nn.Module):
    """images [B, 3, R, R] in [-1, 1] (+ labels c [B, c_dim]) -> realness logits [B, 1]."""

    def __init__(self, img_resolution: int, channel_base: int = 32768, channel_max: int = 512,
                 mbstd_group: int = 4, c_dim: int = 0, cmap_dim: int | None = None,
                 mapping_layers: int = 8) -> None:
        super().__init__()
        if c_dim < 0:
            raise ValueError(f"c_dim must be >= 0, got {c_dim}")
        self.img_resolution, self.mbstd_group, self.c_dim = img_resolution, mbstd_group, c_dim
        ch = {r: min(channel_base // r, channel_max) for r in resolutions_for(img_resolution)}
        self.block_resolutions = [r for r in reversed(resolutions_for(img_resolution)) if r >= 8]
        for r in self.block_resolutions:
            setattr(self, f"b{r}", DiscriminatorBlock(ch[r], ch[r], ch[r // 2], has_fromrgb=r == img_resolution))
        c4 = ch[4]
        if img_resolution == 4:
            self.fromrgb = Conv2dLayer(3, c4, 1)
        self.conv = Conv2dLayer(c4 + 1, c4, 3)
        self.fc = FullyConnectedLayer(c4 * 16, c4, activation="lrelu")
        # ADA's default cmap_dim is the 4x4 channel count.
        self.cmap_dim = (cmap_dim or c4) if c_dim > 0 else 0
        if c_dim > 0:
            self.mapping = LabelMapping(c_dim, self.cmap_dim, mapping_layers)
        self.out = FullyConnectedLayer(c4, self.cmap_dim if c_dim > 0 else 1)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if self.c_dim > 0 and (c is None or c.ndim != 2 or c.shape != (img.shape[0], self.c_dim)):
            raise ValueError(f"c must be [{img.shape[0]}, {self.c_dim}], got "
                             f"{None if c is None else tuple(c.shape)}")
        labels = c  # the minibatch-stddev code below reuses the name c for channels
        x = None
        for r in self.block_resolutions:
            x = getattr(self, f"b{r}")(x, img)
        if x is None:
            x = self.fromrgb(img)
        # Minibatch stddev: one extra feature map telling D how varied the batch is,
        # which discourages mode collapse (Karras et al. 2018).
        b, c, h, w = x.shape
        g = min(self.mbstd_group, b)
        while b % g:
            g -= 1
        y = x.float().reshape(g, -1, c, h, w)
        y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean(dim=[1, 2, 3])  # [B/g]
        y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w).to(x.dtype)
        x = self.conv(torch.cat([x, y], dim=1))
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.c_dim > 0:  # projection: <features, cmap> / sqrt(cmap_dim)
            cmap = self.mapping(labels.to(x.dtype)).to(x.dtype)
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x
