"""Our parameter layout (which is NVIDIA's), worked out from a config or from tensor shapes.

Every reader in :mod:`stylegan.convert` ends up here: it builds the list of tensors a
file of its layout must hold for the architecture that the shapes suggest, compares
the file against that list exactly, and names what is missing, unexpected or misshapen.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from ..config import GeneratorConfig, resolutions_for
from ..errors import CheckpointError
from ..ops import setup_filter

__all__ = ["ours_layout", "conv_layers", "nvidia_filter_keys", "infer_config", "check_layout", "check_filter", "estimate_w_avg",
           "RESAMPLE_FILTER", "describe_keys"]

#: The [1, 3, 3, 1] FIR filter (outer product, sum 1) that every StyleGAN2 file uses.
RESAMPLE_FILTER = setup_filter()

Shape = tuple[int, ...]


def conv_layers(config: GeneratorConfig) -> list[tuple[str, int, int, int, bool]]:
    """The modulated 3x3 convs in forward order: ``(key prefix, res, in, out, upsamples)``.

    b4 has only ``conv1``; every later block has ``conv0`` (2x up) then ``conv1``.
    Their order is the order of rosinality's ``noises.noise_{i}``.
    """
    layers = []
    prev = 0
    for res in config.resolutions:
        ch = config.channels_at(res)
        if prev:
            layers.append((f"synthesis.b{res}.conv0", res, prev, ch, True))
        layers.append((f"synthesis.b{res}.conv1", res, ch, ch, False))
        prev = ch
    return layers


def ours_layout(config: GeneratorConfig) -> dict[str, Shape]:
    """Key -> shape of ``Generator(config).state_dict()``, without building the model.

    Args:
        config: the architecture.

    Returns:
        An ordered dict of every persistent tensor: 156 entries for the official 1024 model.
    """
    w = config.w_dim
    out: dict[str, Shape] = {}
    if config.c_dim:  # conditional: the label embedding (NVIDIA's embed_features = w_dim) joins z
        out["mapping.embed.weight"] = (w, config.c_dim)
        out["mapping.embed.bias"] = (w,)
    for i in range(config.mapping_layers):
        out[f"mapping.fc{i}.weight"] = (w, config.z_dim + (w if config.c_dim else 0) if i == 0 else w)
        out[f"mapping.fc{i}.bias"] = (w,)
    out["mapping.w_avg"] = (w,)
    c4 = config.channels_at(4)
    out["synthesis.b4.const"] = (c4, 4, 4)
    layers = {prefix: (res, cin, cout) for prefix, res, cin, cout, _ in conv_layers(config)}
    for res in config.resolutions:
        ch = config.channels_at(res)
        for name in ("conv0", "conv1"):
            prefix = f"synthesis.b{res}.{name}"
            if prefix not in layers:
                continue
            _, cin, cout = layers[prefix]
            out[f"{prefix}.weight"] = (cout, cin, 3, 3)
            out[f"{prefix}.bias"] = (cout,)
            out[f"{prefix}.noise_strength"] = ()
            out[f"{prefix}.noise_const"] = (res, res)
            out[f"{prefix}.affine.weight"] = (cin, w)
            out[f"{prefix}.affine.bias"] = (cin,)
        out[f"synthesis.b{res}.torgb.weight"] = (config.img_channels, ch, 1, 1)
        out[f"synthesis.b{res}.torgb.bias"] = (config.img_channels,)
        out[f"synthesis.b{res}.torgb.affine.weight"] = (ch, w)
        out[f"synthesis.b{res}.torgb.affine.bias"] = (ch,)
    return out


def nvidia_filter_keys(config: GeneratorConfig) -> list[str]:
    """The ``resample_filter`` buffers NVIDIA saves and we rebuild (26 for 1024 px).

    NVIDIA registers one per synthesis block and one per conv layer (also the ones
    that never resample); ours are non-persistent, so files carry them and we drop them.
    """
    keys = []
    for res in config.resolutions:
        keys.append(f"synthesis.b{res}.resample_filter")
        if res > 4:
            keys.append(f"synthesis.b{res}.conv0.resample_filter")
        keys.append(f"synthesis.b{res}.conv1.resample_filter")
    return keys


def _shape(sd: Mapping[str, Any], key: str, source: str, ndim: int) -> Shape:
    """The shape of tensor ``key``, which must have ``ndim`` dimensions (a file may lie)."""
    value = sd.get(key)
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{source}: cannot work out the architecture: no tensor {key!r}")
    if value.ndim != ndim:
        raise CheckpointError(f"{source}: cannot work out the architecture: {key} is {list(value.shape)}, "
                              f"expected {ndim} dimensions")
    return tuple(value.shape)


def infer_config(sd: Mapping[str, Any], source: str, *, mapping_lr_mul: float = 0.01,
                 conv_clamp: float | None = None) -> GeneratorConfig:
    """Guess the :class:`GeneratorConfig` of a state dict in our (NVIDIA's) layout from its shapes.

    Only shapes are read: the mapping depth from the ``mapping.fc{i}`` layers, ``z_dim``
    and ``w_dim`` from the first one, the resolution from the ``synthesis.b{R}`` blocks,
    the channels from each block's ``conv1``, ``c_dim`` from ``mapping.embed`` if present. ``mapping_lr_mul`` and ``conv_clamp`` do
    not show in shapes and are passed in. Missing or extra tensors are reported later by
    :func:`check_layout` against the layout of the config found here.

    Raises:
        CheckpointError: when there is not enough to go on.
    """
    fcs = {int(m.group(1)) for k in sd if (m := re.fullmatch(r"mapping\.fc(\d{1,6})\.weight", str(k)))}
    if not fcs:
        raise CheckpointError(f"{source}: cannot work out the architecture: no mapping.fc0.weight")
    n_fc = max(fcs) + 1
    w_dim, z_dim = _shape(sd, "mapping.fc0.weight", source, 2)
    c_dim = 0
    if "mapping.embed.weight" in sd:  # conditional: fc0 reads [z, embed(c)]
        embed_features, c_dim = _shape(sd, "mapping.embed.weight", source, 2)
        z_dim -= embed_features
        if z_dim < 1:
            raise CheckpointError(f"{source}: cannot work out the architecture: mapping.fc0 reads fewer "
                                  f"features than mapping.embed gives")
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"synthesis\.b(\d{1,6})\.", str(k)))}
    top = max(blocks, default=0)
    if top < 4 or top > 1024 or top & (top - 1) or blocks != set(resolutions_for(top)):
        raise CheckpointError(f"{source}: synthesis blocks {sorted(blocks)} are not b4, b8, ... up to a power "
                              f"of two <= 1024")
    channels = [_shape(sd, f"synthesis.b{r}.conv1.weight", source, 4)[0] for r in resolutions_for(top)]
    img_channels = _shape(sd, "synthesis.b4.torgb.weight", source, 4)[0]
    try:
        return GeneratorConfig(img_resolution=top, channels=tuple(channels), z_dim=z_dim, w_dim=w_dim,
                               mapping_layers=n_fc, mapping_lr_mul=mapping_lr_mul, img_channels=img_channels,
                               conv_clamp=conv_clamp, c_dim=c_dim)
    except ValueError as e:
        raise CheckpointError(f"{source}: unsupported architecture ({e})") from None


def describe_keys(keys: list[str], limit: int = 5) -> str:
    """``"a, b, c, ..."``: the first ``limit`` keys, for one-line messages."""
    return ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")


def check_layout(found: Mapping[str, Any], expected: Mapping[str, Shape], source: str, what: str) -> None:
    """Require ``found`` to hold exactly the tensors of ``expected``, with those shapes.

    Args:
        found: key -> tensor, as read from the file.
        expected: key -> shape for the architecture inferred from it.
        source: the file, for the message.
        what: the layout's name ("rosinality g_ema", ...), for the message.

    Raises:
        CheckpointError: one line naming (the first few) missing, unexpected, non-tensor
            and misshapen entries, in the file's own key names.
    """
    missing = [k for k in expected if k not in found]
    unexpected = sorted(str(k) for k in found if k not in expected)
    not_tensors = sorted(str(k) for k, v in found.items() if k in expected and not isinstance(v, torch.Tensor))
    shapes = [f"{k} is {list(found[k].shape)}, expected {list(s)}" for k, s in expected.items()
              if isinstance(found.get(k), torch.Tensor) and tuple(found[k].shape) != tuple(s)]
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} ({describe_keys(missing)})")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} ({describe_keys(unexpected)})")
    if not_tensors:
        parts.append(f"not tensors: {describe_keys(not_tensors)}")
    if shapes:
        parts.append(f"{len(shapes)} wrong shapes ({'; '.join(shapes[:3])}{'; ...' if len(shapes) > 3 else ''})")
    if parts:
        raise CheckpointError(f"{source}: {what} does not match a StyleGAN2 generator: {'; '.join(parts)}")


def check_filter(value: torch.Tensor, gain: float, key: str, source: str) -> None:
    """Require a stored FIR filter to be StyleGAN2's [1, 3, 3, 1] filter times ``gain``.

    We rebuild this filter rather than load it, so a file with another one would
    render differently without this check.
    """
    if value.dtype.is_floating_point and tuple(value.shape) == (4, 4) and torch.allclose(
            value.float(), RESAMPLE_FILTER * gain, rtol=1e-5, atol=1e-6):
        return
    raise CheckpointError(f"{source}: {key} is not the [1,3,3,1] filter (x{gain:g}) this generator uses")


@torch.no_grad()
def estimate_w_avg(mapping: torch.nn.Module, num: int = 10_000, seed: int = 0) -> torch.Tensor:
    """Mean w of ``num`` random z: the truncation centre when a file does not store one.

    rosinality's ``mean_latent(4096)`` does the same; a fixed seed keeps the result, and so
    every truncated image, the same from run to run.

    Args:
        mapping: a :class:`stylegan.networks.MappingNetwork` (its ``w_avg`` is not read).
        num: number of samples.
        seed: seed of the private generator the z are drawn from.

    Returns:
        [w_dim] float32.
    """
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(mapping.w_dim, dtype=torch.float64)
    for start in range(0, num, 2048):  # chunks bound memory for large w_dim
        z = torch.randn(min(2048, num - start), mapping.z_dim, generator=gen)
        total += mapping(z)[:, 0].double().sum(0)
    return (total / num).float()
