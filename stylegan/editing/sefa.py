"""SeFa, closed-form factorisation (Shen & Zhou, 2021): directions from the generator's weights alone.

A W+ row ``w`` reaches layer ``l`` only through its style affine ``s_l = A_l w + b_l``.
The unit ``n`` that changes the styles most, ``max |A n|``, is the top eigenvector
of ``A^T A``, where ``A`` stacks the chosen layers' affine matrices with each row
(one style channel) normalised to unit length so that no layer dominates by its
width. No data is needed, so this works on every generator file.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from .direction import Direction
from .ops import LayersLike, resolve_layers

__all__ = ["sefa_directions", "style_affines", "sefa_matrix"]


def style_affines(G: torch.nn.Module) -> list[tuple[int, str, torch.Tensor]]:
    """``(W+ position, module name, affine weight [C, w_dim])`` of every modulated conv, in order.

    ToRGB affines are left out, as SeFa and e4e do: they colour the skip output
    rather than shape features.
    """
    syn = G.synthesis
    out: list[tuple[int, str, torch.Tensor]] = []
    w_idx = 0
    for res in syn.config.resolutions:
        block = getattr(syn, f"b{res}")
        convs = ["conv1"] if block.is_first else ["conv0", "conv1"]
        for j, conv in enumerate(convs):
            affine = getattr(block, conv).affine
            out.append((w_idx + j, f"b{res}.{conv}", (affine.weight * affine.weight_gain).detach().float().cpu()))
        w_idx += block.num_conv
    return out


def sefa_matrix(G: torch.nn.Module, layers: LayersLike = None) -> torch.Tensor:
    """``A^T A`` [w_dim, w_dim] (float64) for the modulated convs at W+ positions ``layers``."""
    pos = set(resolve_layers(layers, G.num_ws))
    mats = [w for i, _, w in style_affines(G) if i in pos]
    if not mats:
        raise UserError(f"layers {sorted(pos)} hold no modulated conv (only toRGB)")
    a = torch.cat(mats).double()
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return a.t() @ a


def sefa_directions(G: torch.nn.Module, k: int = 5, layers: LayersLike = None,
                    codes: torch.Tensor | None = None) -> list[Direction]:
    """The top-``k`` SeFa directions of ``G``, largest eigenvalue first.

    Args:
        G: a :class:`stylegan.Generator`.
        k: number of directions (at most ``w_dim``).
        layers: W+ positions whose convs are factorised, and that the directions
            then edit by default; None: all.
        codes: codes [N, num_ws, w_dim] used only to set each direction's ``scale``
            to their std along it; None samples 2,000 codes from ``G.mapping``.

    Returns:
        Unit W directions named ``sefa0`` .. ``sefa{k-1}``; metadata holds the eigenvalue.
    """
    if int(k) != k or not 1 <= k <= G.w_dim:
        raise UserError(f"k must be in 1..{G.w_dim}, got {k}")
    chosen = None if layers is None else resolve_layers(layers, G.num_ws)
    evals, evecs = torch.linalg.eigh(sefa_matrix(G, chosen))
    order = torch.argsort(evals, descending=True)[:k]
    if codes is None:
        from .ganspace import sample_codes

        codes = sample_codes(G, 2000, seed=0)
    rows = codes[:, list(chosen) if chosen is not None else slice(None)].double().reshape(-1, G.w_dim)
    out = []
    for rank, j in enumerate(order.tolist()):
        v = evecs[:, j]
        v = v * torch.sign(v[v.abs().argmax()])  # a fixed sign, so names mean the same on every run
        std = float((rows @ v).std()) if len(rows) > 1 else 1.0
        out.append(Direction(v.float(), name=f"sefa{rank}", layers=chosen, source="sefa",
                             scale=std if std > 0 else 1.0, metadata={"eigenvalue": float(evals[j]), "index": rank}))
    return out
