"""Frame writers: formats round-trip, outputs are atomic, and memory stays flat."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from stylegan.errors import UserError
from stylegan.video import check_output_path, open_writer, output_kind, write_image, write_video


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
    with pytest.raises(UserError, match="holds other files"):
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
    assert sorted(p.name for p in dest.iterdir()) == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    for i, f in enumerate(frames):
        assert np.array_equal(np.asarray(Image.open(dest / f"frame_{i:05d}.png")), f)
    # Rendering again replaces a folder that holds only our frames.
    write_video(smooth_frames(1), dest)
    assert [p.name for p in dest.iterdir()] == ["frame_00000.png"]
    assert leftovers(tmp_path) == []


def test_write_image_is_atomic_and_checks_extension(tmp_path):
    img = smooth_frames(1)[0]
    dest = write_image(img, tmp_path / "grid.png")
    assert np.array_equal(np.asarray(Image.open(dest)), img)
    with pytest.raises(UserError, match="unknown image extension"):
        write_image(img, tmp_path / "grid.xyz")
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
            write_image(smooth_frames(1)[0], tmp_path / name)
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
