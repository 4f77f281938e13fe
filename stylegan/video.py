"""Streaming, atomic writers for frame sequences: MP4 (H.264), GIF, or a folder of PNGs.

The kind of output is chosen from the destination path:

====================  =====================================================
``name.mp4``          H.264 in yuv420p (plays everywhere), streamed to ffmpeg
``name.gif``          animated GIF with a 256-colour palette per frame, looping
``name`` (no suffix)  a folder of ``frame_00000.png``, ``frame_00001.png``, ...
====================  =====================================================

Every writer streams: it holds at most the frame being written, never the whole
video. Every writer is atomic: frames go to a temporary file (or folder) next to
the destination, which is renamed into place only after the last frame is
written and the file is complete. Any exception, KeyboardInterrupt included,
deletes the temporary and leaves the destination as it was (absent, or the
previous file untouched).

MP4 notes: yuv420p stores colour at half resolution, so H.264 needs an even
width and height. Frames with an odd side are padded by one row/column that
repeats the edge pixels (no resampling, so the picture itself is unchanged).
``crf`` is x264's constant rate factor: 0 is lossless, 18 (default) is
visually lossless for most content, 23 is x264's default, 51 the worst.

GIF notes: frame delays are stored in 1/100 s. Delays are rounded so that the
total duration is right (30 fps alternates 3 and 4 hundredths); above 50 fps
browsers slow the GIF down, so 50 is the fastest honest GIF rate.

Example:
    >>> import numpy as np, tempfile, os
    >>> out = os.path.join(tempfile.mkdtemp(), "clip.gif")
    >>> with open_writer(out, fps=10) as w:
    ...     for i in range(3):
    ...         w.write(np.full((16, 16, 3), 80 * i, np.uint8))
    >>> w.frames_written
    3
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from .errors import UserError
from .fileio import default_permissions

__all__ = [
    "FrameWriter", "Mp4Writer", "GifWriter", "PngDirWriter", "output_kind", "check_output_path",
    "open_writer", "write_video", "write_image", "default_permissions", "FRAME_PATTERN", "DEFAULT_CRF",
]

FRAME_PATTERN = "frame_{:05d}.png"
DEFAULT_CRF = 18
_KINDS = {".mp4": "mp4", ".gif": "gif"}


def output_kind(path: str | os.PathLike) -> str:
    """``"mp4"``, ``"gif"`` or ``"frames"`` (a folder of PNGs) for a destination path.

    ``.mp4`` and ``.gif`` (any case) pick those formats; a path with no suffix, ending in
    a path separator, or naming an existing folder is a frames folder.

    Raises:
        UserError: any other suffix (e.g. ``.avi``).
    """
    text = os.fspath(path)
    p = Path(text)
    kind = _KINDS.get(p.suffix.lower())
    if kind is not None and not text.endswith(("/", os.sep)):
        return kind
    if text.endswith(("/", os.sep)) or p.is_dir() or p.suffix == "":
        return "frames"
    raise UserError(f"{text}: unsupported output type {p.suffix!r}; use .mp4, .gif, "
                    "or a folder name without an extension for PNG frames")


def _is_frames_folder(path: Path) -> bool:
    """True if ``path`` holds only our ``frame_*.png`` files (a previous render we may replace)."""
    return all(e.is_file() and e.name.startswith("frame_") and e.suffix == ".png" for e in path.iterdir())


def check_output_path(path: str | os.PathLike, kind: str | None = None) -> Path:
    """Fail early, with one line, if ``path`` cannot receive the output.

    Checks that the folder exists and accepts new files (by creating and removing a
    temporary one), and that an existing destination is of the right type: a file
    for MP4/GIF, a folder holding only ``frame_*.png`` files for frames (we never
    replace a folder with other contents).

    Args:
        path: the destination.
        kind: ``"mp4"``, ``"gif"`` or ``"frames"``; default from :func:`output_kind`. Any other
            value (e.g. ``"image"``) checks for a plain file.

    Returns:
        The destination as a :class:`Path` (trailing separators removed).

    Raises:
        UserError: missing or read-only folder, or a destination of the wrong type.
    """
    kind = kind or output_kind(path)
    dest = Path(os.fspath(path).rstrip("/" + os.sep) or ".")
    parent = dest.parent
    if not parent.is_dir():
        why = "is not a folder" if parent.exists() else "does not exist"
        raise UserError(f"{dest}: output folder {parent} {why}")
    if dest.exists():
        if kind == "frames":
            if not dest.is_dir():
                raise UserError(f"{dest}: exists and is not a folder; cannot write frames there")
            if not _is_frames_folder(dest):
                raise UserError(f"{dest}: folder exists and holds other files; choose an empty or new folder")
        elif dest.is_dir():
            raise UserError(f"{dest}: is a folder; give a file name")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UserError(f"{dest}: cannot write to {parent} ({err.strerror or err})") from None
    return dest


class FrameWriter:
    """Base class: validates frames, counts them, and commits or aborts atomically.

    Use through :func:`open_writer`, which commits on success and aborts on any error.

    Args:
        dest: final destination (already checked with :func:`check_output_path`).
        fps: frames per second.
        size: ``(width, height)`` of every frame; None takes it from the first frame.
    """

    kind = "base"

    def __init__(self, dest: Path, fps: float, size: tuple[int, int] | None = None) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.dest, self.fps = Path(dest), float(fps)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.frames_written = 0
        self._done = False

    def _check(self, frame: np.ndarray) -> np.ndarray:
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"frames must be uint8 arrays [H, W, 3], got {desc}")
        h, w = frame.shape[:2]
        if self.size is None:
            self.size = (w, h)
        elif (w, h) != self.size:
            raise ValueError(f"frame {self.frames_written} is {w}x{h}, expected {self.size[0]}x{self.size[1]}")
        return frame

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 [H, W, 3] RGB frame."""
        if self._done:
            raise RuntimeError("writer is closed")
        self._write(self._check(frame))
        self.frames_written += 1

    def commit(self) -> None:
        """Finish the temporary output and rename it into place."""
        if self._done:
            return
        if self.frames_written == 0:
            raise UserError(f"{self.dest}: no frames to write")
        self._commit()
        self._done = True

    def abort(self) -> None:
        """Delete the temporary output; never raises (it runs while another error propagates)."""
        if self._done:
            return
        self._done = True
        try:
            self._abort()
        except Exception:  # pragma: no cover - best effort cleanup
            pass

    def _write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError


def _temp_file(dest: Path, suffix: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{suffix}", dir=dest.parent)
    os.close(fd)
    return Path(tmp)


@contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back Ctrl-C while a subprocess is forked, then deliver it.

    CPython runs signal handlers wherever the main thread happens to be; during
    ``fork`` that is inside the at-fork callbacks (e.g. ``logging``'s lock
    release), where a raised KeyboardInterrupt is printed as "Exception ignored"
    and lost, so the user's Ctrl-C would do nothing. Recording the signal and
    re-raising it after the fork makes it count.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may change handlers (and only it receives KeyboardInterrupt)
        return
    caught: list[tuple[int, object]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if callable(previous):
            previous(*caught[0])  # the default handler raises KeyboardInterrupt here
        elif previous == signal.SIG_DFL:  # pragma: no cover - nobody installs this in Python
            raise KeyboardInterrupt


class _AbortEncoding(BaseException):
    """Thrown into imageio-ffmpeg's generator so that it kills ffmpeg instead of waiting."""


class Mp4Writer(FrameWriter):
    """H.264/yuv420p MP4 through imageio-ffmpeg's ``write_frames`` (frames piped, never buffered).

    Args:
        crf: x264 constant rate factor, 0 (lossless) to 51; 18 by default.
        preset: x264 speed/size trade-off (``ultrafast`` ... ``veryslow``).
    """

    kind = "mp4"

    def __init__(self, dest: Path, fps: float, size: tuple[int, int] | None = None, crf: int = DEFAULT_CRF,
                 preset: str = "medium") -> None:
        super().__init__(dest, fps, size)
        if not 0 <= int(crf) <= 51 or int(crf) != crf:
            raise UserError(f"crf must be an integer from 0 (lossless) to 51, got {crf}")
        self.crf, self.preset = int(crf), preset
        # ffmpeg writes into a private temporary folder, not a temporary file: if
        # Ctrl-C lands while ffmpeg is still starting, an ffmpeg we could not stop
        # may open its output after we cleaned up; with the folder gone that open
        # fails instead of leaving a stray file beside the destination.
        self._tmpdir = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.", suffix=".tmp", dir=self.dest.parent))
        self._tmp = self._tmpdir / "video.mp4"  # ffmpeg picks the container from the suffix
        self._gen = None
        self._proc: subprocess.Popen | None = None
        self._pad = (0, 0)

    def _start(self) -> None:
        import imageio_ffmpeg  # deferred: finding the ffmpeg binary is not free

        w, h = self.size
        self._pad = (h % 2, w % 2)  # yuv420p needs even sides: pad bottom/right by one edge row/col
        with _sigint_deferred():  # a Ctrl-C during the fork would otherwise be lost
            self._gen = imageio_ffmpeg.write_frames(
                str(self._tmp), (w + self._pad[1], h + self._pad[0]), fps=self.fps, codec="libx264",
                pix_fmt_in="rgb24", pix_fmt_out="yuv420p", quality=None, macro_block_size=1,
                ffmpeg_log_level="error",
                output_params=["-crf", str(self.crf), "-preset", self.preset, "-movflags", "+faststart"],
            )
            self._gen.send(None)  # run up to the first yield: starts ffmpeg
        # The ffmpeg process, so that abort can wait for it to be gone. imageio-ffmpeg
        # does not expose it; its generator keeps it in the local ``p`` (best effort).
        proc = getattr(self._gen.gi_frame, "f_locals", {}).get("p")
        self._proc = proc if isinstance(proc, subprocess.Popen) else None

    def _write(self, frame: np.ndarray) -> None:
        if self._gen is None:
            self._start()
        if any(self._pad):
            frame = np.pad(frame, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        try:
            self._gen.send(np.ascontiguousarray(frame))
        except OSError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(f"{self.dest}: ffmpeg stopped while encoding ({first})") from None

    def _commit(self) -> None:
        gen, self._gen = self._gen, None
        gen.close()  # closes ffmpeg's stdin and waits for it to finish the file
        if not self._tmp.is_file() or self._tmp.stat().st_size == 0:
            raise UserError(f"{self.dest}: ffmpeg produced no output")
        default_permissions(self._tmp)
        os.replace(self._tmp, self.dest)
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    def _abort(self) -> None:
        gen, self._gen = self._gen, None
        if gen is not None:
            try:
                gen.throw(_AbortEncoding())
            except BaseException:  # _AbortEncoding comes back out after ffmpeg is killed
                pass
        if self._proc is not None:
            self._proc.kill()  # already dead in the usual case; kill() then does nothing
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
                pass
        for _ in range(5):  # an ffmpeg we hold no handle to may still be creating its file
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            if not self._tmpdir.exists():
                break
            time.sleep(0.05)


class GifWriter(FrameWriter):
    """Looping animated GIF written frame by frame with Pillow's GIF block encoder.

    Pillow's ``save(save_all=True)`` keeps every frame until the end; here each
    frame is quantized to its own 256-colour palette (a local colour table) and
    appended to the file at once, so memory stays at one frame.
    """

    kind = "gif"

    def __init__(self, dest: Path, fps: float, size: tuple[int, int] | None = None, loop: int = 0) -> None:
        super().__init__(dest, fps, size)
        self.loop = int(loop)
        self._tmp = _temp_file(self.dest, ".gif")
        self._fp: io.BufferedWriter | None = open(self._tmp, "wb")

    def _delay_ms(self, index: int) -> int:
        # Delays are whole hundredths; rounding the cumulative time keeps the total right.
        cs = round(100 * (index + 1) / self.fps) - round(100 * index / self.fps)
        return 10 * max(cs, 2)  # browsers turn delays under 2/100 s into 10/100 s

    def _write(self, frame: np.ndarray) -> None:
        from PIL import GifImagePlugin

        # Fast octree: ~100x faster than median cut (2 ms vs 90-170 ms for a 256^2
        # frame) for a mean error of 4.9 vs 4.4 levels on generator output.
        im = Image.fromarray(frame, "RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
        delay = self._delay_ms(self.frames_written)
        if self.frames_written == 0:
            header, _ = GifImagePlugin.getheader(im, info={"loop": self.loop, "duration": delay})
            self._fp.write(b"".join(header))
        data = GifImagePlugin.getdata(im, duration=delay, include_color_table=True, disposal=1)
        self._fp.write(b"".join(data))

    def _commit(self) -> None:
        self._fp.write(b";")  # GIF trailer
        self._fp.close()
        self._fp = None
        default_permissions(self._tmp)
        os.replace(self._tmp, self.dest)

    def _abort(self) -> None:
        if self._fp is not None:
            self._fp.close()
            self._fp = None
        self._tmp.unlink(missing_ok=True)


class PngDirWriter(FrameWriter):
    """A folder of ``frame_00000.png`` ... built in a hidden temporary folder, renamed on success.

    An existing destination folder is replaced only if it holds nothing but
    ``frame_*.png`` files (checked by :func:`check_output_path`), and only after the
    new folder is complete.
    """

    kind = "frames"

    def __init__(self, dest: Path, fps: float, size: tuple[int, int] | None = None) -> None:
        super().__init__(dest, fps, size)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.", suffix=".tmp", dir=self.dest.parent))

    def _write(self, frame: np.ndarray) -> None:
        Image.fromarray(frame, "RGB").save(self._tmp / FRAME_PATTERN.format(self.frames_written))

    def _commit(self) -> None:
        default_permissions(self._tmp, directory=True)
        old = None
        if self.dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.", suffix=".old", dir=self.dest.parent))
            os.replace(self.dest, old)  # an empty dir may be replaced by a dir on POSIX
        try:
            os.replace(self._tmp, self.dest)
        except BaseException:
            if old is not None:
                os.replace(old, self.dest)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


def _make_writer(dest: Path, kind: str, fps: float, size: tuple[int, int] | None, crf: int,
                 preset: str) -> FrameWriter:
    if kind == "mp4":
        return Mp4Writer(dest, fps, size, crf=crf, preset=preset)
    if kind == "gif":
        return GifWriter(dest, fps, size)
    if kind == "frames":
        return PngDirWriter(dest, fps, size)
    raise ValueError(f"unknown output kind {kind!r}")


@contextmanager
def open_writer(path: str | os.PathLike, fps: float = 30, size: tuple[int, int] | None = None,
                crf: int = DEFAULT_CRF, *, kind: str | None = None, preset: str = "medium") -> Iterator[FrameWriter]:
    """Open an atomic frame writer for ``path``; the kind comes from its extension.

    On a clean exit the output is finished and renamed into place; on any
    exception (KeyboardInterrupt included) the temporary output is deleted and the
    destination is left as it was.

    Args:
        path: ``.mp4``, ``.gif`` or a folder name (see :func:`output_kind`).
        fps: frames per second.
        size: ``(width, height)`` of the frames; None takes it from the first frame.
        crf: H.264 quality for MP4 (0 best .. 51 worst); ignored otherwise.
        kind: force ``"mp4"``, ``"gif"`` or ``"frames"``.
        preset: x264 preset for MP4.

    Yields:
        A :class:`FrameWriter`; call ``write(frame)`` with uint8 [H, W, 3] arrays.

    Raises:
        UserError: the destination cannot be written (checked before anything is encoded).
    """
    kind = kind or output_kind(path)
    dest = check_output_path(path, kind)
    writer = _make_writer(dest, kind, fps, size, crf, preset)
    try:
        yield writer
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float = 30,
                crf: int = DEFAULT_CRF, *, size: tuple[int, int] | None = None, preset: str = "medium") -> int:
    """Stream ``frames`` into ``path`` atomically; see :func:`open_writer`.

    Returns:
        The number of frames written.
    """
    with open_writer(path, fps=fps, size=size, crf=crf, preset=preset) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.frames_written


def write_image(image: np.ndarray | Image.Image, path: str | os.PathLike) -> Path:
    """Save one image atomically (temp file + rename); format from the extension (.png, .jpg, ...).

    Args:
        image: uint8 [H, W, 3] array or a PIL image.
        path: destination file.

    Returns:
        The destination path.

    Raises:
        UserError: unknown extension, or a folder that does not exist or cannot be written.
    """
    dest = Path(path)
    fmt = Image.registered_extensions().get(dest.suffix.lower())
    if fmt is None:
        raise UserError(f"{dest}: unknown image extension {dest.suffix!r}; use .png or .jpg")
    if dest.is_dir():
        raise UserError(f"{dest}: is a folder; give an image file name such as grid.png")
    check_output_path(dest, kind="image")
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    tmp = _temp_file(dest, dest.suffix)
    try:
        img.save(tmp, format=fmt)
        default_permissions(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest
