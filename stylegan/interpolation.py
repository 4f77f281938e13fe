"""Latent paths for morph videos: lerp/slerp, easing, holds, keyframes and per-layer timing.

Everything here is a pure function of its arguments (no model, no randomness),
so a path can be checked frame by frame before anything is rendered.

The building blocks:

- :func:`alphas` -- ``n`` evenly spaced blend weights ``i / (n - 1)``, both ends included;
- :func:`lerp` and :func:`slerp` -- blend two codes row by row over the last dim;
- easings (:func:`linear`, :func:`ease_in_out`, :func:`cosine`) -- reshape time
  ``t`` in [0, 1] while keeping 0 -> 0 and 1 -> 1 exactly;
- :class:`LayerSchedule` -- lets the coarse, middle and fine style positions of a
  W+ code blend at different times ("shape first, then colour");
- :func:`interpolation_path` -- keyframes A -> B -> C ... (optionally looping
  back to A) with holds, yielding one code per frame *lazily*: memory does not
  grow with the number of frames.

Example:
    >>> keys = torch.randn(3, 18, 512)                 # three W+ codes
    >>> path = interpolation_path(keys, steps=30, hold=5, schedule="coarse-to-fine")
    >>> len(path) == num_frames(3, steps=30, hold=5)
    True
    >>> first = next(iter(path))                       # [18, 512], equal to keys[0]
    >>> bool(torch.equal(first, keys[0]))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, Union

import torch

__all__ = [
    "alphas", "lerp", "slerp", "linear", "ease_in_out", "cosine", "EASINGS", "get_easing",
    "layer_groups", "LayerSchedule", "SCHEDULES", "get_schedule", "layer_alphas",
    "num_frames", "InterpolationPath", "interpolation_path", "KINDS",
]

KINDS = ("lerp", "slerp")

# Below this angle (radians) between two codes slerp is numerically the same as
# lerp (the difference is O(angle^2) relative, < 1e-12 here) and its
# sin(angle) denominator loses precision, so we use lerp. The same margin
# around pi flags antiparallel codes, where the great circle is not unique.
_SLERP_EPS = 1e-6


def alphas(n: int) -> torch.Tensor:
    """``n`` evenly spaced blend weights from 0 to 1, both ends included.

    Args:
        n: number of weights, at least 2.

    Returns:
        float64 tensor [n] with ``alpha_i = i / (n - 1)``; exactly 0.0 first and 1.0 last.

    Raises:
        ValueError: ``n < 2`` (a path needs both of its endpoints).

    Example:
        >>> alphas(5).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if int(n) != n or n < 2:
        raise ValueError(f"need at least 2 steps (both endpoints), got {n}")
    n = int(n)
    return torch.arange(n, dtype=torch.float64) / (n - 1)


def _as_weight(t: float | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(t, dtype=like.dtype, device=like.device)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Linear blend ``a + t * (b - a)``, exact at both ends.

    ``torch.lerp`` computes ``b - (b - a) * (1 - t)`` for ``t >= 0.5``, so ``t = 1``
    returns ``b`` bit for bit (the naive formula can be off by one ulp).

    Args:
        a, b: [..., D] codes of the same shape.
        t: a float, or a tensor broadcastable to ``a`` (e.g. [..., 1] for a weight per row).

    Returns:
        [..., D], dtype of ``a``.
    """
    return torch.lerp(a, b, _as_weight(t, a))


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical blend of each row (last dim) of ``a`` and ``b``, exact at both ends.

    For an angle ``w`` between the rows, ``slerp = sin((1-t) w)/sin(w) a + sin(t w)/sin(w) b``.
    Rows need not be unit length: the norm is blended along with the direction,
    which is what Gaussian ``z`` codes want (their norms are all close to sqrt(D)).

    The angle is computed as ``2 atan2(|â - b̂|, |â + b̂|)`` in float64, which stays
    accurate for nearly parallel rows where ``acos(dot)`` does not. Rows that are
    (nearly) parallel, (nearly) antiparallel or zero fall back to :func:`lerp`:
    for parallel rows the two agree, and for antiparallel ones no single great
    circle exists.

    Args:
        a, b: [..., D] codes of the same shape.
        t: a float, or a tensor broadcastable to ``a[..., :1]`` (a weight per row).

    Returns:
        [..., D], dtype of ``a``.

    Example:
        >>> a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
        >>> slerp(a, b, 0.5)
        tensor([[0.7071, 0.7071]])
    """
    if a.shape != b.shape:
        raise ValueError(f"slerp needs codes of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a64, b64 = a.double(), b.double()
    na = a64.norm(dim=-1, keepdim=True)
    nb = b64.norm(dim=-1, keepdim=True)
    ua = a64 / na.clamp_min(1e-30)
    ub = b64 / nb.clamp_min(1e-30)
    omega = 2 * torch.atan2((ua - ub).norm(dim=-1, keepdim=True), (ua + ub).norm(dim=-1, keepdim=True))
    sin_omega = torch.sin(omega)
    degenerate = (sin_omega < _SLERP_EPS) | (na < 1e-30) | (nb < 1e-30)  # [..., 1]
    tt = torch.as_tensor(t, dtype=torch.float64, device=a.device)
    safe_sin = torch.where(degenerate, torch.ones_like(sin_omega), sin_omega)
    # (1 - t) * w is exactly w at t = 0 and exactly 0 at t = 1, so the
    # coefficients are exactly (1, 0) and (0, 1) at the ends.
    ca = torch.sin((1 - tt) * omega) / safe_sin
    cb = torch.sin(tt * omega) / safe_sin
    out = (ca.to(a.dtype) * a + cb.to(a.dtype) * b)
    if bool(degenerate.any()):
        out = torch.where(degenerate.to(a.device), lerp(a, b, _as_weight(tt, a)), out)
    return out


# ----------------------------------------------------------------------------- easing


def linear(t: torch.Tensor) -> torch.Tensor:
    """Constant speed: ``t``."""
    return t


def ease_in_out(t: torch.Tensor) -> torch.Tensor:
    """Smoothstep ``3t^2 - 2t^3``: starts and stops with zero speed, exact at 0 and 1."""
    return t * t * (3 - 2 * t)


def cosine(t: torch.Tensor) -> torch.Tensor:
    """``(1 - cos(pi t)) / 2``: a gentler ease-in-out with the same end points."""
    return (1 - torch.cos(math.pi * t)) / 2


EASINGS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": linear,
    "ease-in-out": ease_in_out,
    "cosine": cosine,
}


def get_easing(easing: str | Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Look up an easing by name (``linear``, ``ease-in-out``, ``cosine``) or pass a callable through.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if callable(easing):
        return easing
    key = str(easing).replace("_", "-").lower()
    if key not in EASINGS:
        raise ValueError(f"unknown easing {easing!r}; choose one of {', '.join(EASINGS)}")
    return EASINGS[key]


# ----------------------------------------------------------------------------- per-layer schedule

# Style positions by what they control (StyleGAN, Karras et al. 2019, section 3.1):
# coarse = 4^2 - 8^2 (pose, face shape), middle = 16^2 - 32^2 (features, hair style),
# fine = 64^2 and up (colour scheme, micro texture). In W+ the k-th block uses
# positions 2k-1 .. 2k+1, so the boundaries are the same w indices (4 and 8)
# whatever the model's resolution; only the length of the fine group changes.
_COARSE_END = 4
_MIDDLE_END = 8


def layer_groups(num_ws: int) -> tuple[range, range, range]:
    """The coarse, middle and fine w positions of a ``num_ws`` code.

    The split follows resolution, so it is ``0-3 | 4-7 | 8..num_ws-1`` for every model:
    18 ws (1024 px): 0-3, 4-7, 8-17; 14 ws (256 px): 0-3, 4-7, 8-13; models below
    64 px (num_ws <= 8) have no fine group and below 16 px no middle group.

    Args:
        num_ws: number of W+ positions.

    Returns:
        Three ranges (possibly empty) that cover ``range(num_ws)`` in order.
    """
    if num_ws < 1:
        raise ValueError(f"num_ws must be positive, got {num_ws}")
    c = min(_COARSE_END, num_ws)
    m = min(_MIDDLE_END, num_ws)
    return range(0, c), range(c, m), range(m, num_ws)


@dataclass(frozen=True)
class LayerSchedule:
    """When each group of style positions blends, as a window of segment time.

    Within one segment (keyframe to keyframe) time ``t`` runs from 0 to 1. Group
    ``g`` stays at the start code until ``t = start_g``, ramps linearly (then through
    the easing) to the end code by ``t = end_g``, and stays there. Windows inside
    [0, 1] guarantee that every position is exactly at the start code at ``t = 0``
    and at the end code at ``t = 1``.

    Attributes:
        coarse, middle, fine: ``(start, end)`` windows with ``0 <= start < end <= 1``.
    """

    coarse: tuple[float, float] = (0.0, 1.0)
    middle: tuple[float, float] = (0.0, 1.0)
    fine: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("coarse", "middle", "fine"):
            start, end = getattr(self, name)
            if not 0.0 <= start < end <= 1.0:
                raise ValueError(f"{name} window must satisfy 0 <= start < end <= 1, got ({start}, {end})")

    @property
    def windows(self) -> tuple[tuple[float, float], ...]:
        return (self.coarse, self.middle, self.fine)


# Shape first, then colour: each group takes 60% of the segment, staggered by 20%,
# so at any time at most two groups move and every group moves for a while.
SCHEDULES: dict[str, LayerSchedule] = {
    "uniform": LayerSchedule(),
    "coarse-to-fine": LayerSchedule((0.0, 0.6), (0.2, 0.8), (0.4, 1.0)),
    "fine-to-coarse": LayerSchedule((0.4, 1.0), (0.2, 0.8), (0.0, 0.6)),
}

ScheduleLike = Union[str, LayerSchedule, None]


def get_schedule(schedule: ScheduleLike) -> LayerSchedule | None:
    """Name (``uniform``, ``coarse-to-fine``, ``fine-to-coarse``), a :class:`LayerSchedule`, or None.

    Returns:
        The schedule, or None for uniform timing (all positions blend together).
    """
    if schedule is None or isinstance(schedule, LayerSchedule):
        return None if schedule == SCHEDULES["uniform"] else schedule
    key = str(schedule).replace("_", "-").lower()
    if key not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return get_schedule(SCHEDULES[key])


def layer_alphas(t: float, num_ws: int, schedule: ScheduleLike = None,
                 easing: str | Callable[[torch.Tensor], torch.Tensor] = "linear") -> torch.Tensor:
    """Blend weight of every style position at segment time ``t``.

    Args:
        t: time within the segment, 0 to 1.
        num_ws: number of W+ positions.
        schedule: see :func:`get_schedule`; None blends all positions together.
        easing: applied to each group's own ramp (so every group eases in and out).

    Returns:
        float64 tensor [num_ws]; all exactly 0 at ``t = 0`` and 1 at ``t = 1``.
    """
    ease = get_easing(easing)
    sched = get_schedule(schedule)
    tt = torch.tensor(float(t), dtype=torch.float64)
    if sched is None:
        return ease(tt).expand(num_ws).clone()
    out = torch.empty(num_ws, dtype=torch.float64)
    for group, (start, end) in zip(layer_groups(num_ws), sched.windows):
        if len(group):
            out[group.start: group.stop] = ease(((tt - start) / (end - start)).clamp(0.0, 1.0))
    return out


# ----------------------------------------------------------------------------- paths


def num_frames(num_keyframes: int, steps: int, hold: int = 0, loop: bool = False) -> int:
    """Frames in an :func:`interpolation_path`.

    Each of the ``S`` segments has ``steps`` frames including both keyframes,
    neighbouring segments share their keyframe, and each keyframe is shown
    ``hold`` extra times. Open paths (``S = K - 1``) end on the last keyframe;
    looping paths (``S = K``) stop one frame short of the first keyframe so that
    the video repeats seamlessly.

    Returns:
        ``K * hold + S * (steps - 1) + 1`` for open paths, ``K * (hold + steps - 1)``
        for loops. Two keyframes, no loop: ``steps + 2 * hold``.
    """
    _check_path_args(num_keyframes, steps, hold)
    if loop:
        return num_keyframes * (hold + steps - 1)
    return num_keyframes * hold + (num_keyframes - 1) * (steps - 1) + 1


def _check_path_args(num_keyframes: int, steps: int, hold: int) -> None:
    if num_keyframes < 2:
        raise ValueError(f"a path needs at least 2 keyframes, got {num_keyframes}")
    if int(steps) != steps or steps < 2:
        raise ValueError(f"steps must be at least 2 (both endpoints), got {steps}")
    if int(hold) != hold or hold < 0:
        raise ValueError(f"hold must be a non-negative number of frames, got {hold}")


class InterpolationPath:
    """A lazy sequence of codes through keyframes; see :func:`interpolation_path`.

    Iterating computes one frame at a time from the keyframes, so a path of a
    million frames costs no more memory than one of ten. ``len(path)`` is the
    frame count and ``path[i]`` any single frame.
    """

    def __init__(self, keyframes: torch.Tensor, steps: int, kind: str = "lerp",
                 easing: str | Callable[[torch.Tensor], torch.Tensor] = "linear", hold: int = 0,
                 loop: bool = False, schedule: ScheduleLike = None) -> None:
        if not isinstance(keyframes, torch.Tensor) or keyframes.ndim < 2:
            raise ValueError("keyframes must be a tensor [K, ...] with K >= 2")
        _check_path_args(keyframes.shape[0], steps, hold)
        if kind not in KINDS:
            raise ValueError(f"unknown interpolation kind {kind!r}; choose one of {', '.join(KINDS)}")
        self.keyframes = keyframes.detach()
        self.steps, self.kind, self.hold, self.loop = int(steps), kind, int(hold), bool(loop)
        self.easing = get_easing(easing)
        self.schedule = get_schedule(schedule)
        if self.schedule is not None and keyframes.ndim != 3:
            raise ValueError(f"a layer schedule needs W+ keyframes [K, num_ws, w_dim], got {tuple(keyframes.shape)}")
        self._blend = lerp if kind == "lerp" else slerp

    @property
    def num_keyframes(self) -> int:
        return int(self.keyframes.shape[0])

    @property
    def num_segments(self) -> int:
        return self.num_keyframes if self.loop else self.num_keyframes - 1

    def __len__(self) -> int:
        return num_frames(self.num_keyframes, self.steps, self.hold, self.loop)

    def locate(self, index: int) -> tuple[int, float]:
        """Which segment frame ``index`` belongs to and its time in it.

        Segment ``s`` runs from keyframe ``s`` to ``(s + 1) % K``. Hold frames of a
        keyframe belong to the segment that starts there (the last keyframe's to the
        last segment).

        Returns:
            ``(segment, t)`` with ``t`` in [0, 1] before easing.
        """
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"frame {index} out of range for a path of {n} frames")
        block = self.hold + self.steps - 1  # frames from one keyframe up to (not incl.) the next
        segment, j = divmod(index, block)
        if segment >= self.num_segments:  # open path: the last keyframe and its hold
            return self.num_segments - 1, 1.0
        # k / (steps - 1) in float64, the same value as alphas(steps)[k], computed
        # on demand so that memory does not grow with steps.
        return segment, max(0, j - self.hold) / (self.steps - 1)

    def weights(self, t: float) -> torch.Tensor:
        """Blend weight at segment time ``t`` after easing and schedule, shaped to broadcast over a keyframe."""
        kf = self.keyframes
        if self.schedule is None:
            w = self.easing(torch.tensor(float(t), dtype=torch.float64))
            return w.to(kf.dtype)
        w = layer_alphas(t, kf.shape[1], self.schedule, self.easing)  # [num_ws]
        return w.to(kf.dtype).unsqueeze(-1)  # [num_ws, 1]

    def __getitem__(self, index: int) -> torch.Tensor:
        segment, t = self.locate(index)
        a = self.keyframes[segment]
        b = self.keyframes[(segment + 1) % self.num_keyframes]
        if t == 0.0:  # keyframes come out bit-exact whatever the blend
            return a.clone()
        if t == 1.0:
            return b.clone()
        return self._blend(a, b, self.weights(t))

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(len(self)):
            yield self[i]

    def tensor(self) -> torch.Tensor:
        """All frames at once, [N, ...]: only for short paths (memory grows with N)."""
        return torch.stack(list(self))


def interpolation_path(keyframes: torch.Tensor | Sequence[torch.Tensor], steps: int, kind: str = "lerp",
                       easing: str | Callable[[torch.Tensor], torch.Tensor] = "linear", hold: int = 0,
                       loop: bool = False, schedule: ScheduleLike = None) -> InterpolationPath:
    """Codes for every frame of a morph through ``keyframes``, computed lazily.

    Args:
        keyframes: [K, num_ws, w_dim] W+ codes (or [K, D] codes such as ``z``), K >= 2.
        steps: frames per segment including both of its keyframes (>= 2); with two
            keyframes ``alpha_i = i / (steps - 1)``.
        kind: ``"lerp"`` (straight line; right for W/W+) or ``"slerp"`` (great circle per
            row; right for Gaussian ``z``).
        easing: ``"linear"``, ``"ease-in-out"`` (smoothstep), ``"cosine"`` or a callable on [0, 1].
        hold: extra frames that repeat each keyframe (a pause on every face).
        loop: add a segment from the last keyframe back to the first; the final frame
            stops one step short so the video loops without a doubled frame.
        schedule: per-layer timing (:data:`SCHEDULES` name or :class:`LayerSchedule`);
            ``"coarse-to-fine"`` morphs pose and shape first, then colour and texture.

    Returns:
        An :class:`InterpolationPath`: iterate it for [num_ws, w_dim] frames, ``len()`` for the count.

    Raises:
        ValueError: fewer than 2 keyframes or steps, a negative hold, unknown kind/easing/schedule.
    """
    if not isinstance(keyframes, torch.Tensor):
        keyframes = torch.stack(list(keyframes))
    return InterpolationPath(keyframes, steps, kind=kind, easing=easing, hold=hold, loop=loop, schedule=schedule)
