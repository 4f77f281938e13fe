"""Training bookkeeping shared by the trainers: CSV log, loss-curve plot, image grids."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["CsvLog", "plot_losses", "plot_panels", "save_grid", "to_uint8"]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3]."""
    x = (images.detach().float().clamp(-1, 1) + 1) * 127.5
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def save_grid(images: torch.Tensor | np.ndarray, path: str | os.PathLike, cols: int | None = None) -> None:
    """Tile a batch into one PNG (written atomically)."""
    arr = to_uint8(images) if isinstance(images, torch.Tensor) else images
    n, h, w, _ = arr.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w, 3), np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * h:(r + 1) * h, c * w:(c + 1) * w] = arr[i]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(grid).save(tmp)
    os.replace(tmp, path)


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
    png_path = Path(png_path)
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, png_path)
    return True
