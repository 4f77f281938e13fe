"""rosinality/stylegan2-pytorch ``.pt`` files: ``{g_ema, latent_avg}`` and training checkpoints.

Key names and shapes are facts of that project's ``model.py`` (the team's
checkpoint-format notes, section 1); the code here is ours. Every tensor maps to
one of ours by a reshape only: both projects store equalized-LR weights unscaled
(rosinality ``EqualLinear``: weight [out, in] used as ``w * lr_mul / sqrt(in)``, bias
as ``b * lr_mul``, exactly our ``FullyConnectedLayer``), take the transposed-conv
weight without a flip, and apply noise, then bias, then the scaled leaky ReLU.

========================================  ==================================
rosinality                                ours
========================================  ==================================
``style.{i+1}.weight/bias``               ``mapping.fc{i}.weight/bias``
``latent_avg`` (top level)                ``mapping.w_avg``
``input.input`` [1, C, 4, 4]              ``synthesis.b4.const`` [C, 4, 4]
``conv1``                                 ``synthesis.b4.conv1``
``convs.{2k}`` / ``convs.{2k+1}``         ``synthesis.b{8*2^k}.conv0`` / ``conv1``
``*.conv.weight`` [1, O, I, k, k]         ``*.weight`` [O, I, k, k]
``*.conv.modulation.*``                   ``*.affine.*``
``*.activate.bias``                       ``*.bias``
``*.noise.weight`` [1]                    ``*.noise_strength`` []
``noises.noise_{i}`` [1, 1, r, r]         ``noise_const`` [r, r] of the i-th conv
``to_rgb1`` / ``to_rgbs.{k}``             ``synthesis.b4.torgb`` / ``b{8*2^k}.torgb``
``to_rgb*.bias`` [1, 3, 1, 1]             ``torgb.bias`` [3]
``*.blur.kernel``, ``*.upsample.kernel``  checked (filter x 4), then dropped
========================================  ==================================
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from ..checkpoint import generator_from_state
from ..config import GeneratorConfig
from ..errors import CheckpointError
from ..networks import Generator
from .layout import RESAMPLE_FILTER, Shape, check_filter, check_layout, conv_layers, estimate_w_avg, ours_layout

__all__ = ["rosinality_layout", "infer_rosinality_config", "generator_from_rosinality", "to_rosinality",
           "read_rosinality", "w_avg_from_latent_avg"]

#: Gain of the stored blur/upsample kernels: rosinality multiplies the unit-sum
#: filter by factor**2 = 4 where it upsamples (``Blur(upsample_factor=2)``, ``Upsample``).
_KERNEL_GAIN = 4.0


def _rename(our_key: str) -> str:
    """The rosinality name of one of our keys (everything except noise_const and w_avg)."""
    if m := re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", our_key):
        return f"style.{int(m.group(1)) + 1}.{m.group(2)}"
    if our_key == "synthesis.b4.const":
        return "input.input"
    m = re.fullmatch(r"synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(.+)", our_key)
    if m is None:
        raise KeyError(our_key)
    res, layer, leaf = int(m.group(1)), m.group(2), m.group(3)
    k = res.bit_length() - 4  # 8 px -> 0, 16 px -> 1, ...
    leaf = leaf.replace("affine.", "conv.modulation.")
    if layer == "torgb":
        module = "to_rgb1" if res == 4 else f"to_rgbs.{k}"
        leaf = {"weight": "conv.weight"}.get(leaf, leaf)  # the to-RGB bias sits on the module itself
    else:
        module = "conv1" if res == 4 else f"convs.{2 * k + (layer == 'conv1')}"
        leaf = {"weight": "conv.weight", "bias": "activate.bias", "noise_strength": "noise.weight"}.get(leaf, leaf)
    return f"{module}.{leaf}"


def _rosinality_shape(our_key: str, shape: Shape) -> Shape:
    """rosinality keeps leading singleton dims that we drop."""
    if our_key.endswith("torgb.bias"):
        return (1, *shape, 1, 1)
    if our_key.endswith(".weight") and len(shape) == 4 or our_key == "synthesis.b4.const":
        return (1, *shape)
    if our_key.endswith("noise_strength"):
        return (1,)
    return shape


def rosinality_layout(config: GeneratorConfig) -> dict[str, tuple[str | None, Shape]]:
    """Every tensor of rosinality's ``g_ema`` for ``config``: name -> (our key or None, shape).

    None marks the blur/upsample kernels, which we check and drop. ``latent_avg`` lives
    outside ``g_ema`` and is not listed. The official 1024 config gives 171 entries.

    Args:
        config: the architecture; rosinality needs ``z_dim == w_dim``.

    Returns:
        Renamed tensors in our order, then ``noises.*`` and the kernels.
    """
    ours = ours_layout(config)
    out: dict[str, tuple[str | None, Shape]] = {}
    for key, shape in ours.items():
        if key == "mapping.w_avg" or key.endswith("noise_const"):
            continue
        out[_rename(key)] = (key, _rosinality_shape(key, shape))
    for i, (prefix, res, _, _, up) in enumerate(conv_layers(config)):
        out[f"noises.noise_{i}"] = (f"{prefix}.noise_const", (1, 1, res, res))
        if up:
            module = _rename(f"{prefix}.weight").removesuffix(".weight")  # e.g. convs.0.conv
            out[f"{module}.blur.kernel"] = (None, (4, 4))
    for res in config.resolutions[1:]:
        out[f"to_rgbs.{res.bit_length() - 4}.upsample.kernel"] = (None, (4, 4))
    return out


def key_indices(sd: Mapping[str, Any], pattern: str) -> set[int]:
    """The distinct integers that ``pattern``'s first group captures at the start of the keys."""
    return {int(m.group(1)) for k in sd if (m := re.match(pattern, str(k)))}


def infer_rosinality_config(g_ema: Mapping[str, Any], source: str, mapping_lr_mul: float = 0.01) -> GeneratorConfig:
    """Read size, style_dim, n_mlp and channels off the shapes of a rosinality ``g_ema``.

    Args:
        g_ema: the generator's state dict.
        source: the file, for messages.
        mapping_lr_mul: rosinality's ``lr_mlp``; it does not show in shapes (0.01 in every release).

    Returns:
        The config; the key set itself is checked afterwards by :func:`generator_from_rosinality`.
    """
    def shape(key: str, ndim: int) -> Shape:
        value = g_ema.get(key)
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: cannot work out the rosinality architecture: no tensor {key!r}")
        if value.ndim != ndim:  # a crafted file may hold any shape here
            raise CheckpointError(f"{source}: cannot work out the rosinality architecture: {key} is "
                                  f"{list(value.shape)}, expected {ndim} dimensions")
        return tuple(value.shape)

    n_mlp = max(key_indices(g_ema, r"style\.(\d{1,6})\.weight$"), default=0)
    if n_mlp == 0:
        raise CheckpointError(f"{source}: cannot work out the rosinality architecture: no style.1.weight")
    style_dim = shape("style.1.weight", 2)[0]
    n_rgbs = max(key_indices(g_ema, r"to_rgbs\.(\d{1,6})\."), default=-1) + 1
    if n_rgbs > 8:  # 4 * 2**8 = 1024 px, the largest supported resolution
        raise CheckpointError(f"{source}: unsupported rosinality architecture (to_rgbs.{n_rgbs - 1} means more "
                              f"than 1024 px)")
    size = 4 * 2**n_rgbs
    channels = [shape("input.input", 4)[1]] + [shape(f"convs.{2 * k}.conv.weight", 5)[1] for k in range(n_rgbs)]
    img_channels = shape("to_rgb1.conv.weight", 5)[1]
    try:
        return GeneratorConfig(img_resolution=size, channels=tuple(channels), z_dim=style_dim, w_dim=style_dim,
                               mapping_layers=n_mlp, mapping_lr_mul=mapping_lr_mul, img_channels=img_channels)
    except ValueError as e:
        raise CheckpointError(f"{source}: unsupported rosinality architecture ({e})") from None


def w_avg_from_latent_avg(latent_avg: Any, w_dim: int, source: str) -> torch.Tensor:
    """``latent_avg`` as [w_dim]: rosinality stores [w_dim] (or [1, w_dim] from ``mean_latent``),
    e4e stores it repeated over the W+ positions, [num_ws, w_dim]; its first row is used."""
    if not isinstance(latent_avg, torch.Tensor) or latent_avg.ndim not in (1, 2) or latent_avg.shape[-1] != w_dim \
            or latent_avg.numel() == 0:
        got = list(latent_avg.shape) if isinstance(latent_avg, torch.Tensor) else type(latent_avg).__name__
        raise CheckpointError(f"{source}: latent_avg is {got}, expected [{w_dim}] or [n, {w_dim}]")
    return latent_avg.reshape(-1, w_dim)[0].float()


def generator_from_rosinality(g_ema: Mapping[str, Any], latent_avg: torch.Tensor | None, source: str,
                              mapping_lr_mul: float = 0.01) -> Generator:
    """Build our Generator from a rosinality ``g_ema`` state dict.

    Args:
        g_ema: rosinality ``Generator.state_dict()`` (171 tensors for the 1024 model).
        latent_avg: mean w ([w_dim] or [n, w_dim]); None estimates it from 10,000 random
            z (fixed seed), as rosinality's ``mean_latent`` does.
        source: the file, for messages.
        mapping_lr_mul: rosinality's ``lr_mlp``.

    Returns:
        The generator in eval mode, fp32, gradients off.

    Raises:
        CheckpointError: missing, unexpected or misshapen tensors (named in rosinality's
            terms), or a blur/upsample kernel other than StyleGAN2's.
    """
    config = infer_rosinality_config(g_ema, source, mapping_lr_mul)
    layout = rosinality_layout(config)
    check_layout(g_ema, {k: s for k, (_, s) in layout.items()}, source, "rosinality g_ema")
    shapes = ours_layout(config)
    sd: dict[str, torch.Tensor] = {}
    for key, (ours, _) in layout.items():
        if ours is None:
            check_filter(g_ema[key], _KERNEL_GAIN, key, source)
        else:
            sd[ours] = g_ema[key].reshape(shapes[ours])
    estimate = latent_avg is None
    sd["mapping.w_avg"] = torch.zeros(config.w_dim) if estimate else w_avg_from_latent_avg(latent_avg, config.w_dim,
                                                                                           source)
    G = generator_from_state(config, sd, source)
    if estimate:
        G.mapping.w_avg.copy_(estimate_w_avg(G.mapping))
    return G


def to_rosinality(G: Generator) -> dict[str, Any]:
    """Write ``G`` in rosinality's layout: ``{"g_ema": state dict, "latent_avg": [w_dim]}``.

    The inverse of :func:`generator_from_rosinality`, e.g. to use our weights with code
    written for rosinality's ``model.py``. Requires ``z_dim == w_dim``.
    """
    config = G.config
    if config.z_dim != config.w_dim:
        raise CheckpointError(f"rosinality's layout needs z_dim == w_dim, this generator has {config.z_dim} "
                              f"and {config.w_dim}")
    ours = G.state_dict()
    g_ema: dict[str, torch.Tensor] = {}
    for key, (our_key, shape) in rosinality_layout(config).items():
        if our_key is None:
            g_ema[key] = RESAMPLE_FILTER * _KERNEL_GAIN
        else:
            g_ema[key] = ours[our_key].detach().cpu().reshape(shape).clone()
    return {"g_ema": g_ema, "latent_avg": ours["mapping.w_avg"].detach().cpu().clone()}


def read_rosinality(ckpt: Mapping[str, Any], source: str) -> Generator:
    """Generator of a rosinality top-level dict: converted ``{g_ema, latent_avg}`` or a training
    checkpoint (``g``, ``d``, ``g_ema``, optimizers, ``args``), whose ``g_ema`` is used.

    Training checkpoints store no ``latent_avg``; the mean w is then estimated (see
    :func:`generator_from_rosinality`).
    """
    g_ema = ckpt["g_ema"]
    if not isinstance(g_ema, Mapping):
        raise CheckpointError(f"{source}: g_ema is a {type(g_ema).__name__}, expected a state dict")
    lr_mlp = getattr(ckpt.get("args"), "lr_mlp", None)  # argparse.Namespace of training checkpoints
    return generator_from_rosinality(g_ema, ckpt.get("latent_avg"), source,
                                     float(lr_mlp) if isinstance(lr_mlp, (int, float)) else 0.01)

