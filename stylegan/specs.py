"""What a path through codes looks like, and how it is rendered: two frozen, validated specs.

Every caller that makes a video from codes (``encoders.morph``, :func:`stylegan.render.seed_interpolation`,
the editing sweeps, the explorer, the tools) describes the same two things with the same
words, so they are written down once:

* :class:`PathSpec` -- steps, hold, easing, kind, schedule, loop: *which* codes, frame by frame;
* :class:`RenderSpec` -- fps, crf, size, batch_size, noise_mode, precision: *how* they become pixels.

A spec checks itself when it is made, so a bad value fails before any model is loaded.
Messages name parameters (``steps must be at least 2``); the tools show them as flags
(``--steps``). Specs are plain frozen dataclasses: compare, hash and ``dataclasses.replace``
them freely.

    >>> spec = PathSpec(steps=30, hold=5, schedule="coarse-to-fine")
    >>> spec.num_frames(3)
    74
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping, TypeVar

import torch

from .errors import UserError
from .interpolation import (EASINGS, KINDS, SCHEDULES, InterpolationPath, LayerSchedule, interpolation_path,
                            num_frames)
from .limits import MAX_BATCH, MAX_FRAMES, check_crf, check_fps, check_size
from .networks import NOISE_MODES
from .precision import PRECISIONS
from .video import DEFAULT_CRF

__all__ = ["PathSpec", "RenderSpec", "specs_from_keywords"]


def _whole(name: str, value: object, low: int, high: int, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UserError(f"{name} must be a whole number, got {value!r:.40}")
    if not low <= value <= high:
        raise UserError(f"{name} must be {meaning}, got {value}")


def _name(name: str, value: object, choices: Mapping[str, object]) -> str:
    key = str(value).replace("_", "-").lower() if isinstance(value, str) else value
    _choice(name, key, tuple(choices))
    return key  # type: ignore[return-value]


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{name} must be one of {', '.join(choices)}, got {value!r:.40}")


@dataclass(frozen=True)
class PathSpec:
    """The frames of a path through keyframe codes.

    Args:
        steps: frames per transition including both end codes (2 .. :data:`~stylegan.limits.MAX_FRAMES`);
            with two keyframes ``alpha_i = i / (steps - 1)``.
        hold: extra frames that pause on every keyframe (0 .. ``MAX_FRAMES``).
        easing: ``linear``, ``ease-in-out`` or ``cosine``.
        kind: ``lerp`` (straight lines; right for W/W+) or ``slerp`` (great circles; right for Gaussian z).
        schedule: ``uniform``, ``coarse-to-fine`` (shape first, then colour) or ``fine-to-coarse``.
        loop: go from the last keyframe back to the first, for a seamless loop.
    """

    steps: int = 60
    hold: int = 0
    easing: str = "linear"
    kind: str = "lerp"
    schedule: str | LayerSchedule = "uniform"
    loop: bool = False

    def __post_init__(self) -> None:
        _whole("steps", self.steps, 2, MAX_FRAMES, f"at least 2 (both end codes) and at most {MAX_FRAMES:,}")
        _whole("hold", self.hold, 0, MAX_FRAMES, f"0 or more frames and at most {MAX_FRAMES:,}")
        _choice("kind", self.kind, KINDS)
        if not isinstance(self.loop, bool):
            raise UserError(f"loop must be True or False, got {self.loop!r:.40}")
        # Names are stored in their canonical spelling ("ease_in_out" -> "ease-in-out"; None -> "uniform"),
        # so that equal paths compare equal; a custom LayerSchedule is kept as it is.
        object.__setattr__(self, "easing", _name("easing", self.easing, EASINGS))
        if self.schedule is None:
            object.__setattr__(self, "schedule", "uniform")
        elif not isinstance(self.schedule, LayerSchedule):
            object.__setattr__(self, "schedule", _name("schedule", self.schedule, SCHEDULES))

    def num_frames(self, num_keyframes: int) -> int:
        """Frames in a path through ``num_keyframes`` codes (see :func:`stylegan.interpolation.num_frames`)."""
        return num_frames(num_keyframes, self.steps, self.hold, self.loop)

    def path(self, keyframes: torch.Tensor) -> InterpolationPath:
        """The lazy path through ``keyframes`` [K, ...] (see :func:`stylegan.interpolation.interpolation_path`)."""
        return interpolation_path(keyframes, self.steps, kind=self.kind, easing=self.easing, hold=self.hold,
                                  loop=self.loop, schedule=self.schedule)


@dataclass(frozen=True)
class RenderSpec:
    """How codes become frames and a file.

    Args:
        fps: frames per second (0 < fps <= :data:`~stylegan.limits.MAX_FPS`; a GIF plays at most 50).
        crf: H.264 quality for MP4, 0 (lossless) .. 51 (worst).
        size: frame side in pixels (1 .. :data:`~stylegan.limits.MAX_SIZE`); None keeps the model's.
        batch_size: frames synthesised together (1 .. :data:`~stylegan.limits.MAX_BATCH`); bounds memory.
        noise_mode: ``const`` (stored noise: a steady video), ``random`` or ``none``.
        precision: ``fp32`` (exact), ``auto``, ``bf16`` or ``fp16`` (see :mod:`stylegan.precision`);
            whether the device can do it is checked where the device is known.
    """

    fps: float = 30
    crf: int = DEFAULT_CRF
    size: int | None = None
    batch_size: int = 4
    noise_mode: str = "const"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        check_fps(self.fps)
        check_crf(self.crf)
        check_size(self.size)
        _whole("batch_size", self.batch_size, 1, MAX_BATCH, f"at least 1 and at most {MAX_BATCH}")
        _choice("noise_mode", self.noise_mode, NOISE_MODES)
        if not isinstance(self.precision, torch.dtype):  # library callers may pass a dtype
            _choice("precision", self.precision, PRECISIONS)

    def frame_options(self) -> dict[str, Any]:
        """The keywords of :func:`stylegan.render.render_frames` that this spec sets."""
        return {"batch_size": self.batch_size, "noise_mode": self.noise_mode, "size": self.size,
                "precision": self.precision}

    def video_options(self) -> dict[str, Any]:
        """The keywords of :func:`stylegan.render.render_video` that this spec sets."""
        return {"fps": self.fps, "crf": self.crf, **self.frame_options()}


Spec = TypeVar("Spec", PathSpec, RenderSpec)


def _merge(spec: Spec, keywords: dict[str, Any], owner: str) -> Spec:
    """``spec`` with the loose keywords that belong to it, warning that the keywords are deprecated."""
    names = {f.name for f in fields(spec)}
    mine = {k: keywords.pop(k) for k in list(keywords) if k in names}
    if mine:
        warnings.warn(f"{owner}({', '.join(f'{k}=' for k in mine)}) is deprecated; pass "
                      f"{'path' if isinstance(spec, PathSpec) else 'render'}="
                      f"{type(spec).__name__}({', '.join(f'{k}=...' for k in mine)})",
                      DeprecationWarning, stacklevel=4)
        spec = replace(spec, **mine)
    return spec


def specs_from_keywords(path: PathSpec | None, render: RenderSpec | None, keywords: Mapping[str, Any],
                        owner: str) -> tuple[PathSpec, RenderSpec]:
    """Specs for a function that used to take their fields as loose keywords (kept for one release).

    Args:
        path, render: the specs passed (None = the defaults).
        keywords: the loose keywords passed (``steps=30``, ``fps=25``, ...); they override the
            specs' fields with a :class:`DeprecationWarning`.
        owner: the function's name, for the messages.

    Raises:
        TypeError: a keyword that is neither spec's field (as Python would for a typo).
        UserError: a value that the specs refuse.
    """
    rest = dict(keywords)
    path = _merge(path if path is not None else PathSpec(), rest, owner)
    render = _merge(render if render is not None else RenderSpec(), rest, owner)
    if rest:
        raise TypeError(f"{owner}() got unexpected keyword arguments: {', '.join(sorted(rest))}")
    return path, render
