"""Image-folder datasets for training, held in memory as uint8 at the training resolution.

Decoding 20k JPEGs takes about a minute on 2 cores, so the decoded array is cached
next to the run (an ``.npy`` keyed by the file list and resolution).
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import UserError

__all__ = ["ImageSet", "list_images", "split_by_identity", "read_identity_labels", "load_images", "load_split",
           "IMAGE_EXTS"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def list_images(root: str | os.PathLike) -> list[Path]:
    """All images under ``root`` (recursively), sorted for reproducibility."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a directory of images")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise UserError(f"{root}: no images ({', '.join(IMAGE_EXTS)}) found")
    return files


def _identity_of(path: Path, id_map: dict[str, str]) -> str:
    return id_map.get(path.name, path.stem)


def read_identity_labels(root: Path) -> dict[str, str]:
    """Identity per file name from label CSVs next to the images, if any.

    Understands a ``person_id`` column (All-Age-Faces ``labels.csv``). Files
    without a label are their own identity (UTKFace holds one image per person
    for the vast majority of its files).
    """
    ids: dict[str, str] = {}
    for csv_path in sorted(root.glob("*.csv")):
        with open(csv_path, newline="") as f:
            for row in csv.DictReader(f):
                if "person_id" in row and "file" in row:
                    ids[Path(row["file"]).name] = f"{csv_path.stem}:{row['person_id']}"
    return ids


def split_by_identity(files: Sequence[Path], val_fraction: float, id_map: dict[str, str] | None = None,
                      max_val: int | None = None) -> tuple[list[Path], list[Path]]:
    """Deterministic train/val split in which no identity appears on both sides.

    An identity goes to validation when the hash of its id falls below
    ``val_fraction``; hashing (not shuffling) keeps the split stable when files
    are added. ``max_val`` keeps the validation identities with the lowest
    hashes (a pseudo-random sample, not the first files by name, which in
    face sets are often sorted by age) and returns the others to training whole.
    """
    id_map = id_map or {}

    def h(ident: str) -> float:
        return int(hashlib.sha1(ident.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    train: list[Path] = []
    val_by_id: dict[str, list[Path]] = {}
    for p in files:
        ident = _identity_of(p, id_map)
        if h(ident) < val_fraction:
            val_by_id.setdefault(ident, []).append(p)
        else:
            train.append(p)
    val: list[Path] = []
    for ident in sorted(val_by_id, key=lambda i: (h(i), i)):
        if max_val is not None and len(val) >= max_val:
            train.extend(val_by_id[ident])
        else:
            val.extend(val_by_id[ident])
    return sorted(train), sorted(val)


def load_images(files: Sequence[Path], resolution: int, cache_dir: str | os.PathLike | None = None,
                progress: bool = True) -> np.ndarray:
    """Decode ``files`` to a uint8 array [N, res, res, 3] (LANCZOS resize), cached on disk if asked."""
    key = hashlib.sha1(("\n".join(str(p) for p in files) + f"@{resolution}").encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"images_{resolution}_{key}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        return np.load(cache, mmap_mode=None)
    out = np.empty((len(files), resolution, resolution, 3), np.uint8)
    it: Iterable = enumerate(files)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(files), desc=f"decoding images @{resolution}px", leave=False)
    for i, p in it:
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                if im.size != (resolution, resolution):
                    im = im.resize((resolution, resolution), Image.LANCZOS)
                out[i] = np.asarray(im)
        except OSError as e:
            raise UserError(f"{p}: cannot read image ({e})") from None
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, cache)
    return out


@dataclass
class ImageSet:
    """uint8 images [N, H, W, 3] with batch sampling into float [-1, 1] NCHW tensors."""

    images: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx: np.ndarray | Sequence[int], mirror: bool = False,
              rng: np.random.Generator | None = None) -> torch.Tensor:
        x = torch.from_numpy(self.images[np.asarray(idx)]).permute(0, 3, 1, 2).float() / 127.5 - 1
        if mirror:
            rng = rng or np.random.default_rng()
            flip = torch.from_numpy(rng.random(len(x)) < 0.5)
            x[flip] = x[flip].flip(3)
        return x

    def sample(self, n: int, rng: np.random.Generator, mirror: bool = True) -> torch.Tensor:
        return self.batch(rng.integers(0, len(self), n), mirror=mirror, rng=rng)


def load_split(folders: Sequence[str | os.PathLike], resolution: int, val_fraction: float, max_val: int,
               cache_dir: str | os.PathLike | None = None) -> tuple[ImageSet, ImageSet, int, int]:
    """The trainers' data: every image under ``folders``, split by identity, decoded at ``resolution``.

    Identities come from label CSVs in each folder (:func:`read_identity_labels`).

    Returns:
        (train, val, number of training files, number of validation files).

    Raises:
        UserError: no images, or too few to hold out a validation set.
    """
    files: list[Path] = []
    ids: dict[str, str] = {}
    for folder in folders:
        files += list_images(folder)
        ids.update(read_identity_labels(Path(folder)))
    train_files, val_files = split_by_identity(files, val_fraction, ids, max_val=max_val)
    if not train_files or not val_files:
        raise UserError(f"{len(files)} images are too few to hold out a validation set; "
                        "add images or raise --val-fraction")
    train = ImageSet(load_images(train_files, resolution, cache_dir))
    val = ImageSet(load_images(val_files, resolution, cache_dir))
    return train, val, len(train_files), len(val_files)
