"""Invert a whole folder of photos: resumable, and a photo without a face is listed, not fatal.

:func:`encoders.morph.invert` is all-or-nothing: one bad photo stops the run before
any work, which is right for two photos on a command line. A folder of hundreds of
holiday pictures needs the opposite: every photo that can be inverted is, a photo
with no face (or an unreadable file) is noted and skipped, and a second run after
Ctrl-C or a crash carries on where the first stopped. A photo counts as done when
its ``<stem>_latent.npy`` exists: it is written last and atomically, so it is never
half there.

Example:
    >>> result = invert_folder("holiday/", "holiday_codes/")     # doctest: +SKIP
    >>> print(result.summary())                                 # doctest: +SKIP
    inverted 41 photos, 3 already done, 2 without a face (beach.jpg, dog.jpg) in 251.3 s
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from stylegan.errors import UserError
from stylegan.render import resolve_device

from .align import NoFaceError
from .morph import (
    InvertResult,
    _check_folder_creatable,
    _inversion_paths,
    _save_inversion,
    check_model,
    encode_inputs,
    load_models,
    prepare_inputs,
)

__all__ = ["PHOTO_SUFFIXES", "MAX_FOLDER_PHOTOS", "FolderInvertResult", "list_photos", "invert_folder"]

#: File types taken as photos in a folder; everything else (notes, .npy, videos) is ignored.
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
#: More photos than this in one folder is almost surely the wrong folder (e.g. a whole photo library).
MAX_FOLDER_PHOTOS = 20_000

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class FolderInvertResult:
    """What :func:`invert_folder` did, photo by photo.

    Attributes:
        inverted: the outputs of the photos inverted in this run.
        skipped: photos whose code was already in the output folder (earlier runs).
        no_face: photos in which no face was found.
        failed: other photos that could not be used, with the one-line reason (unreadable, ...).
        seconds: wall time of the run.
    """

    inverted: list[InvertResult] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    no_face: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for the end of a run, naming the photos that were left out."""
        parts = [f"inverted {len(self.inverted)} photo{'' if len(self.inverted) == 1 else 's'}"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} already done")
        if self.no_face:
            parts.append(f"{len(self.no_face)} without a face ({_names(self.no_face)})")
        if self.failed:
            parts.append(f"{len(self.failed)} unusable ({_names([p for p, _ in self.failed])})")
        return ", ".join(parts) + f" in {self.seconds:.1f} s"


def _names(paths: list[Path], limit: int = 10) -> str:
    names = [p.name for p in paths[:limit]]
    return ", ".join(names) + (f", ... {len(paths) - limit} more" if len(paths) > limit else "")


def list_photos(folder: str | os.PathLike, limit: int = MAX_FOLDER_PHOTOS) -> list[Path]:
    """The photos directly in ``folder`` (not in subfolders), sorted by name; hidden files are ignored.

    Raises:
        UserError: not a folder, or more than ``limit`` photos.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: " + ("is not a folder" if folder.exists() else "folder not found"))
    photos = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.suffix.lower() not in PHOTO_SUFFIXES or not entry.is_file():
            continue
        photos.append(entry)
        if len(photos) > limit:
            raise UserError(f"{folder}: more than {limit} photos; split the folder")
    return photos


def _stems(photos: list[Path]) -> list[str]:
    """Output stems; ``a.jpg`` and ``a.png`` in one folder become ``a_jpg`` and ``a_png``."""
    counts: dict[str, int] = {}
    for p in photos:
        counts[p.stem] = counts.get(p.stem, 0) + 1
    return [f"{p.stem}_{p.suffix[1:].lower()}" if counts[p.stem] > 1 else p.stem for p in photos]


def invert_folder(folder: str | os.PathLike, outdir: str | os.PathLike, *,
                  weights: str | os.PathLike | None = None, face_index: int | None = None,
                  device: str | torch.device = "auto", noise_mode: str = "const", refine: int | str = "auto",
                  progress: bool = True, log: Log = _quiet) -> FolderInvertResult:
    """Invert every photo in ``folder`` into ``outdir``, as :func:`encoders.morph.invert` does for one.

    Each photo gets ``<stem>_aligned.png``, ``<stem>_reconstruction.png`` and
    ``<stem>_latent.npy``. Photos whose ``<stem>_latent.npy`` already exists are
    skipped, so an interrupted run resumes; the model is loaded only when a photo
    needs it, so a finished folder costs nothing to re-run.

    Args:
        folder: the photos (see :data:`PHOTO_SUFFIXES`); subfolders are not searched.
        outdir: output folder, created if missing; must not be ``folder`` itself
            (the outputs are images that a later run would take for photos).
        weights, face_index, device, noise_mode, refine: as for :func:`encoders.morph.invert`.
        progress: show a progress bar over the photos.
        log: receives one-line messages (loading the model).

    Returns:
        A :class:`FolderInvertResult`; its :meth:`~FolderInvertResult.summary` is one line.

    Raises:
        UserError: a bad folder, model or output folder (checked before any photo is read).
    """
    from tqdm import tqdm

    start = time.perf_counter()
    src, out = Path(folder), Path(outdir)
    photos = list_photos(src)
    if not photos:
        raise UserError(f"{src}: no photos in this folder ({', '.join(sorted(PHOTO_SUFFIXES))})")
    if out.exists() and out.resolve() == src.resolve():
        raise UserError(f"{out}: the output folder must differ from the photo folder")
    dev = resolve_device(device)
    check_model(weights)
    _check_folder_creatable(out)

    result = FolderInvertResult()
    todo = []
    for photo, stem in zip(photos, _stems(photos)):
        if _inversion_paths(out, stem).latent.is_file():
            result.skipped.append(photo)
        else:
            todo.append((photo, stem))
    models: tuple[torch.nn.Module, torch.nn.Module | None] | None = None
    bar = tqdm(todo, unit="photo", desc="inverting", disable=not progress, dynamic_ncols=True)
    for photo, stem in bar:
        try:
            keyframes = prepare_inputs([photo], face_index)
        except NoFaceError:
            result.no_face.append(photo)
            continue
        except UserError as err:  # unreadable or corrupt image, face index out of range
            result.failed.append((photo, str(err)))
            continue
        if models is None:
            bar.clear()
            models = load_models(weights, dev, need_encoder=True, log=log)
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise UserError(f"{out}: cannot create the output folder ({err.strerror or err})") from None
        G, E = models
        ws = encode_inputs(keyframes, G, E, refine=refine)[0]
        result.inverted.append(_save_inversion(G, keyframes[0], ws, out, stem, noise_mode))
    bar.close()
    result.seconds = time.perf_counter() - start
    return result
