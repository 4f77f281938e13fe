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
written and the file is complete. Any exception, KeyboardInterrupt included
(the tools turn SIGTERM and SIGHUP into one), deletes the temporary and leaves
the destination as it was (absent, or the previous file untouched). A full disk
is one line (``UserError``), not a traceback. A frames folder is replaced only
if it is empty or was written here (it carries :data:`MANIFEST`).

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

import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from .deprecation import moved
from .errors import UserError
from .fileio import WRITE_ERRNOS, check_name_length, default_permissions, make_temp, os_error_message, publish
from .imageio import check_image_name, save_image
from .limits import check_crf, check_fps

__all__ = [
    "FrameWriter", "Mp4Writer", "GifWriter", "PngDirWriter", "output_kind", "check_output_path",
    "open_writer", "write_video", "write_image", "check_image_name", "default_permissions", "FRAME_PATTERN", "DEFAULT_CRF",
    "MANIFEST", "MAX_GIF_FPS", "check_video_options",
]

FRAME_PATTERN = "frame_{:05d}.png"
# Written into every frames folder we make: only a folder carrying it (plus our frames) is ever replaced.
MANIFEST = ".sgm-frames.json"
MAX_GIF_FPS = 50.0  # GIF delays are whole 1/100 s and browsers treat delays under 2/100 s as 10/100 s
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
    if text.endswith(("/", os.sep)) or _is_dir(p) or p.suffix == "":
        return "frames"
    raise UserError(f"{text}: unsupported output type {p.suffix!r}; use .mp4, .gif, "
                    "or a folder name without an extension for PNG frames")


def _is_dir(path: Path) -> bool:
    """``path.is_dir()`` that says False instead of raising (a name too long to stat is no folder)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _is_frames_folder(path: Path) -> bool:
    """True if ``path`` is empty, or is a render of ours: our manifest plus ``frame_*.png`` files, nothing else.

    A folder of ``frame_*.png`` files without the manifest may be frames the user
    extracted with ffmpeg, or the very photos being morphed: never ours to replace.
    """
    entries = list(path.iterdir())
    if not entries:
        return True
    manifest = path / MANIFEST
    if not manifest.is_file() or manifest.is_symlink():
        return False
    return all(e.name == MANIFEST or (e.is_file() and not e.is_symlink() and e.name.startswith("frame_")
                                      and e.suffix == ".png") for e in entries)


def check_output_path(path: str | os.PathLike, kind: str | None = None) -> Path:
    """Fail early, with one line, if ``path`` cannot receive the output.

    Checks that the folder exists and accepts new files (by creating and removing a
    temporary one), that the name fits the file system, and that an existing destination
    is of the right type: a file for MP4/GIF, and for frames an empty folder or one this
    module wrote (it carries :data:`MANIFEST`; we never replace any other folder).

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
    check_name_length(dest)
    if not _is_dir(parent):
        why = "is not a folder" if parent.exists() else "does not exist"
        raise UserError(f"{dest}: output folder {parent} {why}")
    if dest.exists() or dest.is_symlink():
        if kind == "frames":
            # Under the swap lock: another render may be swapping its folder in right now, and a
            # half-swapped or half-listed folder would look like one we did not write.
            with _folder_lock(parent):
                present = dest.exists() or dest.is_symlink()
                not_a_folder = present and (dest.is_symlink() or not dest.is_dir())
                ours = not present or not_a_folder or _is_frames_folder(dest)
            if not_a_folder:
                raise UserError(f"{dest}: exists and is not a folder; cannot write frames there")
            if not ours:
                raise UserError(f"{dest}: folder exists and was not written by this tool (no {MANIFEST}, or other "
                                "files in it); choose a new or empty folder")
        elif dest.is_dir():
            raise UserError(f"{dest}: is a folder; give a file name")
    try:
        make_temp(dest, ".probe").unlink()
    except OSError as err:
        raise UserError(f"{dest}: cannot write to {parent} ({os_error_message(err)})") from None
    return dest


def check_video_options(kind: str, fps: float, crf: int = DEFAULT_CRF) -> None:
    """Check ``fps`` (and ``crf`` for MP4) for an output kind, before any work.

    A GIF plays at most :data:`MAX_GIF_FPS`: faster GIFs would silently play slower.

    Raises:
        UserError: naming the parameter (``fps must be ...``).
    """
    check_fps(fps)
    if kind == "mp4":
        check_crf(crf)
    if kind == "gif" and fps > MAX_GIF_FPS:
        raise UserError(f"fps must be at most {MAX_GIF_FPS:g} for a GIF (its delays are whole 1/100 s), "
                        f"got {fps:g}; write an .mp4 for faster rates")


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
        check_fps(fps)
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
        frame = self._check(frame)
        try:
            self._write(frame)
        except OSError as err:
            self._raise_write_error(err)
        self.frames_written += 1

    def commit(self) -> None:
        """Finish the temporary output and rename it into place."""
        if self._done:
            return
        if self.frames_written == 0:
            raise UserError(f"{self.dest}: no frames to write")
        try:
            self._commit()
        except OSError as err:
            self._raise_write_error(err)
        self._done = True

    def _raise_write_error(self, err: OSError) -> None:
        """Disk full, quota, read-only...: one line (the caller's abort removes the temporary)."""
        if err.errno not in WRITE_ERRNOS:
            raise err
        raise UserError(f"{self.dest}: cannot write ({os_error_message(err)})") from None

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


_DEFERRED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold back Ctrl-C, SIGTERM and SIGHUP while a subprocess is forked, then deliver them.

    CPython runs signal handlers wherever the main thread happens to be; during
    ``fork`` that is inside the at-fork callbacks (e.g. ``logging``'s lock
    release), where a raised KeyboardInterrupt is printed as "Exception ignored"
    and lost, so the user's Ctrl-C (or a ``kill``) would do nothing. Recording the
    signal and re-delivering it after the fork makes it count.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may change handlers (and only it receives KeyboardInterrupt)
        return
    caught: list[tuple[int, object]] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append((signum, frame)))
                for sig in _DEFERRED_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        signum, frame = caught[0]
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)  # Python's SIGINT handler (or run_cli's) raises here
        elif handler == signal.SIG_DFL:
            if signum == signal.SIGINT:  # pragma: no cover - nobody installs this in Python
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)  # the default action: end the process, as it would have


_sigint_deferred = _signals_deferred  # the older name


def _ffmpeg_cause(log: Path) -> str:
    """The first thing ffmpeg complained about (later lines are consequences), without its ``[x @ 0x..]`` tags."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    full = [ln for ln in lines if "No space left" in ln]
    line = (full or lines or [""])[0]
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", line)[:200]


class Mp4Writer(FrameWriter):
    """H.264/yuv420p MP4: raw frames piped into ffmpeg (imageio-ffmpeg's binary), never buffered.

    ffmpeg's messages go to a log file in the private temporary folder, so a failing
    ffmpeg (disk full, a rate it rejects) is reported as one line with its cause
    instead of raw ffmpeg output and "Broken pipe".

    Args:
        crf: x264 constant rate factor, 0 (lossless) to 51; 18 by default.
        preset: x264 speed/size trade-off (``ultrafast`` ... ``veryslow``).
    """

    kind = "mp4"

    def __init__(self, dest: Path, fps: float, size: tuple[int, int] | None = None, crf: int = DEFAULT_CRF,
                 preset: str = "medium") -> None:
        super().__init__(dest, fps, size)
        check_crf(crf)
        self.crf, self.preset = int(crf), preset
        # ffmpeg writes into a private temporary folder, not a temporary file: if
        # a signal lands while ffmpeg is still starting, an ffmpeg we could not stop
        # may open its output after we cleaned up; with the folder gone that open
        # fails instead of leaving a stray file beside the destination.
        self._tmpdir = make_temp(self.dest, folder=True)
        self._tmp = self._tmpdir / "video.mp4"  # ffmpeg picks the container from the suffix
        self._log = self._tmpdir / "ffmpeg.log"
        self._proc: subprocess.Popen | None = None
        self._pad = (0, 0)

    def _start(self) -> None:
        import imageio_ffmpeg  # deferred: finding the ffmpeg binary is not free

        w, h = self.size
        self._pad = (h % 2, w % 2)  # yuv420p needs even sides: pad bottom/right by one edge row/col
        rate = Fraction(self.fps).limit_denominator(1001)  # 29.97 -> 30000/1001, exactly
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w + self._pad[1]}x{h + self._pad[0]}",
               "-r", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0", "-an",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(self.crf), "-preset", self.preset,
               "-movflags", "+faststart", str(self._tmp)]
        with open(self._log, "wb") as log, _signals_deferred():  # a signal during the fork would be lost
            # A new session: the terminal's Ctrl-C reaches us, not ffmpeg; we stop it in abort().
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log,
                                          start_new_session=True)

    def _failure(self, err: BaseException | None = None) -> UserError:
        """Why ffmpeg stopped, in one line (its own last message; "disk full" when that is the cause)."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        line = _ffmpeg_cause(self._log)
        if "No space left" in line or (isinstance(err, OSError) and err.errno in WRITE_ERRNOS
                                       and not isinstance(err, BrokenPipeError)):
            cause = "disk full (no space left on device)" if "No space left" in line else os_error_message(err)
            return UserError(f"{self.dest}: cannot write ({cause})")
        code = None if self._proc is None else self._proc.returncode
        detail = line or (f"exit code {code}" if code is not None else "no message")
        return UserError(f"{self.dest}: ffmpeg failed while encoding ({detail})")

    def _write(self, frame: np.ndarray) -> None:
        if self._proc is None:
            self._start()
        if any(self._pad):
            frame = np.pad(frame, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except OSError as err:  # BrokenPipeError: ffmpeg has exited
            raise self._failure(err) from None

    def _commit(self) -> None:
        proc = self._proc
        try:
            proc.stdin.close()  # flushes, then ffmpeg sees the end of input and finishes the file
        except OSError as err:
            raise self._failure(err) from None
        if proc.wait() != 0:
            raise self._failure()
        if not self._tmp.is_file() or self._tmp.stat().st_size == 0:
            raise UserError(f"{self.dest}: ffmpeg produced no output")
        publish(self._tmp, self.dest)
        self._proc = None
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    def _abort(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()  # already dead in the usual case; kill() then does nothing
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
                pass
            try:
                proc.stdin.close()
            except OSError:
                pass
        for _ in range(5):  # belt and braces: a file system slow to let go of the folder
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
        check_video_options("gif", fps)
        self.loop = int(loop)
        self._tmp = make_temp(self.dest, ".tmp.gif")
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
        publish(self._tmp, self.dest)

    def _abort(self) -> None:
        if self._fp is not None:
            self._fp.close()
            self._fp = None
        self._tmp.unlink(missing_ok=True)


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``folder`` (flock on the directory itself: nothing is left behind).

    Two renders into the same frames folder take turns swapping it into place instead
    of racing (ENOTEMPTY, a stray ``.old`` folder). Where flock is unavailable the swap
    runs unlocked and a lost race is still reported in one line.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - a folder we may write but not open
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # pragma: no cover - e.g. a network file system without flock
            pass
        yield
    finally:
        os.close(fd)  # closing releases the lock


class PngDirWriter(FrameWriter):
    """A folder of ``frame_00000.png`` ... built in a hidden temporary folder, renamed on success.

    The folder gets a manifest (:data:`MANIFEST`) that marks it as ours. An existing
    destination folder is replaced only if it is empty or carries that manifest and
    nothing but ``frame_*.png`` files (checked by :func:`check_output_path`, and again
    under a lock when swapping), and only after the new folder is complete.
    """

    kind = "frames"

    def __init__(self, dest: Path, fps: float, size: tuple[int, int] | None = None) -> None:
        super().__init__(dest, fps, size)
        self._tmp = make_temp(self.dest, folder=True)

    def _write(self, frame: np.ndarray) -> None:
        Image.fromarray(frame, "RGB").save(self._tmp / FRAME_PATTERN.format(self.frames_written))

    def _commit(self) -> None:
        manifest = {"written_by": "stylegan-morph", "frames": self.frames_written, "pattern": "frame_%05d.png",
                    "fps": self.fps, "size": list(self.size)}
        (self._tmp / MANIFEST).write_text(json.dumps(manifest) + "\n")
        default_permissions(self._tmp / MANIFEST)
        old = None
        with _folder_lock(self.dest.parent):
            if self.dest.exists() or self.dest.is_symlink():
                # Checked again here: another program may have filled the folder while we rendered.
                if self.dest.is_symlink() or not self.dest.is_dir() or not _is_frames_folder(self.dest):
                    raise UserError(f"{self.dest}: changed while rendering and now holds files this tool did "
                                    "not write; left it alone, nothing written")
                old = make_temp(self.dest, ".old", folder=True)
                os.replace(self.dest, old)  # an empty dir may be replaced by a dir on POSIX
            try:
                publish(self._tmp, self.dest, folder=True)
            except OSError as err:
                if old is not None:
                    os.replace(old, self.dest)
                if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    raise UserError(f"{self.dest}: another program wrote this folder at the same time; "
                                    "nothing written, run again") from None
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


# Moved to stylegan.imageio (issue 8): the one atomic image writer. Kept here, warning, for one release.
write_image = moved(save_image, "stylegan.video.write_image", "stylegan.imageio.save_image")
