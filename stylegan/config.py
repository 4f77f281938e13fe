"""The generator's configuration: a small frozen dataclass saved with the weights."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

__all__ = ["GeneratorConfig", "resolutions_for", "num_ws_for", "LIMITS", "check_int", "check_real"]


def resolutions_for(img_resolution: int) -> list[int]:
    """Block resolutions 4, 8, ..., img_resolution."""
    return [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]


def num_ws_for(img_resolution: int) -> int:
    """Number of W+ style positions: 2*log2(res) - 2 (18 for 1024, 14 for 256)."""
    return 2 * int(math.log2(img_resolution)) - 2


#: Inclusive bounds on every size in a :class:`GeneratorConfig`. A config is read from a
#: file before any tensor is, so these keep a crafted file from making us build a huge
#: model (``mapping_layers = 10**9`` in a 1.4 KB file once grew to 22 GB). They sit far
#: above every published StyleGAN2 (FFHQ 1024: channels <= 512, 8 mapping layers,
#: z/w 512; ImageNet-style conditional models: c_dim 1000): the largest model they allow
#: is about 3 GB of fp32 weights, and its file must hold all of them.
LIMITS: dict[str, tuple[float, float]] = {
    "img_resolution": (4, 1024),
    "channels": (1, 2048),
    "z_dim": (1, 2048),
    "w_dim": (1, 2048),
    "mapping_layers": (1, 32),
    "img_channels": (1, 4),
    "c_dim": (0, 10_000),
    "mapping_lr_mul": (1e-6, 100.0),
    "conv_clamp": (1e-6, 1e6),
}


def check_int(name: str, value: Any, lo: int, hi: int, power_of_two: bool = False) -> int:
    """``value`` as an int if it is an integer (not a bool, float or string) in [lo, hi]; else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi \
            or (power_of_two and value & (value - 1)):
        what = "a power of two" if power_of_two else "an integer"
        raise ValueError(f"{name} must be {what} from {lo:,} to {hi:,}, got {value!r:.60}")
    return int(value)


def check_real(name: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a float if it is a finite real number in [lo, hi]; else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not lo <= value <= hi:
        raise ValueError(f"{name} must be a number from {lo:g} to {hi:g}, got {value!r:.60}")
    return float(value)


def _check_bounds(cfg: "GeneratorConfig") -> None:
    """Type- and range-check every field (see :data:`LIMITS`); store plain ints/floats."""
    present = {f.name for f in dataclasses.fields(cfg)}
    for name in ("img_resolution", "z_dim", "w_dim", "mapping_layers", "img_channels", "c_dim"):
        if name not in present:
            continue
        lo, hi = LIMITS[name]
        object.__setattr__(cfg, name, check_int(name, getattr(cfg, name), int(lo), int(hi),
                                                power_of_two=name == "img_resolution"))
    object.__setattr__(cfg, "mapping_lr_mul", check_real("mapping_lr_mul", cfg.mapping_lr_mul,
                                                         *LIMITS["mapping_lr_mul"]))
    if cfg.conv_clamp is not None:
        object.__setattr__(cfg, "conv_clamp", check_real("conv_clamp", cfg.conv_clamp, *LIMITS["conv_clamp"]))
    channels = cfg.channels
    if isinstance(channels, (str, bytes)) or not isinstance(channels, (tuple, list)) or len(channels) > 9:
        raise ValueError(f"channels must be a list of at most 9 integers (one per block), got {channels!r:.60}")
    lo, hi = LIMITS["channels"]
    object.__setattr__(cfg, "channels", tuple(check_int("channels", c, int(lo), int(hi)) for c in channels))


#: How ``z`` becomes W+ codes: the trained MLP, or a Gaussian fitted to encoded faces.
MAPPING_KINDS = ("mlp", "gaussian")


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
        mapping_kind: "mlp" (the StyleGAN mapping network) or "gaussian" (a Gaussian fitted
            to encoded faces, :class:`stylegan.editing.GaussianMapping`, for a model whose
            mapping network was never trained).
        c_dim: number of classes of a conditional generator (0 = unconditional). The label
            is embedded as in NVIDIA's stylegan2-ada (see :class:`stylegan.networks.MappingNetwork`).
        class_names: optional names of the ``c_dim`` classes, in label order, saved with the
            weights so that tools can take ``"female"`` rather than ``0``.
    """

    img_resolution: int
    channels: tuple[int, ...]
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_mul: float = 0.01
    img_channels: int = 3
    conv_clamp: float | None = None
    mapping_kind: str = "mlp"
    c_dim: int = 0
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.mapping_kind not in MAPPING_KINDS:
            raise ValueError(f"mapping_kind must be one of {MAPPING_KINDS}, got {self.mapping_kind!r:.40}")
        _check_bounds(self)
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        if self.class_names and len(self.class_names) != self.c_dim:
            raise ValueError(f"class_names must name all {self.c_dim} classes, got {len(self.class_names)}")
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
        d["class_names"] = list(self.class_names)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GeneratorConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown GeneratorConfig fields: {sorted(unknown)}")
        return cls(**d)
