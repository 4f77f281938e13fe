"""tools/invert.py: --help, the three outputs per photo, reuse of the latent, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.encoders.test_morph import ASTRONAUT, HOPPER, model_file, offline  # noqa: F401  (shared fixtures)
from tools import interpolate
from tools.invert import main

REPO = Path(__file__).resolve().parents[2]


def test_help_runs_as_script():
    done = subprocess.run([sys.executable, "tools/invert.py", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "examples:" in done.stdout and "photo_latent.npy" in done.stdout


def test_writes_aligned_reconstruction_and_latent_then_morphs_from_them(model_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(HOPPER), str(ASTRONAUT), "-o", str(out), "--weights", str(model_file), "--device", "cpu"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{s}_{k}" for s in ("grace_hopper", "astronaut")
                           for k in ("aligned.png", "reconstruction.png", "latent.npy"))
    assert Image.open(out / "grace_hopper_reconstruction.png").size == (32, 32)
    assert np.load(out / "astronaut_latent.npy").shape == (8, 16)
    assert capsys.readouterr().out.count("wrote") == 2
    # The codes replace the photos in a morph (no alignment or encoding then).
    video = tmp_path / "frames"
    assert interpolate.main([str(out / "grace_hopper_latent.npy"), str(out / "astronaut_latent.npy"),
                             "--weights", str(model_file), "--steps", "3", "-o", str(video), "-q"]) == 0
    first = np.asarray(Image.open(video / "frame_00000.png")).astype(int)
    recon = np.asarray(Image.open(out / "grace_hopper_reconstruction.png")).astype(int)
    assert np.abs(first - recon).max() <= 1


@pytest.mark.parametrize("args,match", [
    (["{tmp}/nobody.jpg"], "nobody.jpg: file not found"),
    (["{tmp}/blank.png"], "blank.png: no face found"),
    (["{tmp}/notes.jpg"], "notes.jpg: not an image file"),
    (["{tmp}/a.npy"], "is already a latent"),
    (["{hopper}", "--model", "no-such-model"], "not a known model name"),
    (["{hopper}", "--model", "e4e-ffhq"], "downloads are off"),
    (["{hopper}", "-o", "{tmp}/a_file"], "cannot create the output folder"),
])
def test_errors_are_one_line(args, match, model_file, tmp_path, capsys):
    Image.new("RGB", (160, 160), (90, 90, 90)).save(tmp_path / "blank.png")
    (tmp_path / "notes.jpg").write_text("not a photo")
    (tmp_path / "a_file").write_text("x")
    np.save(tmp_path / "a.npy", np.zeros((8, 16), np.float32))
    argv = [a.format(tmp=tmp_path, hopper=HOPPER) for a in args]
    if "--model" not in argv:
        argv += ["--weights", str(model_file)]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out")]
    assert main(argv + ["-q", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert match in err
    assert not (tmp_path / "out").exists()  # not even an empty folder
