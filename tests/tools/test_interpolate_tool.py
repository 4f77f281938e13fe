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
from tests.encoders.test_morph import ASTRONAUT, HOPPER, generator_file, model_file, offline  # noqa: F401
from tests.tools.test_generate_tool import run_and_interrupt
from tools.interpolate import main

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
            "--save-latents", "-o", str(out), "-q"]
    code, err = run_and_interrupt(argv, tmp_path, lambda: any(
        p.name.startswith(".long.gif.") and p.stat().st_size > 0 for p in tmp_path.iterdir()))
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "interrupted"
    assert list(tmp_path.iterdir()) == []  # no video, no temp file, no latents
