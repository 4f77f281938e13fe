"""The generator's configuration: a small frozen dataclass saved with the weights."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["GeneratorConfig", "resolutions_for", "num_ws_for"]


def resolutions_for(img_resolution: int) -> list[int]:
    """Block resolutions 4, 8, ..., img_resolution."""
    return [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]


def num_ws_for(img_resolution: int) -> int:
    """Number of W+ style positions: 2*log2(res) - 2 (18 for 1024, 14 for 256)."""
    return 2 * int(math.log2(img_resolution)) - 2


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything needed to rebuild a :class:`stylegan.Generator`.

    Attributes:
        img_resolution: output size, a power of two from 4 to 1024.
        channels: feature channels of each block, one per resolution 4..img_resolution.
            Use :meth:`from_channel_multiplier` (rosinality) or
            :meth:`from_channel_base` (NVIDIA) to fill it from the usual formulas.
        z_dim, w_dim: latent sizes (512 in every official model).
        mapping_layers: depth of the mapping MLP (8 officially).
        mapping_lr_mul: equalized-LR multiplier of the mapping MLP (0.01, StyleGAN2 paper).
        img_channels: 3 for RGB.
        conv_clamp: optional clamp of conv activations (NVIDIA uses 256 with fp16).
    """

    img_resolution: int
    channels: tuple[int, ...]
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    img_channels: int = 3
    conv_clamp: float | None = None

    def __post_init__(self) -> None:
        r = self.img_resolution
        if r < 4 or r > 1024 or r & (r - 1):
            raise ValueError(f"img_resolution must be a power of two in [4, 1024], got {r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if len(self.channels) != len(resolutions_for(r)):
            raise ValueError(f"need {len(resolutions_for(r))} channel counts for {r}px, got {len(self.channels)}")

    @property
    def num_ws(self) -> int:
        return num_ws_for(self.img_resolution)

    @property
    def resolutions(self) -> list[int]:
        return resolutions_for(self.img_resolution)

    def channels_at(self, res: int) -> int:
        return self.channels[int(math.log2(res)) - 2]

    @classmethod
    def from_channel_multiplier(cls, img_resolution: int, channel_multiplier: int = 2, **kw: Any) -> "GeneratorConfig":
        """rosinality's table: 512 up to 64 px, then 128*m, 64*m, 32*m, 16*m for 128..1024 px."""
        table = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier,
                 128: 128 * channel_multiplier, 256: 64 * channel_multiplier,
                 512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
        return cls(img_resolution, tuple(table[r] for r in resolutions_for(img_resolution)), **kw)

    @classmethod
    def from_channel_base(cls, img_resolution: int, channel_base: int = 32768, channel_max: int = 512,
                          **kw: Any) -> "GeneratorConfig":
        """NVIDIA's formula: min(channel_base // res, channel_max)."""
        return cls(img_resolution, tuple(min(channel_base // r, channel_max) for r in resolutions_for(img_resolution)), **kw)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GeneratorConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown GeneratorConfig fields: {sorted(unknown)}")
        return cls(**d)
