"""A "model file": generator and encoder in one of our own checkpoints.

Layout (loads with ``torch.load(weights_only=True)``)::

    {"format": "stylegan-morph/model/v1",
     "generator": {"config": {...}, "state_dict": {...}},
     "encoder":   {"config": {...}, "state_dict": {...}},
     "meta": {...}}

``stylegan.load_generator`` reads its generator part and ``encoders.load_encoder``
its encoder part, so one path serves the whole morph, like ``e4e_ffhq_encode.pt``.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from stylegan.checkpoint import atomic_torch_save
from stylegan.convert import MODEL_FORMAT  # the tag is defined once, in the lower layer that reads it
from stylegan.networks import Generator

__all__ = ["MODEL_FORMAT", "save_model"]


def _cpu_state(module: torch.nn.Module, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    return {k: (v.detach().cpu().to(dtype) if dtype is not None and v.is_floating_point() else v.detach().cpu())
            for k, v in module.state_dict().items()}


def save_model(path: str | os.PathLike, G: Generator, E: torch.nn.Module, meta: dict[str, Any] | None = None,
               dtype: torch.dtype | None = None) -> None:
    """Write generator + encoder atomically; ``dtype=torch.float16`` halves the file (loaders cast to fp32)."""
    atomic_torch_save({
        "format": MODEL_FORMAT,
        "generator": {"config": G.config.to_dict(), "state_dict": _cpu_state(G, dtype)},
        "encoder": {"config": E.config.to_dict(), "state_dict": _cpu_state(E, dtype)},
        "meta": dict(meta or {}),
    }, path)
