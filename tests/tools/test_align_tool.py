"""Tests for tools/align.py: --help, a real run, --list, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.align import main

REPO = Path(__file__).resolve().parents[2]
FACES = REPO.parent / "shared" / "data" / "faces"
needs_photos = pytest.mark.skipif(not FACES.is_dir(), reason=f"test photos not found at {FACES}")


def test_help_runs_as_script() -> None:
    # As a user would run it: `python tools/align.py --help` from the repo root.
    done = subprocess.run([sys.executable, "tools/align.py", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--face-index" in done.stdout and "examples:" in done.stdout
    assert "default: 1024" in done.stdout


@needs_photos
def test_real_run_writes_aligned_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "aligned.png"
    assert main([str(FACES / "dlib_tom_cruise.jpg"), "-o", str(out), "--size", "128"]) == 0
    img = Image.open(out)
    assert img.size == (128, 128) and img.mode == "RGB"
    assert np.asarray(img).std() > 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aligned.png"]   # no temp file left
    assert "wrote" in capsys.readouterr().out


@needs_photos
def test_list_prints_faces_largest_first(capsys: pytest.CaptureFixture) -> None:
    assert main([str(FACES / "dlib_two_women.jpg"), "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("2 faces")
    areas = [int(line.split("area=")[1].split()[0]) for line in lines[1:]]
    assert len(areas) == 2 and areas[0] >= areas[1]
    assert lines[1].strip().startswith("0: box=(")


@needs_photos
@pytest.mark.parametrize("args,expected", [
    (["{faces}/skimage_nonface_cat.png", "-o", "{tmp}/x.png"], "no face found"),
    (["{faces}/dlib_two_women.jpg", "-o", "{tmp}/x.png", "--face-index", "7"], "found 2 faces"),
    (["{tmp}/missing.jpg", "-o", "{tmp}/x.png"], "not found"),
    (["{faces}/dlib_two_women.jpg", "-o", "{tmp}/x.bmpx"], "unknown image extension"),
])
def test_user_errors_are_one_line(args: list[str], expected: str, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    argv = [a.format(faces=FACES, tmp=tmp_path) for a in args]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert expected in err
    assert not (tmp_path / "x.png").exists()


def test_output_is_required_without_list() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["photo.jpg"])
    assert exc.value.code == 2


# --- issue 9: never overwrite the photo, bounded sizes, signals, FIFOs --------------------------

HOPPER = REPO / "pretrained" / "examples" / "grace_hopper.jpg"


def _one_line_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "dotted"])
def test_output_that_is_the_input_is_refused(how: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 9.1: `align.py me.jpg -o me.jpg` replaced the photo with its crop."""
    import os

    photo = tmp_path / "me.jpg"
    photo.write_bytes(HOPPER.read_bytes())
    output = {"same": photo, "symlink": tmp_path / "link.jpg", "hardlink": tmp_path / "hard.jpg",
              "dotted": tmp_path / "." / "me.jpg"}[how]
    if how == "symlink":
        output.symlink_to(photo)
    elif how == "hardlink":
        os.link(photo, output)
    assert main([str(photo), "-o", str(output), "--size", "64"]) == 1
    assert "is the input" in _one_line_error(capsys)
    assert photo.read_bytes() == HOPPER.read_bytes()


@pytest.mark.parametrize("args,expected", [
    (["--size", "100000"], "--size must be a positive number of pixels, at most 4096, got 100000"),
    (["--size", "0"], "--size must be a positive number of pixels"),
    (["--transform-size", "1000000000"], "--transform-size must be"),
    (["-o", "{tmp}/x.bmpx"], "unknown image extension"),
    (["-o", "{tmp}/" + "n" * 300 + ".png"], "file name too long"),
])
def test_bad_options_fail_before_any_work(args: list[str], expected: str, tmp_path: Path, monkeypatch,
                                          capsys: pytest.CaptureFixture) -> None:
    """Issue 9.8/9.20: --size 100000 tried a 480 GB allocation; options are checked before decoding."""
    import encoders.align

    monkeypatch.setattr(encoders.align, "align_face", lambda *a, **k: pytest.fail("work started"))
    argv = [str(HOPPER)] + [a.format(tmp=tmp_path) for a in args]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "x.png")]
    assert main(argv) == 1
    assert expected in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum,code", [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_signals_end_cleanly_without_a_traceback(signum: str, code: int, tmp_path: Path, monkeypatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    """Issue 9.11/9.24: Ctrl-C printed a KeyboardInterrupt traceback; SIGTERM/SIGHUP must act like it."""
    import os
    import signal

    import encoders.align

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), getattr(signal, signum))
        pytest.fail("the signal did not interrupt")

    monkeypatch.setattr(encoders.align, "align_face", interrupted)
    before = signal.getsignal(signal.SIGTERM)
    assert main([str(HOPPER), "-o", str(tmp_path / "x.png")]) == code
    assert capsys.readouterr().err == "interrupted\n"
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    assert list(tmp_path.iterdir()) == []


def test_fifo_input_is_refused_not_waited_on(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 9.25: a FIFO as input blocked forever."""
    import os

    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    assert main([str(fifo), "-o", str(tmp_path / "x.png")]) == 1
    assert "FIFO" in _one_line_error(capsys)
