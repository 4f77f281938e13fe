"""Encoder4Editing (e4e): a face image -> a StyleGAN2 W+ code.

This is a re-implementation of the encoder of Tov et al., "Designing an Encoder
for StyleGAN Image Manipulation" (omertov/encoder4editing), laid out so that the
``encoder.*`` part of the released ``e4e_ffhq_encode.pt`` loads key for key and
produces the same codes (see ``tests/encoders/test_e4e.py`` for the parity test).

Architecture (IR-SE50 by default, all sizes for a 256x256 input):

- stem + 24 IR-SE units (:mod:`encoders.irse`); the last units of stages 2, 3
  and 4 are tapped as c1 [128, 64x64], c2 [256, 32x32] and c3 [512, 16x16];
- a two-level feature pyramid: p2 = up(c3) + latlayer1(c2) and
  p1 = up(p2) + latlayer2(c1), with bilinear align_corners=True upsampling;
- ``num_ws`` :class:`GradualStyleBlock` heads: heads 0-2 read c3, 3-6 read p2 and
  7+ read p1;
- w0 = head 0 (c3) is copied to all ``num_ws`` positions and head i adds a delta
  to position i (the "e4e" trick that keeps codes close to W).

``forward`` returns codes relative to ``latent_avg``; :meth:`Encoder4Editing.encode`
resizes, runs forward and adds ``latent_avg`` (what the original ``pSp`` wrapper
does with ``start_from_latent_avg``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stylegan.config import check_int
from stylegan.errors import UserError
from stylegan.imageio import from_uint8
from stylegan.networks import FullyConnectedLayer

from .irse import make_body, make_input_layer, stage_end_indices

__all__ = ["EncoderConfig", "GradualStyleBlock", "Encoder4Editing", "IRSE_UNITS", "COARSE_END", "MIDDLE_END"]

# Units per stage of the IR-SE variants defined by the original helpers.py.
IRSE_UNITS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    152: (3, 8, 36, 3),
}

#: Inclusive bounds on the :class:`EncoderConfig` fields, far above the released model
#: (18 ws of 512, 256 px input, widths up to 512, IR-SE152's 36 units per stage).
LIMITS: dict[str, tuple[int, int]] = {
    "num_ws": (1, 64),
    "w_dim": (1, 2048),
    "input_size": (32, 1024),
    "stage_widths": (1, 2048),
    "stage_units": (1, 64),
    "se_reduction": (1, 1024),
}

# Heads [0, COARSE_END) read c3, [COARSE_END, MIDDLE_END) read p2, the rest p1.
# The original hard-codes 3 and 7 whatever the number of styles (its
# ``coarse_ind``/``middle_ind``), e.g. a 256px generator (14 ws) still uses 3/7;
# with fewer than 8 ws the fine level (and below 4 the middle one) is unused.
COARSE_END = 3
MIDDLE_END = 7


@dataclass(frozen=True)
class EncoderConfig:
    """Everything needed to rebuild an :class:`Encoder4Editing`; saved with the weights.

    The defaults are the released FFHQ e4e model (IR-SE50, 18 ws of 512, 256x256 input).
    Tests use narrower widths and fewer units; the structure stays the same.

    Attributes:
        num_ws: number of W+ positions (2 * log2(resolution) - 2: 18 for 1024px).
        w_dim: width of each w vector.
        input_size: square side the network runs at; a power of two >= 32 (c3 is
            input_size / 16 and must be at least 2x2).
        stage_widths: output channels of the four IR-SE stages; the stem has
            ``stage_widths[0]`` channels and the pyramid ``stage_widths[3]``.
        stage_units: residual units per stage (IR-SE50: 3, 4, 14, 3).
        se_reduction: squeeze-excitation bottleneck ratio.
    """

    num_ws: int = 18
    w_dim: int = 512
    input_size: int = 256
    stage_widths: tuple[int, ...] = (64, 128, 256, 512)
    stage_units: tuple[int, ...] = IRSE_UNITS[50]
    se_reduction: int = 16

    def __post_init__(self) -> None:
        # Every field is type- and range-checked (see LIMITS): a config is read from a file
        # before its tensors are, and must not make us build a huge model.
        for name in ("num_ws", "w_dim", "input_size", "se_reduction"):
            lo, hi = LIMITS[name]
            object.__setattr__(self, name, check_int(name, getattr(self, name), lo, hi,
                                                     power_of_two=name == "input_size"))
        for name in ("stage_widths", "stage_units"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or len(value) != 4:
                raise ValueError(f"e4e needs exactly 4 IR-SE stages, got {name}={value!r:.60}")
            lo, hi = LIMITS[name]
            # Accept lists (what a saved config holds) but store tuples to stay hashable.
            object.__setattr__(self, name, tuple(check_int(name, v, lo, hi) for v in value))
        if self.se_reduction > min(self.stage_widths):  # every SE block needs at least one channel
            raise ValueError(f"se_reduction must be at most the narrowest stage width {min(self.stage_widths)}, "
                             f"got {self.se_reduction}")

    @classmethod
    def irse(cls, num_layers: int = 50, **kwargs: Any) -> EncoderConfig:
        """Config for IR-SE ``num_layers`` (50, 100 or 152) with otherwise default or given fields.

        Example:
            >>> EncoderConfig.irse(100).stage_units
            (3, 13, 30, 3)
        """
        if num_layers not in IRSE_UNITS:
            raise ValueError(f"num_layers must be one of {sorted(IRSE_UNITS)}, got {num_layers}")
        return cls(stage_units=IRSE_UNITS[num_layers], **kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        """Rebuild from :meth:`to_dict` output; raises ``ValueError`` on unknown or bad fields."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown EncoderConfig fields {unknown}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists, ints) that ``torch.load(weights_only=True)`` can read back."""
        data = asdict(self)
        data["stage_widths"] = list(self.stage_widths)
        data["stage_units"] = list(self.stage_units)
        return data


class GradualStyleBlock(nn.Module):
    """Map a [B, C, S, S] feature map to one w vector with log2(S) stride-2 convs.

    Each conv is 3x3, stride 2, padding 1, with bias, followed by LeakyReLU with
    PyTorch's default slope 0.01 (the original uses ``nn.LeakyReLU()``, not
    StyleGAN's 0.2). The convs sit at ``convs.0, convs.2, ...`` because the
    activations occupy the odd indices, as in the checkpoint.

    Args:
        in_channels: channels of the feature map.
        out_channels: w width.
        spatial: side of the input feature map (power of two >= 2).

    Shape:
        [B, in_channels, spatial, spatial] -> [B, out_channels]
    """

    def __init__(self, in_channels: int, out_channels: int, spatial: int) -> None:
        super().__init__()
        num_convs = max(1, int(math.log2(spatial)))
        layers: list[nn.Module] = []
        for k in range(num_convs):
            layers.append(nn.Conv2d(in_channels if k == 0 else out_channels, out_channels, 3, stride=2, padding=1))
            layers.append(nn.LeakyReLU(0.01))
        self.convs = nn.Sequential(*layers)
        # Equalized linear, lr_mul 1 (weight * 1/sqrt(in) at run time), keys weight/bias.
        self.linear = FullyConnectedLayer(out_channels, out_channels, lr_mul=1.0, activation="linear")
        self.spatial = spatial
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)
        assert x.shape[2:] == (1, 1), f"style head expected a {self.spatial}px map, ended at {tuple(x.shape)}"
        return self.linear(x.flatten(1))  # [B, out_channels]

    def extra_repr(self) -> str:
        return f"spatial={self.spatial}, convs={len(self.convs) // 2}"


def _check_images(images: Any) -> torch.Tensor:
    """``images`` for :meth:`Encoder4Editing.encode` as a float tensor in [-1, 1], or a one-line UserError."""
    if isinstance(images, np.ndarray):
        if images.dtype.kind not in "uf":
            raise UserError(f"images must hold uint8 or float values, got a {images.dtype} array")
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise UserError(f"images must be a tensor or numpy array [B, 3, H, W], got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0 or min(images.shape[2:]) < 1:
        raise UserError(f"encoder expects RGB images shaped [B, 3, H, W], got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return from_uint8(images)
    if not images.is_floating_point():
        raise UserError(f"images must be float in [-1, 1] or uint8 in [0, 255], got {images.dtype}")
    lo, hi = torch.aminmax(images.detach())
    if not (torch.isfinite(lo) and torch.isfinite(hi)):
        raise UserError("images hold NaN or infinite values")
    if lo < -2 or hi > 2:
        raise UserError(f"images must be in [-1, 1], got values from {float(lo):g} to {float(hi):g}; for 8-bit "
                        f"pixels pass a uint8 tensor, or compute x / 127.5 - 1")
    return images


def _upsample_add(top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    """FPN merge: bilinear (align_corners=True, as in the original) resize of ``top`` to ``lateral``, plus it."""
    return F.interpolate(top, size=lateral.shape[2:], mode="bilinear", align_corners=True) + lateral


class Encoder4Editing(nn.Module):
    """e4e encoder: images in [-1, 1] -> W+ codes [B, num_ws, w_dim].

    Args:
        config: the architecture; ``EncoderConfig()`` is the released FFHQ model.

    Attributes:
        latent_avg: buffer [num_ws, w_dim] added by :meth:`encode` (the
            generator's average w, stored in the e4e checkpoint).

    Example:
        >>> cfg = EncoderConfig(num_ws=4, w_dim=16, input_size=32,
        ...                     stage_widths=(4, 8, 8, 16), stage_units=(1, 1, 1, 1), se_reduction=4)
        >>> enc = Encoder4Editing(cfg).eval()
        >>> enc.encode(torch.zeros(2, 3, 40, 40)).shape
        torch.Size([2, 4, 16])
    """

    latent_avg: torch.Tensor

    def __init__(self, config: EncoderConfig | None = None) -> None:
        super().__init__()
        cfg = config if config is not None else EncoderConfig()
        self.config = cfg
        widths = cfg.stage_widths
        self.input_layer = make_input_layer(widths[0])
        self.body = make_body(widths, cfg.stage_units, cfg.se_reduction)
        # c1, c2, c3 are the outputs of stages 2, 3 and 4 (body[6], [20], [23] in IR-SE50).
        _, self._c1_index, self._c2_index, self._c3_index = stage_end_indices(cfg.stage_units)

        # Feature sizes: the stem keeps the resolution, every stage halves it.
        c3_size = cfg.input_size // 16
        top = widths[3]  # the pyramid runs at c3's width so that up(c3) + lateral works
        self.styles = nn.ModuleList()
        for i in range(cfg.num_ws):
            if i < COARSE_END:
                spatial = c3_size
            elif i < MIDDLE_END:
                spatial = c3_size * 2
            else:
                spatial = c3_size * 4
            self.styles.append(GradualStyleBlock(top, cfg.w_dim, spatial))
        self.latlayer1 = nn.Conv2d(widths[2], top, kernel_size=1)
        self.latlayer2 = nn.Conv2d(widths[1], top, kernel_size=1)
        self.register_buffer("latent_avg", torch.zeros(cfg.num_ws, cfg.w_dim))

    @property
    def num_ws(self) -> int:
        """Number of W+ positions."""
        return self.config.num_ws

    @property
    def w_dim(self) -> int:
        """Width of each w vector."""
        return self.config.w_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Codes relative to ``latent_avg``.

        Args:
            x: normalized images in [-1, 1], already ``input_size`` square.

        Returns:
            [B, num_ws, w_dim] offsets from ``latent_avg``.
        """
        size = self.config.input_size
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise UserError(f"x must be a tensor [B, 3, {size}, {size}] in [-1, 1], got {got}; "
                            f"encode() takes images of any size")
        x = self.input_layer(x)
        c1 = c2 = c3 = x
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i == self._c1_index:
                c1 = x  # [B, widths[1], size/4, size/4]
            elif i == self._c2_index:
                c2 = x  # [B, widths[2], size/8, size/8]
            elif i == self._c3_index:
                c3 = x  # [B, widths[3], size/16, size/16]

        w0 = self.styles[0](c3)  # [B, w_dim]
        rows = [w0]
        features = c3
        for i in range(1, self.config.num_ws):
            # Build each pyramid level only when the first head that needs it runs.
            if i == COARSE_END:
                features = _upsample_add(c3, self.latlayer1(c2))  # p2
            elif i == MIDDLE_END:
                features = _upsample_add(features, self.latlayer2(c1))  # p1
            rows.append(w0 + self.styles[i](features))
        return torch.stack(rows, dim=1)  # [B, num_ws, w_dim]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """W+ codes of images of any size, ready for the generator.

        Images not already ``input_size`` square are resized with bilinear
        ``F.interpolate(..., antialias=True)``: the original resizes the PIL
        image to 256x256 (bilinear with a widened kernel when shrinking) before
        ``ToTensor``/``Normalize``, which this matches up to 8-bit rounding
        because resizing commutes with the affine [0,1] -> [-1,1] map. Gradients
        flow; wrap the call in ``torch.no_grad()`` for inference.

        Args:
            images: [B, 3, H, W], a tensor or numpy array, either float in [-1, 1] or
                uint8 in [0, 255] (converted with ``x / 127.5 - 1``); moved to the
                encoder's device and dtype. Float values beyond [-2, 2] are refused: they
                mean 8-bit values passed as floats, which would give codes off by 1e4.
                (Floats in [0, 1] cannot be told from dark [-1, 1] images; scale them yourself.)

        Returns:
            [B, num_ws, w_dim] codes including ``latent_avg``.

        Raises:
            UserError: ``images`` is not [B, 3, H, W], not a tensor or array, of another
                dtype, out of range, or holds NaN or infinite values.
        """
        x = _check_images(images)
        x = x.to(device=self.latent_avg.device, dtype=self.latent_avg.dtype)
        size = self.config.input_size
        if x.shape[2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return self(x) + self.latent_avg  # [B, num_ws, w_dim]

    def extra_repr(self) -> str:
        cfg = self.config
        return (
            f"num_ws={cfg.num_ws}, w_dim={cfg.w_dim}, input_size={cfg.input_size}, "
            f"stage_widths={cfg.stage_widths}, stage_units={cfg.stage_units}"
        )
