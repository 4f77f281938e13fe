"""Latent editing on W+ codes: directions, edits, arithmetic, style mixing, and ways to find directions.

Everything works on codes ``[B, num_ws, w_dim]`` of any supported generator, on the CPU:

- :class:`Direction` -- a unit vector in W or W+ with a step size, default positions
  and provenance; saved and loaded in our own ``weights_only`` format;
- :func:`apply_edit`, :func:`arithmetic`, :func:`style_mix` -- the edits;
- :func:`learn_direction` (InterFaceGAN, supervised), :func:`pca_directions`
  (GANSpace), :func:`sefa_directions` (closed form, no data);
- :func:`load_e4e_directions` / :func:`ganspace_edit` -- e4e's files and formula;
- :func:`available_directions` -- what the edit tools offer for a loaded model;
- :class:`GaussianMapping` -- random faces for a model whose mapping was never trained.

Example:
    >>> import torch
    >>> d = Direction(torch.randn(16), name="demo")
    >>> ws = torch.randn(2, 8, 16)
    >>> bool(torch.equal(apply_edit(ws, d, 0.0), ws))
    True
"""

from __future__ import annotations

from .available import available_directions, model_fingerprint, shipped_directions
from .direction import Direction, load_direction
from .e4e import load_e4e_directions, load_e4e_pca
from .ganspace import ganspace_edit, pca_directions, sample_codes
from .interfacegan import learn_direction, project_out
from .ops import LAYER_GROUPS, apply_edit, arithmetic, resolve_layers, style_mix
from .sampler import GaussianMapping, fit_gaussian_mapping
from .sefa import sefa_directions

__all__ = [
    "Direction", "load_direction", "apply_edit", "arithmetic", "style_mix", "resolve_layers", "LAYER_GROUPS",
    "learn_direction", "project_out", "pca_directions", "sample_codes", "ganspace_edit", "sefa_directions",
    "load_e4e_directions", "load_e4e_pca", "available_directions", "model_fingerprint", "shipped_directions",
    "GaussianMapping", "fit_gaussian_mapping",
]
