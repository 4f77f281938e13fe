"""Editing photos: photos (or codes) in, edited faces, strength sweeps and contact sheets out.

The edits themselves are :mod:`stylegan.editing` (``apply_edit``, ``arithmetic``,
``style_mix``, directions); this module is what ``tools/edit.py`` needs around
them and what needs the encoders:

- :func:`input_codes` turns inputs into W+ codes: photos through the cached
  encoder (:class:`~encoders.code_cache.CachedEncoder`, so editing the same photo
  along ten directions encodes it once), ``.npy`` codes as saved by
  ``tools/invert.py``, and two tokens: ``mean`` (the model's mean face) and
  ``seed:N`` (a random face from the model's mapping, :func:`stylegan.render.seeds_to_z`).
- :func:`sweep_codes` makes the frames of a strength sweep, −s .. +s.
- :func:`labelled_grid` lays out a contact sheet with a label per row and a caption per cell.

Example:
    >>> from stylegan.editing import apply_edit, load_direction             # doctest: +SKIP
    >>> ws = input_codes(["face.jpg"], G, weights=None)                      # doctest: +SKIP
    >>> older = apply_edit(ws, load_direction("age", G), 3.0)               # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from stylegan.errors import UserError
from stylegan.fileio import check_input_file
from stylegan.specs import PathSpec, RenderSpec, specs_from_keywords

from .code_cache import CachedEncoder, CodeCache
from .morph import LATENT_SUFFIX, load_latent, split_input

__all__ = [
    "MEAN_TOKEN", "MAX_STRENGTH", "MAX_SWEEP_FRAMES", "is_token", "check_inputs", "input_codes", "input_label",
    "check_strength", "sweep_strengths", "sweep_codes", "labelled_grid", "render_side_by_side",
]

MEAN_TOKEN = "mean"
_SEED_RE = re.compile(r"seed:(\d{1,10})")
#: Strengths are in units of a direction's step (about one standard deviation of the codes
#: along it); beyond +-100 the face is long gone, so a larger value is a typo.
MAX_STRENGTH = 100.0
#: A sweep is a short clip; more frames than this is surely a mistake.
MAX_SWEEP_FRAMES = 2000


def is_token(text: str | os.PathLike) -> bool:
    """True for ``mean`` and ``seed:N`` (unless a file of that name exists, which then wins)."""
    s = os.fspath(text)
    return (s == MEAN_TOKEN or _SEED_RE.fullmatch(s) is not None) and not Path(s).exists()


def input_label(text: str | os.PathLike) -> str:
    """A short name for output files and sheet labels: the file stem, ``mean`` or ``seed3``."""
    s = os.fspath(text)
    if is_token(s):
        return s.replace(":", "")
    path, face = split_input(s)
    stem = path.stem
    stem = stem[: -len("_latent")] if stem.endswith("_latent") and len(stem) > len("_latent") else stem
    return stem if face is None else f"{stem}_face{face}"


def check_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Refuse missing or non-regular input files before any work; returns the files (tokens left out).

    ``photo.jpg:N`` (face N of a group photo, see :func:`encoders.morph.split_input`) counts as ``photo.jpg``.
    """
    files = []
    for item in inputs:
        if is_token(item):
            continue
        files.append(check_input_file(split_input(item)[0], "photo or .npy code"))
    return files


def check_strength(strength: float, name: str = "strength") -> float:
    """A finite strength with ``|strength| <= MAX_STRENGTH``."""
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {strength!r}") from None
    if not math.isfinite(value) or abs(value) > MAX_STRENGTH:
        raise UserError(f"{name} must be finite and within +-{MAX_STRENGTH:g}, got {strength}")
    return value


def input_codes(inputs: Sequence[str | os.PathLike], G: torch.nn.Module, weights: str | os.PathLike | None, *,
                cache: CodeCache | None = None, refine: int | str = "auto", face_index: int | None = None,
                truncation_psi: float = 0.7, device: str | torch.device = "cpu",
                encoder: CachedEncoder | None = None) -> torch.Tensor:
    """W+ codes of photos, ``.npy`` codes, ``mean`` and ``seed:N`` inputs.

    Args:
        inputs: the inputs, in order.
        G: the generator (its sizes check ``.npy`` codes; its mapping makes ``seed:N`` faces).
        weights: the model's name or file (for the encoder and the cache key).
        cache: where photo codes are kept (None: encode every time).
        refine, face_index: as for :func:`encoders.morph.encode_inputs`.
        truncation_psi: pull of ``seed:N`` faces toward the mean (0.7 is the usual trade-off).
        device: where the encoder runs.
        encoder: reuse this cached encoder (and its loaded weights) instead of making one.

    Returns:
        float32 [len(inputs), num_ws, w_dim] on the CPU.

    Raises:
        UserError: a bad file, a photo without a face, or a model without an encoder for photos.
    """
    from stylegan.render import seeds_to_z

    codes = []
    param = next(G.parameters())
    for item in inputs:
        text = os.fspath(item)
        if is_token(text):
            if text == MEAN_TOKEN:
                z, psi = torch.zeros(1, G.z_dim), 0.0
            else:
                z, psi = seeds_to_z([int(text.split(":")[1])], G.z_dim), truncation_psi
            with torch.no_grad():
                ws = G.mapping(z.to(param.device, param.dtype), truncation_psi=psi)[0]
            codes.append(ws.float().cpu())
        elif split_input(text)[0].suffix.lower() == LATENT_SUFFIX:
            codes.append(load_latent(text, G.num_ws, G.w_dim))
        else:
            if encoder is None:
                encoder = CachedEncoder(G, weights, cache, refine=refine, face_index=face_index, device=device)
            codes.append(encoder(text))
    return torch.stack(codes)


def sweep_strengths(strength: float, steps: int) -> torch.Tensor:
    """``steps`` strengths evenly from ``-strength`` to ``+strength`` (0 in the middle for odd steps)."""
    strength = check_strength(strength)
    if not 2 <= steps <= MAX_SWEEP_FRAMES:
        raise UserError(f"steps must be 2 to {MAX_SWEEP_FRAMES}, got {steps}")
    return torch.linspace(-abs(strength), abs(strength), steps, dtype=torch.float64)


def sweep_codes(code: torch.Tensor, direction, strength: float, path: PathSpec | int, layers=None,
                **deprecated: object) -> torch.Tensor:
    """The codes of a sweep along ``direction`` from ``-strength`` to ``+strength``.

    The sweep is a path between the two edited ends, so it takes a :class:`stylegan.specs.PathSpec`
    like a morph does: ``steps`` frames, ``loop`` sweeps back (without repeating the ends),
    and ``hold``, ``easing`` and ``schedule`` work as in a morph. An edit is linear in its
    strength, so a lerp between the ends is exactly the strengths of :func:`sweep_strengths`.

    Args:
        code: [num_ws, w_dim].
        direction: a :class:`stylegan.editing.Direction`.
        strength: see :func:`sweep_strengths`.
        path: the frames; a plain number of steps (with ``loop=``) still works for one
            release, with a DeprecationWarning.
        layers: positions to edit (None: the direction's own).

    Returns:
        [path.num_frames(2), num_ws, w_dim].

    Raises:
        UserError: a bad strength, or more than :data:`MAX_SWEEP_FRAMES` frames.
    """
    from stylegan.editing import apply_edit

    if not isinstance(path, PathSpec):
        path, _ = specs_from_keywords(None, None, {"steps": path, **deprecated}, "sweep_codes")
    elif deprecated:
        raise TypeError(f"sweep_codes() got unexpected keyword arguments: {', '.join(sorted(deprecated))}")
    if path.num_frames(2) > MAX_SWEEP_FRAMES:
        raise UserError(f"a sweep has at most {MAX_SWEEP_FRAMES} frames, got {path.num_frames(2)}")
    s = abs(check_strength(strength))
    ends = apply_edit(code.expand(2, *code.shape), direction, torch.tensor([-s, s], dtype=torch.float64),
                      layers=layers)
    return path.path(ends).tensor()


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable bundled font
    except TypeError:
        return ImageFont.load_default()


def labelled_grid(rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]], cell: int | None = None,
                  label_width: int = 170, caption_height: int = 20, pad: int = 4) -> np.ndarray:
    """A contact sheet: one row per entry, its label on the left, a caption above each image.

    Args:
        rows: ``(row label, [(caption, uint8 [H, W, 3] image), ...])``; rows may differ in length.
        cell: image side in the sheet (default: the first image's height).
        label_width, caption_height, pad: layout in pixels.

    Returns:
        uint8 [H, W, 3] on a white background.
    """
    if not rows or not any(cells for _, cells in rows):
        raise ValueError("labelled_grid needs at least one image")
    first = next(img for _, cells in rows for _, img in cells)
    side = cell or first.shape[0]
    cols = max(len(cells) for _, cells in rows)
    row_h = caption_height + side + pad
    width = label_width + cols * (side + pad) + pad
    sheet = Image.new("RGB", (width, len(rows) * row_h + pad), "white")
    draw = ImageDraw.Draw(sheet)
    font, small = _font(15), _font(13)
    for r, (label, cells) in enumerate(rows):
        top = pad + r * row_h
        draw.multiline_text((8, top + caption_height + side // 2 - 10), label, fill="black", font=font)
        for c, (caption, img) in enumerate(cells):
            left = label_width + c * (side + pad)
            tile = Image.fromarray(np.asarray(img, dtype=np.uint8))
            if tile.size != (side, side):
                tile = tile.resize((side, side), Image.Resampling.LANCZOS)
            sheet.paste(tile, (left, top + caption_height))
            text_w = draw.textlength(caption, font=small)
            draw.text((left + (side - text_w) / 2, top + 2), caption, fill="black", font=small)
    return np.asarray(sheet)


def render_side_by_side(G: torch.nn.Module, sequences: torch.Tensor, path: str | os.PathLike,
                        render: RenderSpec | None = None, *, progress: bool = True,
                        **deprecated: object) -> int:
    """Render K code sequences of equal length side by side into one video (MP4, GIF or PNG frames).

    Args:
        sequences: [K, T, num_ws, w_dim], e.g. one :func:`sweep_codes` per input face.
        path: ``.mp4``, ``.gif`` or a folder (see :func:`stylegan.video.open_writer`); atomic.
        render: fps, crf, size, batch_size, noise_mode and precision (:class:`stylegan.specs.RenderSpec`;
            default 15 fps). Loose ``fps=``, ``size=``, ... keywords still work for one release.
        progress: show a progress bar.

    Returns:
        The number of frames (T).
    """
    from stylegan.render import render_frames
    from stylegan.video import open_writer

    _, render = specs_from_keywords(None, render or RenderSpec(fps=15), deprecated, "render_side_by_side")
    k, t = sequences.shape[:2]
    flat = sequences.transpose(0, 1).reshape(k * t, *sequences.shape[2:])  # time-major: frame 0 of every face, ...
    frames = render_frames(G, flat, **render.frame_options(), progress=progress, desc="sweep")
    with open_writer(path, fps=render.fps, crf=render.crf) as writer:
        row: list[np.ndarray] = []
        for frame in frames:
            row.append(frame)
            if len(row) == k:
                writer.write(np.concatenate(row, axis=1))
                row = []
    return writer.frames_written
