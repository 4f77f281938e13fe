"""Measure inversion quality on photos, and face stability across a morph.

For each photo: FFHQ-align it at ``eval_size``, encode, render, upscale the
render to ``eval_size`` (LANCZOS), then compare it with the aligned photo:
MSE and MS-SSIM on pixels, and the dlib identity distance (< 0.6: same person
by dlib's convention). Comparing at the aligned photo's resolution means the
numbers include what a low-resolution model loses, which is what users see.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from stylegan.deprecation import moved
from stylegan.errors import UserError
from stylegan.imageio import image_grid, to_tensor, to_uint8
from stylegan.networks import Generator

from .align import default_aligner
from .metrics import IdentityMetric, ms_ssim, mse
from .refine import auto_refine_steps, refine_latent

__all__ = ["InversionScore", "evaluate_inversion", "single_face_photos", "summarize", "contact_sheet", "single_face_fraction",
           "pil_to_tensor", "tensor_to_pil"]


@dataclass
class InversionScore:
    """Per-photo result; metrics are NaN and ``error`` is set when the photo could not be evaluated."""

    name: str
    mse: float = math.nan
    ms_ssim: float = math.nan
    id_distance: float = math.nan
    face_found_in_reconstruction: bool = False
    error: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """[1, 3, H, W] or [3, H, W] in [-1, 1] -> PIL RGB."""
    return Image.fromarray(to_uint8(x.reshape(-1, *x.shape[-3:])[:1])[0])


@torch.no_grad()
def evaluate_inversion(photos: Sequence[str | Path], encoder: torch.nn.Module, generator: Generator,
                       eval_size: int = 256, refine: int | str = 0, progress: bool = True
                       ) -> tuple[list[InversionScore], list[tuple[Image.Image, Image.Image]]]:
    """Score the inversion of each photo; returns the scores and (aligned, reconstruction) pairs.

    ``refine`` optimisation steps (or ``"auto"``) refine each code after encoding, as
    :func:`encoders.morph.morph` does (:mod:`encoders.refine`).
    """
    steps = auto_refine_steps(generator) if refine == "auto" else int(refine)
    aligner = default_aligner()
    ident = IdentityMetric()
    device = next(generator.parameters()).device
    scores: list[InversionScore] = []
    pairs: list[tuple[Image.Image, Image.Image]] = []
    it: Iterable = photos
    if progress:
        from tqdm import tqdm

        it = tqdm(photos, desc="evaluating", unit="photo")
    for photo in it:
        name = Path(photo).name
        try:
            aligned = aligner.align(photo, output_size=eval_size)
        except UserError as e:
            scores.append(InversionScore(name, error=str(e)))
            continue
        x = to_tensor(aligned).to(device)
        ws = refine_latent(generator, x, encoder.encode(x), steps)
        recon = tensor_to_pil(generator.synthesis(ws, noise_mode="const"))
        if recon.size != aligned.size:
            recon = recon.resize(aligned.size, Image.LANCZOS)
        s = InversionScore(name, mse=mse(aligned, recon), ms_ssim=ms_ssim(aligned, recon))
        faces_in = aligner.detect(aligned)
        faces_out = aligner.detect(recon)
        s.face_found_in_reconstruction = bool(faces_out)
        if faces_in:
            # Both images share the FFHQ geometry, so the input's landmarks are a fair
            # stand-in when the detector misses the face in the reconstruction.
            lm_out = faces_out[0].landmarks if faces_out else faces_in[0].landmarks
            s.id_distance = ident.distance(ident.descriptor(aligned, faces_in[0].landmarks),
                                           ident.descriptor(recon, lm_out))
        else:
            s.error = "dlib found no face in the aligned photo at the evaluation size"
        scores.append(s)
        pairs.append((aligned, recon))
    return scores, pairs


#: The file :func:`single_face_photos` reads in a photo folder.
SOURCES_FILE = "SOURCES.md"
#: Words in a ``content`` cell that mark a photo as *not* showing exactly one person.
NOT_SINGLE_FACE = ("group", "crowd", "two ", "NO ")


def single_face_photos(folder: str | Path) -> list[Path]:
    """Photos of ``folder`` that its ``SOURCES.md`` table describes as showing one person.

    The expected format is one Markdown table whose header row names a ``file`` column and a
    ``content`` column (any position, any other columns, case-insensitive header names)::

        | file | source | content |
        |---|---|---|
        | obama.jpg | ... | single, frontal |
        | family.jpg | ... | group (~8 faces) |

    ``file`` is a file name inside ``folder`` (rows naming no existing file there are skipped);
    ``content`` is free text. A row counts as single-face unless its content contains one of
    :data:`NOT_SINGLE_FACE` (a group, a crowd, two people, "NO human face"), so edge cases such as
    "partly cut face" or "already aligned child" are included. The columns are found by name,
    not by position, so a table with columns added or reordered still reads the same.

    Raises:
        UserError: no ``SOURCES.md``, or no table with ``file`` and ``content`` columns in it.
    """
    folder = Path(folder)
    table = folder / SOURCES_FILE
    if not table.is_file():
        raise UserError(f"{folder}: no {SOURCES_FILE} describing which photos show a single face")
    out = []
    columns: tuple[int, int] | None = None  # (file, content) of the table being read
    found_header = False
    for line in table.read_text(encoding="utf-8").splitlines():
        if not line.strip().startswith("|"):
            columns = None  # a table ends at its first non-table line
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        names = [c.lower() for c in cells]
        if columns is None:
            if "file" in names and "content" in names:
                columns, found_header = (names.index("file"), names.index("content")), True
            continue
        name_at, content_at = columns
        if len(cells) <= max(columns) or set(line.strip()) <= set("|-: "):
            continue  # the separator row, or a short row
        name = cells[name_at]
        if name and Path(name).name == name and (folder / name).is_file() and not any(
                word in cells[content_at] for word in NOT_SINGLE_FACE):
            out.append(folder / name)
    if not found_header:
        raise UserError(f"{table}: no table with 'file' and 'content' columns (see single_face_photos)")
    return sorted(out)


def summarize(scores: Sequence[InversionScore], threshold: float = 0.6) -> dict[str, float]:
    """Medians over the photos that could be evaluated, plus counts."""
    ok = [s for s in scores if not math.isnan(s.mse)]
    ids = [s.id_distance for s in ok if not math.isnan(s.id_distance)]

    def med(v: list[float]) -> float:
        return statistics.median(v) if v else math.nan

    return {
        "photos": len(scores),
        "evaluated": len(ok),
        "median_mse": med([s.mse for s in ok]),
        "median_ms_ssim": med([s.ms_ssim for s in ok]),
        "median_id_distance": med(ids),
        "same_person_fraction": (sum(d < threshold for d in ids) / len(ids)) if ids else math.nan,
        "face_found_in_reconstruction": sum(s.face_found_in_reconstruction for s in ok),
    }


def contact_sheet(pairs: Sequence[tuple[Image.Image, Image.Image]], cols: int = 4, tile: int = 128) -> Image.Image:
    """Grid of input | reconstruction pairs, ``cols`` pairs per row, on white.

    The last row is filled with white tiles, so a sheet is always ``cols`` pairs wide.
    """
    cells = [np.asarray(im.convert("RGB").resize((tile, tile), Image.LANCZOS)) for pair in pairs for im in pair]
    per_row = 2 * cols
    blank = np.full((tile, tile, 3), 255, np.uint8)
    missing = -len(cells) % per_row if cells else per_row  # no pairs: one white row, as always
    return Image.fromarray(image_grid(cells + [blank] * missing, cols=per_row))


def single_face_fraction(frames: Iterable[np.ndarray], min_side: int = 256, progress: bool = True
                         ) -> tuple[float, list[int]]:
    """Fraction of frames in which dlib finds exactly one face; frames are upscaled to ``min_side``."""
    aligner = default_aligner()
    counts: list[int] = []
    it = frames
    if progress:
        from tqdm import tqdm

        it = tqdm(frames, desc="checking frames", unit="frame")
    for frame in it:
        img = Image.fromarray(np.asarray(frame)[..., :3])
        if min(img.size) < min_side:
            s = min_side / min(img.size)
            img = img.resize((round(img.width * s), round(img.height * s)), Image.LANCZOS)
        counts.append(len(aligner.detect(img)))
    if not counts:
        raise UserError("no frames to check")
    return sum(c == 1 for c in counts) / len(counts), counts


# Moved to stylegan.imageio (issue 8): kept here, warning, for one release.
pil_to_tensor = moved(to_tensor, "encoders.evaluate.pil_to_tensor", "stylegan.imageio.to_tensor")
