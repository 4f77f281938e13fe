"""Readers for every generator file format we know; kept apart from the network code.

:func:`read_any_generator` looks at a file and picks the reader:

================================================  ======================================
file                                              reader
================================================  ======================================
ours: ``{format: FORMAT_TAG, config, state_dict}``  :func:`stylegan.checkpoint.generator_from_state`
model file ``{format: "stylegan-morph/model/v1",   its ``generator`` part
generator, encoder, meta}``
rosinality ``{g_ema, latent_avg}`` / training      :mod:`.rosinality`
e4e ``{state_dict: {encoder.*, decoder.*}, ...}``  :mod:`.e4e`
NVIDIA stylegan2-ada ``.pkl`` (plain pickle)       :mod:`.nvidia_pkl` (no pickled code runs)
a bare state dict in rosinality or NVIDIA layout   the matching reader
================================================  ======================================

``torch.save`` files are read with ``weights_only=True``; pickles with a restricted
unpickler. Every reader infers the architecture from tensor shapes and then demands
exactly the tensors of that architecture.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..checkpoint import FORMAT_TAG, generator_from_state, load_checkpoint
from ..config import GeneratorConfig
from ..errors import CheckpointError
from ..networks import Generator
from .e4e import is_e4e, read_e4e
from .layout import describe_keys, estimate_w_avg, infer_config, ours_layout
from .nvidia_pkl import generator_from_nvidia, generator_from_nvidia_state, read_nvidia_pickle
from .rosinality import generator_from_rosinality, read_rosinality, rosinality_layout, to_rosinality
from .safe_unpickle import load_network_pickle, load_torch_file

__all__ = [
    "read_any_generator", "generator_from_checkpoint", "MODEL_FORMAT",
    "read_rosinality", "generator_from_rosinality", "rosinality_layout", "to_rosinality",
    "read_e4e", "read_nvidia_pickle", "generator_from_nvidia", "generator_from_nvidia_state",
    "infer_config", "ours_layout", "estimate_w_avg", "load_network_pickle", "load_torch_file",
]

#: The tag of a model file (generator + encoder in one file, written by
#: :func:`encoders.model_file.save_model`); defined here, in the lower layer, and imported there.
MODEL_FORMAT = "stylegan-morph/model/v1"


def _from_ours(part: Any, source: str) -> Generator:
    """``{config, state_dict}`` as written by ``save_generator`` (or a model file's generator part)."""
    try:
        config = GeneratorConfig.from_dict(dict(part["config"]))
        state = part["state_dict"]
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: broken generator file ({type(e).__name__}: {e})") from None
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: broken generator file (state_dict is a {type(state).__name__})")
    return generator_from_state(config, dict(state), source)


def generator_from_checkpoint(ckpt: Any, source: str) -> Generator:
    """Pick the reader for an already loaded checkpoint object (see the module table).

    Args:
        ckpt: what ``torch.load`` or the network-pickle loader returned.
        source: the file, for messages.

    Raises:
        CheckpointError: the object is none of the known layouts; the message says what it looks like.
    """
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{source}: not a generator checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    fmt = ckpt.get("format")
    if fmt == FORMAT_TAG:
        return _from_ours(ckpt, source)
    if fmt == MODEL_FORMAT:
        if not isinstance(ckpt.get("generator"), Mapping):
            raise CheckpointError(f"{source}: model file without a generator part")
        return _from_ours(ckpt["generator"], source)
    if fmt is not None:
        hint = " (looks like an encoder-only checkpoint)" if "encoder" in str(fmt) else ""
        raise CheckpointError(f"{source}: holds a {fmt!r} file, not a generator{hint}")
    if "g_ema" in ckpt:
        return read_rosinality(ckpt, source)
    if "G_ema" in ckpt:
        return generator_from_nvidia(ckpt, source)
    if is_e4e(ckpt):
        return read_e4e(ckpt, source)
    keys = [str(k) for k in ckpt]
    # A bare generator state dict, as saved by torch.save(G.state_dict()).
    if "style.1.weight" in ckpt and "input.input" in ckpt:
        return generator_from_rosinality(ckpt, None, f"{source} (bare rosinality state dict)")
    if "mapping.fc0.weight" in ckpt and "synthesis.b4.const" in ckpt:
        return generator_from_nvidia_state(ckpt, f"{source} (bare state dict)")
    if any(k.startswith(("input_layer.", "body.", "styles.")) for k in keys):
        raise CheckpointError(f"{source}: looks like an encoder-only checkpoint (encoder weights, no generator)")
    if "d" in ckpt or any(k.startswith("convs.0.") for k in keys):
        raise CheckpointError(f"{source}: looks like a discriminator or a partial training checkpoint, no g_ema "
                              f"(top-level keys: {describe_keys(sorted(keys), 8)})")
    raise CheckpointError(f"{source}: not a generator checkpoint this toolkit knows (top-level keys: "
                          f"{describe_keys(sorted(keys), 8) or 'none'})")


def read_any_generator(path: str | os.PathLike) -> Generator:
    """Detect the format of ``path`` and build the generator it holds.

    Example:
        >>> G = read_any_generator("stylegan2-ffhq-config-f.pt")   # doctest: +SKIP
        >>> img = G.synthesis(G.mapping(torch.randn(1, G.z_dim)), noise_mode="const")  # doctest: +SKIP

    Args:
        path: a ``torch.save`` file (ours, model file, rosinality, e4e) or an NVIDIA ``.pkl``.

    Returns:
        The generator on the CPU, fp32, eval mode, gradients off.

    Raises:
        UserError: no such file.
        CheckpointError: an unreadable, truncated, foreign or refused file (one line).
    """
    ckpt = load_checkpoint(Path(path))
    return generator_from_checkpoint(ckpt.data, ckpt.source)
