"""Training bookkeeping shared by the trainers: CSV log and loss-curve plots.

Sample grids are :func:`stylegan.imageio.image_grid` written with :func:`stylegan.imageio.save_image`.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..deprecation import moved
from ..fileio import atomic_output
from ..imageio import image_grid, save_image
from ..imageio import to_uint8 as _to_uint8

__all__ = ["CsvLog", "plot_losses", "plot_panels", "save_grid", "to_uint8"]


class CsvLog:
    """Append-only CSV of scalars per step; survives resumes (it appends to the same file)."""

    def __init__(self, path: str | os.PathLike, fields: Sequence[str]) -> None:
        self.path = Path(path)
        self.fields = ["step", "seconds", *fields]
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", newline="")
        self._w = csv.DictWriter(self._f, fieldnames=self.fields, extrasaction="ignore")
        if new:
            self._w.writeheader()

    def write(self, row: dict[str, float]) -> None:
        self._w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def plot_losses(csv_path: str | os.PathLike, png_path: str | os.PathLike, keys: Sequence[str] | None = None,
                log_y: bool = True, title: str | None = None) -> bool:
    """Plot columns of the CSV log against step (log y unless ``log_y`` is False).

    Returns False if matplotlib is missing or the log is empty.
    """
    return plot_panels(csv_path, png_path, [(list(keys) if keys else None, log_y, title)])


def plot_panels(csv_path: str | os.PathLike, png_path: str | os.PathLike,
                panels: Sequence[tuple[Sequence[str] | None, bool, str | None]], cols: int = 1) -> bool:
    """Several panels ``(keys, log_y, title)`` of the CSV log in one figure (one render, one file).

    ``keys`` None plots every column. A log-y panel leaves out series that are not all
    positive. Returns False if matplotlib is missing or the log is empty.
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)  # no display on training machines
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not panels:
        return False
    n_rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(n_rows, cols, figsize=(8 if cols == 1 else 5.5 * cols, 4.5 * n_rows if cols == 1
                                                     else 3.6 * n_rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (keys, log_y, title) in zip(axes.flat, panels):
        keys = keys or [k for k in rows[0] if k not in ("step", "seconds")]
        for k in keys:
            pts = [(float(r["step"]), float(r[k])) for r in rows if r.get(k) not in (None, "")]
            if pts and (not log_y or all(v > 0 for _, v in pts)):
                ax.plot(*zip(*pts), label=k, marker="." if len(pts) < 30 else None)
        if log_y:
            ax.set_yscale("log")
        if title:
            ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()  # keeps panel titles clear of the x labels above them
    try:
        with atomic_output(png_path) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return True


def _save_grid(images: torch.Tensor | np.ndarray, path: str | os.PathLike, cols: int | None = None) -> None:
    """The old one-call sample grid: creates the folder, tiles, writes a PNG atomically."""
    arr = _to_uint8(images) if isinstance(images, torch.Tensor) else images
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_image(image_grid(arr, cols=cols), path)


# Moved to stylegan.imageio (issue 8): kept here, warning, for one release.
to_uint8 = moved(_to_uint8, "stylegan.training.logging.to_uint8", "stylegan.imageio.to_uint8")
save_grid = moved(_save_grid, "stylegan.training.logging.save_grid",
                  "stylegan.imageio.save_image(image_grid(to_uint8(images), cols), path)")
