"""InterFaceGAN (Shen et al., 2020): an attribute direction as the unit normal of a linear boundary.

A linear classifier separates codes with and without the attribute; the
normal of its boundary points from "without" to "with". We use scikit-learn's
``LogisticRegression`` (a well-tested, deterministic solver with a
probability-calibrated loss; InterFaceGAN used a linear SVM, which gives
nearly the same normal on separable data) on the centred raw codes, as
InterFaceGAN does, restricted to their top ``pca_k`` principal components.

Why not standardised features: dividing each dimension by its std and mapping
the normal back (``coef / std``) multiplies the weight of the dimensions that
vary least. In an encoder's codes those are the ones the generator largely
ignores, so such a normal separates the classes (89-90% held out on the
default model) yet moving along it barely changes the image: +3 units of
``age`` turned 47% of held-out young faces old (render, re-encode, same
classifier) against 97% for the normal fitted in the top 128 components, at
the same accuracy. Raw coordinates alone help only under a strong L2 penalty
(a weakly penalised fit finds the same low-variance normal, since the best
linear separator does not depend on the coordinates); the PCA subspace keeps
the normal where the codes vary whatever ``C``. ``standardize=True,
pca_k=None`` is the old fit, kept for comparison.

Conditional directions (InterFaceGAN section 2.3) remove the components along
other directions, so that editing one attribute leaves the others' classifier
scores unchanged: ``n - sum_i <n, e_i> e_i`` for an orthonormal basis ``e_i`` of
the conditions.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..errors import UserError
from .direction import Direction

__all__ = ["learn_direction", "project_out", "classifier_accuracy"]


def _flat(d: Direction, shape: tuple[int, ...]) -> torch.Tensor:
    """A direction as a vector in the flattened code space ``shape`` (W repeated over W+ rows)."""
    v = d.vector.double()
    if len(shape) == 2 and v.ndim == 1:
        v = v.unsqueeze(0).expand(shape[0], -1)
    if tuple(v.shape) != tuple(shape):
        raise UserError(f"condition_on: direction {d.name!r} is {tuple(d.vector.shape)}, the codes {tuple(shape)}")
    return v.reshape(-1)


def project_out(vector: torch.Tensor, directions: Sequence[Direction]) -> torch.Tensor:
    """``vector`` minus its components in the span of ``directions`` (same shape, float64).

    The conditions need not be orthogonal to each other: they are orthonormalised
    (QR) first, so the result is orthogonal to every one of them.
    """
    shape = tuple(vector.shape)
    v = vector.double().reshape(-1)
    if not directions:
        return v.reshape(shape)
    basis = torch.stack([_flat(d, shape) for d in directions], 1)  # [D, m]
    q, r = torch.linalg.qr(basis)
    q = q[:, r.diagonal().abs() > 1e-10]  # drop conditions that repeat others
    v = v - q @ (q.t() @ v)
    return v.reshape(shape)


def classifier_accuracy(codes: torch.Tensor, labels: torch.Tensor | np.ndarray, direction: Direction,
                        offset: float) -> float:
    """Fraction of codes on the side of the plane ``<x, vector> = offset`` their label says."""
    x = codes.double().reshape(len(codes), -1)
    v = direction.vector.double()
    if v.ndim == 1 and codes.ndim == 3:
        v = v.unsqueeze(0).expand(codes.shape[1], -1)
    pred = (x @ v.reshape(-1)) > offset
    y = torch.as_tensor(np.asarray(labels)).bool()
    return float((pred == y).double().mean())


def _split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(n * val_fraction)))
    return np.sort(perm[k:]), np.sort(perm[:k])


def learn_direction(codes: torch.Tensor, labels: Sequence[int] | np.ndarray | torch.Tensor,
                    condition_on: Sequence[Direction] | None = None, *, name: str = "attribute",
                    val_codes: torch.Tensor | None = None, val_labels: Sequence[int] | np.ndarray | None = None,
                    val_fraction: float = 0.2, C: float = 1.0, max_iter: int = 2000, seed: int = 0,
                    min_accuracy: float | None = None, metadata: dict | None = None,
                    standardize: bool = False, pca_k: int | None = 128) -> Direction:
    """Fit a linear classifier on codes and return the unit normal of its boundary.

    Args:
        codes: [N, num_ws, w_dim] (W+ direction) or [N, w_dim] (W direction) training codes.
        labels: N binary labels (1 = has the attribute; the direction points toward 1).
        condition_on: directions to project out (conditional editing); the result is
            orthogonal to each of them.
        name: the direction's name.
        val_codes, val_labels: held-out codes (e.g. other identities) for the reported
            accuracy; when None, ``val_fraction`` of ``codes`` is held out at random.
        C: inverse L2 regularisation strength of the logistic regression.
        seed: for the random held-out split.
        min_accuracy: raise UserError when the held-out accuracy is below this.
        metadata: extra entries stored with the direction.
        standardize: fit on per-dimension standardised codes and map the normal back
            (``coef / std``). Off by default: it weights low-variance dimensions, which
            the generator barely uses, so the edit hardly shows (see the module docstring).
        pca_k: fit in the span of the training codes' top ``pca_k`` principal components
            (at most ``min(N - 1, D)``), so the normal lies where the codes vary, whatever
            ``C``; None fits on every dimension.

    Returns:
        A :class:`Direction` with unit ``vector``; ``scale`` is the distance between the
        two classes' mean codes along it (strength 1 moves a code by the average
        difference between the classes; the std of the codes if that gap is not
        positive, as with random labels); metadata holds ``val_accuracy``,
        ``train_accuracy``, counts and, when conditioned, ``conditioned_on``. For a
        conditional direction the accuracy is that of the projected normal.

    Raises:
        UserError: bad shapes, a single class, or accuracy below ``min_accuracy``.
    """
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:  # pragma: no cover - a declared dependency
        raise UserError("learning directions needs scikit-learn (pip install scikit-learn)") from None
    if not isinstance(codes, torch.Tensor) or codes.ndim not in (2, 3) or len(codes) == 0:
        raise UserError(f"codes must be [N, w_dim] or [N, num_ws, w_dim], got "
                        f"{tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__}")
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(y) != len(codes):
        raise UserError(f"labels: got {len(y)} labels for {len(codes)} codes")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise UserError("labels must be 0 or 1")
    if not 0 < val_fraction < 1:
        raise UserError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if not math.isfinite(C) or C <= 0:
        raise UserError(f"C must be positive, got {C}")
    if pca_k is not None and (int(pca_k) != pca_k or pca_k < 1):
        raise UserError(f"pca_k must be a positive integer or None, got {pca_k}")
    shape = tuple(codes.shape[1:])
    x = codes.double().reshape(len(codes), -1).numpy()
    if val_codes is None:
        tr, va = _split(len(x), val_fraction, seed)
        x_tr, y_tr, x_va, y_va = x[tr], y[tr], x[va], y[va]
    else:
        if val_labels is None:
            raise UserError("val_labels are needed with val_codes")
        if tuple(val_codes.shape[1:]) != shape:
            raise UserError(f"val_codes are {tuple(val_codes.shape)}, codes {tuple(codes.shape)}")
        x_tr, y_tr = x, y
        x_va = val_codes.double().reshape(len(val_codes), -1).numpy()
        y_va = np.asarray(val_labels).astype(np.int64).reshape(-1)
        if len(y_va) != len(x_va):
            raise UserError(f"val_labels: got {len(y_va)} labels for {len(x_va)} codes")
    if len(np.unique(y_tr)) < 2 or len(np.unique(y_va)) < 2:
        raise UserError("labels: both classes must occur in the training and the held-out codes")
    mu = x_tr.mean(0)
    if standardize:
        sd = x_tr.std(0)
        sd[sd < 1e-12] = 1.0
    else:  # raw coordinates (centred): the normal's weight follows the code's variance
        sd = np.ones_like(mu)
    feats = (x_tr - mu) / sd
    k = None if pca_k is None else min(int(pca_k), len(feats) - 1, feats.shape[1])
    if k is not None and k < feats.shape[1]:  # the classifier sees only the top-k principal coordinates
        from .ganspace import pca_basis

        basis = pca_basis(torch.from_numpy(feats), k)[1].numpy()  # [k, D], orthonormal rows
    else:
        basis = None
    clf = LogisticRegression(C=C, max_iter=max_iter, class_weight="balanced")
    clf.fit(feats if basis is None else feats @ basis.T, y_tr)
    coef = clf.coef_[0] if basis is None else clf.coef_[0] @ basis
    normal = torch.from_numpy(coef / sd)  # the boundary's normal in code space
    conds = list(condition_on or [])
    if conds:
        normal = project_out(normal.reshape(shape), conds).reshape(-1)
    if float(normal.norm()) < 1e-12:
        raise UserError(f"{name}: the boundary normal vanishes once the conditions are projected out")
    unit = normal / normal.norm()
    # The boundary plane through the class-balanced midpoint: the mean of the two class means.
    proj_tr = x_tr @ unit.numpy()
    if conds:
        offset = 0.5 * (proj_tr[y_tr == 1].mean() + proj_tr[y_tr == 0].mean())
    else:  # the classifier's own threshold: coef.(x - mu)/sd + b = 0  <=>  <x, unit> = offset
        offset = -(clf.intercept_[0] - (coef * mu / sd).sum()) / float(normal.norm())
    acc_tr = float(((proj_tr > offset) == y_tr).mean())
    acc_va = float(((x_va @ unit.numpy() > offset) == y_va).mean())
    if min_accuracy is not None and acc_va < min_accuracy:
        raise UserError(f"{name}: held-out accuracy {acc_va:.3f} is below min_accuracy {min_accuracy}")
    # One unit of strength = the gap between the class means along the direction: +1 moves a
    # face by the average difference between the two sides (young -> old), which on every
    # model is a visible but natural change; the std along it is kept in the metadata.
    proj = np.concatenate([x_tr, x_va]) @ unit.numpy()
    y_all = np.concatenate([y_tr, y_va])
    gap = float(proj[y_all == 1].mean() - proj[y_all == 0].mean())
    std = float(proj.std())
    scale = gap if gap > 0 else std
    meta = {"val_accuracy": acc_va, "train_accuracy": acc_tr, "num_train": int(len(y_tr)), "num_val": int(len(y_va)),
            "num_positive": int(y_tr.sum() + y_va.sum()), "offset": float(offset), "C": float(C),
            "unit": "class-mean gap" if gap > 0 else "std", "std": std, "standardized": bool(standardize),
            "pca_k": int(basis.shape[0]) if basis is not None else None}
    if conds:
        meta["conditioned_on"] = [d.name for d in conds]
    meta.update(metadata or {})
    return Direction(unit.reshape(shape).float(), name=name, source="interfacegan", scale=scale or 1.0, metadata=meta)
