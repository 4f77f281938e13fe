"""Random codes for a model whose mapping network was never trained: a Gaussian fitted to encoded faces.

The default 128 px model was trained as an autoencoder (encoder + generator), so
its MLP mapping network is random and ``G.mapping(z)`` gives codes far from any
face. :class:`GaussianMapping` replaces it: the encoded training faces' W+ codes
are modelled as a Gaussian in their PCA basis, and ``z`` picks the coordinates::

    w = mean + sum_i z_i * std_i * u_i          (u_i: principal axes, i < z_dim)

It keeps the mapping's contract: ``z`` [B, z_dim] in, codes [B, num_ws, w_dim] out,
``truncation_psi`` pulls toward ``w_avg`` (psi = 0 gives the mean code exactly)
and ``w_avg`` is that mean. Unlike the MLP's [w_dim] ``w_avg``, this one is a
full W+ code [num_ws, w_dim], because the encoded codes differ per position.
The module is a few buffers, saved in the generator's own state dict; the
config's ``mapping_kind = "gaussian"`` tells the loader to build it.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import UserError

__all__ = ["GaussianMapping", "fit_gaussian_mapping"]


class GaussianMapping(nn.Module):
    """z [B, z_dim] -> W+ codes ``w_avg + (z @ basis)``, with truncation toward ``w_avg``.

    Buffers:
        w_avg: [num_ws, w_dim], the mean code.
        basis: [z_dim, num_ws * w_dim], principal axes scaled by their stds (zero rows
            when there are fewer components than ``z_dim``).
    """

    def __init__(self, z_dim: int, w_dim: int, num_ws: int) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws = z_dim, w_dim, num_ws
        self.num_layers = 0  # no trained layers; kept for code that reports the mapping's depth
        self.register_buffer("w_avg", torch.zeros(num_ws, w_dim))
        self.register_buffer("basis", torch.zeros(z_dim, num_ws * w_dim))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg_beta: float | None = None) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be [B, {self.z_dim}], got {tuple(z.shape)}")
        if c is not None and c.numel() != 0:
            raise ValueError("this model's mapping takes no class label c")
        if update_w_avg_beta is not None:
            raise ValueError("a fitted Gaussian mapping is not trained; refit it with fit_gaussian_mapping")
        offset = (z.to(self.basis.dtype) @ self.basis).reshape(-1, self.num_ws, self.w_dim)  # [B, num_ws, w_dim]
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            offset[:, :cutoff] = offset[:, :cutoff] * truncation_psi
        return (self.w_avg + offset).to(z.dtype)

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, gaussian"


def fit_gaussian_mapping(codes: torch.Tensor, z_dim: int, num_components: int | None = None) -> dict[str, torch.Tensor]:
    """The buffers of a :class:`GaussianMapping` fitted to ``codes``.

    Args:
        codes: [N, num_ws, w_dim] encoded codes of real faces.
        z_dim: the model's ``z_dim``.
        num_components: principal components kept (default: ``min(z_dim, N - 1, num_ws * w_dim)``);
            the rest of the variance is dropped, which keeps samples near the faces' subspace.

    Returns:
        ``{"w_avg": [num_ws, w_dim], "basis": [z_dim, num_ws * w_dim]}`` (float32), to load
        into ``G.mapping`` with ``load_state_dict``.
    """
    from .ganspace import pca_basis

    if codes.ndim != 3 or len(codes) < 2:
        raise UserError(f"codes must be [N, num_ws, w_dim] with N >= 2, got {tuple(codes.shape)}")
    n, num_ws, w_dim = codes.shape
    dim = num_ws * w_dim
    k = min(z_dim, n - 1, dim) if num_components is None else int(num_components)
    if not 1 <= k <= min(z_dim, n - 1, dim):
        raise UserError(f"num_components must be in 1..{min(z_dim, n - 1, dim)}, got {num_components}")
    mean, comp, std, _ = pca_basis(codes.reshape(n, dim).double(), k)
    basis = torch.zeros(z_dim, dim, dtype=torch.float64)
    basis[:k] = comp * std.unsqueeze(1)
    return {"w_avg": mean.reshape(num_ws, w_dim).float(), "basis": basis.float()}
