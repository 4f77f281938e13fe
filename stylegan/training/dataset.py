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
from ..fileio import atomic_output
from ..imageio import to_tensor

__all__ = ["ImageSet", "list_images", "split_by_identity", "read_identity_labels", "read_class_labels",
           "load_images", "load_split", "IMAGE_EXTS", "MAX_CLASSES"]

MAX_CLASSES = 1000  # a bound on what a label column may hold (ImageNet has 1000 classes)

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


def read_class_labels(csv_path: str | os.PathLike, column: str) -> tuple[dict[str, str], list[str]]:
    """Class label per image from a CSV with a ``file`` column and the column ``column``.

    ``file`` may be a path relative to the image folder or a bare file name.
    Rows whose label is empty are skipped.

    Returns:
        (label per file as written in the CSV, sorted class names).

    Raises:
        UserError: unreadable file, missing columns, fewer than 2 or more than MAX_CLASSES classes.
    """
    csv_path = Path(csv_path)
    try:
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            if "file" not in fields or column not in fields:
                raise UserError(f"{csv_path}: needs columns 'file' and {column!r}; it has {', '.join(fields) or 'none'}")
            labels = {row["file"].strip(): row[column].strip() for row in reader
                      if row.get("file") and (row.get(column) or "").strip()}
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{csv_path}: cannot read labels ({e})") from None
    names = sorted(set(labels.values()))
    if not 2 <= len(names) <= MAX_CLASSES:
        raise UserError(f"{csv_path}: column {column!r} holds {len(names)} classes; need 2..{MAX_CLASSES}")
    return labels, names


def _label_of(path: Path, folder: Path, labels: dict[str, str]) -> str | None:
    rel = path.relative_to(folder).as_posix()
    return labels.get(rel, labels.get(path.name))


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
        with atomic_output(cache) as tmp, open(tmp, "wb") as f:
            np.save(f, out)
    return out


@dataclass
class ImageSet:
    """uint8 images [N, H, W, 3] with batch sampling into float [-1, 1] NCHW tensors.

    ``labels`` (int64 [N], class indices) makes the set conditional.
    """

    images: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx: np.ndarray | Sequence[int], mirror: bool = False,
              rng: np.random.Generator | None = None) -> torch.Tensor:
        x = to_tensor(self.images[np.asarray(idx)])  # [B, 3, H, W] in [-1, 1]
        if mirror:
            rng = rng or np.random.default_rng()
            flip = torch.from_numpy(rng.random(len(x)) < 0.5)
            x[flip] = x[flip].flip(3)
        return x

    def fingerprint(self) -> str:
        """A short hash of every 8th pixel: enough to notice that a run's validation set changed."""
        return hashlib.sha1(self.images[:, ::8, ::8].tobytes()).hexdigest()[:16]

    def sample(self, n: int, rng: np.random.Generator, mirror: bool = True) -> torch.Tensor:
        return self.batch(rng.integers(0, len(self), n), mirror=mirror, rng=rng)

    def sample_balanced(self, n: int, num_classes: int, rng: np.random.Generator,
                        mirror: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` images whose classes are drawn uniformly, then an image of that class.

        Balancing keeps a minority class from being learnt only as an afterthought.

        Returns:
            (images [n, 3, H, W], class indices int64 [n]).
        """
        if self.labels is None:
            raise ValueError("this image set has no labels")
        by_class = self._by_class(num_classes)
        present = np.array([k for k in range(num_classes) if len(by_class[k])])
        cls = present[rng.integers(0, len(present), n)]
        idx = np.array([by_class[k][rng.integers(0, len(by_class[k]))] for k in cls])
        return self.batch(idx, mirror=mirror, rng=rng), torch.from_numpy(cls.astype(np.int64))

    def _by_class(self, num_classes: int) -> list[np.ndarray]:
        cache = getattr(self, "_by_class_cache", None)
        if cache is None or len(cache) != num_classes:
            cache = [np.flatnonzero(self.labels == k) for k in range(num_classes)]
            object.__setattr__(self, "_by_class_cache", cache)
        return cache


def load_split(folders: Sequence[str | os.PathLike], resolution: int, val_fraction: float, max_val: int,
               cache_dir: str | os.PathLike | None = None, labels: dict[str, str] | None = None,
               class_names: Sequence[str] | None = None) -> tuple[ImageSet, ImageSet, int, int]:
    """The trainers' data: every image under ``folders``, split by identity, decoded at ``resolution``.

    Identities come from label CSVs in each folder (:func:`read_identity_labels`).
    With ``labels`` (from :func:`read_class_labels`) and ``class_names``, only
    labelled images are kept and both sets carry class indices.

    Returns:
        (train, val, number of training files, number of validation files).

    Raises:
        UserError: no images, or too few to hold out a validation set.
    """
    files: list[Path] = []
    ids: dict[str, str] = {}
    label_of: dict[Path, int] = {}
    if labels is not None and not class_names:
        raise ValueError("class_names must be given with labels")
    index = {name: i for i, name in enumerate(class_names or [])}
    for folder in folders:
        found = list_images(folder)
        if labels is not None:
            for p in found:
                lab = _label_of(p, Path(folder), labels)
                if lab is not None and lab in index:
                    label_of[p] = index[lab]
            found = [p for p in found if p in label_of]
        files += found
        ids.update(read_identity_labels(Path(folder)))
    if labels is not None and not files:
        raise UserError("no image under the data folders has a label in the label file "
                        "(its 'file' column must hold paths relative to a data folder, or file names)")
    train_files, val_files = split_by_identity(files, val_fraction, ids, max_val=max_val)
    if not train_files or not val_files:
        raise UserError(f"{len(files)} images are too few to hold out a validation set; "
                        "add images or raise val_fraction")

    def lab(fs: list[Path]) -> np.ndarray | None:
        return None if labels is None else np.array([label_of[p] for p in fs], np.int64)

    train = ImageSet(load_images(train_files, resolution, cache_dir), lab(train_files))
    val = ImageSet(load_images(val_files, resolution, cache_dir), lab(val_files))
    return train, val, len(train_files), len(val_files)
