"""Frame writers: formats round-trip, outputs are atomic, and memory stays flat."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from stylegan.errors import UserError
from stylegan.imageio import save_image
from stylegan.video import MANIFEST, check_output_path, open_writer, output_kind, write_video


def smooth_frames(n: int, w: int = 64, h: int = 48) -> list[np.ndarray]:
    """Gradients that move: compress well and survive lossy codecs, yet differ per frame."""
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for i in range(n):
        r = (x * 255 / max(w - 1, 1) + 9 * i) % 256
        g = y * 255 / max(h - 1, 1)
        b = np.full_like(r, (40 + 10 * i) % 256)
        out.append(np.stack([r, g, b], -1).astype(np.uint8))
    return out


def read_mp4(path: Path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(h, w, 3) for buf in reader]
    return meta, frames


def leftovers(folder: Path) -> list[str]:
    """Hidden temporaries a writer might leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------- kinds and checks


def test_output_kind_from_extension(tmp_path):
    assert output_kind("a.mp4") == output_kind("A.MP4") == "mp4"
    assert output_kind("a.gif") == "gif"
    assert output_kind("frames") == output_kind("out/") == output_kind(tmp_path) == "frames"
    with pytest.raises(UserError, match="unsupported output type '.avi'"):
        output_kind("movie.avi")


def test_missing_or_bad_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="does not exist") as err:
        check_output_path(tmp_path / "nope" / "a.mp4")
    assert "\n" not in str(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is not a folder"):
        check_output_path(tmp_path / "file" / "a.mp4")
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        check_output_path(tmp_path / "dir.mp4")


def test_unwritable_folder_is_reported_before_any_work(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(UserError, match="cannot write to .*Permission denied"):
        with open_writer(tmp_path / "a.mp4"):
            pytest.fail("the writer must not open")


def test_frames_folder_with_other_files_is_never_replaced(tmp_path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="not written by this tool"):
        write_video(smooth_frames(2), dest)
    assert (dest / "thesis.tex").read_text() == "precious"


# ----------------------------------------------------------------------------- round trips


def test_mp4_decodes_with_expected_count_size_and_content(tmp_path):
    frames = smooth_frames(12)
    dest = tmp_path / "clip.mp4"
    assert write_video(iter(frames), dest, fps=24, crf=12) == 12
    meta, decoded = read_mp4(dest)
    assert meta["size"] == (64, 48) and meta["fps"] == pytest.approx(24)
    assert len(decoded) == 12
    for a, b in zip(frames, decoded):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 4
    assert leftovers(tmp_path) == []


def test_mp4_pads_odd_sizes_to_even_without_resampling(tmp_path):
    frames = smooth_frames(4, w=33, h=21)
    dest = tmp_path / "odd.mp4"
    write_video(frames, dest, crf=0, preset="ultrafast")
    meta, decoded = read_mp4(dest)
    assert meta["size"] == (34, 22) and len(decoded) == 4
    # Same bits as encoding frames padded by hand with repeated edge pixels: the
    # picture is padded, not rescaled.
    padded = [np.pad(f, ((0, 1), (0, 1), (0, 0)), mode="edge") for f in frames]
    write_video(padded, tmp_path / "even.mp4", crf=0, preset="ultrafast")
    _, reference = read_mp4(tmp_path / "even.mp4")
    assert all(np.array_equal(a, b) for a, b in zip(decoded, reference))
    assert np.abs(decoded[2][:21, :33].astype(int) - frames[2].astype(int)).mean() < 5


def test_gif_decodes_with_count_size_loop_and_timing(tmp_path):
    frames = smooth_frames(10)
    dest = tmp_path / "clip.gif"
    write_video(frames, dest, fps=30)
    with Image.open(dest) as im:
        assert im.n_frames == 10 and im.size == (64, 48)
        assert im.info.get("loop") == 0
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
            rgb = np.asarray(im.convert("RGB")).astype(int)
            assert np.abs(rgb - frames[i]).mean() < 6
    assert set(durations) <= {30, 40}
    assert sum(durations) == pytest.approx(1000 * 10 / 30, abs=10)  # total time is right
    assert leftovers(tmp_path) == []


def test_frames_folder_is_lossless_and_numbered(tmp_path):
    frames = smooth_frames(3)
    dest = tmp_path / "frames"
    write_video(frames, dest)
    assert sorted(p.name for p in dest.iterdir()) == [MANIFEST, "frame_00000.png", "frame_00001.png",
                                                      "frame_00002.png"]
    for i, f in enumerate(frames):
        assert np.array_equal(np.asarray(Image.open(dest / f"frame_{i:05d}.png")), f)
    assert json.loads((dest / MANIFEST).read_text())["frames"] == 3
    # Rendering again replaces a folder that this module wrote (it carries the manifest).
    write_video(smooth_frames(1), dest)
    assert sorted(p.name for p in dest.iterdir()) == [MANIFEST, "frame_00000.png"]
    assert leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- atomicity


def _failing(frames: list[np.ndarray], at: int, exc: BaseException):
    for i, f in enumerate(frames):
        if i == at:
            raise exc
        yield f


@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "out"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("boom")])
def test_interrupted_write_leaves_nothing(tmp_path, name, exc):
    dest = tmp_path / name
    with pytest.raises(type(exc)):
        write_video(_failing(smooth_frames(6), 3, exc), dest)
    assert not dest.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["old.mp4", "old.gif"])
def test_failed_write_keeps_the_previous_file(tmp_path, name):
    dest = tmp_path / name
    dest.write_bytes(b"previous video")
    with pytest.raises(KeyboardInterrupt):
        write_video(_failing(smooth_frames(4), 2, KeyboardInterrupt()), dest)
    assert dest.read_bytes() == b"previous video"
    write_video(smooth_frames(2), dest)
    assert dest.read_bytes() != b"previous video"
    assert leftovers(tmp_path) == []


def test_failed_write_keeps_the_previous_frames_folder(tmp_path):
    dest = tmp_path / "frames"
    write_video(smooth_frames(2), dest)
    before = sorted(p.read_bytes() for p in dest.iterdir())
    with pytest.raises(RuntimeError):
        write_video(_failing(smooth_frames(5), 4, RuntimeError("x")), dest)
    assert sorted(p.read_bytes() for p in dest.iterdir()) == before
    assert leftovers(tmp_path) == []


def test_bad_frames_are_rejected_and_cleaned_up(tmp_path):
    good = smooth_frames(1)[0]
    cases = [good.astype(np.float32), good[..., :2], smooth_frames(1, w=32)[0]]
    for bad in cases:
        with pytest.raises(ValueError, match="uint8|expected"):
            write_video([good, bad], tmp_path / "x.mp4")
    with pytest.raises(UserError, match="no frames"):
        write_video([], tmp_path / "x.gif")
    with pytest.raises(UserError, match="crf"):
        write_video([good], tmp_path / "x.mp4", crf=60)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- memory


_MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from stylegan.video import open_writer

    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

    dest, total = sys.argv[1], int(sys.argv[2])
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    with open_writer(dest, fps=30, preset="ultrafast") as w:
        for i in range(total):
            w.write(np.roll(base, i, axis=1))   # a fresh 192 KiB frame each time
            if i == 19:
                warm = peak_mb()
    print(warm, peak_mb())
""")


@pytest.mark.parametrize("name", ["m.mp4", "m.gif", "m"])
def test_writer_memory_does_not_grow_with_frames(tmp_path, name):
    # 220 frames of 256x256x3 are 42 MB: a writer that kept them (or float copies)
    # would raise the peak far above the 15 MB allowed for allocator noise.
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(tmp_path / name), "220"],
                         capture_output=True, text=True, timeout=120, check=True)
    warm, end = map(float, out.stdout.split())
    assert end - warm < 15, f"peak grew from {warm:.0f} MB to {end:.0f} MB over 200 frames"


@pytest.mark.parametrize("name", ["p.mp4", "p.gif", "p", "p.png"])
def test_outputs_get_the_usual_permissions(tmp_path, name):
    """mkstemp/mkdtemp make private 0600/0700 entries; the renamed result must follow the umask."""
    import os

    old = os.umask(0o022)
    try:
        if name.endswith(".png"):
            save_image(smooth_frames(1)[0], tmp_path / name)
        else:
            write_video(smooth_frames(2), tmp_path / name)
    finally:
        os.umask(old)
    mode = (tmp_path / name).stat().st_mode & 0o777
    assert mode == (0o755 if name == "p" else 0o644)


def test_ctrl_c_while_ffmpeg_starts_is_delivered_after_the_fork():
    """A SIGINT during the fork would be swallowed by CPython's at-fork hooks; it must arrive afterwards."""
    import os
    import signal

    from stylegan.video import _sigint_deferred

    reached_end = False
    with pytest.raises(KeyboardInterrupt):
        with _sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler has run by now, and did not raise here
            reached_end = True
    assert reached_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ----------------------------------------------------------------------------- issue 9: data loss, limits, errors


def test_frames_folder_without_our_manifest_is_never_replaced(tmp_path):
    """Issue 9.2: frames the user extracted with ffmpeg look like ours but are not ours to replace."""
    dest = tmp_path / "frames"
    dest.mkdir()
    for i in range(10):
        Image.fromarray(smooth_frames(1)[0]).save(dest / f"frame_{i:05d}.png")
    with pytest.raises(UserError, match="not written by this tool"):
        write_video(smooth_frames(4), dest)
    assert len(list(dest.iterdir())) == 10
    # Our own render may be replaced, but not once someone added a file to it.
    write_video(smooth_frames(2), tmp_path / "ours")
    (tmp_path / "ours" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not written by this tool"):
        write_video(smooth_frames(2), tmp_path / "ours")
    assert (tmp_path / "ours" / "notes.txt").read_text() == "mine"


def test_frames_folder_filled_while_rendering_is_left_alone(tmp_path):
    dest = tmp_path / "frames"
    with pytest.raises(UserError, match="changed while rendering"):
        with open_writer(dest, fps=10) as w:
            w.write(smooth_frames(1)[0])
            dest.mkdir()
            (dest / "photo.jpg").write_bytes(b"precious")
    assert [p.name for p in dest.iterdir()] == ["photo.jpg"]
    assert leftovers(tmp_path) == []


def test_two_renders_into_one_frames_folder_take_turns(tmp_path):
    """Issue 9.12: concurrent commits raced (ENOTEMPTY traceback, a hidden .old folder left)."""
    dest = tmp_path / "frames"
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def render(n: int) -> None:
        start.wait()
        for _ in range(6):
            try:
                write_video(smooth_frames(n, w=8, h=8), dest)
            except BaseException as err:  # noqa: BLE001 - collected and checked below
                errors.append(err)

    threads = [threading.Thread(target=render, args=(n,)) for n in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert leftovers(tmp_path) == []
    names = sorted(p.name for p in dest.iterdir())
    count = json.loads((dest / MANIFEST).read_text())["frames"]
    assert names == [MANIFEST] + [f"frame_{i:05d}.png" for i in range(count)]


@pytest.mark.parametrize("name", ["full.mp4", "full.gif", "full", "full.png"])
def test_disk_full_is_one_line_and_leaves_nothing(tmp_path, name, monkeypatch):
    """Issue 9.10: ENOSPC while writing gave an OSError traceback."""
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if name.endswith(".mp4"):
        # ffmpeg hits the full disk: it exits with its message, our pipe breaks.
        import imageio_ffmpeg

        fake = tmp_path.parent / f"{tmp_path.name}_ffmpeg.sh"
        fake.write_text("#!/bin/sh\ncat >/dev/null & echo 'video.mp4: No space left on device' >&2; exit 1\n")
        fake.chmod(0o755)
        monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: str(fake))
    else:
        monkeypatch.setattr(Image.Image, "save", no_space)
    with pytest.raises(UserError, match="disk full") as err:
        if name.endswith(".png"):
            save_image(smooth_frames(1)[0], tmp_path / name)
        elif name.endswith(".gif"):
            with open_writer(tmp_path / name, fps=10) as w:
                w._fp.close()
                w._fp = _FullDisk()
                w.write(smooth_frames(1)[0])
        else:
            write_video(smooth_frames(40), tmp_path / name, fps=10)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


class _FullDisk:
    """A file whose every write fails with ENOSPC."""

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        pass


def test_ffmpeg_failure_is_reported_with_its_cause(tmp_path, capfd):
    """Issue 9.14: a failing ffmpeg showed raw ffmpeg lines and "Broken pipe", never the cause."""
    with pytest.raises(UserError, match=r"ffmpeg failed while encoding \(.*nosuchpreset") as err:
        write_video(smooth_frames(30), tmp_path / "x.mp4", preset="nosuchpreset")
    assert "\n" not in str(err.value) and "Broken pipe" not in str(err.value)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""  # nothing raw from ffmpeg on the terminal
    assert list(tmp_path.iterdir()) == []


def test_long_names_fit_or_fail_in_one_line(tmp_path):
    """Issue 9.9: ENAMETOOLONG traceback; a name just under the limit must still get its temp file."""
    longest = "a" * 251 + ".gif"  # 255 bytes: legal, but a temp name derived from it would not be
    write_video(smooth_frames(2), tmp_path / longest, fps=10)
    assert (tmp_path / longest).is_file()
    for name in ("b" * 300 + ".mp4", "c" * 300, "d" * 300 + ".png"):
        with pytest.raises(UserError, match="file name too long"):
            if name.endswith(".png"):
                save_image(smooth_frames(1)[0], tmp_path / name)
            else:
                write_video(smooth_frames(2), tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [longest]


@pytest.mark.parametrize("name", ["r.mp4", "r.gif", "r"])
@pytest.mark.parametrize("fps", [float("inf"), float("nan"), 0, -5, 1e9])
def test_fps_out_of_range_is_refused_before_writing(tmp_path, name, fps):
    """Issue 9.7/9.21: fps inf overflowed, 1e9 wrote a 0-second MP4, inf on a GIF became 50 fps."""
    with pytest.raises(UserError, match="fps must be"):
        write_video(smooth_frames(2), tmp_path / name, fps=fps)
    assert list(tmp_path.iterdir()) == []


def test_gif_refuses_rates_it_cannot_play(tmp_path):
    with pytest.raises(UserError, match="at most 50 for a GIF"):
        write_video(smooth_frames(2), tmp_path / "fast.gif", fps=60)
    write_video(smooth_frames(2), tmp_path / "fast.mp4", fps=60, preset="ultrafast")
    assert read_mp4(tmp_path / "fast.mp4")[0]["fps"] == pytest.approx(60)


def test_sigterm_while_ffmpeg_starts_is_delivered_after_the_fork():
    import signal

    from stylegan.video import _signals_deferred

    class Stop(BaseException):
        pass

    def stop(signum, frame):
        raise Stop

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(Stop):
            with _signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
        assert signal.getsignal(signal.SIGTERM) is stop
    finally:
        signal.signal(signal.SIGTERM, previous)
