"""Readers for the editing directions that encoder4editing ships for the official FFHQ model.

Formats (all plain tensors, read with ``weights_only=True``):

- InterFaceGAN ``age.pt`` / ``smile.pt``: float32 [1, 512], a unit normal in W,
  applied as ``w + factor * direction`` on every W+ position;
- InterFaceGAN ``pose.pt``: float32 [1, 18, 512], one row per W+ position;
- GANSpace ``ffhq_pca.pt``: ``{"mean": [1, 512], "comp": [80, 1, 512], "std": [80]}``.

The InterFaceGAN files become :class:`Direction` objects whose ``step`` is exactly
the file's tensor, so a strength here is e4e's factor. PCA components become
directions with one std per unit of strength; e4e's own absolute-coordinate
formula is :func:`stylegan.editing.ganspace.ganspace_edit` with
:func:`load_e4e_pca`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import CheckpointError
from .direction import MAX_DIRECTION_ELEMENTS, MAX_FILE_BYTES, Direction

__all__ = ["load_e4e_directions", "load_e4e_pca"]


def _read(path: Path) -> object:
    from ..checkpoint import read_checkpoint

    if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: too large for a directions file ({path.stat().st_size} bytes)")
    return read_checkpoint(path)


def _check_pca(obj: object, source: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(obj, dict) or not {"mean", "comp", "std"} <= set(obj):
        raise CheckpointError(f"{source}: not an e4e GANSpace file (needs mean, comp and std)")
    mean, comp, std = obj["mean"], obj["comp"], obj["std"]
    if not all(isinstance(t, torch.Tensor) for t in (mean, comp, std)):
        raise CheckpointError(f"{source}: mean, comp and std must be tensors")
    w_dim = mean.numel()
    if comp.numel() % max(w_dim, 1) or comp.numel() > 256 * MAX_DIRECTION_ELEMENTS or std.ndim != 1 \
            or comp.numel() // max(w_dim, 1) != std.shape[0] or w_dim == 0:
        raise CheckpointError(f"{source}: inconsistent shapes mean {tuple(mean.shape)}, comp {tuple(comp.shape)}, "
                              f"std {tuple(std.shape)}")
    return mean.reshape(w_dim).float(), comp.reshape(-1, w_dim).float(), std.float()


def load_e4e_pca(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean [w_dim], comp [K, w_dim], std [K])`` from e4e's ``ffhq_pca.pt``."""
    path = Path(path)
    return _check_pca(_read(path), str(path))


def load_e4e_directions(path: str | os.PathLike, name: str | None = None) -> dict[str, Direction]:
    """Directions from one of e4e's files, keyed by name.

    Args:
        path: ``age.pt``, ``smile.pt``, ``pose.pt`` (InterFaceGAN) or ``ffhq_pca.pt`` (GANSpace).
        name: the name of an InterFaceGAN direction (default: the file's stem).

    Returns:
        ``{name: Direction}`` for an InterFaceGAN file; ``{"pca0": ..., "pca79": ...}`` for the PCA file.

    Raises:
        CheckpointError: a file that is neither (one line, naming the file).
    """
    path = Path(path)
    obj = _read(path)
    source = f"e4e:{path.name}"
    if isinstance(obj, dict):
        mean, comp, std = _check_pca(obj, str(path))
        return {f"pca{i}": Direction(comp[i], name=f"pca{i}", source=source, scale=float(std[i]),
                                     metadata={"index": i, "semantics": "e4e ganspace (std units)"})
                for i in range(comp.shape[0]) if std[i] > 0}
    if not isinstance(obj, torch.Tensor) or obj.ndim not in (2, 3) or obj.shape[0] != 1 \
            or obj.numel() > MAX_DIRECTION_ELEMENTS:
        raise CheckpointError(f"{path}: not an e4e InterFaceGAN direction ([1, w_dim] or [1, num_ws, w_dim])")
    label = name or path.stem
    try:
        d = Direction(obj[0].float(), name=label, source=source, metadata={"semantics": "e4e interfacegan"})
    except ValueError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return {label: d}
