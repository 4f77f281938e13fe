"""Class-conditional generation: labels by name, and label-versus-noise interpolation.

How much does the class label change a face compared with the noise vector? Three
paths with the same number of steps show it side by side:

* ``"label"``: z fixed at z1, the label moves from class a's one-hot to class b's.
  The soft labels in between are what the mapping network's linear ``embed`` layer
  was built for (NVIDIA's conditional models take soft labels as well).
* ``"noise"``: the label fixed at class a, z moves from z1 to z2 (slerp, which keeps
  every z a typical Gaussian sample, as the seed interpolation does).
* ``"both"``: label and noise move together.

Example:
    >>> G = Generator(GeneratorConfig.from_channel_base(16, 128, 16, z_dim=8, w_dim=8, c_dim=2))  # doctest: +SKIP
    >>> ws = class_interp_ws(G, seeds_to_z([0, 1], 8), 0, 1, steps=5)   # {mode: [5, num_ws, 8]}  # doctest: +SKIP
"""

from __future__ import annotations

import torch

from .errors import UserError
from .interpolation import alphas, slerp

__all__ = ["MODES", "class_index", "one_hot", "class_interp_latents", "class_interp_ws", "require_conditional"]

MODES = ("label", "noise", "both")


def require_conditional(G: torch.nn.Module) -> int:
    """``G``'s number of classes; a UserError for an unconditional generator."""
    c_dim = int(getattr(G, "c_dim", 0) or 0)
    if c_dim < 1:
        raise UserError("this generator is unconditional (c_dim = 0); class interpolation needs a "
                        "class-conditional one")
    return c_dim


def class_index(G: torch.nn.Module, spec: str | int) -> int:
    """A class given by name (from the weights' ``class_names``) or by index, as an index.

    Raises:
        UserError: an unknown name or an index out of range.
    """
    c_dim = require_conditional(G)
    names = tuple(getattr(G, "class_names", ()) or ())
    text = str(spec).strip()
    if text in names:
        return names.index(text)
    try:
        idx = int(text)
    except ValueError:
        known = ", ".join(names) if names else f"indices 0..{c_dim - 1} (the weights name no classes)"
        raise UserError(f"unknown class {text!r}; this generator has {known}") from None
    if not 0 <= idx < c_dim:
        raise UserError(f"class index {idx} is out of range 0..{c_dim - 1}")
    return idx


def one_hot(indices: torch.Tensor | list[int], c_dim: int) -> torch.Tensor:
    """float32 one-hot labels [N, c_dim]."""
    return torch.nn.functional.one_hot(torch.as_tensor(indices, dtype=torch.int64), c_dim).float()


def class_interp_latents(z: torch.Tensor, a: int, b: int, c_dim: int, steps: int,
                         mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs (z [steps, z_dim], c [steps, c_dim]) of one interpolation path.

    Args:
        z: [2, z_dim], the start and end noise (only z[0] is used by ``"label"``).
        a, b: start and end class indices (only ``a`` is used by ``"noise"``).
        c_dim: number of classes.
        steps: points on the path, both ends included (>= 2).
        mode: one of :data:`MODES`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if z.ndim != 2 or z.shape[0] != 2:
        raise ValueError(f"z must be [2, z_dim] (start and end), got {tuple(z.shape)}")
    t = alphas(steps).to(z.dtype).reshape(-1, 1)  # [steps, 1], 0 .. 1
    ca, cb = one_hot([a], c_dim), one_hot([b], c_dim)
    zs = z[:1].expand(steps, -1) if mode == "label" else slerp(z[:1], z[1:], t)
    cs = ca.expand(steps, -1) if mode == "noise" else torch.lerp(ca, cb, t)
    return zs.contiguous(), cs.contiguous()


@torch.no_grad()
def class_interp_ws(G: torch.nn.Module, z: torch.Tensor, a: int, b: int, steps: int,
                    truncation_psi: float = 1.0, modes: tuple[str, ...] = MODES) -> dict[str, torch.Tensor]:
    """W+ codes along each path of ``modes``: {mode: [steps, num_ws, w_dim]}."""
    c_dim = require_conditional(G)
    param = next(G.parameters())
    out = {}
    for mode in modes:
        zs, cs = class_interp_latents(z, a, b, c_dim, steps, mode)
        out[mode] = G.mapping(zs.to(param.device, param.dtype), cs.to(param.device, param.dtype),
                              truncation_psi=truncation_psi)
    return out
