"""A latent direction: a unit vector in W or W+, its step size, default positions and provenance.

A :class:`Direction` is what every editing op consumes, whichever method made it
(InterFaceGAN, GANSpace, SeFa, e4e's shipped files). Files are our own format: a
plain dict of one tensor, strings, numbers, lists and a flat metadata dict,
written with :func:`torch.save` and read back with ``weights_only=True`` and
bounded, so loading a direction never runs code and never allocates more than
a small, fixed amount.

Why a ``scale`` next to a unit ``vector``: codes of different models live at
very different scales (the official FFHQ W has a per-dimension std of about 1,
the default 128 px model's encoded codes about 0.15). A strength of +3 should
mean "a strong edit" on both, so each direction carries the step that one unit
of strength moves: 1 for e4e's InterFaceGAN files (their factors keep their
published meaning), the gap between the two classes' mean codes for directions
learned here (strength 1 = the average young-to-old difference), and the codes'
standard deviation along the direction for PCA and SeFa components.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, UserError

__all__ = ["Direction", "load_direction", "DIRECTION_FORMAT", "MAX_DIRECTION_ELEMENTS", "MAX_FILE_BYTES"]

DIRECTION_FORMAT = "stylegan-morph/direction/v1"

# Bounds on what a direction file may hold: the largest supported code is W+ of a
# 1024 px model (18 x 512), so 64k elements leave room without allowing a huge tensor.
MAX_DIRECTION_ELEMENTS = 65_536
MAX_FILE_BYTES = 4 * 1024 * 1024
_MAX_META_ITEMS = 64
_MAX_TEXT = 4096



def _check_meta(metadata: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(metadata, dict) or len(metadata) > _MAX_META_ITEMS:
        raise ValueError(f"metadata must be a dict of at most {_MAX_META_ITEMS} items")
    out: dict[str, Any] = {}
    for k, v in metadata.items():
        if not isinstance(k, str) or len(k) > 100:
            raise ValueError(f"metadata keys must be short strings, got {k!r}")
        if isinstance(v, (list, tuple)):
            if len(v) > 1024 or not all(isinstance(x, (int, float, str, bool)) for x in v):
                raise ValueError(f"metadata[{k!r}] must be a short list of numbers or strings")
            v = list(v)
        elif not isinstance(v, (str, int, float, bool)) and v is not None:
            raise ValueError(f"metadata[{k!r}] must be a string, number, bool, None or a list, got {type(v).__name__}")
        if isinstance(v, str) and len(v) > _MAX_TEXT:
            raise ValueError(f"metadata[{k!r}] is longer than {_MAX_TEXT} characters")
        out[k] = v
    return out


@dataclass(frozen=True)
class Direction:
    """A direction in W (``[w_dim]``, added to every W+ position) or W+ (``[num_ws, w_dim]``).

    The vector is stored with unit norm (the norm of the whole tensor); a vector of
    any other length is normalised on construction and its length moves into
    ``scale``, so ``scale * vector`` -- the step of one unit of strength -- is kept.

    Attributes:
        vector: float32 ``[w_dim]`` or ``[num_ws, w_dim]``, unit norm.
        name: short name, e.g. ``"age"``.
        layers: default W+ positions the edit touches (None: all).
        source: where it came from (``"interfacegan"``, ``"pca"``, ``"sefa"``, ``"e4e:age.pt"``...).
        metadata: flat dict of strings/numbers/lists (e.g. ``val_accuracy``).
        scale: the step in code units of one unit of strength (positive).

    Example:
        >>> d = Direction(torch.tensor([3.0, 4.0]), name="demo")
        >>> d.vector.tolist(), d.scale
        ([0.6000000238418579, 0.800000011920929], 5.0)
    """

    vector: torch.Tensor
    name: str = "direction"
    layers: tuple[int, ...] | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    scale: float = 1.0

    def __post_init__(self) -> None:
        v = self.vector
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"vector must be a tensor, got {type(v).__name__}")
        if v.ndim not in (1, 2) or v.numel() == 0 or v.numel() > MAX_DIRECTION_ELEMENTS:
            raise ValueError(f"vector must be [w_dim] or [num_ws, w_dim] with at most {MAX_DIRECTION_ELEMENTS} "
                             f"elements, got {tuple(v.shape)}")
        v = v.detach().to("cpu", torch.float64)
        if not torch.isfinite(v).all():
            raise ValueError("vector must be finite")
        norm = float(v.norm())
        if norm == 0:
            raise ValueError("vector must not be zero")
        scale = float(self.scale)
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {self.scale}")
        if abs(norm - 1) > 1e-6:  # a stored unit vector is kept bit for bit, so files round-trip exactly
            object.__setattr__(self, "vector", (v / norm).float().contiguous())
            object.__setattr__(self, "scale", scale * norm)
        else:
            object.__setattr__(self, "vector", self.vector.detach().to("cpu", torch.float32).contiguous())
            object.__setattr__(self, "scale", scale)
        if not isinstance(self.name, str) or not self.name or len(self.name) > 100:
            raise ValueError(f"name must be a non-empty string of at most 100 characters, got {self.name!r}")
        if not isinstance(self.source, str) or len(self.source) > _MAX_TEXT:
            raise ValueError("source must be a string")
        if self.layers is not None:
            layers = tuple(int(i) for i in self.layers)
            if not layers or len(set(layers)) != len(layers) or min(layers) < 0:
                raise ValueError(f"layers must be distinct non-negative W+ positions, got {self.layers}")
            if self.is_wplus and max(layers) >= self.vector.shape[0]:
                raise ValueError(f"layers {layers} out of range for a {self.vector.shape[0]}-position direction")
            object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "metadata", _check_meta(dict(self.metadata)))

    @property
    def is_wplus(self) -> bool:
        """True for a W+ direction (one row per position)."""
        return self.vector.ndim == 2

    @property
    def w_dim(self) -> int:
        return int(self.vector.shape[-1])

    @property
    def num_ws(self) -> int | None:
        """Number of positions of a W+ direction; None for a W direction (fits any model of its ``w_dim``)."""
        return int(self.vector.shape[0]) if self.is_wplus else None

    @property
    def step(self) -> torch.Tensor:
        """``scale * vector``: what one unit of strength adds."""
        return self.vector * self.scale

    def as_wplus(self, num_ws: int) -> torch.Tensor:
        """The step as ``[num_ws, w_dim]`` (a W direction is repeated on every position)."""
        if self.is_wplus:
            if self.vector.shape[0] != num_ws:
                raise UserError(f"direction {self.name!r} has {self.vector.shape[0]} positions, the codes {num_ws}")
            return self.step
        return self.step.unsqueeze(0).expand(num_ws, -1)

    def to_dict(self) -> dict[str, Any]:
        """The plain dict written by :meth:`save`."""
        return {"format": DIRECTION_FORMAT, "vector": self.vector.clone(), "name": self.name,
                "layers": None if self.layers is None else list(self.layers), "source": self.source,
                "metadata": dict(self.metadata), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: Any, source: str = "direction") -> "Direction":
        """Rebuild from :meth:`to_dict`; refuses anything else with a one-line CheckpointError."""
        if not isinstance(d, dict) or d.get("format") != DIRECTION_FORMAT:
            raise CheckpointError(f"{source}: not a direction file (expected format {DIRECTION_FORMAT!r})")
        unknown = set(d) - {"format", "vector", "name", "layers", "source", "metadata", "scale"}
        if unknown:
            raise CheckpointError(f"{source}: unknown fields {sorted(unknown)}")
        try:
            return cls(vector=d["vector"], name=d.get("name", "direction"), layers=d.get("layers"),
                       source=d.get("source", ""), metadata=d.get("metadata") or {}, scale=d.get("scale", 1.0))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{source}: malformed direction file ({e})") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically in our format; returns the path."""
        from ..checkpoint import atomic_torch_save

        path = Path(path)
        atomic_torch_save(self.to_dict(), path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Direction":
        """Read a file written by :meth:`save` (``weights_only=True``, size-bounded)."""
        from ..checkpoint import read_checkpoint

        path = Path(path)
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            raise CheckpointError(f"{path}: {path.stat().st_size} bytes is too large for a direction file "
                                  f"(at most {MAX_FILE_BYTES})")
        return cls.from_dict(read_checkpoint(path), str(path))

    def with_(self, **changes: Any) -> "Direction":
        """A copy with some fields changed (``dataclasses.replace`` that keeps the step)."""
        d = {"vector": self.vector, "name": self.name, "layers": self.layers, "source": self.source,
             "metadata": self.metadata, "scale": self.scale}
        d.update(changes)
        return Direction(**d)

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.vector.shape)
        return (f"Direction(name={self.name!r}, shape={shape}, scale={self.scale:.4g}, layers={self.layers}, "
                f"source={self.source!r})")


def load_direction(path_or_name: str | os.PathLike | Direction, model: Any = None) -> Direction:
    """A direction from a file, or by name from those :func:`available_directions` offers.

    Args:
        path_or_name: a direction file (ours, or one of e4e's ``.pt`` files), a
            :class:`Direction` (returned as is), or a name such as ``"age"``,
            ``"pca0"`` or ``"sefa1"``.
        model: for names: a generator, or a registry name (None: the default model).

    Raises:
        UserError: an unknown name (the message lists the known ones) or a missing file.
    """
    if isinstance(path_or_name, Direction):
        return path_or_name
    p = Path(path_or_name)
    if p.suffix in (".pt", ".pth") or p.exists():
        if not p.is_file():
            raise UserError(f"{p}: no such direction file")
        try:
            return Direction.load(p)
        except CheckpointError:
            from .e4e import load_e4e_directions

            found = load_e4e_directions(p)  # an e4e file with one direction, or refuse with one line
            if len(found) != 1:
                raise UserError(f"{p}: holds {len(found)} directions (e4e GANSpace PCA); name one of them "
                                f"with load_e4e_directions") from None
            return next(iter(found.values()))
    from .available import available_directions

    known = available_directions("default" if model is None else model)
    name = str(path_or_name)
    if name not in known:
        raise UserError(f"unknown direction {name!r}; known: {', '.join(known)}")
    return known[name]
