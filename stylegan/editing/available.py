"""What a loaded model can be edited with: shipped directions that fit it, plus SeFa and PCA.

Shipped directions live in ``pretrained/directions/<set>/*.pt`` next to a
``SHA256SUMS`` file that is checked on every read. A set applies to a model when
its files' ``model_fingerprint`` metadata equals :func:`model_fingerprint` of the
generator (a hash of synthesis weights, so it survives fp16 storage and a new
mapping network), or, for e4e's FFHQ set, when the model has the official
FFHQ shape (18 x 512) -- those weights are too large to fingerprint offline.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .direction import Direction

__all__ = ["available_directions", "model_fingerprint", "shipped_directions", "directions_root", "read_sha256sums"]

# Sets that are tied to a model shape rather than a fingerprint: {set: (num_ws, w_dim)}.
_SHAPE_SETS = {"e4e-ffhq": (18, 512)}


def directions_root() -> Path:
    """``pretrained/directions`` inside the installed package."""
    import pretrained  # deferred: pretrained is data only and must not import us at import time

    return Path(pretrained.__file__).resolve().parent / "directions"


def model_fingerprint(G: torch.nn.Module) -> str:
    """A short hash of a generator's synthesis weights (the first const and the last toRGB affine, in fp16)."""
    syn = G.synthesis
    res = syn.config.resolutions
    first, last = getattr(syn, f"b{res[0]}"), getattr(syn, f"b{res[-1]}")
    h = hashlib.sha256()
    for t in (first.const, last.torgb.affine.weight):
        h.update(t.detach().cpu().half().numpy().tobytes())
    return h.hexdigest()[:16]


def read_sha256sums(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` from ``folder/SHA256SUMS`` (``sha256sum`` output format)."""
    sums: dict[str, str] = {}
    path = folder / "SHA256SUMS"
    if not path.is_file():
        return sums
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0]
    return sums


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_directions(set_name: str, root: str | os.PathLike | None = None) -> dict[str, Direction]:
    """Every direction of one shipped set, checked against its SHA256SUMS.

    Raises:
        CheckpointError: a file whose sha256 differs from SHA256SUMS, or one not listed.
    """
    folder = Path(root) if root is not None else directions_root() / set_name
    if not folder.is_dir():
        return {}
    sums = read_sha256sums(folder)
    out: dict[str, Direction] = {}
    for path in sorted(folder.glob("*.pt")):
        expected = sums.get(path.name)
        if expected is None or _sha256(path) != expected:
            raise CheckpointError(f"{path}: sha256 does not match {folder / 'SHA256SUMS'} (a modified file?)")
        if set_name in _SHAPE_SETS:
            from .e4e import load_e4e_directions

            out.update(load_e4e_directions(path))
        else:
            d = Direction.load(path)
            out[d.name] = d
    return out


def _fits(d: Direction, G: torch.nn.Module) -> bool:
    return d.w_dim == G.w_dim and (d.num_ws is None or d.num_ws == G.num_ws)


def _pca_of(G: torch.nn.Module, k: int) -> list[Direction]:
    from .ganspace import pca_directions, sample_codes

    basis = getattr(G.mapping, "basis", None)
    if basis is not None:  # a fitted Gaussian: its basis rows are the PCA axes times their stds
        norms = basis.double().norm(dim=1)
        total = float(norms.square().sum())
        return [Direction(basis[i].reshape(G.num_ws, G.w_dim), name=f"pca{i}", source="pca (sampler basis)",
                          metadata={"index": i, "explained_variance_ratio": float(norms[i] ** 2 / total)})
                for i in range(min(k, len(norms))) if norms[i] > 0]
    return pca_directions(sample_codes(G, 5000, seed=0), k=min(k, G.w_dim))


def available_directions(G_or_model_name: Any = None, k_sefa: int = 5, k_pca: int = 5) -> dict[str, Direction]:
    """Directions offered for a model, by name.

    Args:
        G_or_model_name: a loaded generator, or a file / registry name (None: the default model).
        k_sefa, k_pca: how many SeFa and PCA components to add.

    Returns:
        ``{name: Direction}``: the shipped directions that fit the model (``age``,
        ``gender``... for the default model; e4e's ``age``, ``smile``, ``pose`` and
        its PCA components as ``e4e_pca0``... for official FFHQ models), then
        ``pca0``.. (unless shipped) and ``sefa0``.. computed from the model.
    """
    G = G_or_model_name
    if G is None or isinstance(G, (str, os.PathLike)):
        from ..weights import load_generator

        G = load_generator(G)
    out: dict[str, Direction] = {}
    fingerprint = model_fingerprint(G)
    root = directions_root()
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        shape = _SHAPE_SETS.get(folder.name)
        if shape is not None and shape != (G.num_ws, G.w_dim):
            continue
        try:
            found = shipped_directions(folder.name)
        except CheckpointError:
            raise
        for name, d in found.items():
            if shape is None and d.metadata.get("model_fingerprint") != fingerprint:
                continue
            if _fits(d, G):
                out[f"e4e_{name}" if shape is not None and name.startswith("pca") else name] = d
    if k_pca:
        for d in _pca_of(G, k_pca):
            out.setdefault(d.name, d)
    if k_sefa:
        from .sefa import sefa_directions

        for d in sefa_directions(G, k=min(k_sefa, G.w_dim)):
            out.setdefault(d.name, d)
    return out
