"""Edits of W+ codes: add a direction, vector arithmetic, style mixing.

All of these are plain tensor maths on codes ``[B, num_ws, w_dim]`` (a single
code ``[num_ws, w_dim]`` is accepted and returned the same shape), so they work
for any generator and on any device, and can be checked without rendering.
The coarse / middle / fine groups are those of the morph schedule
(:func:`stylegan.interpolation.layer_groups`): one definition for both.
"""

from __future__ import annotations

import math
from typing import Sequence, Union

import torch

from ..errors import UserError
from ..interpolation import layer_groups
from .direction import Direction

__all__ = ["apply_edit", "arithmetic", "style_mix", "resolve_layers", "LAYER_GROUPS", "LayersLike"]

#: Names accepted wherever W+ positions are chosen, besides explicit indices.
LAYER_GROUPS = ("coarse", "middle", "fine", "all")

LayersLike = Union[str, Sequence[int], None]


def resolve_layers(layers: LayersLike, num_ws: int, name: str = "layers") -> tuple[int, ...]:
    """W+ positions from a group name, a comma list string, indices, or None (all).

    Args:
        layers: ``"coarse"``, ``"middle"``, ``"fine"`` or ``"all"`` (groups of
            :func:`stylegan.interpolation.layer_groups`), a string such as ``"0,1,4-7"``,
            a sequence of ints, or None for every position.
        num_ws: positions of the codes.
        name: parameter name used in error messages.

    Returns:
        Sorted distinct positions.

    Raises:
        UserError: an unknown group, an empty group for this model, or an index out of range.
    """
    if layers is None:
        return tuple(range(num_ws))
    if isinstance(layers, str):
        key = layers.strip().lower()
        if key == "all":
            return tuple(range(num_ws))
        if key in ("coarse", "middle", "fine"):
            group = dict(zip(("coarse", "middle", "fine"), layer_groups(num_ws)))[key]
            if len(group) == 0:
                raise UserError(f"{name}: a {num_ws}-position code has no {key} group")
            return tuple(group)
        out: list[int] = []
        try:
            for part in key.split(","):
                if "-" in part.strip()[1:]:
                    lo, hi = part.split("-", 1)
                    out.extend(range(int(lo), int(hi) + 1))
                else:
                    out.append(int(part))
        except ValueError:
            raise UserError(f"{name} must be one of {', '.join(LAYER_GROUPS)} or indices like '0,1,4-7', "
                            f"got {layers!r}") from None
        layers = out
    try:
        idx = sorted({int(i) for i in layers})
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a group name or a sequence of ints, got {layers!r}") from None
    if not idx:
        raise UserError(f"{name} must not be empty")
    if idx[0] < 0 or idx[-1] >= num_ws:
        raise UserError(f"{name} must be in 0..{num_ws - 1}, got {idx}")
    return tuple(idx)


def _as_batch(ws: torch.Tensor, name: str) -> tuple[torch.Tensor, bool]:
    if not isinstance(ws, torch.Tensor):
        raise UserError(f"{name} must be a tensor, got {type(ws).__name__}")
    if ws.ndim == 2:
        return ws.unsqueeze(0), True
    if ws.ndim != 3 or ws.shape[1] == 0 or ws.shape[2] == 0:
        raise UserError(f"{name} must be [B, num_ws, w_dim] or [num_ws, w_dim], got {tuple(ws.shape)}")
    return ws, False


def apply_edit(ws: torch.Tensor, direction: Direction, strength: float | torch.Tensor,
               layers: LayersLike = None) -> torch.Tensor:
    """Move codes along a direction: ``ws[:, layers] += strength * direction.step[layers]``.

    Args:
        ws: [B, num_ws, w_dim] (or [num_ws, w_dim]) codes; not modified.
        direction: a W direction (applied to every chosen position) or a W+ one of ``num_ws`` rows.
        strength: how far, in units of ``direction.scale``; a float, or a tensor [B]
            for one strength per code (a sweep). 0 returns the codes unchanged.
        layers: positions to edit (see :func:`resolve_layers`); default: the
            direction's own ``layers``, else all.

    Returns:
        New codes of the same shape and dtype as ``ws``.

    Raises:
        UserError: non-finite strength, or codes and direction of different sizes.

    Example:
        >>> d = Direction(torch.ones(4), name="demo")
        >>> apply_edit(torch.zeros(1, 3, 4), d, 2.0, layers="coarse")[0, :, 0].tolist()
        [1.0, 1.0, 1.0]
    """
    x, single = _as_batch(ws, "ws")
    if not isinstance(direction, Direction):
        raise UserError(f"direction must be a Direction, got {type(direction).__name__}")
    b, num_ws, w_dim = x.shape
    if direction.w_dim != w_dim:
        raise UserError(f"direction {direction.name!r} has w_dim {direction.w_dim}, the codes {w_dim}")
    s = torch.as_tensor(strength, dtype=torch.float64)
    if s.ndim > 1 or (s.ndim == 1 and s.shape[0] not in (1, b)):
        raise UserError(f"strength must be a number or one per code ([{b}]), got shape {tuple(s.shape)}")
    if not torch.isfinite(s).all():
        raise UserError(f"strength must be finite, got {strength}")
    if bool((s == 0).all()):
        return ws.clone()
    idx = resolve_layers(layers if layers is not None else direction.layers, num_ws)
    step = direction.as_wplus(num_ws).to(device=x.device, dtype=torch.float32)  # [num_ws, w_dim]
    mask = torch.zeros(num_ws, 1, dtype=torch.float32, device=x.device)
    mask[list(idx)] = 1
    delta = s.to(device=x.device, dtype=torch.float32).reshape(-1, 1, 1) * (step * mask)  # [B or 1, num_ws, w_dim]
    out = (x.float() + delta).to(x.dtype)
    return out[0] if single else out


def arithmetic(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Latent vector arithmetic ``a - b + c``, computed as ``a + scale * (c - b)``.

    "Smiling woman - neutral woman + neutral man = smiling man": ``a`` is the
    code to change, ``c - b`` the change (from ``b`` to ``c``); ``scale`` scales it
    (1 gives ``a - b + c``, 0 gives ``a``).

    Args:
        a, b, c: codes of the same shape, [B, num_ws, w_dim] or [num_ws, w_dim]
            (``b`` and ``c`` may also be single codes broadcast over a batch ``a``).
        scale: finite number.

    Returns:
        Codes shaped like ``a``.
    """
    s = float(scale)
    if not math.isfinite(s):
        raise UserError(f"scale must be finite, got {scale}")
    for name, t in (("a", a), ("b", b), ("c", c)):
        _as_batch(t, name)
    if b.shape != c.shape:
        raise UserError(f"b and c must have the same shape, got {tuple(b.shape)} and {tuple(c.shape)}")
    if b.shape[-2:] != a.shape[-2:]:
        raise UserError(f"a is {tuple(a.shape)} but b and c are {tuple(b.shape)}")
    if b.ndim == 3 and a.ndim == 3 and b.shape[0] not in (1, a.shape[0]):
        raise UserError(f"b and c must hold 1 or {a.shape[0]} codes, got {b.shape[0]}")
    if b.ndim == 3 and a.ndim == 2:
        raise UserError("a single code a needs single codes b and c")
    return (a.float() + s * (c.float() - b.float())).to(a.dtype)


def style_mix(a: torch.Tensor, b: torch.Tensor, layers: LayersLike) -> torch.Tensor:
    """Codes ``a`` with the positions in ``layers`` taken from ``b``.

    ``"coarse"`` from ``b`` gives ``b``'s pose and face shape with ``a``'s
    features and colours; ``"fine"`` takes only ``b``'s colour scheme and texture.

    Args:
        a, b: [B, num_ws, w_dim] or [num_ws, w_dim]; ``b`` may be one code for a batch ``a``.
        layers: ``"coarse"``, ``"middle"``, ``"fine"``, ``"all"`` or indices (see :func:`resolve_layers`).

    Returns:
        Codes shaped like ``a``.
    """
    x, single = _as_batch(a, "a")
    y, _ = _as_batch(b, "b")
    if y.shape[1:] != x.shape[1:]:
        raise UserError(f"a and b must have the same num_ws and w_dim, got {tuple(a.shape)} and {tuple(b.shape)}")
    if y.shape[0] not in (1, x.shape[0]):
        raise UserError(f"b must hold 1 or {x.shape[0]} codes, got {y.shape[0]}")
    if layers is None:
        raise UserError("layers must name the positions to take from b")
    idx = list(resolve_layers(layers, x.shape[1]))
    out = x.clone()
    out[:, idx] = y[:, idx].to(device=out.device, dtype=out.dtype).expand(x.shape[0], -1, -1)
    return out[0] if single else out
