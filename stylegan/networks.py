"""StyleGAN2 generator: mapping network (z -> w) and synthesis network (w+ -> image).

Architecture facts follow the StyleGAN2 paper (Karras et al., 2020, config F) as
implemented by NVIDIA's stylegan2-ada-pytorch and rosinality's port:
equalized learning rate everywhere, modulated/demodulated 3x3 convs, a
[1, 3, 3, 1] FIR filter around every resampling, per-layer noise, and RGB skip
connections. Parameter names follow NVIDIA's layout (``mapping.fc0``,
``synthesis.b64.conv0``...); readers for other layouts live in
:mod:`stylegan.convert`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import GeneratorConfig
from .ops import bias_act, setup_filter, upfirdn2d, upsample2d
from .synthesis_fast import PER_FRAME_MIN_RESOLUTION, fast_path_applies, synthesis_layer_fast, torgb_fast

__all__ = [
    "FullyConnectedLayer", "MappingNetwork", "SynthesisLayer", "ToRGBLayer",
    "SynthesisBlock", "SynthesisNetwork", "Generator", "modulated_conv2d", "NOISE_MODES",
]

NOISE_MODES = ("const", "random", "none")


class FullyConnectedLayer(nn.Module):
    """Equalized-LR linear layer: weight stored as N(0, 1)/lr_mul, scaled by lr_mul/sqrt(in) at run time."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: str = "linear") -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.bias_gain = lr_mul
        self.impl: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        return bias_act(x, b, act=self.activation, impl=self.impl)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act={self.activation}"


class MappingNetwork(nn.Module):
    """z [B, z_dim] (+ label c [B, c_dim]) -> w [B, num_ws, w_dim], with truncation toward ``w_avg``.

    A conditional network (``c_dim`` > 0) follows NVIDIA's stylegan2-ada exactly, so
    that their conditional pickles load unchanged: the label goes through a linear
    ``embed`` layer (``c_dim`` -> ``w_dim``, lr_mul 1), z and the embedding are each
    normalised by their second moment (so neither dominates by scale), then
    concatenated; the first layer therefore reads ``z_dim + w_dim`` features.
    """

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_layers: int = 8, lr_mul: float = 0.01,
                 c_dim: int = 0) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_layers = z_dim, w_dim, num_ws, num_layers
        self.c_dim = c_dim
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, w_dim)
        for i in range(num_layers):
            in_features = (z_dim + (w_dim if c_dim > 0 else 0)) if i == 0 else w_dim
            fc = FullyConnectedLayer(in_features, w_dim, lr_mul=lr_mul, activation="lrelu")
            setattr(self, f"fc{i}", fc)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg_beta: float | None = None) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [B, {self.z_dim}], got {tuple(z.shape)}")
        # PixelNorm: put z on the sphere of radius sqrt(z_dim).
        x = _normalize_2nd_moment(z)
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is conditional: c must be given as [B, {self.c_dim}] "
                                 f"(one-hot or soft labels)")
            if c.ndim != 2 or c.shape != (z.shape[0], self.c_dim):
                raise ValueError(f"c must be [{z.shape[0]}, {self.c_dim}], got {tuple(c.shape)}")
            y = _normalize_2nd_moment(self.embed(c.to(x.dtype)))
            x = torch.cat([x, y], dim=1)  # [B, z_dim + w_dim]
        elif c is not None and c.numel() > 0:
            raise ValueError(f"this generator is unconditional (c_dim=0) but c of shape {tuple(c.shape)} was given")
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if update_w_avg_beta is not None:  # training: track the mean w for truncation
            self.w_avg.copy_(x.detach().float().mean(0).lerp(self.w_avg, update_w_avg_beta))
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # [B, num_ws, w_dim]
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            ws[:, :cutoff] = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
        return ws

    def extra_repr(self) -> str:
        return (f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, "
                f"layers={self.num_layers}")


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit mean square (StyleGAN's PixelNorm on latent vectors)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     up: bool = False, resample_filter: torch.Tensor | None = None,
                     impl: str | None = None) -> torch.Tensor:
    """Style-modulated conv (StyleGAN2 eq. 1-3).

    Args:
        x: [B, I, H, W] input.
        weight: [O, I, k, k] weight, already multiplied by its equalized-LR gain.
        styles: [B, I] per-sample input-channel scales.
        demodulate: normalise each output channel to unit expected std (eq. 3).
        up: 2x upsampling by a stride-2 transposed conv followed by the FIR filter.

    Returns:
        [B, O, H, W] (or [B, O, 2H, 2W] when ``up``).
    """
    b, i, h, w = x.shape
    o, _, kh, kw = weight.shape
    if b == 1:
        # Batch 1 (one video frame): scale the small [O, I, k, k] weight instead of the
        # large activations. The same sums, without a pass over the input and one over the
        # output (about a tenth of a 1024^2 frame on CPU). Demodulated in float32 or better.
        wf = weight.to(torch.promote_types(weight.dtype, torch.float32))
        wf = wf * styles.to(wf.dtype).reshape(1, i, 1, 1)
        if demodulate:
            wf = wf * (wf.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt()
        return _conv_maybe_up(x, wf.to(x.dtype), up, resample_filter, impl)
    # Modulating the activations instead of the weights gives one shared conv for the
    # whole batch (the "non-fused" form); it equals the per-sample weight form exactly
    # in real arithmetic and is much faster for B > 1 on CPU.
    x = x * styles.to(x.dtype).reshape(b, i, 1, 1)
    weight = weight.to(x.dtype)
    x = _conv_maybe_up(x, weight, up, resample_filter, impl)
    if demodulate:
        # sum over (I, k, k) of (w * s)^2 = (w^2 summed over k) @ s^2
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [B, O]
        x = x * dcoefs.to(x.dtype).reshape(b, o, 1, 1)
    return x


def _conv_maybe_up(x: torch.Tensor, weight: torch.Tensor, up: bool, resample_filter: torch.Tensor | None,
                   impl: str | None) -> torch.Tensor:
    """The conv of :func:`modulated_conv2d`: 'same' padding, or 2x up by transposed conv + FIR filter."""
    # The fast CPU path convolves feature maps in channels_last, oneDNN's native layout:
    # NCHW activations get reordered before and after every conv, which costs about a
    # quarter of a 1024^2 frame. The layout then carries through the elementwise ops into
    # the next layer. RGB outputs (<= 4 channels) come back NCHW, so images never change layout.
    cpu_fast = impl != "ref" and x.device.type == "cpu"
    rgb = weight.shape[0] <= 4
    if cpu_fast and not rgb:
        weight = weight.contiguous(memory_format=torch.channels_last)
    if up:
        x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        # The transposed conv gives 2H+1 samples; the filter (gain 4 keeps the mean
        # after zero insertion) with padding 1 brings it back to exactly 2H.
        x = upfirdn2d(x, resample_filter, padding=1, gain=4, impl=impl)
    else:
        x = F.conv2d(x, weight, padding=weight.shape[2] // 2)
    return x.contiguous() if cpu_fast and rgb else x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + noise + bias + leaky ReLU, optionally upsampling 2x."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False,
                 kernel_size: int = 3, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.resolution, self.up = in_channels, out_channels, resolution, up
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)  # styles start at 1
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.impl: str | None = None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        if fast_path_applies(self.impl, x):  # batch 1 on the CPU: fewer passes (stylegan.synthesis_fast)
            return synthesis_layer_fast(self, x, w, noise_mode)
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight * self.weight_gain, styles, demodulate=True, up=self.up,
                             resample_filter=self.resample_filter, impl=self.impl)
        if noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength.to(x.dtype)
        elif noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength.to(x.dtype)
        return bias_act(x, self.bias, act="lrelu", clamp=self.conv_clamp, impl=self.impl)

    def extra_repr(self) -> str:
        return f"in={self.in_channels}, out={self.out_channels}, res={self.resolution}, up={self.up}"


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to RGB, without demodulation (as in StyleGAN2)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.conv_clamp = in_channels, out_channels, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.weight_gain = 1 / math.sqrt(in_channels)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.impl: str | None = None

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if fast_path_applies(self.impl, x):
            return torgb_fast(self, x, w)
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight * self.weight_gain, styles, demodulate=False)
        return bias_act(x, self.bias, clamp=self.conv_clamp, impl=self.impl)


class SynthesisBlock(nn.Module):
    """One resolution: [const or 2x-up conv0] + conv1 + toRGB, adding to the upsampled RGB skip."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int,
                 img_channels: int = 3, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.resolution, self.is_first = resolution, in_channels == 0
        if self.is_first:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.register_buffer("resample_filter", setup_filter(), persistent=False)
        self.num_conv = 1 if self.is_first else 2
        self.impl: str | None = None

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str = "const") -> tuple[torch.Tensor, torch.Tensor]:
        # ws: [B, num_conv + 1, w_dim]; the toRGB style is shared with the next block's first conv.
        if self.is_first:
            x = self.const.to(ws.dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        y = self.torgb(x, ws[:, self.num_conv])
        if img is not None:
            if fast_path_applies(self.impl, x) and torch.is_autocast_enabled(x.device.type):
                # The fast path keeps the RGB skip sum in float32 under autocast (the image's precision).
                with torch.autocast(x.device.type, enabled=False):
                    return x, y + upsample2d(img.float(), self.resample_filter, impl=self.impl)
            y = y + upsample2d(img.to(y.dtype), self.resample_filter, impl=self.impl)
        return x, y


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> images [B, img_channels, R, R] in about [-1, 1]."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.w_dim, self.img_resolution, self.num_ws = config.w_dim, config.img_resolution, config.num_ws
        prev = 0
        for res in config.resolutions:
            ch = config.channels_at(res)
            setattr(self, f"b{res}", SynthesisBlock(prev, ch, config.w_dim, res, config.img_channels,
                                                    config.conv_clamp))
            prev = ch

    def forward(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [B, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        first: SynthesisBlock = getattr(self, f"b{self.config.resolutions[0]}")
        if ws.shape[0] > 1 and self.img_resolution >= PER_FRAME_MIN_RESOLUTION and fast_path_applies(
                first.conv1.impl, ws[:1]) and not (
                torch.is_grad_enabled() and first.conv1.weight.requires_grad):
            # The CPU fast path runs one frame at a time (its weight-side tricks are per sample);
            # training, which needs weight gradients, keeps the batched form below.
            return torch.cat([self(ws[i: i + 1], noise_mode) for i in range(ws.shape[0])])
        x = img = None
        w_idx = 0
        for res in self.config.resolutions:
            block: SynthesisBlock = getattr(self, f"b{res}")
            x, img = block(x, img, ws[:, w_idx: w_idx + block.num_conv + 1], noise_mode)
            w_idx += block.num_conv
        return img

    def extra_repr(self) -> str:
        return f"resolution={self.img_resolution}, num_ws={self.num_ws}, channels={list(self.config.channels)}"


class Generator(nn.Module):
    """StyleGAN2 generator.

    Example:
        >>> G = Generator(GeneratorConfig.from_channel_base(32, channel_base=256, channel_max=32, z_dim=16, w_dim=16))
        >>> ws = G.mapping(torch.randn(2, G.z_dim), truncation_psi=0.7)   # [2, 8, 16]
        >>> G.synthesis(ws, noise_mode="const").shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.z_dim, self.w_dim = config.z_dim, config.w_dim
        self.img_resolution, self.img_channels, self.num_ws = config.img_resolution, config.img_channels, config.num_ws
        self.c_dim = config.c_dim
        self.mapping = MappingNetwork(config.z_dim, config.w_dim, config.num_ws, config.mapping_layers,
                                      config.mapping_lr_mul, c_dim=config.c_dim)
        if config.mapping_kind == "gaussian":  # a fitted sampler replaces a mapping that was never trained
            from .editing.sampler import GaussianMapping

            self.mapping = GaussianMapping(config.z_dim, config.w_dim, config.num_ws)
        self.synthesis = SynthesisNetwork(config)

    @property
    def w_avg(self) -> torch.Tensor:
        """Mean w of the mapping network, [w_dim]; the centre of truncation."""
        return self.mapping.w_avg

    def set_impl(self, impl: str | None) -> "Generator":
        """Choose the op implementation ("ref", "fast", "cuda" or None=auto) for every layer."""
        for m in self.modules():
            if hasattr(m, "impl"):
                m.impl = impl
        return self

    @property
    def class_names(self) -> tuple[str, ...]:
        """Names of the ``c_dim`` classes saved with the weights (empty if unknown or unconditional)."""
        return self.config.class_names

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const") -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)
