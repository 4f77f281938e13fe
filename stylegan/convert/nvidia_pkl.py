"""NVIDIA stylegan2-ada-pytorch ``.pkl`` files (``{G, D, G_ema, training_set_kwargs, augment_pipe}``).

The pickle is read by :func:`stylegan.convert.safe_unpickle.load_network_pickle`, which
never runs the network source the file carries. ``G_ema``'s parameters and buffers are
collected from the nested ``_parameters`` / ``_buffers`` / ``_modules`` states; their
names are ours already (our layout is NVIDIA's, see CHECKPOINTS.md section 3), except
the ``resample_filter`` buffers, which are checked against StyleGAN2's filter and dropped.
Class-conditional generators (``c_dim`` > 0, e.g. CIFAR-10) load too: their
``mapping.embed`` layer is ours (:class:`stylegan.networks.MappingNetwork`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ..checkpoint import generator_from_state
from ..errors import CheckpointError
from ..networks import Generator
from .layout import check_filter, check_layout, describe_keys, infer_config, nvidia_filter_keys, ours_layout
from .safe_unpickle import PersistentObject, load_network_pickle

__all__ = ["read_nvidia_pickle", "generator_from_nvidia", "collect_state_dict", "generator_from_nvidia_state"]


def collect_state_dict(obj: PersistentObject, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a module tree from the pickle into ``state_dict()``-style names.

    Args:
        obj: a module as :class:`PersistentObject` (its ``state`` is the module's ``__dict__``).
        prefix: name prefix of this module ("" for the root).

    Returns:
        key -> tensor for every parameter and persistent buffer, like ``Module.state_dict()``.
    """
    state = obj.state
    out: dict[str, torch.Tensor] = {}
    skip = state.get("_non_persistent_buffers_set") or set()
    for kind in ("_parameters", "_buffers"):
        entries = state.get(kind) or {}
        if not isinstance(entries, Mapping):
            raise CheckpointError(f"{prefix or 'G_ema'}: {kind} is a {type(entries).__name__}, not a dict")
        for name, value in entries.items():
            if value is None or (kind == "_buffers" and name in skip):
                continue
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
            out[f"{prefix}{name}"] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentObject):
            # Plain torch.nn modules would have been refused while unpickling; anything
            # else here is not a module at all.
            raise CheckpointError(f"{prefix}{name} is a {type(child).__name__}, not a network module")
        out.update(collect_state_dict(child, f"{prefix}{name}."))
    return out


def _find(obj: PersistentObject, path: str) -> PersistentObject | None:
    """The submodule at a dotted path, or None."""
    for name in path.split("."):
        child = (obj.state.get("_modules") or {}).get(name)
        if not isinstance(child, PersistentObject):
            return None
        obj = child
    return obj


def _number(value: Any) -> float | None:
    """A plain float from an attribute that may be a Python or numpy number."""
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def generator_from_nvidia_state(sd: Mapping[str, Any], source: str, mapping_lr_mul: float = 0.01,
                                conv_clamp: float | None = None) -> Generator:
    """Build our Generator from a state dict in NVIDIA's layout (``G_ema.state_dict()``).

    Args:
        sd: 182 tensors for the 1024 model, ``resample_filter`` buffers included (or omitted).
        source: the file, for messages.
        mapping_lr_mul, conv_clamp: settings that do not show in shapes.

    Returns:
        The generator in eval mode, fp32, gradients off.

    Raises:
        CheckpointError: missing, unexpected or misshapen tensors, or a foreign filter.
    """
    if any(str(k).startswith("synthesis.input.") for k in sd):
        raise CheckpointError(f"{source}: looks like a StyleGAN3 generator (synthesis.input); only StyleGAN2 is "
                              f"supported")
    config = infer_config(sd, source, mapping_lr_mul=mapping_lr_mul, conv_clamp=conv_clamp)
    expected = dict(ours_layout(config))
    filters = [k for k in nvidia_filter_keys(config) if k in sd]  # present in NVIDIA files, absent in ours
    expected.update({k: (4, 4) for k in filters})
    check_layout(sd, expected, source, "G_ema")
    for key in filters:
        check_filter(sd[key], 1.0, key, source)
    return generator_from_state(config, {k: v for k, v in sd.items() if k not in filters}, source)


def generator_from_nvidia(data: Any, source: str) -> Generator:
    """The ``G_ema`` of an unpickled NVIDIA network pickle as our Generator.

    Settings that shapes do not reveal are read from the module states: the mapping
    learning-rate multiplier from ``mapping.fc0.bias_gain`` and ``conv_clamp`` from
    ``synthesis.b4.conv1.conv_clamp`` (NVIDIA sets 256 for networks trained in fp16).
    """
    if not isinstance(data, dict) or not isinstance(data.get("G_ema"), PersistentObject):
        keys = describe_keys(sorted(map(str, data)), 6) if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{source}: no G_ema network in this pickle (holds: {keys})")
    g = data["G_ema"]
    kwargs = g.state.get("_init_kwargs") if isinstance(g.state.get("_init_kwargs"), dict) else {}
    synthesis_kwargs = kwargs.get("synthesis_kwargs") if isinstance(kwargs.get("synthesis_kwargs"), dict) else {}
    arch = synthesis_kwargs.get("architecture", "skip")
    if arch != "skip":
        raise CheckpointError(f"{source}: synthesis architecture {arch!r}; only StyleGAN2's 'skip' is supported")
    fc0, conv = _find(g, "mapping.fc0"), _find(g, "synthesis.b4.conv1")
    lr_mul = _number(fc0.state.get("bias_gain")) if fc0 is not None else None
    clamp = _number(conv.state.get("conv_clamp")) if conv is not None else None
    return generator_from_nvidia_state(collect_state_dict(g), source, 0.01 if lr_mul is None else lr_mul, clamp)


def read_nvidia_pickle(path: str | os.PathLike) -> Generator:
    """Read the generator (``G_ema``) of an NVIDIA stylegan2-ada-pytorch ``.pkl`` safely.

    Example:
        >>> G = read_nvidia_pickle("ffhq.pkl")   # doctest: +SKIP

    Raises:
        CheckpointError: a refused global (named), a truncated pickle, no ``G_ema``, or
            tensors that do not fit a StyleGAN2 generator.
    """
    path = Path(path)
    return generator_from_nvidia(load_network_pickle(path), str(path))
