"""Image and latent losses shared by encoder training and latent refinement."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["face_mask", "laplacian_l1", "delta_regularization", "masked_reconstruction_loss"]


def face_mask(size: int, floor: float) -> torch.Tensor:
    """Soft elliptical weight map [1, 1, S, S]: 1 on the FFHQ face area, ``floor`` in the corners.

    In FFHQ alignment the eyes sit near y = 0.40·S and the mouth near 0.70·S, so an
    ellipse centred at (0.5, 0.55)·S with radii (0.36, 0.44)·S covers the face and hair.
    """
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    d = ((x - 0.5) / 0.36) ** 2 + ((y - 0.55) / 0.44) ** 2
    m = torch.sigmoid((1 - d) * 6)
    return (floor + (1 - floor) * m)[None, None]


def laplacian_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor, levels: int = 3) -> torch.Tensor:
    """Masked L1 between Laplacian pyramids; each band gets equal weight."""
    loss = a.new_zeros(())
    for _ in range(levels):
        a_low, b_low = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        a_band = a - F.interpolate(a_low, scale_factor=2, mode="bilinear", align_corners=False)
        b_band = b - F.interpolate(b_low, scale_factor=2, mode="bilinear", align_corners=False)
        loss = loss + ((a_band - b_band).abs() * mask).mean()
        a, b = a_low, b_low
        mask = F.avg_pool2d(mask, 2)
    return loss


def delta_regularization(ws: torch.Tensor) -> torch.Tensor:
    """e4e's L2 delta loss: mean over batch of sum_i ||w_i - w_0||_2, i >= 1."""
    return (ws[:, 1:] - ws[:, :1]).norm(dim=2).sum(dim=1).mean()


def masked_reconstruction_loss(y: torch.Tensor, x: torch.Tensor, mask: torch.Tensor,
                               lap_weight: float = 1.0) -> torch.Tensor:
    """Face-masked L1 plus Laplacian-pyramid L1: the reconstruction loss of the trainer and the refiner."""
    return ((y - x).abs() * mask).mean() + lap_weight * laplacian_l1(y, x, mask)
