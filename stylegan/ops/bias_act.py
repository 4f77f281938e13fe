"""Fused bias + activation (linear or leaky ReLU), with optional gain and clamp.

``impl`` selects "ref" (:mod:`bias_act_ref`), "fast" (:mod:`bias_act_fast`, the CPU
default) or "cuda" (compiled on first use); None picks "cuda" for CUDA tensors.
"""

from __future__ import annotations

import math

import torch

from .bias_act_ref import bias_act_ref
from .bias_act_fast import bias_act_fast

__all__ = ["bias_act", "ACTIVATIONS", "IMPLS"]

IMPLS = ("ref", "fast", "cuda")

# Default (alpha, gain) per activation. The sqrt(2) gain for lrelu keeps the
# second moment of the signal roughly constant through the layer (He et al.).
ACTIVATIONS: dict[str, tuple[float, float]] = {
    "linear": (0.0, 1.0),
    "lrelu": (0.2, math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str | None = None,
) -> torch.Tensor:
    """Add a bias along ``dim``, apply ``act``, scale by ``gain``, clamp to ±``clamp``.

    Args:
        x: tensor of any shape; a 0-dim tensor is treated as one element (and takes no bias).
        b: [x.shape[dim]] bias or None.
        act: "linear" or "lrelu".
        alpha: leaky ReLU slope (default 0.2).
        gain: output scale (default 1 for linear, sqrt(2) for lrelu).
        clamp: optional clamp after the gain.
        impl: "ref", "fast", "cuda" or None.

    Example:
        >>> bias_act(torch.zeros(1, 2, 3, 3), torch.tensor([1.0, -1.0]), act="lrelu")[0, :, 0, 0]
        tensor([ 1.4142, -0.2828])
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
    if x.ndim == 0:  # a scalar has no dimension to put a bias on; without one it is one element
        if b is not None:
            raise ValueError("x is 0-dimensional, so b must be None")
        return bias_act(x.reshape(1), None, 0, act, alpha, gain, clamp, impl).reshape(())
    if b is not None and not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim must be in [{-x.ndim}, {x.ndim - 1}] for x of shape {tuple(x.shape)}, got {dim}")
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(f"bias of shape {tuple(b.shape)} does not match dim {dim} of {tuple(x.shape)}")
    def_alpha, def_gain = ACTIVATIONS[act]
    alpha = def_alpha if alpha is None else float(alpha)
    gain = def_gain if gain is None else float(gain)
    clamp = None if clamp is None or clamp < 0 else float(clamp)
    dim = dim % x.ndim
    if impl is None:
        impl = "cuda" if x.is_cuda else "fast"
    if impl == "ref":
        return bias_act_ref(x, b, dim, act, alpha, gain, clamp)
    if impl == "fast":
        return bias_act_fast(x, b, dim, act, alpha, gain, clamp)
    if impl == "cuda":
        from .bias_act_cuda import bias_act_cuda  # built lazily, never at import

        return bias_act_cuda(x, b, dim, act, alpha, gain, clamp)
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
