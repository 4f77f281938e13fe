"""Face morph videos: photos (or saved latents) -> W+ codes -> a rendered interpolation.

The pipeline behind ``tools/interpolate.py`` and ``tools/invert.py``:

1. **Check everything cheap first.** Every input must exist; the output folder
   must be writable; options must make sense. Photos are decoded and their face
   is found and FFHQ-aligned *before* the model is loaded, so a bad photo fails in
   a second instead of after a 1.2 GB checkpoint has been read.
2. **Load the model** once: a registry name or a file. An e4e checkpoint or one of
   our model files holds both halves (encoder + generator); a generator-only file
   works when every input is a ``.npy`` latent. ``None`` means the default model.
3. **Invert** each photo with the encoder (``.npy`` inputs are used as they are).
4. **Render** a lazy :func:`~stylegan.interpolation.interpolation_path` through the
   codes, batch by batch, straight into an atomic MP4/GIF/PNG-folder writer.

Alignment size: photos are aligned at :data:`ALIGN_SIZE` (1024 px, the FFHQ
crop) and the encoder downsizes them (antialiased) to its input size, 256 px for
e4e. That equals aligning at 256 px up to resampling, keeps the codes independent
of display options such as ``side_by_side``, and gives sharp side-by-side panels.

Example:
    >>> result = morph(["a.jpg", "b.jpg"], "a_to_b.mp4", weights="e4e-ffhq", steps=60)  # doctest: +SKIP
    >>> result.frames                                                                   # doctest: +SKIP
    60
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from stylegan.errors import CheckpointError, UserError
from stylegan.render import render_frames, render_video, resolve_device
from stylegan.imageio import save_image, to_tensor, to_uint8
from stylegan.fileio import (atomic_output, check_input_file, check_name_length, check_not_input, fit_name,
                            os_error_message)
from stylegan.precision import autocast, check_precision, resolve_precision
from stylegan.limits import RenderPlan, check_frame_count, measure_generator
from stylegan.specs import PathSpec, RenderSpec, specs_from_keywords
from stylegan.video import check_output_path, check_video_options, output_kind

from .refine import DEFAULT_REFINE_BUDGET, refine_latent

__all__ = [
    "ALIGN_SIZE", "LATENT_SUFFIX", "MorphResult", "InvertResult", "Keyframe", "morph", "invert",
    "check_model", "resolve_model", "load_models", "load_latent", "save_latent", "prepare_inputs", "encode_inputs",
    "default_output_name", "latent_paths", "split_input", "input_paths",
]

ALIGN_SIZE = 1024
LATENT_SUFFIX = ".npy"
#: Most values a latent file may hold when the model is not known (64 x 2048 W+ positions).
MAX_LATENT_VALUES = 64 * 2048
#: Largest |value| accepted in a code: real W+ codes stay within about +-100; 1e30 only renders black.
MAX_LATENT_ABS = 1e4
Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class Keyframe:
    """One input of a morph.

    Attributes:
        source: the file it came from.
        aligned: the FFHQ-aligned face (photos only).
        ws: the W+ code [num_ws, w_dim] (set by :func:`encode_inputs` for photos).
    """

    source: Path
    aligned: Image.Image | None = None
    ws: torch.Tensor | None = None

    @property
    def is_latent(self) -> bool:
        return self.aligned is None


@dataclass
class MorphResult:
    """What :func:`morph` wrote."""

    output: Path
    frames: int
    size: tuple[int, int]
    latents: list[Path] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class InvertResult:
    """What :func:`invert` wrote for one photo."""

    aligned: Path
    reconstruction: Path
    latent: Path


# ----------------------------------------------------------------------------- latents on disk


def load_latent(path: str | os.PathLike, num_ws: int | None = None, w_dim: int | None = None) -> torch.Tensor:
    """Read a W+ code saved by ``tools/invert.py`` (``np.save`` of float [num_ws, w_dim]).

    A single w [w_dim] or a batch of one [1, num_ws, w_dim] is accepted too.

    Args:
        path: the ``.npy`` file (read with ``allow_pickle=False``).
        num_ws, w_dim: the generator's sizes, to check against (None: do not check).

    Returns:
        float32 [num_ws, w_dim].

    Raises:
        UserError: missing, unreadable or not-``.npy`` file, a header that claims more values
            than a code holds (checked before anything is read), wrong shape, or values
            that are NaN, infinite or beyond :data:`MAX_LATENT_ABS`.
    """
    from .npy import read_npy

    path = Path(path)
    # The header is checked before the data is read: a crafted file cannot make us allocate.
    limit = num_ws * w_dim if num_ws is not None and w_dim is not None else MAX_LATENT_VALUES
    arr = read_npy(path, max_values=limit, kinds="f", what="latent")
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 1 and num_ws is not None:
        arr = np.broadcast_to(arr, (num_ws, arr.shape[0]))  # a W code: the same w at every position
    expect = f"[{num_ws if num_ws is not None else 'num_ws'}, {w_dim if w_dim is not None else 'w_dim'}]"
    if arr.ndim != 2 or (num_ws is not None and arr.shape[0] != num_ws) or (w_dim is not None and arr.shape[1] != w_dim):
        raise UserError(f"{path}: latent has shape {list(arr.shape)}, this model needs {expect}")
    if not np.isfinite(arr).all():
        raise UserError(f"{path}: latent holds NaN or infinite values")
    if np.abs(arr).max(initial=0) > MAX_LATENT_ABS:
        raise UserError(f"{path}: latent values reach {float(np.abs(arr).max()):.3g}; a face code stays far below "
                        f"{MAX_LATENT_ABS:g} (a damaged or foreign file?)")
    return torch.from_numpy(np.array(arr, dtype=np.float32))


def save_latent(path: str | os.PathLike, ws: torch.Tensor) -> Path:
    """Write a code [num_ws, w_dim] as float32 ``.npy``, atomically (temp file + rename).

    Returns:
        The destination path.
    """
    dest = check_output_path(path, kind="latent")
    with atomic_output(dest) as tmp:  # disk full: one line, and the old file (if any) stays
        with open(tmp, "wb") as f:
            np.save(f, ws.detach().float().cpu().numpy(), allow_pickle=False)
    return dest


# ----------------------------------------------------------------------------- models


_WEIGHT_SUFFIXES = {".pt", ".pth", ".pkl", ".ckpt"}


def check_model(weights: str | os.PathLike | None) -> None:
    """Refuse a missing weights file or an unknown model name at once, without downloading anything.

    Raises:
        UserError: a path that does not exist, a name that is not registered, or no default model.
    """
    from pretrained import list_pretrained

    known = [s.name for s in list_pretrained()]
    if weights is None:
        if "default" not in known:
            raise UserError("weights is needed: no default model is installed; give a registered name "
                            "(pretrained.list_pretrained()) or a weights file")
        return
    text = os.fspath(weights)
    if Path(text).expanduser().exists():
        return
    if os.sep in text or Path(text).suffix.lower() in _WEIGHT_SUFFIXES:
        raise UserError(f"{text}: weights file not found")
    if text not in known:
        raise UserError(f"{text!r} is not a file and not a known model name; known: {', '.join(known)}")


def resolve_model(weights: str | os.PathLike | None) -> Path:
    """The weights file for a registry name, a path, or None (the default model), downloading if needed.

    Raises:
        UserError: see :func:`check_model`; ``DownloadError`` for registered weights that
            cannot be had (e.g. offline: the message says what to download and where to put it).
    """
    from stylegan.weights import resolve_weights_path

    check_model(weights)
    return resolve_weights_path(weights)


def load_models(weights: str | os.PathLike | None, device: torch.device, need_encoder: bool,
                log: Log = _quiet) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """Load the generator, and the encoder from the same file when photos need it; the file is read once.

    Returns:
        ``(G, E)``; ``E`` is None when ``need_encoder`` is False.

    Raises:
        UserError / CheckpointError: see :func:`resolve_model`, or a file without an
            encoder when one is needed, or encoder and generator sizes that differ.
    """
    from stylegan.weights import generator_from, load_checkpoint

    path = resolve_model(weights)
    log(f"loading {path}")
    ckpt = load_checkpoint(path)  # one deserialisation for both models (a 1.2 GB e4e file is read once)
    G = generator_from(ckpt).to(device)
    if not need_encoder:
        return G, None
    return G, _matching_encoder(ckpt, G, device)


def load_matching_encoder(path: str | os.PathLike, G: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The encoder stored in the weights file ``path``, checked against the generator's code sizes.

    Separate from :func:`load_models` so that a caller can load the encoder only when
    a photo actually needs encoding (e.g. after a cache miss).

    Raises:
        CheckpointError: a file without an encoder, or encoder and generator sizes that differ.
    """
    from stylegan.render import resolve_device
    from stylegan.weights import load_checkpoint

    device = resolve_device(device)  # an unknown device fails before the file is read
    return _matching_encoder(load_checkpoint(path), G, device)


def _matching_encoder(ckpt, G: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The encoder of an already loaded checkpoint, checked against ``G``, on ``device``."""
    from .loader import check_code_sizes, encoder_from

    try:
        E = encoder_from(ckpt)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; photos need a model with an encoder (an e4e checkpoint or a "
                              "model file), or pass .npy latents written by invert()") from None
    check_code_sizes(E, G, ckpt.source)
    return E.to(device)


# ----------------------------------------------------------------------------- inputs


def split_input(spec: str | os.PathLike) -> tuple[Path, int | None]:
    """``"group.jpg:2"`` -> ``(Path("group.jpg"), 2)``: a face index for one input only.

    A path that exists as written (even one with a colon) is taken as it is.
    """
    text = os.fspath(spec)
    head, sep, tail = text.rpartition(":")
    if sep and head and tail.isdigit() and not os.path.lexists(text):
        return Path(head), int(tail)
    return Path(text), None


def _face_indices(face_index: int | Sequence[int | None] | None, n: int) -> list[int | None]:
    if face_index is None or isinstance(face_index, int):
        return [face_index] * n
    indices = list(face_index)
    if len(indices) != n:
        raise UserError(f"got {len(indices)} face indices for {n} inputs")
    return indices


def input_paths(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The files behind input specs (``group.jpg:2`` -> ``group.jpg``)."""
    return [split_input(p)[0] for p in inputs]


def prepare_inputs(inputs: Sequence[str | os.PathLike], face_index: int | Sequence[int | None] | None = None,
                   log: Log = _quiet) -> list[Keyframe]:
    """Check every input and align every photo (no model needed yet).

    ``.npy`` files are latents and are read later, when the model's sizes are known;
    everything else is a photo: decoded, its face found and aligned at :data:`ALIGN_SIZE`.
    An input written ``photo.jpg:N`` uses face ``N`` of that photo, whatever ``face_index`` says.

    Raises:
        UserError: a missing file, a folder or other non-regular file (a FIFO would block),
            an unreadable or corrupt image, no face (``NoFaceError``), or a face index out
            of range (the message names the photo).
    """
    from encoders.align import NoFaceError, align_face

    specs = [split_input(p) for p in inputs]
    for p, _ in specs:  # every input is checked before the first is decoded
        check_input_file(p, "photo or a .npy latent")
    keyframes = []
    for (p, own), idx in zip(specs, _face_indices(face_index, len(specs))):
        if p.suffix.lower() == LATENT_SUFFIX:
            if own is not None:
                raise UserError(f"{p}: a face index ({p}:{own}) applies to photos, not to .npy latents")
            keyframes.append(Keyframe(p))
            continue
        log(f"aligning {p}")
        try:
            aligned = align_face(p, output_size=ALIGN_SIZE, face_index=idx if own is None else own)
        except NoFaceError:
            raise
        except UserError as err:
            if own is None and idx is not None and "face index" in str(err):
                raise UserError(f"{err}; face_index applies to every photo, give this one its own "
                                f"as '{p}:N'") from None
            raise
        keyframes.append(Keyframe(p, aligned=aligned))
    return keyframes


def encode_inputs(keyframes: list[Keyframe], G: torch.nn.Module, E: torch.nn.Module | None,
                  log: Log = _quiet, refine: int | str = "auto", *, refine_budget: float = DEFAULT_REFINE_BUDGET,
                  precision: str | torch.dtype = "fp32") -> torch.Tensor:
    """Fill in every keyframe's code: encode photos (then refine them), read and check latents.

    Args:
        refine: optimisation steps that refine each photo's code after encoding
            (:func:`encoders.refine.refine_latent`); ``"auto"`` times the first step and
            takes as many as fit in ``refine_budget`` seconds per photo (at most 100).
        refine_budget: seconds of refinement per photo for ``"auto"``.
        precision: of the encoder and the refinement, see :mod:`stylegan.precision`.

    Returns:
        float32 [K, num_ws, w_dim] on the CPU.
    """
    steps = refine if refine == "auto" else int(refine)
    param = next(G.parameters())
    enc_dtype = resolve_precision(precision, param.device, model=E) if E is not None else torch.float32
    if enc_dtype != torch.float32 and E is not None:
        E = E.to(memory_format=torch.channels_last)  # oneDNN's native layout for bf16 (same values)
    for kf in keyframes:
        if kf.is_latent:
            kf.ws = load_latent(kf.source, G.num_ws, G.w_dim)
            continue
        if E is None:
            raise UserError(f"{kf.source}: a photo needs an encoder")
        log(f"encoding {kf.source}")
        image = to_tensor(kf.aligned)
        with torch.no_grad(), autocast(enc_dtype, param.device):
            ws = E.encode(image).float()  # [1, num_ws, w_dim]
        if steps:
            log(f"refining the code of {kf.source}" + ("" if steps == "auto" else f" ({steps} steps)"))
            ws = refine_latent(G, image, ws, steps, budget=refine_budget, precision=precision, log=log)
        kf.ws = ws[0].float().cpu()
    return torch.stack([kf.ws for kf in keyframes])


def default_output_name(inputs: Sequence[str | os.PathLike], suffix: str = ".mp4",
                        folder: str | os.PathLike = ".") -> str:
    """``face1_to_face2.mp4`` (``a_to_b_to_c.mp4`` for more; long lists are shortened).

    Long input names are cut so that the name fits ``folder``'s file system, including
    the latents ``save_latents`` derives from it (``<name>_<input>.npy``).
    """
    stems = [split_input(p)[0].stem for p in inputs]
    name = "_to_".join(stems)
    if len(name) > 80:
        name = f"{_cut(stems[0], 30)}_to_{_cut(stems[-1], 30)}_{len(stems)}_faces"
    return fit_name(name, suffix, folder)


def _cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars]


def latent_paths(inputs: Sequence[str | os.PathLike], output: str | os.PathLike) -> list[Path]:
    """Where ``save_latents`` puts each input's code: ``<output stem>_<input stem>.npy`` beside the output."""
    out = Path(os.fspath(output).rstrip("/" + os.sep))
    stem = out.stem if out.suffix.lower() in {".mp4", ".gif"} else out.name
    names: list[Path] = []
    for k, p in enumerate(input_paths(inputs)):
        # Cut to fit the file system (a long output name plus a long input name).
        candidate = out.parent / fit_name(f"{stem}_{p.stem}", LATENT_SUFFIX, out.parent)
        if candidate in names:  # two inputs with the same stem
            candidate = out.parent / fit_name(f"{stem}_{p.stem}", f"_{k}{LATENT_SUFFIX}", out.parent)
        names.append(candidate)
    return names


# ----------------------------------------------------------------------------- morph


def _check_speed_options(refine_budget: float, precision: str | torch.dtype, device: torch.device,
                         log: Log) -> str | torch.dtype:
    """Check ``refine_budget`` and ``precision`` before any work (``"auto"`` is resolved per model later)."""
    if not isinstance(refine_budget, (int, float)) or not math.isfinite(refine_budget) or refine_budget < 0:
        raise UserError(f"refine_budget must be a finite number of seconds >= 0, got {refine_budget!r}")
    return check_precision(precision, device)


def _check_path_list(name: str, paths: object) -> None:
    """Refuse a lone string (``morph("ab", ...)`` would read files "a" and "b") or a non-list."""
    if isinstance(paths, (str, bytes, os.PathLike)) or not isinstance(paths, Sequence):
        raise UserError(f"{name} must be a list of paths, got {type(paths).__name__} {paths!r:.60}")


def _panels(keyframes: list[Keyframe], G: torch.nn.Module, side: int) -> list[np.ndarray]:
    """Side-by-side panels: the aligned photo, or for a latent input its own render."""
    panels = []
    for kf in keyframes:
        if kf.aligned is not None:
            img = kf.aligned.resize((side, side), Image.Resampling.LANCZOS)
            panels.append(np.asarray(img, dtype=np.uint8))
        else:
            param = next(G.parameters())
            with torch.inference_mode():
                image = G.synthesis(kf.ws.unsqueeze(0).to(param.device, param.dtype), noise_mode="const")
            panels.append(to_uint8(image, side)[0])
    return panels


def morph(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, *, path: PathSpec | None = None,
          render: RenderSpec | None = None, weights: str | os.PathLike | None = None, side_by_side: bool = False,
          save_latents: bool = False, face_index: int | Sequence[int | None] | None = None,
          device: str | torch.device = "auto", refine: int | str = "auto",
          refine_budget: float = DEFAULT_REFINE_BUDGET, progress: bool = True, log: Log = _quiet,
          yes: bool = False, **deprecated: object) -> MorphResult:
    """Make a morph video through two or more faces.

    Args:
        inputs: photos (any format Pillow reads) and/or ``.npy`` latents from ``tools/invert.py``;
            ``photo.jpg:N`` picks face ``N`` of that photo.
        output: ``.mp4``, ``.gif`` or a folder name for PNG frames; written atomically. It may
            not be an input (nor, for a folder, hold one); an existing folder is replaced only
            if a previous render wrote it (see :func:`stylegan.video.check_output_path`).
        path: steps per transition, hold, easing, kind, schedule and loop
            (:class:`stylegan.specs.PathSpec`; default 60 linear lerp steps).
        render: fps, crf, size, batch_size, noise_mode and precision
            (:class:`stylegan.specs.RenderSpec`; default 30 fps, exact fp32). The precision
            also applies to encoding and refinement.
        weights: a registry name or a weights file; None for the default model.
        side_by_side: show the current pair of aligned inputs left and right of the morph
            (``A | morph | B``; with more inputs the panels follow the current segment).
        save_latents: also write every input's code as ``<output stem>_<input stem>.npy``
            beside the output (after the video is complete). Existing files are replaced
            atomically, an input never.
        face_index: which face in each photo, 0 = largest (one int for all, or one per input).
        device: ``auto``, ``cpu`` or ``cuda``.
        refine: optimisation steps on each photo's code after encoding; ``"auto"`` = as many as
            fit ``refine_budget`` seconds per photo, at most 100 (see :mod:`encoders.refine`).
        refine_budget: seconds of refinement per photo for ``refine="auto"``.
        progress: show a progress bar while rendering.
        log: receives one-line status messages (loading, aligning, encoding, and the plan:
            frames, estimated time and disk).
        yes: go ahead with more than :data:`stylegan.limits.CONFIRM_FRAMES` frames or an
            estimated render time over :data:`stylegan.limits.CONFIRM_SECONDS`.
        deprecated: the specs' fields as loose keywords (``steps=``, ``fps=``, ...), as before
            the specs existed; they still work for one release, with a DeprecationWarning.

    Returns:
        A :class:`MorphResult`.

    Raises:
        UserError: any bad input, option, model or output path; nothing is written then.
    """
    start = time.perf_counter()
    path, render = specs_from_keywords(path, render, deprecated, "morph")
    _check_path_list("inputs", inputs)
    if len(inputs) < 2:
        raise UserError(f"a morph needs at least 2 inputs, got {len(inputs)}")
    check_frame_count(path.num_frames(len(inputs)), yes)  # before any work
    out_kind = output_kind(output)
    check_video_options(out_kind, render.fps, render.crf)
    dest = check_output_path(output, out_kind)
    sources = input_paths(inputs)
    # Never overwrite an input: not the video, not a frames folder holding one, not a latent.
    check_not_input(dest, sources, folder=out_kind == "frames")
    latent_targets = latent_paths(inputs, dest) if save_latents else []
    for target in latent_targets:
        check_output_path(target, kind="latent")
        check_not_input(target, sources)
    dev = resolve_device(device)
    precision = _check_speed_options(refine_budget, render.precision, dev, log)

    check_model(weights)  # a typo in the name fails now, not after aligning every photo
    keyframes = prepare_inputs(inputs, face_index, log)
    G, E = load_models(weights, dev, need_encoder=any(not kf.is_latent for kf in keyframes), log=log)
    side = render.size or G.img_resolution
    plan = RenderPlan(path.num_frames(len(inputs)), side * (3 if side_by_side else 1), side,
                      out_kind, measure_generator(G, render.noise_mode))
    log(f"plan: {plan.describe()}")
    plan.check(yes)  # before encoding and refining: an absurd run stops here
    codes = encode_inputs(keyframes, G, E, log, refine, refine_budget=refine_budget,
                          precision=precision)  # [K, num_ws, w_dim]
    del E  # the encoder is not needed for rendering; free it before the frames start

    frames_path = path.path(codes)
    compose = None
    if side_by_side:
        panels = _panels(keyframes, G, side)

        def compose(index: int, frame: np.ndarray) -> np.ndarray:
            segment, _ = frames_path.locate(index)
            return np.concatenate([panels[segment], frame, panels[(segment + 1) % len(panels)]], axis=1)

    log(f"rendering {len(frames_path)} frames at {side}x{side} on {dev}")
    frames = render_video(G, frames_path, dest, **replace(render, precision=precision).video_options(),
                          progress=progress, compose=compose)
    latents = [save_latent(target, kf.ws) for kf, target in zip(keyframes, latent_targets)]
    width = side * (3 if side_by_side else 1)
    return MorphResult(dest, frames, (width, side), latents, time.perf_counter() - start)


# ----------------------------------------------------------------------------- invert


def _check_folder_creatable(folder: Path) -> None:
    """Fail early if ``folder`` can neither be used nor created (its nearest existing ancestor is a file)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{folder}: cannot create the output folder ({existing} is a file)")
    if existing == folder:
        check_output_path(folder / "probe.png", kind="image")


def invert(photos: Sequence[str | os.PathLike], outdir: str | os.PathLike = ".", *,
           weights: str | os.PathLike | None = None, face_index: int | Sequence[int | None] | None = None,
           device: str | torch.device = "auto", noise_mode: str = "const", refine: int | str = "auto",
           log: Log = _quiet, refine_budget: float = DEFAULT_REFINE_BUDGET,
           precision: str | torch.dtype = "fp32") -> list[InvertResult]:
    """Invert photos: write ``<stem>_aligned.png``, ``<stem>_reconstruction.png`` and ``<stem>_latent.npy``.

    The latent can be passed back to :func:`morph` (or ``tools/interpolate.py``) in place
    of the photo; the reconstruction shows what the generator makes of it.

    Args:
        photos: one or more photos.
        outdir: output folder, created if missing.
        weights, face_index, device, refine, log, refine_budget: as for :func:`morph`.
        noise_mode, precision: as for :class:`stylegan.specs.RenderSpec`.

    Returns:
        One :class:`InvertResult` per photo.

    Raises:
        UserError: bad photo, model or folder; files of photos already done stay (each file is atomic).
    """
    _check_path_list("photos", photos)
    if not photos:
        raise UserError("no photo given")
    folder = Path(outdir)
    dev = resolve_device(device)
    precision = _check_speed_options(refine_budget, precision, dev, log)
    check_model(weights)
    latent = [p for p in photos if Path(p).suffix.lower() == LATENT_SUFFIX]
    if latent:
        raise UserError(f"{latent[0]}: is already a latent; invert takes photos")
    _check_folder_creatable(folder)
    _check_inversion_outputs(folder, input_paths(photos))
    keyframes = prepare_inputs(photos, face_index, log)
    G, E = load_models(weights, dev, need_encoder=True, log=log)
    codes = encode_inputs(keyframes, G, E, log, refine, refine_budget=refine_budget, precision=precision)
    # Only now create the folder: a bad photo or model leaves no empty folder behind.
    created = _make_folder(folder)
    try:
        check_output_path(folder / "probe.png", kind="image")
        return [_save_inversion(G, kf, ws, folder, kf.source.stem, noise_mode, precision)
                for kf, ws in zip(keyframes, codes)]
    except BaseException:
        for made in created:  # deepest first; a folder that holds finished photos stays
            try:
                made.rmdir()
            except OSError:
                break
        raise


def _make_folder(folder: Path) -> list[Path]:
    """``mkdir -p``; returns the folders it created, deepest first (to remove them if the run fails)."""
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{folder}: cannot create the output folder ({os_error_message(err)})") from None
    return missing


def _check_inversion_outputs(folder: Path, sources: list[Path]) -> None:
    """Before any work: no output may be an input, and two photos may not share output names."""
    seen: dict[Path, Path] = {}
    for src in sources:
        res = _inversion_paths(folder, src.stem)
        for out in (res.aligned, res.reconstruction, res.latent):
            check_name_length(out)
            if out in seen:
                raise UserError(f"{src} and {seen[out]} would both write {out.name}; rename one of them")
            seen[out] = src
            check_not_input(out, sources)


def _inversion_paths(folder: Path, stem: str) -> InvertResult:
    # A long photo name is cut so that the longest of the three names fits the file system.
    longest = "_reconstruction.png"
    stem = fit_name(stem, longest, folder)[: -len(longest)]
    return InvertResult(folder / f"{stem}_aligned.png", folder / f"{stem}_reconstruction.png",
                        folder / f"{stem}_latent{LATENT_SUFFIX}")


def _save_inversion(G: torch.nn.Module, kf: Keyframe, ws: torch.Tensor, folder: Path, stem: str,
                    noise_mode: str, precision: str | torch.dtype = "fp32") -> InvertResult:
    """Write one photo's aligned face, reconstruction and code; the code last, so it marks a finished photo."""
    recon = next(render_frames(G, [ws], batch_size=1, noise_mode=noise_mode, progress=False, precision=precision))
    res = _inversion_paths(folder, stem)
    save_image(kf.aligned, res.aligned)
    save_image(recon, res.reconstruction)
    save_latent(res.latent, ws)
    return res
