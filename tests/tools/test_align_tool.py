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
