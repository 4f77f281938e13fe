"""Render W+ codes to uint8 frames in batches, and stream them into videos, grids and images.

Frames are synthesised ``batch_size`` at a time under ``torch.inference_mode``
and handed out one by one as uint8 [H, W, 3] arrays, so a video of any length
needs memory for one batch only. ``noise_mode="const"`` (the default) uses the
generator's stored noise for every frame: fresh noise per frame makes hair and
skin texture flicker.

Example:
    >>> from stylegan import Generator, GeneratorConfig
    >>> G = Generator(GeneratorConfig.from_channel_base(16, channel_base=128, channel_max=16, z_dim=8, w_dim=8))
    >>> ws = G.mapping(torch.randn(3, 8))               # [3, num_ws, 8]
    >>> frames = list(render_frames(G, ws, batch_size=2, progress=False))
    >>> len(frames), frames[0].shape, frames[0].dtype
    (3, (16, 16, 3), dtype('uint8'))
"""

from __future__ import annotations

import itertools
import math
import numbers
import os
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from .deprecation import moved
from .errors import UserError
from .imageio import Size
from .imageio import image_grid as _image_grid
from .imageio import to_uint8 as _to_uint8
from .precision import autocast, resolve_precision
from .specs import PathSpec, specs_from_keywords
from .video import DEFAULT_CRF, write_video

__all__ = [
    "resolve_device", "to_uint8", "check_codes", "MAX_CODE_ABS", "render_frames", "render_video", "render_images",
    "render_seeds", "seeds_to_z", "MappedPath", "seed_interpolation", "image_grid", "Size"
]

#: Largest |value| a W+ code may hold. Real codes, edits included, stay within about
#: +-100; 1e30 (a damaged file, a bug) would only render black frames, and NaN NaN frames.
MAX_CODE_ABS = 1e4


def check_codes(ws: torch.Tensor, name: str = "ws") -> None:
    """Refuse codes with NaN, infinite or absurd (> :data:`MAX_CODE_ABS`) values, in one line.

    Raises:
        UserError: naming ``name`` and the offending value.
    """
    if ws.numel() == 0:
        return
    if not bool(torch.isfinite(ws).all()):
        raise UserError(f"{name} hold NaN or infinite values; nothing sensible can be rendered from them")
    peak = float(ws.detach().abs().max())
    if peak > MAX_CODE_ABS:
        raise UserError(f"{name} reach {peak:.3g}; W+ codes stay far below {MAX_CODE_ABS:g} (a damaged file or a bug?)")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises:
        UserError: CUDA was asked for but no GPU is visible, or the name is not a device.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda was requested but no CUDA GPU is visible; use device 'cpu' or 'auto'")
    return dev


def _batches(items: Iterable[torch.Tensor], batch_size: int) -> Iterator[list[torch.Tensor]]:
    it = iter(items)
    while True:
        chunk = list(itertools.islice(it, batch_size))
        if not chunk:
            return
        yield chunk


def render_frames(G: torch.nn.Module, ws_iter: Iterable[torch.Tensor], batch_size: int = 4,
                  noise_mode: str = "const", size: Size = None, device: str | torch.device | None = None,
                  progress: bool = True, total: int | None = None, desc: str = "rendering",
                  precision: str | torch.dtype = "fp32") -> Iterator[np.ndarray]:
    """Synthesise one uint8 frame per code, ``batch_size`` codes at a time.

    Codes are pulled from ``ws_iter`` lazily, so a lazy path (e.g.
    :func:`stylegan.interpolation.interpolation_path`) is never materialised.

    Args:
        G: a :class:`stylegan.Generator` (its ``synthesis``, ``num_ws`` and ``w_dim`` are used).
        ws_iter: codes [num_ws, w_dim] (an iterable, or a tensor [N, num_ws, w_dim]).
        batch_size: codes synthesised together; bounds the memory in use.
        noise_mode: ``"const"`` (stored noise, no flicker), ``"random"`` or ``"none"``.
        size: resize frames to this side (int) or ``(width, height)``; None keeps G's resolution.
        device: where to run; None uses G's device, otherwise G is moved there.
        progress: show a tqdm bar on stderr.
        total: frame count for the bar; default ``len(ws_iter)`` when it has one.
        desc: label of the bar.
        precision: ``"fp32"`` (default, exact), ``"auto"``, ``"bf16"`` or ``"fp16"``
            (see :mod:`stylegan.precision`); weights stay float32.

    Yields:
        uint8 [H, W, 3] RGB frames, in order.

    Raises:
        ValueError: a code that is not [num_ws, w_dim], or ``batch_size < 1``.
        UserError: a code with NaN, infinite or absurd values (:func:`check_codes`).
    """
    from tqdm import tqdm  # deferred: only rendering needs it

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    param = next(G.parameters())
    dev = param.device if device is None else resolve_device(device)
    if dev != param.device:
        G.to(dev)
    dtype = param.dtype
    compute = resolve_precision(precision, dev, model=G)
    expected = (G.num_ws, G.w_dim)
    if total is None and hasattr(ws_iter, "__len__"):
        total = len(ws_iter)
    bar = tqdm(total=total, unit="frame", desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        for chunk in _batches(ws_iter, batch_size):
            for w in chunk:
                if tuple(w.shape) != expected:
                    raise ValueError(f"each code must be [{expected[0]}, {expected[1]}] for this generator, "
                                     f"got {tuple(w.shape)}")
            with torch.inference_mode(), autocast(compute, dev):
                ws = torch.stack([w.to(dev, dtype) for w in chunk])  # [b, num_ws, w_dim]
                check_codes(ws)  # NaN in must not become a silent black or NaN video
                images = G.synthesis(ws, noise_mode=noise_mode)  # [b, 3, R, R]
                frames = _to_uint8(images, size)  # [b, H, W, 3]
            del images, ws
            for frame in frames:
                yield frame
                bar.update(1)
    finally:
        bar.close()


def render_video(G: torch.nn.Module, ws_iter: Iterable[torch.Tensor], path: str | os.PathLike, *, fps: float = 30,
                 crf: int = DEFAULT_CRF, batch_size: int = 4, noise_mode: str = "const", size: Size = None,
                 device: str | torch.device | None = None, progress: bool = True,
                 compose: Callable[[int, np.ndarray], np.ndarray] | None = None, preset: str = "medium",
                 precision: str | torch.dtype = "fp32") -> int:
    """Render codes straight into a video file or frames folder, one batch in memory at a time.

    The destination is checked before the first frame is rendered, and written
    atomically: an error or Ctrl-C leaves nothing at ``path`` (see :mod:`stylegan.video`).

    Args:
        G, ws_iter, batch_size, noise_mode, size, device, progress, precision: see :func:`render_frames`.
        path: ``.mp4``, ``.gif`` or a folder name.
        fps, crf, preset: see :func:`stylegan.video.open_writer`.
        compose: optional ``f(frame_index, frame) -> frame`` applied before writing
            (e.g. to put input photos beside the morph).

    Returns:
        The number of frames written.
    """
    frames: Iterable[np.ndarray] = render_frames(G, ws_iter, batch_size=batch_size, noise_mode=noise_mode,
                                                 size=size, device=device, progress=progress, precision=precision)
    if compose is not None:
        frames = (compose(i, f) for i, f in enumerate(frames))
    return write_video(frames, path, fps=fps, crf=crf, preset=preset)


def render_images(G: torch.nn.Module, ws: torch.Tensor, batch_size: int = 4, noise_mode: str = "const",
                  size: Size = None, progress: bool = False, precision: str | torch.dtype = "fp32") -> np.ndarray:
    """Render a few codes [N, num_ws, w_dim] to uint8 [N, H, W, 3] (all in memory; for grids and previews)."""
    return np.stack(list(render_frames(G, ws, batch_size=batch_size, noise_mode=noise_mode, size=size,
                                       progress=progress, precision=precision)))


def seeds_to_z(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """The usual seed -> z convention: ``np.random.RandomState(seed).randn(z_dim)`` (as NVIDIA's scripts).

    Returns:
        float32 [len(seeds), z_dim].
    """
    bad = [s for s in seeds if not 0 <= int(s) < 2**32]
    if bad:
        raise UserError(f"seeds must be integers from 0 to 2**32 - 1, got {bad[0]}")
    z = np.stack([np.random.RandomState(int(s)).randn(z_dim) for s in seeds])
    return torch.from_numpy(z).float()


def render_seeds(G: torch.nn.Module, seeds: Sequence[int], truncation_psi: float = 1.0, batch_size: int = 4,
                 noise_mode: str = "const", size: Size = None, progress: bool = True,
                 precision: str | torch.dtype = "fp32") -> np.ndarray:
    """Random faces for the given seeds (see :func:`seeds_to_z`).

    Returns:
        uint8 [len(seeds), H, W, 3].
    """
    path = MappedPath(G, seeds_to_z(seeds, G.z_dim), truncation_psi)
    return np.stack(list(render_frames(G, path, batch_size=batch_size, noise_mode=noise_mode, size=size,
                                       progress=progress, desc="faces", precision=precision)))


class MappedPath:
    """Map each ``z`` of a lazy path through ``G.mapping`` on the fly; keeps ``len``.

    Args:
        G: the generator.
        zs: iterable of [z_dim] codes (e.g. a slerp :class:`~stylegan.interpolation.InterpolationPath`).
        truncation_psi: pull toward ``w_avg`` (1 = none, 0.7 is the usual trade-off).
    """

    def __init__(self, G: torch.nn.Module, zs: Iterable[torch.Tensor], truncation_psi: float = 1.0) -> None:
        if isinstance(truncation_psi, bool) or not isinstance(truncation_psi, (int, float)) \
                or not math.isfinite(truncation_psi):
            raise UserError(f"truncation_psi must be a finite number, got {truncation_psi!r}")
        self.G, self.zs, self.truncation_psi = G, zs, float(truncation_psi)

    def __len__(self) -> int:
        return len(self.zs)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[torch.Tensor]:
        param = next(self.G.parameters())
        for z in self.zs:
            # Yield outside the inference_mode block: a suspended generator must not
            # leave the caller's thread in inference mode.
            with torch.inference_mode():
                ws = self.G.mapping(z.to(param.device, param.dtype).reshape(1, -1),
                                    truncation_psi=self.truncation_psi)[0]  # [num_ws, w_dim]
            yield ws


def seed_interpolation(G: torch.nn.Module, seeds: Sequence[int], path: PathSpec | int | None = None,
                       truncation_psi: float = 1.0, **deprecated: object) -> MappedPath:
    """A lazy W+ path between random faces: interpolate the seeds' ``z``, then map each frame.

    Use ``kind="slerp"`` (the default here): slerp keeps the intermediate ``z`` at the
    typical norm of a Gaussian sample, where lerp would pass through the low-density
    middle of the ball. The per-layer ``schedule`` needs W+ keyframes and is refused.

    Args:
        G: the generator.
        seeds: two or more seeds (see :func:`seeds_to_z`).
        path: a :class:`stylegan.specs.PathSpec`; default ``PathSpec(kind="slerp")``. A plain
            number of steps (with ``easing=``, ``hold=``, ``loop=`` keywords) still works for
            one release, with a DeprecationWarning.
        truncation_psi: pull toward ``w_avg`` (1 = none).

    Returns:
        A :class:`MappedPath` of ``path.num_frames(len(seeds))`` codes.

    Raises:
        UserError: fewer than 2 seeds, a non-uniform schedule, or a bad spec.
    """
    if path is None or isinstance(path, numbers.Integral):
        if path is not None:
            deprecated = {"steps": path, **deprecated}
        path = PathSpec(kind="slerp")
        if deprecated:
            path = specs_from_keywords(path, None, deprecated, "seed_interpolation")[0]
    elif deprecated:
        raise TypeError(f"seed_interpolation() got unexpected keyword arguments: {', '.join(sorted(deprecated))}")
    if len(seeds) < 2:
        raise UserError(f"a seed interpolation needs at least 2 seeds, got {len(seeds)}")
    if path.schedule != "uniform":
        raise UserError("schedule must be uniform for seeds: a per-layer schedule needs W+ codes, and seeds "
                        "are interpolated in z")
    return MappedPath(G, path.path(seeds_to_z(seeds, G.z_dim)), truncation_psi)


# Moved to stylegan.imageio (issue 8): kept here, warning, for one release.
to_uint8 = moved(_to_uint8, "stylegan.render.to_uint8", "stylegan.imageio.to_uint8")
image_grid = moved(_image_grid, "stylegan.render.image_grid", "stylegan.imageio.image_grid")
