"""tools/edit.py on a tiny random model: every mode's output checked against the edit math; one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan import load_generator
from stylegan.editing import Direction
from stylegan.render import render_images
from tests.helpers import HOPPER, count_encodes
from tools.edit import main

pytestmark = pytest.mark.usefixtures("offline")  # no network, no user cache (tests/conftest.py)


@pytest.fixture
def codes(model_file, tmp_path):
    """Three .npy codes of the tiny model and a W direction file for it."""
    G = load_generator(model_file)
    paths = []
    for k in range(3):
        ws = G.mapping(torch.randn(1, G.z_dim))[0]  # [8, 16]
        paths.append(tmp_path / f"face{k}.npy")
        np.save(paths[-1], ws.numpy())
    d = Direction(torch.randn(16), name="demo", source="test")
    d.save(tmp_path / "demo.pt")
    return paths, tmp_path / "demo.pt", G


def run(*argv, model=None):
    return main([str(a) for a in argv] + ["--weights", str(model), "--device", "cpu", "-q"])


def test_edit_moves_the_code_by_strength_steps(codes, model_file, tmp_path):
    (a, _, _), direction, G = codes
    assert run(a, "--direction", direction, "--strength", "2.5", "-o", tmp_path / "out.npy", model=model_file) == 0
    d = Direction.load(direction)
    expected = np.load(a) + 2.5 * d.scale * d.vector.numpy()  # a W direction moves every position
    assert np.allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)
    # Strength 0 gives the input's own picture back; a layer choice edits only those rows.
    assert run(a, "--direction", direction, "--strength", "0", "-o", tmp_path / "zero.png", model=model_file) == 0
    own = render_images(G, torch.from_numpy(np.load(a))[None])[0].astype(int)
    assert np.abs(np.asarray(Image.open(tmp_path / "zero.png")).astype(int) - own).max() <= 1
    assert run(a, "--direction", direction, "--layers", "coarse", "-o", tmp_path / "c.npy", model=model_file) == 0
    moved = np.abs(np.load(tmp_path / "c.npy") - np.load(a)).sum(axis=1) > 1e-6
    assert moved.tolist() == [True] * 4 + [False] * 4


def test_named_directions_default_names_and_folders(codes, model_file, tmp_path, monkeypatch, capsys):
    (a, b, _), _, _ = codes
    assert main(["--list-directions", "--weights", str(model_file), "--device", "cpu"]) == 0
    listed = capsys.readouterr().out
    assert "sefa0" in listed and "pca0" in listed
    monkeypatch.chdir(tmp_path)
    assert run(a, b, "--direction", "sefa0", "--strength", "-1", model=model_file) == 0
    assert (tmp_path / "face0_sefa0-1.png").is_file() and (tmp_path / "face1_sefa0-1.png").is_file()
    assert run(a, b, "--direction", "sefa1", "-o", "edited/", model=model_file) == 0
    assert sorted(p.name for p in (tmp_path / "edited").iterdir()) == ["face0_sefa1+3.png", "face1_sefa1+3.png"]


def test_mix_and_arithmetic(codes, model_file, tmp_path):
    (a, b, c), _, _ = codes
    A, B, C = (np.load(p) for p in (a, b, c))
    assert run(a, "--mix", b, "--layers", "0-1,5", "-o", tmp_path / "mix.npy", model=model_file) == 0
    mixed = np.load(tmp_path / "mix.npy")
    assert np.array_equal(mixed[[0, 1, 5]], B[[0, 1, 5]]) and np.array_equal(mixed[[2, 3, 4, 6, 7]], A[[2, 3, 4, 6, 7]])
    assert run("--arith", a, b, c, "--scale", "0.5", "-o", tmp_path / "ar.npy", model=model_file) == 0
    assert np.allclose(np.load(tmp_path / "ar.npy"), A + 0.5 * (C - B), atol=1e-6)


def test_sweep_runs_from_minus_to_plus_side_by_side(codes, model_file, tmp_path):
    (a, b, _), direction, G = codes
    out = tmp_path / "sweep"
    assert run(a, b, "--direction", direction, "--sweep", "--strength", "2", "--steps", "5", "-o", out,
               model=model_file) == 0
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == 5
    middle = np.asarray(Image.open(frames[2])).astype(int)
    assert middle.shape == (32, 64, 3)  # two faces side by side
    own = render_images(G, torch.from_numpy(np.stack([np.load(a), np.load(b)])))
    assert np.abs(middle - np.concatenate(list(own), axis=1).astype(int)).max() <= 1  # strength 0 in the middle
    first, last = (np.asarray(Image.open(f)).astype(int) for f in (frames[0], frames[-1]))
    assert np.abs(first - middle).mean() > 1 and np.abs(last - middle).mean() > 1


def test_sweep_takes_hold_easing_and_loop_like_a_morph(codes, model_file, tmp_path):
    (a, _, _), direction, _ = codes
    out = tmp_path / "held"
    assert run(a, "--direction", direction, "--sweep", "--steps", "5", "--hold", "2", "--easing", "cosine",
               "--loop", "-o", out, model=model_file) == 0
    frames = [np.asarray(Image.open(f)) for f in sorted(out.glob("frame_*.png"))]
    assert len(frames) == 2 * (2 + 5 - 1)  # a loop through two ends: K * (hold + steps - 1)
    assert np.array_equal(frames[0], frames[1]) and np.array_equal(frames[1], frames[2])  # held at -S


def test_sheet_has_a_row_per_input_and_direction(codes, model_file, tmp_path):
    (a, b, c), direction, _ = codes
    out = tmp_path / "sheet.png"
    assert run(a, b, "--sheet", "--direction", direction, "--direction", "sefa0", "--strengths=-1,0,1",
               "--arith", a, b, c, "--mix", b, "-o", out, model=model_file) == 0
    w, h = Image.open(out).size
    assert h > 6 * 32 and w > 5 * 32  # 4 direction rows + arithmetic + mixing; 5 cells in the widest


@pytest.mark.slow  # aligns a photo (about 5 s on an idle CPU)
def test_a_photo_is_encoded_once(model_file, tmp_path, monkeypatch):
    calls = count_encodes(monkeypatch)
    photo = tmp_path / "hopper.jpg"
    shutil.copy(HOPPER, photo)
    d = Direction(torch.randn(16), name="demo")
    d.save(tmp_path / "demo.pt")
    for strength in ("1", "-1"):
        assert run(photo, "--direction", tmp_path / "demo.pt", "--strength", strength, "--refine", "0",
                   "-o", tmp_path / f"e{strength}.png", model=model_file) == 0
    assert len(calls) == 1  # the second edit reads the cached code
    assert run(photo, "--direction", tmp_path / "demo.pt", "--refine", "0", "--no-cache", "-o",
               tmp_path / "again.png", model=model_file) == 0
    assert len(calls) == 2


@pytest.mark.parametrize("args,match", [
    (["{a}", "--direction", "smile"], "unknown direction 'smile'; known: "),
    (["{a}", "--direction", "{d}", "--strength", "nan"], "--strength must be finite"),
    (["{a}", "--direction", "{d}", "--strength", "1e9"], "--strength must be finite and within"),
    (["{a}", "--direction", "{d}", "-o", "{a}"], "is the input"),
    (["{a}", "--mix", "{b}", "-o", "{b}"], "is the input"),
    (["{a}", "--direction", "{d}", "--layers", "0-9"], "--layers must be in 0..7"),
    (["{a}", "{b}", "--direction", "{d}", "-o", "{tmp}/one.png"], "give a folder"),
    (["{a}", "--direction", "{d}", "-o", "{tmp}/x.avi"], "unsupported output type"),
    (["{a}"], "choose an edit"),
    (["{a}", "--direction", "{d}", "--sweep", "--strength", "0"], "non-zero --strength"),
    (["{a}", "--direction", "{tmp}/missing.pt"], "no such direction file"),
    (["{tmp}/nobody.npy", "--direction", "{d}"], "nobody.npy: file not found"),
    (["--arith", "{a}", "{b}", "{c}", "--direction", "{d}"], "--arith A B C takes its three faces"),
    (["{a}", "--sheet", "--direction", "{d}", "--strengths", "1,x"], "--strengths must be numbers"),
    (["{a}", "--direction", "{d}", "--model", "no-such-model"], "not a known model name"),
])
def test_errors_are_one_line_and_leave_inputs_alone(args, match, codes, model_file, tmp_path, capsys):
    (a, b, c), d, _ = codes
    argv = [x.format(a=a, b=b, c=c, d=d, tmp=tmp_path) for x in args] + ["--device", "cpu", "-q"]
    if "--model" not in argv:
        argv += ["--weights", str(model_file)]
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
