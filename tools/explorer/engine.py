"""The explorer's model side: faces in, codes and frames out, without any HTTP.

One :class:`Explorer` holds the model and does all the work the page asks for,
through the library:

- photos are aligned, encoded and refined by :mod:`encoders.morph`
  (``prepare_inputs`` / ``encode_inputs``) and their codes kept in an
  :class:`encoders.code_cache.CodeCache` keyed by the photo's content hash;
- the frame the page shows is a :func:`stylegan.interpolation.interpolation_path`
  frame, then :func:`stylegan.editing.arithmetic`, :func:`~stylegan.editing.style_mix`
  and :func:`~stylegan.editing.apply_edit`, rendered by :func:`stylegan.render.render_images`;
- a video export renders the same chain for every frame with
  :func:`stylegan.render.render_video`, as ``tools/interpolate.py`` does.

Two copies of the generator keep the page responsive: sliders render through one
(behind a lock, so two tabs never share a half-run forward pass), while a single
background worker encodes photos and renders videos through the other. A slow
refinement therefore never holds up a slider.
"""

from __future__ import annotations

import copy
import io
import math
import queue
import re
import secrets
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from PIL import Image

from stylegan.errors import UserError
from stylegan.specs import PathSpec, RenderSpec

from .sessions import Face, Job, Session, SessionLimits, SessionStore

__all__ = ["ExplorerConfig", "Explorer", "View", "NotFound", "ALPHA_STEPS", "EXAMPLE_SUFFIXES"]

#: The morph slider has this many steps from A to B: the frame at slider position k is frame k of a
#: ``steps = ALPHA_STEPS + 1`` interpolation path, so alpha = 0.5 is exactly the path's middle frame.
ALPHA_STEPS = 100
EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_STRENGTH = 10.0
_MAX_NAME = 80


class NotFound(UserError):
    """A face, direction, job or example the request named does not exist (HTTP 404)."""


@dataclass(frozen=True)
class ExplorerConfig:
    """What the explorer serves and its limits.

    Attributes:
        weights: registry name or weights file; None is the embedded default model.
        device: ``auto``, ``cpu`` or ``cuda``.
        refine: refinement steps per photo, or ``"auto"`` (see :mod:`encoders.refine`).
        precision: of every render, ``"fp32"``, ``"auto"``, ``"bf16"`` or ``"fp16"`` (see :mod:`stylegan.precision`).
        cache_dir: folder of the content-hash code cache; None keeps codes in memory only.
        max_upload_bytes: largest request body (all photos of one upload together).
        gallery_size: random faces on the map when the model has a sampler (0: none).
        truncation_psi: for random and gallery faces.
        max_export_frames: longest video an export may render.
        limits: session bounds.
    """

    weights: str | None = None
    device: str = "auto"
    refine: int | str = "auto"
    precision: str = "fp32"
    cache_dir: Path | None = None
    max_upload_bytes: int = 20 * 1024 * 1024
    gallery_size: int = 24
    truncation_psi: float = 0.7
    max_export_frames: int = 600
    limits: SessionLimits = field(default_factory=SessionLimits)

    def __post_init__(self) -> None:
        if self.refine != "auto" and (not isinstance(self.refine, int) or self.refine < 0):
            raise ValueError(f"refine must be 'auto' or a number of steps >= 0, got {self.refine!r}")
        if self.max_upload_bytes < 1024:
            raise ValueError(f"max_upload_bytes must be at least 1024, got {self.max_upload_bytes}")
        if not 0 <= self.gallery_size <= 256:
            raise ValueError(f"gallery_size must be in 0..256, got {self.gallery_size}")
        if not 0 <= self.truncation_psi <= 2:
            raise ValueError(f"truncation_psi must be in [0, 2], got {self.truncation_psi}")
        if self.max_export_frames < 2:
            raise ValueError(f"max_export_frames must be at least 2, got {self.max_export_frames}")


# ----------------------------------------------------------------------------- what the page shows


def _number(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise UserError(f"{name} must be in [{lo:g}, {hi:g}], got {value:g}")
    return float(value)


def _face_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise UserError(f"{name} must be a face id")
    return value


@dataclass(frozen=True)
class View:
    """Everything that determines the current frame; the page sends it with every request.

    Keeping the view on the page (not the server) makes rendering a pure function of
    the request: two tabs never disturb each other, and undo is the page's history.

    Attributes:
        a, b: face ids; ``b`` None shows ``a`` alone.
        position: morph slider position 0..:data:`ALPHA_STEPS` (alpha = position / ALPHA_STEPS).
        path: the morph's kind, easing and schedule (:class:`stylegan.specs.PathSpec`), with
            ``ALPHA_STEPS + 1`` steps; an export replaces only the steps.
        arith: ``(b, c, scale)``: the frame becomes frame - B + C (scaled), or None.
        mix: ``(face, layers)``: take those style positions from that face, or None.
        edits: ``(direction, strength)`` pairs, applied in order.
    """

    a: str
    b: str | None = None
    position: int = 0
    path: PathSpec = PathSpec(steps=ALPHA_STEPS + 1)
    arith: tuple[str, str, float] | None = None
    mix: tuple[str, str] | None = None
    edits: tuple[tuple[str, float], ...] = ()

    @property
    def alpha(self) -> float:
        return self.position / ALPHA_STEPS

    @classmethod
    def from_json(cls, data: Any) -> "View":
        """Validate the page's JSON; raises UserError with one line naming the bad field."""
        if not isinstance(data, dict):
            raise UserError("view must be a JSON object")
        a = _face_id(data.get("a"), "a")
        b = data.get("b")
        b = None if b in (None, "") else _face_id(b, "b")
        alpha = _number(data.get("alpha", 0.0), "alpha", 0.0, 1.0)
        path = PathSpec(steps=ALPHA_STEPS + 1, kind=data.get("kind", "lerp"), easing=data.get("easing", "linear"),
                        schedule=data.get("schedule", "uniform"))  # the spec names the bad field
        arith = data.get("arith")
        if arith:
            if not isinstance(arith, dict):
                raise UserError("arith must be an object {b, c, scale}")
            arith = (_face_id(arith.get("b"), "arith.b"), _face_id(arith.get("c"), "arith.c"),
                     _number(arith.get("scale", 1.0), "arith.scale", -MAX_STRENGTH, MAX_STRENGTH))
        mix = data.get("mix")
        if mix:
            if not isinstance(mix, dict):
                raise UserError("mix must be an object {face, layers}")
            layers = mix.get("layers")
            if layers not in ("coarse", "middle", "fine"):
                raise UserError("mix.layers must be coarse, middle or fine")
            mix = (_face_id(mix.get("face"), "mix.face"), layers)
        edits = data.get("edits") or {}
        if not isinstance(edits, dict) or len(edits) > 256:
            raise UserError("edits must be an object {direction: strength}")
        pairs = tuple((str(k)[:100], _number(v, f"strength of {str(k)[:40]!r}", -MAX_STRENGTH, MAX_STRENGTH))
                      for k, v in edits.items())
        return cls(a, b, int(round(alpha * ALPHA_STEPS)), path, arith or None, mix or None,
                   tuple(p for p in pairs if p[1] != 0.0))


def clean_name(name: Any, fallback: str = "photo") -> str:
    """A display name from an upload's file name: no folders, no control characters, at most 80 characters."""
    text = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = re.sub(r"[\x00-\x1f\x7f]", "", text).strip()
    return text[:_MAX_NAME] or fallback


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    """Encode an RGB image as PNG in memory (lossless: the page sees the exact rendered pixels)."""
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # level 1: a few ms, the page is local
    return buf.getvalue()


class _EditedPath:
    """A lazy path whose every code goes through ``transform``; keeps ``len`` for progress."""

    def __init__(self, path: Any, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.path, self.transform = path, transform

    def __len__(self) -> int:
        return len(self.path)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for ws in self.path:
            yield self.transform(ws)


# ----------------------------------------------------------------------------- the explorer


def _load_directions(G: torch.nn.Module) -> dict[str, Any]:
    """The edit directions the library offers for this model ({} when it offers none)."""
    try:
        from stylegan.editing import available_directions
    except ImportError:
        return {}
    return dict(available_directions(G))


def _has_sampler(G: torch.nn.Module, weights: str | None) -> bool:
    """Whether ``G.mapping(z)`` gives faces: a fitted Gaussian sampler, or a trained mapping network.

    The default model's MLP mapping was never trained (it was trained as an
    autoencoder), so without its fitted sampler random ``z`` gives no faces.
    """
    if getattr(G, "c_dim", 0):
        return False  # conditional models need a class label the page does not offer
    if type(G.mapping).__name__ == "GaussianMapping":
        return True
    return weights is not None


class Explorer:
    """The model and the work queue behind the web page.

    Args:
        config: see :class:`ExplorerConfig`.
        log: receives one-line status messages.
    """

    def __init__(self, config: ExplorerConfig, log: Callable[[str], None] = lambda m: None) -> None:
        from encoders.code_cache import CodeCache, model_id
        from encoders.morph import check_model, load_models
        from encoders.refine import auto_refine_steps
        from stylegan.errors import CheckpointError
        from stylegan.render import resolve_device

        self.config = config
        self.log = log
        self.device = resolve_device(config.device)
        check_model(config.weights)
        try:
            self.G, self.E = load_models(config.weights, self.device, need_encoder=True, log=log)
        except CheckpointError as err:  # a generator-only file: random faces and .npy only, no photos
            log(f"no encoder: {err}")
            self.G, self.E = load_models(config.weights, self.device, need_encoder=False, log=log)
        self.G.eval()
        self.G_work = copy.deepcopy(self.G)  # the worker's own copy: encoding never blocks a slider
        self.refine_steps = auto_refine_steps(self.G) if config.refine == "auto" else int(config.refine)
        self.model_id = model_id(config.weights)
        self.cache = CodeCache(config.cache_dir) if config.cache_dir is not None else None
        self._memory_cache: dict[str, tuple[torch.Tensor, bytes, bytes]] = {}  # key -> code, recon, crop
        self.directions = _load_directions(self.G)
        self.has_sampler = _has_sampler(self.G, config.weights)
        self.examples = self._find_examples()
        self.sessions = SessionStore(config.limits)
        self.render_lock = threading.Lock()
        self._gallery: list[torch.Tensor] | None = None
        self._gallery_png: dict[int, bytes] = {}
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="explorer-worker", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ info

    @staticmethod
    def _find_examples() -> list[Path]:
        import pretrained

        folder = Path(pretrained.__file__).resolve().parent / "examples"
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in EXAMPLE_SUFFIXES) if folder.is_dir() else []

    def info(self) -> dict[str, Any]:
        """What the page needs to build its controls."""
        from stylegan.interpolation import EASINGS, KINDS, SCHEDULES, layer_groups

        groups = dict(zip(("coarse", "middle", "fine"), (list(g) for g in layer_groups(self.G.num_ws))))
        return {
            "model": self.config.weights or "default", "resolution": self.G.img_resolution,
            "num_ws": self.G.num_ws, "w_dim": self.G.w_dim, "can_encode": self.E is not None,
            "has_sampler": self.has_sampler, "gallery_size": self.config.gallery_size if self.has_sampler else 0,
            "refine_steps": self.refine_steps, "alpha_steps": ALPHA_STEPS, "max_strength": MAX_STRENGTH,
            "directions": [{"name": name, "source": getattr(d, "source", ""),
                            "layers": list(d.layers) if getattr(d, "layers", None) else None}
                           for name, d in self.directions.items()],
            "examples": [{"index": i, "name": p.name} for i, p in enumerate(self.examples)],
            "kinds": list(KINDS), "easings": list(EASINGS), "schedules": list(SCHEDULES),
            "layer_groups": {k: v for k, v in groups.items() if v},
            "max_upload_bytes": self.config.max_upload_bytes, "max_export_frames": self.config.max_export_frames,
        }

    # ------------------------------------------------------------------ adding faces

    def add_photo(self, session: Session, name: str, data: bytes, kind: str = "upload") -> Face:
        """Queue one photo for alignment, encoding and refinement; returns its face at once."""
        if self.E is None:
            raise UserError("this model has no encoder, so it cannot take photos; use random faces")
        face = self._new_face(session, clean_name(name), kind)
        if not data:
            self._fail(face, f"{face.name}: empty file")
        else:
            self._queue.put(("encode", session, face, data))
        return face

    def add_example(self, session: Session, index: Any) -> Face:
        """Queue a bundled example photo (by its index in :meth:`info`)."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.examples):
            raise NotFound(f"unknown example {index!r}")
        path = self.examples[index]
        return self.add_photo(session, path.name, path.read_bytes(), kind="example")

    def _sample(self, seeds: list[int]) -> torch.Tensor:
        from stylegan.render import MappedPath, seeds_to_z

        with self.render_lock:
            return torch.stack([w.float().cpu() for w in
                                MappedPath(self.G, seeds_to_z(seeds, self.G.z_dim), self.config.truncation_psi)])

    def add_random(self, session: Session, seed: Any = None) -> Face:
        """A random face from the model's sampler (seed: an int, or None for a fresh one)."""
        if not self.has_sampler:
            raise UserError("this model has no sampler for random faces")
        if seed is None:
            seed = secrets.randbits(32)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise UserError("seed must be an integer from 0 to 2**32 - 1")
        face = self._new_face(session, f"seed {seed}", "random")
        self._finish(face, self._sample([seed])[0])
        return face

    def gallery(self) -> list[torch.Tensor]:
        """The bundled gallery: random faces of fixed seeds 0..gallery_size-1 (empty without a sampler)."""
        if self._gallery is None:
            n = self.config.gallery_size if self.has_sampler else 0
            self._gallery = list(self._sample(list(range(n)))) if n else []
        return self._gallery

    def gallery_png(self, index: Any) -> bytes:
        codes = self.gallery()
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(codes):
            raise NotFound(f"unknown gallery face {index!r}")
        if index not in self._gallery_png:
            self._gallery_png[index] = self.render_png(codes[index])
        return self._gallery_png[index]

    def add_gallery(self, session: Session, index: Any) -> Face:
        """Copy a gallery face into the session (clicking it on the map)."""
        codes = self.gallery()
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(codes):
            raise NotFound(f"unknown gallery face {index!r}")
        face = self._new_face(session, f"gallery {index}", "gallery")
        self._finish(face, codes[index].clone())
        return face

    def _new_face(self, session: Session, name: str, kind: str) -> Face:
        try:
            return session.add_face(name, kind)
        except LookupError as err:
            raise UserError(str(err)) from None

    def _finish(self, face: Face, ws: torch.Tensor, recon: bytes | None = None) -> None:
        face.ws = ws
        face.reconstruction_png = recon if recon is not None else self.render_png(ws)
        face.status = "ready"

    @staticmethod
    def _fail(face: Face, message: str) -> None:
        face.error = " ".join(message.split())[:300]
        face.status = "error"

    # ------------------------------------------------------------------ the worker

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            task, session, target = item[0], item[1], item[2]
            try:
                if task == "encode":
                    self._encode(session, target, item[3])
                else:
                    self._export(session, target, *item[3:])
            except UserError as err:
                self._failed(task, target, str(err))
            except Exception:  # a bug: keep the trace in the server log, never on the page
                traceback.print_exc(file=sys.stderr)
                self._failed(task, target, "internal error (see the server's log)")
            finally:
                self._queue.task_done()

    def _failed(self, task: str, target: Face | Job, message: str) -> None:
        if task == "encode":
            self._fail(target, message)
        else:
            self._job_failed(target, message)

    def _encode(self, session: Session, face: Face, data: bytes) -> None:
        from encoders.code_cache import photo_key
        from encoders.morph import encode_inputs, prepare_inputs

        key = photo_key(data, self.model_id, self.refine_steps)
        hit = self._memory_cache.get(key)
        if hit is not None:  # seen in this run: code, reconstruction and crop are all known
            face.aligned_png, face.cached = hit[2], True
            self._finish(face, hit[0], hit[1])
            return
        # The photo is written under a name made here, in the session's own folder: neither the
        # upload's name nor its claimed type matters; the decoder judges the content.
        tmp = session.folder / f"upload-{face.id}.img"
        try:
            tmp.write_bytes(data)
            face.status = "aligning"
            try:
                keyframes = prepare_inputs([tmp])
            except UserError as err:
                raise UserError(str(err).replace(str(tmp), face.name)) from None
        finally:
            tmp.unlink(missing_ok=True)
        face.aligned_png = png_bytes(keyframes[0].aligned.resize((256, 256), Image.Resampling.LANCZOS))
        ws = self.cache.get(key) if self.cache is not None else None
        if ws is not None and tuple(ws.shape) == (self.G.num_ws, self.G.w_dim):
            face.cached = True
        else:
            face.status = "encoding"

            def progress(message: str) -> None:
                if message.startswith("refining"):
                    face.status = "refining"

            ws = encode_inputs(keyframes, self.G_work, self.E, log=progress, refine=self.refine_steps)[0]
            if self.cache is not None:
                self.cache.put(key, ws)
        recon = self._render_work(ws)
        if len(self._memory_cache) >= 64:
            self._memory_cache.pop(next(iter(self._memory_cache)))
        self._memory_cache[key] = (ws, recon, face.aligned_png)
        self._finish(face, ws, recon)

    def _render_work(self, ws: torch.Tensor) -> bytes:
        from stylegan.render import render_images

        return png_bytes(render_images(self.G_work, ws.unsqueeze(0), batch_size=1,
                                       precision=self.config.precision)[0])

    # ------------------------------------------------------------------ frames

    def _code_of(self, session: Session, face_id: str, role: str) -> torch.Tensor:
        face = session.face(face_id)
        if face is None:
            raise NotFound(f"unknown face for {role}")
        if face.status != "ready" or face.ws is None:
            raise UserError(f"face {face.name!r} ({role}) is not ready: {face.status}")
        return face.ws

    def _direction(self, name: str) -> Any:
        if name not in self.directions:
            raise NotFound(f"unknown direction {name!r}")
        return self.directions[name]

    def transform(self, session: Session, view: View) -> Callable[[torch.Tensor], torch.Tensor]:
        """The arithmetic, mix and edits of ``view`` as one function of a code (checked now)."""
        arith = None
        if view.arith is not None:
            arith = (self._code_of(session, view.arith[0], "arithmetic B"),
                     self._code_of(session, view.arith[1], "arithmetic C"), view.arith[2])
        mix = None if view.mix is None else (self._code_of(session, view.mix[0], "mix"), view.mix[1])
        edits = [(self._direction(name), strength) for name, strength in view.edits]
        if arith is None and mix is None and not edits:
            return lambda ws: ws
        from stylegan.editing import apply_edit, arithmetic, style_mix

        def apply(ws: torch.Tensor) -> torch.Tensor:
            if arith is not None:
                ws = arithmetic(ws, arith[0], arith[1], scale=arith[2])
            if mix is not None:
                ws = style_mix(ws, mix[0], mix[1])
            for direction, strength in edits:
                ws = apply_edit(ws, direction, strength)
            return ws

        return apply

    def morph_path(self, session: Session, view: View, steps: int) -> Any:
        """The interpolation path A -> B of ``view`` with ``steps`` frames."""
        a = self._code_of(session, view.a, "A")
        b = self._code_of(session, view.b, "B") if view.b is not None else a
        return replace(view.path, steps=steps).path(torch.stack([a, b]))

    def code(self, session: Session, view: View) -> torch.Tensor:
        """The current frame's code [num_ws, w_dim]: frame ``position`` of the morph, then the edits."""
        transform = self.transform(session, view)
        base = self.morph_path(session, view, ALPHA_STEPS + 1)[view.position]
        return transform(base).float()

    def render(self, ws: torch.Tensor) -> np.ndarray:
        """uint8 [H, W, 3] of one code, through the slider generator (locked: one forward pass at a time)."""
        from stylegan.render import render_images

        with self.render_lock:
            return render_images(self.G, ws.unsqueeze(0), batch_size=1, precision=self.config.precision)[0]

    def render_png(self, ws: torch.Tensor) -> bytes:
        return png_bytes(self.render(ws))

    def render_latest(self, session: Session, tab: str, seq: int, ws: torch.Tensor) -> bytes | None:
        """Render a slider frame unless a newer request of the same tab arrived meanwhile (then None).

        The check runs after the generator's lock is taken, so requests that waited
        behind a render are dropped rather than queued: the page only ever waits for
        the newest position of its slider.
        """
        from stylegan.render import render_images

        if not session.accept_seq(tab, seq):
            return None
        with self.render_lock:
            if not session.is_latest(tab, seq):
                return None
            frame = render_images(self.G, ws.unsqueeze(0), batch_size=1, precision=self.config.precision)[0]
        return png_bytes(frame)

    # ------------------------------------------------------------------ the map

    def latent_map(self, session: Session, method: str) -> dict[str, Any]:
        """2-D coordinates of the session's ready faces and the gallery (PCA or t-SNE)."""
        from encoders.latent_map import project

        if method not in ("pca", "tsne"):
            raise UserError("method must be pca or tsne")
        with session.lock:
            faces = [f for f in session.faces.values() if f.status == "ready" and f.ws is not None]
        points = [{"kind": "face", "id": f.id, "name": f.name} for f in faces]
        codes = [f.ws for f in faces]
        for i, ws in enumerate(self.gallery()):
            points.append({"kind": "gallery", "index": i, "name": f"gallery {i}"})
            codes.append(ws)
        if len(codes) < 3:
            return {"method": method, "points": [], "message": "the map needs at least 3 faces"}
        xy = project(torch.stack(codes), method)
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        xy = (xy - lo) / np.where(hi > lo, hi - lo, 1.0)  # 0..1 on both axes for the page
        for p, (x, y) in zip(points, xy):
            p["x"], p["y"] = round(float(x), 4), round(float(y), 4)
        return {"method": method, "points": points, "message": ""}

    # ------------------------------------------------------------------ export

    def export(self, session: Session, view: View, steps: Any, fps: Any) -> Job:
        """Queue a video of the morph A -> B (with the view's edits); returns its job at once."""
        if view.b is None:
            raise UserError("choose two faces (A and B) to export a morph")
        if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= self.config.max_export_frames:
            raise UserError(f"steps must be an integer from 2 to {self.config.max_export_frames}")
        fps = _number(fps, "fps", 1, 60)
        path = self.morph_path(session, view, steps)  # checks the faces now, not in the worker
        transform = self.transform(session, view)
        try:
            job = session.add_job(len(path))
        except LookupError as err:
            raise UserError(str(err)) from None
        render = RenderSpec(fps=fps, precision=self.config.precision)
        self._queue.put(("export", session, job, path, transform, render))
        return job

    def _export(self, session: Session, job: Job, path: Any, transform: Callable, render: RenderSpec) -> None:
        from stylegan.render import render_video

        start = time.perf_counter()
        job.status = "rendering"
        dest = session.folder / f"export-{job.id}.mp4"

        def count(index: int, frame: np.ndarray) -> np.ndarray:
            job.done = index + 1
            return frame

        render_video(self.G_work, _EditedPath(path, transform), dest, **render.video_options(), progress=False,
                     compose=count)
        job.path, job.seconds, job.status = dest, time.perf_counter() - start, "done"

    @staticmethod
    def _job_failed(job: Job, message: str) -> None:
        job.error = " ".join(message.split())[:300]
        job.status = "error"

    # ------------------------------------------------------------------ lifetime

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until the worker has nothing queued (tests and benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        """Stop the worker and delete every session's files."""
        self._stop.set()
        self._worker.join(timeout=5)
        self.sessions.close()
