"""GANSpace (Härkönen et al., 2020): principal components of latent codes as edit directions.

Where a model's mapping network is trained, the codes are ``G.mapping`` samples
(PCA in W, as GANSpace does); for the default model, whose mapping was never
trained, they are encoded photos (PCA in W+). :func:`ganspace_edit` is e4e's
edit formula for its shipped ``ffhq_pca.pt``, where the strength is the
*absolute* target coordinate along a component (in stds), not an increment.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from .direction import Direction

__all__ = ["pca_directions", "pca_basis", "ganspace_edit", "sample_codes"]


def _flatten_codes(codes: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """[N, D], and the shape of one direction: W when every W+ row of every code is the same."""
    if not isinstance(codes, torch.Tensor) or codes.ndim not in (2, 3):
        raise UserError(f"codes must be [N, w_dim] or [N, num_ws, w_dim], got "
                        f"{tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__}")
    if codes.ndim == 3 and bool((codes == codes[:, :1]).all()):
        codes = codes[:, 0]  # mapping samples: one w broadcast to every position
    return codes.reshape(codes.shape[0], -1).double(), tuple(codes.shape[1:])


def pca_basis(codes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, top-``k`` components, their stds and explained-variance ratios.

    Args:
        codes: [N, D] float codes, N >= 2.
        k: number of components, 1 <= k <= min(N - 1, D).

    Returns:
        ``mean`` [D], ``comp`` [k, D] (orthonormal rows, sign fixed so the largest
        entry is positive), ``std`` [k], ``ratio`` [k], all float64.
    """
    n, dim = codes.shape
    if n < 2:
        raise UserError(f"codes: need at least 2 codes for PCA, got {n}")
    if int(k) != k or not 1 <= k <= min(n - 1, dim):
        raise UserError(f"k must be in 1..{min(n - 1, dim)}, got {k}")
    mean = codes.mean(0)
    x = codes - mean
    # SVD of the centred data: V's rows are the principal axes, S^2/(n-1) the variances.
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    var = s.square() / (n - 1)
    comp = vh[:k]
    signs = torch.sign(comp.gather(1, comp.abs().argmax(1, keepdim=True)))
    comp = comp * signs
    return mean, comp, var[:k].sqrt(), var[:k] / var.sum()


def pca_directions(codes: torch.Tensor, k: int = 10, name: str = "pca", source: str = "pca") -> list[Direction]:
    """The top-``k`` principal components of ``codes`` as directions, one std per unit of strength.

    Args:
        codes: [N, w_dim] W codes or [N, num_ws, w_dim] W+ codes (codes whose rows
            are all equal, as from ``G.mapping``, are treated as W).
        k: number of components.
        name: names are ``f"{name}{i}"``.

    Returns:
        ``k`` directions, largest variance first; ``scale`` is the std along each
        component, metadata holds ``index`` and ``explained_variance_ratio``.
    """
    flat, shape = _flatten_codes(codes)
    _, comp, std, ratio = pca_basis(flat, k)
    return [Direction(comp[i].reshape(shape).float(), name=f"{name}{i}", source=source, scale=float(std[i]),
                      metadata={"index": i, "explained_variance_ratio": float(ratio[i]), "num_codes": len(flat)})
            for i in range(len(comp))]


@torch.no_grad()
def sample_codes(G: torch.nn.Module, n: int = 10_000, seed: int = 0, batch: int = 1000) -> torch.Tensor:
    """``n`` codes ``G.mapping(z)`` for ``z ~ N(0, I)`` (psi 1), [n, num_ws, w_dim] float32 on the CPU."""
    gen = torch.Generator().manual_seed(seed)
    param = next(G.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    out = []
    for i in range(0, n, batch):
        z = torch.randn(min(batch, n - i), G.z_dim, generator=gen)
        out.append(G.mapping(z.to(device)).float().cpu())
    return torch.cat(out)


def ganspace_edit(ws: torch.Tensor, mean: torch.Tensor, comp: torch.Tensor, std: torch.Tensor, index: int,
                  start: int, end: int, strength: float) -> torch.Tensor:
    """e4e's GANSpace edit: set the coordinate along component ``index`` to ``strength`` stds.

    For each code, the coordinate ``c`` along the component is read from its
    first W+ row, ``c = <w[0] - mean, comp[index]> / std[index]``, and
    ``(strength - c) * std[index] * comp[index]`` is added to rows ``start:end``.

    Args:
        ws: [B, num_ws, w_dim] codes.
        mean: [w_dim] (or [1, w_dim]); comp: [K, w_dim] (or [K, 1, w_dim]); std: [K] (e4e's ``ffhq_pca.pt``).
        index: component; start, end: W+ rows (end exclusive); strength: target coordinate.

    Returns:
        Edited codes [B, num_ws, w_dim].
    """
    if ws.ndim != 3:
        raise UserError(f"ws must be [B, num_ws, w_dim], got {tuple(ws.shape)}")
    w_dim = ws.shape[2]
    mean, comp = mean.reshape(-1).to(ws), comp.reshape(comp.shape[0], -1).to(ws)
    if mean.shape[0] != w_dim or comp.shape[1] != w_dim or std.ndim != 1 or std.shape[0] != comp.shape[0]:
        raise UserError(f"mean/comp/std do not fit w_dim {w_dim}: {tuple(mean.shape)}, {tuple(comp.shape)}, "
                        f"{tuple(std.shape)}")
    if not 0 <= index < comp.shape[0]:
        raise UserError(f"index must be in 0..{comp.shape[0] - 1}, got {index}")
    if not 0 <= start < end <= ws.shape[1]:
        raise UserError(f"start and end must satisfy 0 <= start < end <= {ws.shape[1]}, got {start}, {end}")
    sd = std[index].to(ws)
    coord = ((ws[:, 0] - mean) * comp[index]).sum(1) / sd  # [B]
    delta = (strength - coord).reshape(-1, 1) * comp[index] * sd  # [B, w_dim]
    out = ws.clone()
    out[:, start:end] += delta.unsqueeze(1)
    return out
