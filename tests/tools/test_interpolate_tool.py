"""tools/interpolate.py: --help, a photo-to-photo morph, every bad input as a one-line error, and Ctrl-C."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from encoders.morph import save_latent
from stylegan import load_generator
from tests.helpers import ASTRONAUT, HOPPER, run_and_interrupt
from tools.interpolate import main

pytestmark = pytest.mark.usefixtures("offline")  # no network, no user cache (tests/conftest.py)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def latents(generator_file, tmp_path_factory) -> tuple[Path, Path, Path]:  # noqa: F811
    """A generator-only file and two codes for it: morphs that need no encoder and no dlib."""
    folder = tmp_path_factory.mktemp("latents")
    G = load_generator(generator_file)
    ws = G.mapping(torch.randn(2, G.z_dim))
    return generator_file, save_latent(folder / "a.npy", ws[0]), save_latent(folder / "b.npy", ws[1])


def mp4_frames(path: Path) -> tuple[tuple[int, int], int]:
    reader = imageio_ffmpeg.read_frames(str(path))
    size = next(reader)["size"]
    return size, sum(1 for _ in reader)


def test_help_runs_as_script():
    done = subprocess.run([sys.executable, "tools/interpolate.py", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for text in ("examples:", "face1.jpg face2.jpg --steps 60", "--side-by-side", "--schedule", "--weights PATH"):
        assert text in done.stdout


def test_photos_to_default_named_mp4_in_the_current_folder(model_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main([str(HOPPER), str(ASTRONAUT), "--weights", str(model_file), "--steps", "6", "--hold", "2",
                 "--device", "cpu", "--save-latents"])
    assert code == 0
    out = tmp_path / "grace_hopper_to_astronaut.mp4"
    assert mp4_frames(out) == ((32, 32), 6 + 2 * 2)
    stdout = capsys.readouterr().out
    assert "wrote grace_hopper_to_astronaut.mp4 (10 frames, 32x32" in stdout
    assert "grace_hopper_to_astronaut_astronaut.npy" in stdout
    assert np.load(tmp_path / "grace_hopper_to_astronaut_grace_hopper.npy").shape == (8, 16)


def test_latents_side_by_side_gif(latents, tmp_path):
    gen, a, b = latents
    out = tmp_path / "ab.gif"
    assert main([str(a), str(b), "--weights", str(gen), "--steps", "4", "--side-by-side", "--kind", "slerp",
                 "--schedule", "coarse-to-fine", "--easing", "cosine", "-o", str(out), "-q"]) == 0
    with Image.open(out) as im:
        assert im.size == (96, 32) and im.n_frames == 4


def _bad_files(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("this is not a picture")
    (tmp_path / "truncated.jpg").write_bytes(HOPPER.read_bytes()[:3000])
    Image.new("RGB", (200, 200), (128, 128, 128)).save(tmp_path / "blank.png")


@pytest.mark.parametrize("args,match", [
    (["{hopper}", "{tmp}/nobody.jpg"], "nobody.jpg: file not found"),
    (["{hopper}", "{tmp}/notes.jpg"], "notes.jpg: not an image file"),
    (["{hopper}", "{tmp}/truncated.jpg"], "truncated.jpg: cannot decode image, file is corrupt or truncated"),
    (["{hopper}", "{tmp}/blank.png"], "blank.png: no face found"),
    (["{hopper}", "{astronaut}", "--steps", "1"], "--steps must be at least 2"),
    (["{hopper}", "{astronaut}", "-o", "{tmp}/no/such/dir/out.mp4"], "does not exist"),
    (["{hopper}", "{astronaut}", "-o", "{tmp}/out.avi"], "unsupported output type"),
    (["{hopper}", "{astronaut}", "--model", "no-such-model"], "not a known model name"),
    (["{hopper}", "{astronaut}", "--model", "e4e-ffhq"], "downloads are off"),
    (["{hopper}", "{astronaut}", "--weights", "{tmp}/gone.pt"], "gone.pt: weights file not found"),
    (["{hopper}"], "at least 2 inputs"),
])
def test_bad_input_is_one_line_error_and_writes_nothing(args, match, model_file, tmp_path, capsys):
    _bad_files(tmp_path)
    argv = [a.format(hopper=HOPPER, astronaut=ASTRONAUT, tmp=tmp_path) for a in args]
    if "--model" not in argv and "--weights" not in argv:
        argv += ["--weights", str(model_file)]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out.mp4")]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv + ["-q", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert match in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_sigint_mid_render_leaves_no_file(latents, tmp_path):
    gen, a, b = latents
    out = tmp_path / "long.gif"
    argv = [str(REPO / "tools" / "interpolate.py"), str(a), str(b), "--weights", str(gen), "--steps", "1000000",
            "--yes", "--save-latents", "-o", str(out), "-q"]
    code, err = run_and_interrupt(argv, tmp_path, lambda: any(
        p.name.startswith(".long.gif.") and p.stat().st_size > 0 for p in tmp_path.iterdir()))
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert list(tmp_path.iterdir()) == []  # no video, no temp file, no latents


# ----------------------------------------------------------------------------- issue 9


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink"])
def test_output_that_is_an_input_is_refused(how, latents, tmp_path, capsys):
    """Issue 9.1: `I me.gif b.png -o me.gif` replaced the photo with the morph."""
    import os

    gen, a, b = latents
    me = tmp_path / "me.gif"
    me.write_bytes(HOPPER.read_bytes())
    out = {"same": me, "symlink": tmp_path / "link.gif", "hardlink": tmp_path / "hard.gif"}[how]
    if how == "symlink":
        out.symlink_to(me)
    elif how == "hardlink":
        os.link(me, out)
    assert main([str(me), str(b), "--weights", str(gen), "--steps", "3", "-o", str(out), "-q"]) == 1
    assert "is the input" in _error(capsys)
    assert me.read_bytes() == HOPPER.read_bytes()


def test_frames_folder_of_the_users_own_pngs_is_never_replaced(latents, tmp_path, capsys):
    """Issue 9.2: `I frames/frame_00000.png frames/frame_00009.png -o frames` turned 10 files into 4."""
    gen, a, b = latents
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(10):
        Image.new("RGB", (8, 8), (i, i, i)).save(frames / f"frame_{i:05d}.png")
    assert main([str(frames / "frame_00000.png"), str(frames / "frame_00009.png"), "--weights", str(gen),
                 "-o", str(frames), "-q"]) == 1
    assert "not written by this tool" in _error(capsys)
    assert len(list(frames.iterdir())) == 10
    # A folder we rendered may be replaced, but not while one of its frames is an input.
    ours = tmp_path / "ours"
    assert main([str(a), str(b), "--weights", str(gen), "--steps", "3", "-o", str(ours), "-q"]) == 0
    before = sorted(p.name for p in ours.iterdir())
    assert main([str(ours / "frame_00001.png"), str(b), "--weights", str(gen), "-o", str(ours), "-q"]) == 1
    assert "holds the input" in _error(capsys)
    assert sorted(p.name for p in ours.iterdir()) == before
    assert main([str(a), str(b), "--weights", str(gen), "--steps", "2", "-o", str(ours), "-q"]) == 0
    assert len(list(ours.glob("frame_*.png"))) == 2


def test_save_latents_never_overwrites_an_input(latents, tmp_path, capsys):
    """Issue 9.3: --save-latents overwrote an input .npy when the names collided (o.gif + o_a.npy)."""
    gen, a, b = latents
    collide = tmp_path / "o_a.npy"
    collide.write_bytes(b.read_bytes())
    a_here = tmp_path / "a.npy"
    a_here.write_bytes(a.read_bytes())
    assert main([str(a_here), str(collide), "--weights", str(gen), "--steps", "3", "--save-latents",
                 "-o", str(tmp_path / "o.gif"), "-q"]) == 1
    assert "o_a.npy: is the input" in _error(capsys)
    assert collide.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "o_a.npy"]  # no video either


@pytest.mark.parametrize("args,match", [
    (["--fps", "inf", "-o", "{tmp}/o.mp4"], "--fps must be a finite number"),
    (["--fps", "1e9", "-o", "{tmp}/o.mp4"], "--fps must be above 0 and at most 240"),
    (["--fps", "inf", "-o", "{tmp}/o.gif"], "--fps must be a finite number"),
    (["--fps", "60", "-o", "{tmp}/o.gif"], "--fps must be at most 50 for a GIF"),
    (["--crf", "99"], "--crf must be an integer from 0 (lossless) to 51, got 99"),
    (["--size", "100000"], "--size must be a positive number of pixels, at most 4096, got 100000"),
    (["--steps", "100000"], "100000 frames is more than 10000; set --yes to go ahead"),
    (["--hold", "600000", "--yes"], "is more than the limit of 1000000"),
    (["--hold", "1000000000", "--yes"], "--hold must be 0 or more frames and at most 1,000,000"),
    (["-o", "{tmp}/" + "x" * 300 + ".mp4"], "file name too long"),
])
def test_bad_options_fail_before_any_work(args, match, latents, tmp_path, capsys, monkeypatch):
    """Issue 9.7/9.8/9.19/9.20/9.21: every option is checked before alignment, loading or encoding."""
    import importlib

    gen, a, b = latents
    monkeypatch.setattr(importlib.import_module("encoders.morph"), "prepare_inputs", lambda *x, **k: pytest.fail("work started"))
    argv = [str(a), str(b), "--weights", str(gen)] + [x.format(tmp=tmp_path) for x in args]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "o.mp4")]
    assert main(argv + ["-q"]) == 1
    assert match in _error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_plan_is_printed_before_rendering(latents, tmp_path, capsys):
    """Issue 9.19: the frame count and estimates of time and disk come before the work."""
    gen, a, b = latents
    assert main([str(a), str(b), "--weights", str(gen), "--steps", "5", "--hold", "1",
                 "-o", str(tmp_path / "o.gif")]) == 0
    err = capsys.readouterr().err
    plan = [line for line in err.splitlines() if line.startswith("plan: ")]
    assert len(plan) == 1 and plan[0].startswith("plan: 7 frames at 32x32: about ") and "as gif" in plan[0]
    assert err.index("plan: ") < err.index("rendering")


def test_default_name_from_long_input_names_fits(latents, tmp_path, monkeypatch, capsys):
    """Issue 9.9: the default name built from two long input names gave an ENAMETOOLONG traceback."""
    gen, a, b = latents
    monkeypatch.chdir(tmp_path)
    long_a, long_b = tmp_path / ("a" * 200 + ".npy"), tmp_path / ("b" * 200 + ".npy")
    long_a.write_bytes(a.read_bytes())
    long_b.write_bytes(b.read_bytes())
    assert main([long_a.name, long_b.name, "--weights", str(gen), "--steps", "2", "--save-latents", "-q"]) == 0
    written = sorted(p.name for p in tmp_path.iterdir() if p not in (long_a, long_b))
    assert len(written) == 3 and all(len(n.encode()) <= 255 for n in written)
    assert [n for n in written if n.endswith(".mp4")] and not [n for n in written if n.startswith(".")]


def test_sigterm_mid_render_leaves_no_file(latents, tmp_path):
    """Issue 9.24: SIGTERM during a render left a hidden temporary folder holding a partial video."""
    import os
    import signal
    import time

    gen, a, b = latents
    out = tmp_path / "long.mp4"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "tools" / "interpolate.py"), str(a), str(b), "--weights",
                             str(gen), "--steps", "1000000", "--yes", "--save-latents", "-o", str(out), "-q"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        # The MP4 is being written once ffmpeg's output inside the hidden temp folder has bytes.
        while not any(f.stat().st_size > 0 for d in tmp_path.glob(".long.mp4.*") for f in d.glob("video.mp4")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the render never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert list(tmp_path.iterdir()) == []  # no video, no temp folder, no latents


def test_fifo_input_is_refused_not_waited_on(latents, tmp_path, capsys):
    """Issue 9.25: a FIFO as input blocked forever."""
    import os

    gen, a, b = latents
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    assert main([str(a), str(fifo), "--weights", str(gen), "-o", str(tmp_path / "o.gif"), "-q"]) == 1
    assert "photo.jpg: is a FIFO" in _error(capsys)
