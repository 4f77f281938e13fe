"""Cheap image-set metrics that need no downloaded network."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pixel_frechet_distance"]


def _stats(x: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    f = F.adaptive_avg_pool2d(x.double(), size).flatten(1)  # [N, 3*size*size]
    mu = f.mean(0)
    fc = f - mu
    return mu, fc.t() @ fc / max(len(f) - 1, 1)


def pixel_frechet_distance(real: torch.Tensor, fake: torch.Tensor, size: int = 16) -> float:
    """Fréchet distance between Gaussians fitted to ``size``² downsampled pixels.

    The FID formula (Heusel et al. 2017) on raw pixels rather than Inception
    features: much weaker than FID, but it needs no download and still ranks
    checkpoints by how well colours, layout and their variety match. Uses
    tr(sqrt(S1 S2)) = sum of sqrt of the eigenvalues of S1 S2.
    """
    mu1, s1 = _stats(real, size)
    mu2, s2 = _stats(fake, size)
    eig = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0)
    return float((mu1 - mu2).square().sum() + s1.trace() + s2.trace() - 2 * eig.sqrt().sum())
