"""Readers for checkpoint formats other than our own; kept apart from the network code."""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import FORMAT_TAG, generator_from_state, read_checkpoint
from ..config import GeneratorConfig
from ..errors import CheckpointError
from ..networks import Generator

__all__ = ["read_any_generator"]


def read_any_generator(path: Path) -> Generator:
    """Detect the format of ``path`` and build the generator it holds."""
    ckpt = read_checkpoint(path)
    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT_TAG:
        try:
            config = GeneratorConfig.from_dict(ckpt["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: bad generator config ({e})") from None
        return generator_from_state(config, ckpt["state_dict"], str(path))
    raise CheckpointError(f"{path}: not a generator checkpoint this toolkit knows")
