"""Bounds on what one run may ask for, and the plan printed before long work starts.

A careless or crafted option must fail in one line before any work, not after an hour
or a 480 GB allocation. The library checks parameters by name (``fps must be ...``);
the tools translate names to flags (``--fps``).

=============================  ===============================================================
``size`` (frame/face side)     1 .. :data:`MAX_SIZE` px
``fps``                        finite, 0 < fps <= :data:`MAX_FPS`
``crf``                        integer 0 .. 51 (x264's range)
``batch_size``                 1 .. :data:`MAX_BATCH` frames synthesised together
one image (a grid of faces)    :data:`MAX_IMAGE_PIXELS` pixels
frames of one video            more than :data:`CONFIRM_FRAMES`, or an estimated time over
                               :data:`CONFIRM_SECONDS`, needs ``yes=True`` (``--yes``);
                               more than :data:`MAX_FRAMES` is refused outright
=============================  ===============================================================

Time estimates come from a *measured* frame: :func:`measure_seconds_per_frame` synthesises
one frame on the run's own device (after a warm-up frame on a GPU, whose first call may
build kernels). Batching makes the real render somewhat faster, so the estimate errs long.
Disk estimates use bytes-per-pixel constants observed on morph videos (:data:`BYTES_PER_PIXEL`).
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass
from typing import Callable

from .errors import UserError

__all__ = [
    "MAX_SIZE", "MAX_FPS", "MAX_FRAMES", "MAX_BATCH", "CONFIRM_FRAMES", "CONFIRM_SECONDS", "MAX_IMAGE_PIXELS",
    "BYTES_PER_PIXEL", "check_size", "check_fps", "check_crf", "check_frame_count", "check_grid", "RenderPlan",
    "measure_seconds_per_frame", "measure_generator", "human_bytes", "human_seconds"
]

MAX_SIZE = 4096  # 4096^2 RGB frames are 48 MB each; the largest StyleGAN2 models are 1024 px
MAX_FPS = 240.0  # above any display; ffmpeg writes 0-second files at absurd rates
MAX_FRAMES = 1_000_000  # 9 h at 30 fps: a hard stop, even with yes=True
CONFIRM_FRAMES = 10_000  # 5.5 min at 30 fps; above this the run must be confirmed
CONFIRM_SECONDS = 3600.0  # estimated render time above which the run must be confirmed
MAX_BATCH = 256  # frames synthesised together; 256 frames of 1024^2 activations already need ~100 GB
MAX_IMAGE_PIXELS = 2**27  # one image (a grid of faces) held in memory: 134 MP, 400 MB as uint8 RGB
# Observed on morph videos (smooth faces): H.264 at crf 18 ~0.1 B/px, GIF ~0.5, PNG ~1.5 (of 3 raw).
BYTES_PER_PIXEL = {"mp4": 0.1, "gif": 0.5, "frames": 1.5, "image": 1.5}


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_size(size: object, name: str = "size", maximum: int = MAX_SIZE) -> None:
    """``None`` (keep the model's resolution) or an integer side from 1 to ``maximum`` (:data:`MAX_SIZE`)."""
    if size is None:
        return
    if not _is_int(size):
        raise UserError(f"{name} must be a whole number of pixels, got {size!r}")
    if not 1 <= size <= maximum:
        raise UserError(f"{name} must be a positive number of pixels, at most {maximum}, got {size}")


def check_fps(fps: object, name: str = "fps") -> None:
    """A finite frame rate with 0 < fps <= :data:`MAX_FPS` (GIFs play at most 50 fps; see ``stylegan.video``)."""
    if not isinstance(fps, numbers.Real) or isinstance(fps, bool) or not math.isfinite(fps):
        raise UserError(f"{name} must be a finite number of frames per second, got {fps!r}")
    if not 0 < fps <= MAX_FPS:
        raise UserError(f"{name} must be above 0 and at most {MAX_FPS:g}, got {fps:g}")


def check_crf(crf: object, name: str = "crf") -> None:
    """x264's constant rate factor: an integer from 0 (lossless) to 51."""
    if not _is_int(crf) or not 0 <= crf <= 51:
        raise UserError(f"{name} must be an integer from 0 (lossless) to 51, got {crf!r}")


def check_frame_count(frames: int, yes: bool = False, what: str = "frames") -> None:
    """Refuse more than :data:`MAX_FRAMES`, and more than :data:`CONFIRM_FRAMES` unless ``yes``."""
    if frames > MAX_FRAMES:
        raise UserError(f"{frames} {what} is more than the limit of {MAX_FRAMES}; ask for fewer")
    if frames > CONFIRM_FRAMES and not yes:
        raise UserError(f"{frames} {what} is more than {CONFIRM_FRAMES}; set yes=True to go ahead")


def check_grid(faces: int, side: int) -> None:
    """Refuse a grid image of ``faces`` faces of ``side`` px that would exceed :data:`MAX_IMAGE_PIXELS`."""
    if faces * side * side > MAX_IMAGE_PIXELS:
        most = max(1, MAX_IMAGE_PIXELS // (side * side))
        raise UserError(f"a grid of {faces} faces at {side}x{side} would be {faces * side * side / 1e6:.0f} MP; "
                        f"at most {most} faces fit in one image at this size (use a video, or fewer seeds)")


def human_seconds(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def human_bytes(size: float) -> str:
    """``800 kB``, ``12 MB``, ``3.1 GB`` (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.{1 if size < 10 * scale else 0}f} {unit}"
    return f"{size:.0f} B"


@dataclass(frozen=True)
class RenderPlan:
    """What a render is about to cost: frames, time (from a measured frame) and disk.

    Attributes:
        frames: frames to render.
        width, height: frame size in pixels.
        kind: ``mp4``, ``gif``, ``frames`` or ``image`` (picks the bytes-per-pixel constant).
        seconds_per_frame: measured synthesis time of one frame; None when not measured.
        unit: what is counted, for messages (``frames``, ``faces``).
    """

    frames: int
    width: int
    height: int
    kind: str
    seconds_per_frame: float | None = None
    unit: str = "frames"

    def __post_init__(self) -> None:
        if self.frames < 0 or self.width < 1 or self.height < 1:
            raise ValueError(f"bad plan {self}")
        if self.kind not in BYTES_PER_PIXEL:
            raise ValueError(f"kind must be one of {', '.join(BYTES_PER_PIXEL)}, got {self.kind!r}")

    @property
    def seconds(self) -> float | None:
        """Estimated render time, or None when no frame was measured."""
        return None if self.seconds_per_frame is None else self.frames * self.seconds_per_frame

    @property
    def disk_bytes(self) -> float:
        """Rough size of the output."""
        return self.frames * self.width * self.height * BYTES_PER_PIXEL[self.kind]

    def describe(self) -> str:
        """One line, e.g. ``600 frames at 256x256: about 8 min (measured 0.8 s/frame), about 4 MB as mp4``."""
        text = f"{self.frames} {self.unit} at {self.width}x{self.height}"
        if self.seconds is not None:
            text += f": about {human_seconds(self.seconds)} (measured {self.seconds_per_frame:.2g} s/frame)"
        return text + f", about {human_bytes(self.disk_bytes)} as {self.kind}"

    def check(self, yes: bool = False) -> None:
        """Refuse a plan over the frame or time limits unless ``yes`` (see :func:`check_frame_count`)."""
        check_frame_count(self.frames, yes, self.unit)
        if self.seconds is not None and self.seconds > CONFIRM_SECONDS and not yes:
            raise UserError(f"{self.describe()}; that is over {human_seconds(CONFIRM_SECONDS)}, "
                            "set yes=True to go ahead")


def measure_seconds_per_frame(synthesise: Callable[[], object], warm_up: bool = False) -> float:
    """Wall time of one call of ``synthesise`` (one frame), after an untimed warm-up call if asked.

    Args:
        synthesise: renders one frame (and synchronises the device, if asynchronous).
        warm_up: call once untimed first (GPUs build kernels and allocate on the first call).
    """
    if warm_up:
        synthesise()
    start = time.perf_counter()
    synthesise()
    return time.perf_counter() - start


def measure_generator(G: object, noise_mode: str = "const") -> float:
    """Seconds one frame of ``G`` takes on its own device (see :func:`measure_seconds_per_frame`)."""
    import torch  # deferred: the limits themselves need no torch

    param = next(G.parameters())  # type: ignore[attr-defined]
    ws = torch.zeros(1, G.num_ws, G.w_dim, device=param.device, dtype=param.dtype)  # type: ignore[attr-defined]
    cuda = param.device.type == "cuda"

    def once() -> None:
        with torch.inference_mode():
            G.synthesis(ws, noise_mode=noise_mode)  # type: ignore[attr-defined]
        if cuda:
            torch.cuda.synchronize(param.device)

    return measure_seconds_per_frame(once, warm_up=cuda)
