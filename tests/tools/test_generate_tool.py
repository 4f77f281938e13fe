"""tools/generate.py: --help, seed grids, seed interpolation videos, one-line errors and Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylegan import load_generator
from stylegan.render import render_seeds
from tests.helpers import run_and_interrupt
from tools.generate import main, parse_seeds

pytestmark = pytest.mark.usefixtures("offline")  # no network, no user cache (tests/conftest.py)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def weights(generator_file) -> Path:  # noqa: F811
    return generator_file


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_help_runs_as_script():
    done = subprocess.run([sys.executable, "tools/generate.py", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "examples:" in done.stdout and "--seeds 0-7 --trunc 0.7" in done.stdout and "--interp" in done.stdout


def test_parse_seeds():
    assert parse_seeds("0-7") == list(range(8))
    assert parse_seeds("1,5,9") == [1, 5, 9]
    assert parse_seeds("0-2, 7") == [0, 1, 2, 7]
    for bad in ("7-0", "a", "-3", "1,,2", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_seeds(bad)


def test_grid_of_seeds(weights, tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["--weights", str(weights), "--seeds", "0-5", "--cols", "3", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    grid = np.asarray(Image.open(out))
    assert grid.shape == (64, 96, 3)
    faces = render_seeds(load_generator(weights), [0, 1, 2, 3, 4, 5], progress=False)
    assert np.array_equal(grid[32:, 64:], faces[5])  # row 1, column 2 is seed 5
    assert np.array_equal(grid[:32, :32], faces[0])
    assert not np.array_equal(faces[0], faces[1])


def test_truncation_zero_gives_the_average_face_everywhere(weights, tmp_path):
    out = tmp_path / "avg.png"
    assert main(["--weights", str(weights), "--seeds", "0,1", "--trunc", "0", "-o", str(out), "-q"]) == 0
    grid = np.asarray(Image.open(out))
    assert np.array_equal(grid[:, :32], grid[:, 32:])


def test_interpolation_between_seeds(weights, tmp_path):
    out = tmp_path / "frames"
    assert main(["--weights", str(weights), "--interp", "--seeds", "0,1,2", "--steps", "5", "--hold", "1",
                 "-o", str(out), "-q"]) == 0
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == 3 * 1 + 2 * 4 + 1
    first = np.asarray(Image.open(frames[0])).astype(int)
    seed0, seed2 = render_seeds(load_generator(weights), [0, 2], progress=False).astype(int)
    assert np.abs(first - seed0).max() <= 1
    assert np.abs(np.asarray(Image.open(frames[-1])).astype(int) - seed2).max() <= 1


def test_interpolation_mp4(weights, tmp_path):
    import imageio_ffmpeg

    out = tmp_path / "seeds.mp4"
    assert main(["--weights", str(weights), "--interp", "--seeds", "3,4", "--steps", "8", "--loop", "--size", "48",
                 "-o", str(out), "-q"]) == 0
    reader = imageio_ffmpeg.read_frames(str(out))
    assert next(reader)["size"] == (48, 48)
    assert sum(1 for _ in reader) == 2 * 7


@pytest.mark.parametrize("args,match", [
    (["--model", "no-such-model"], "not a known model name"),
    (["--weights", "{tmp}/gone.pt"], "gone.pt"),
    (["--weights", "{tmp}/notes.txt"], "notes.txt: "),
    (["--model", "stylegan2-ffhq-config-f"], "downloads are off"),
    (["--weights", "{w}", "--interp", "--seeds", "3"], "at least 2 seeds"),
    (["--weights", "{w}", "--interp", "--seeds", "0,1", "--steps", "1"], "--steps must be at least 2"),
    (["--weights", "{w}", "-o", "{tmp}/no/dir/grid.png"], "does not exist"),
    (["--weights", "{w}", "-o", "{tmp}/grid.bmpx"], "unknown image extension"),
    (["--weights", "{w}", "--interp", "--seeds", "0,1", "-o", "{tmp}/v.avi"], "unsupported output type"),
    # issue 9: absurd counts, sizes and rates are refused before the model loads
    (["--weights", "{tmp}/gone.pt", "--seeds", "0-20000"], "20001 faces is more than 10000; set --yes"),
    (["--weights", "{tmp}/gone.pt", "--seeds", "0-9999", "--size", "1024", "--yes"], "at most 128 faces fit"),
    (["--weights", "{tmp}/gone.pt", "--size", "100000"], "--size must be a positive number of pixels, at most 4096"),
    (["--weights", "{tmp}/gone.pt", "--interp", "--seeds", "0,1", "--steps", "100000", "-o", "{tmp}/v.mp4"],
     "100000 frames is more than 10000; set --yes"),
    (["--weights", "{tmp}/gone.pt", "--interp", "--seeds", "0,1", "--fps", "inf", "-o", "{tmp}/v.mp4"],
     "--fps must be a finite number"),
    (["--weights", "{tmp}/gone.pt", "--interp", "--seeds", "0,1", "--crf", "99", "-o", "{tmp}/v.mp4"],
     "--crf must be an integer from 0"),
    (["--weights", "{tmp}/gone.pt", "--interp", "--seeds", "0,1", "--fps", "60", "-o", "{tmp}/v.gif"],
     "--fps must be at most 50 for a GIF"),
    (["--weights", "{tmp}/w.png", "-o", "{tmp}/w.png"], "is the input"),
])
def test_errors_are_one_line(args, match, weights, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not weights")
    argv = [a.format(tmp=tmp_path, w=weights) for a in args]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out.png")]
    assert main(argv + ["-q"]) == 1
    assert match in one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_bad_seed_syntax_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--seeds", "9-1"])
    assert exc.value.code == 2 and "bad seed list" in capsys.readouterr().err


def test_sigint_mid_render_leaves_no_file(weights, tmp_path):
    """Ctrl-C as a user sends it: SIGINT to a running render; exit 130 and nothing at the destination."""
    out = tmp_path / "long.mp4"
    argv = [str(REPO / "tools" / "generate.py"), "--weights", str(weights), "--interp", "--seeds", "0,1",
            "--steps", "1000000", "--yes", "-o", str(out), "-q"]
    code, err = run_and_interrupt(argv, tmp_path, lambda: any(p.name.startswith(".long.mp4.")
                                                              for p in tmp_path.iterdir()))
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_huge_seed_ranges_are_refused_before_they_are_expanded():
    """Issue 9.19: `--seeds 0-100000000` used 4.8 GB and printed nothing for a minute."""
    import time

    start = time.perf_counter()
    with pytest.raises(argparse.ArgumentTypeError, match="more than 1000000 seeds"):
        parse_seeds("0-100000000")
    with pytest.raises(argparse.ArgumentTypeError, match="more than 1000000 seeds"):
        parse_seeds("0-999999,5,6")
    assert time.perf_counter() - start < 1  # counted, not built
    assert len(parse_seeds("0-999999")) == 1_000_000


def test_plan_is_printed_and_over_the_limit_needs_yes(weights, tmp_path, capsys, monkeypatch):
    """Issue 9.19: the count and estimates come first; a long estimate is refused without --yes."""
    import stylegan.limits

    out = tmp_path / "v.gif"
    assert main(["--weights", str(weights), "--interp", "--seeds", "0,1", "--steps", "5", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "plan: 5 frames at 32x32: about " in err and "measured" in err and "as gif" in err
    monkeypatch.setattr(stylegan.limits, "CONFIRM_SECONDS", 1e-9)  # any estimate is now "too long"
    out.unlink()
    assert main(["--weights", str(weights), "--interp", "--seeds", "0,1", "--steps", "5", "-o", str(out)]) == 1
    assert "set --yes to go ahead" in capsys.readouterr().err
    assert not out.exists()
    assert main(["--weights", str(weights), "--interp", "--seeds", "0,1", "--steps", "5", "--yes", "-q",
                 "-o", str(out)]) == 0


def test_sighup_mid_render_leaves_no_file(weights, tmp_path):
    """Issue 9.24: SIGHUP (a closed terminal) during a render must clean up like Ctrl-C."""
    out = tmp_path / "long.mp4"
    argv = [str(REPO / "tools" / "generate.py"), "--weights", str(weights), "--interp", "--seeds", "0,1",
            "--steps", "1000000", "--yes", "-o", str(out), "-q"]
    code, err = run_and_interrupt(argv, tmp_path, lambda: any(p.name.startswith(".long.mp4.")
                                                              for p in tmp_path.iterdir()), sig=signal.SIGHUP)
    assert code == 128 + signal.SIGHUP, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == []
