"""The generator inside an e4e checkpoint (omertov/encoder4editing, e.g. ``e4e_ffhq_encode.pt``).

Layout: ``{"state_dict": {"encoder.*", "decoder.*"}, "latent_avg": [num_ws, w_dim], "opts": dict}``
(CHECKPOINTS.md section 2). ``decoder.*`` is a rosinality generator and goes through
:mod:`stylegan.convert.rosinality`.

The mean w: e4e's decoder keeps none of its own. e4e's ``latent_avg`` is the generator's
mean w (from the rosinality file it was trained with) repeated over the W+ positions,
so its first row becomes ``mapping.w_avg``. A file without ``latent_avg`` gets the
estimate of :func:`stylegan.convert.layout.estimate_w_avg`.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import CheckpointError
from ..networks import Generator
from .layout import describe_keys
from .rosinality import generator_from_rosinality

__all__ = ["read_e4e", "is_e4e", "DECODER_PREFIX", "ENCODER_PREFIX"]

DECODER_PREFIX = "decoder."
ENCODER_PREFIX = "encoder."


def is_e4e(ckpt: Mapping[str, Any]) -> bool:
    """True for a dict shaped like an e4e/pSp checkpoint (a ``state_dict`` of encoder/decoder keys)."""
    state = ckpt.get("state_dict")
    return isinstance(state, Mapping) and any(
        isinstance(k, str) and k.startswith((DECODER_PREFIX, ENCODER_PREFIX)) for k in state)


def read_e4e(ckpt: Mapping[str, Any], source: str) -> Generator:
    """Our Generator from an e4e checkpoint's ``decoder.*`` weights.

    Args:
        ckpt: the loaded top-level dict.
        source: the file, for messages.

    Returns:
        The generator (eval mode, fp32), ``w_avg`` = ``latent_avg[0]``.

    Raises:
        CheckpointError: no ``decoder.*`` (an encoder-only file), keys outside
            ``encoder.*``/``decoder.*``, or decoder weights that do not fit.
    """
    state = ckpt["state_dict"]
    foreign = sorted(str(k) for k in state if not str(k).startswith((DECODER_PREFIX, ENCODER_PREFIX)))
    if foreign:
        raise CheckpointError(f"{source}: e4e state_dict has {len(foreign)} keys outside encoder.*/decoder.* "
                              f"({describe_keys(foreign)})")
    decoder = {k[len(DECODER_PREFIX):]: v for k, v in state.items() if k.startswith(DECODER_PREFIX)}
    if not decoder:
        raise CheckpointError(f"{source}: looks like an encoder-only checkpoint (encoder.* weights, no decoder.*): "
                              f"it has no generator to render with")
    return generator_from_rosinality(decoder, ckpt.get("latent_avg"), f"{source} (decoder.*)")
