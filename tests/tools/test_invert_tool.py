"""tools/invert.py: --help, the three outputs per photo, reuse of the latent, one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import ASTRONAUT, HOPPER, count_encodes
from tools import interpolate
from tools.invert import main

pytestmark = pytest.mark.usefixtures("offline")  # no network, no user cache (tests/conftest.py)

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


# ----------------------------------------------------------------------------- a whole folder


@pytest.fixture
def photo_folder(tmp_path):
    """Two faces, one blank picture (no face) and a note that is not a photo."""
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(HOPPER, folder / HOPPER.name)
    shutil.copy(ASTRONAUT, folder / ASTRONAUT.name)
    Image.new("RGB", (160, 160), (90, 90, 90)).save(folder / "blank.png")
    (folder / "notes.txt").write_text("not a photo")
    return folder


@pytest.mark.slow  # aligns three photos three times
def test_folder_lists_faceless_photos_and_resumes(photo_folder, model_file, tmp_path, capsys, monkeypatch):
    calls = count_encodes(monkeypatch)
    out = tmp_path / "codes"
    argv = [str(photo_folder), "-o", str(out), "--weights", str(model_file), "--device", "cpu", "--refine", "0"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("inverted 2 photos, 1 without a face (blank.png)"), lines
    assert sorted(p.name for p in out.glob("*_latent.npy")) == ["astronaut_latent.npy", "grace_hopper_latent.npy"]
    assert len(calls) == 2
    # As if the run had been interrupted before the astronaut: only that photo is encoded again.
    (out / "astronaut_latent.npy").unlink()
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("inverted 1 photo, 1 already done, 1 without a face")
    assert len(calls) == 3
    # Everything done: nothing is encoded.
    assert main(argv + ["-q"]) == 0 and len(calls) == 3 and capsys.readouterr().out == ""


@pytest.mark.parametrize("extra,match", [
    (["{folder}"], "must differ from the photo folder"),
    (["{tmp}/empty"], "no photos in this folder"),
    (["{folder}", "{hopper}"], "give one folder, or photos"),
])
def test_folder_errors(extra, match, photo_folder, model_file, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = [a.format(folder=photo_folder, tmp=tmp_path, hopper=HOPPER) for a in extra]
    out = str(photo_folder) if match.startswith("must differ") else str(tmp_path / "out")
    assert main(args + ["-o", out, "--weights", str(model_file), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err, err
    assert sorted(p.name for p in photo_folder.iterdir()) == ["astronaut.png", "blank.png", "grace_hopper.jpg",
                                                              "notes.txt"]
