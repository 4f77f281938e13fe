"""tools/latent_map.py: a folder of photos mapped twice, the second time from the code cache; one-line errors."""

from __future__ import annotations

import csv
import importlib
import shutil

import pytest
from PIL import Image

from tests.helpers import ASTRONAUT, HOPPER, count_encodes
from tools.latent_map import main

pytestmark = pytest.mark.usefixtures("offline")  # no network, no user cache (tests/conftest.py)


@pytest.fixture
def faces(tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    shutil.copy(HOPPER, folder / "hopper.jpg")
    shutil.copy(ASTRONAUT, folder / "astronaut.png")
    # A third photo: the astronaut mirrored (different bytes, so a different code).
    Image.open(ASTRONAUT).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "mirrored.png")
    Image.new("RGB", (160, 160), (90, 90, 90)).save(folder / "blank.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


@pytest.mark.slow  # aligns four photos twice over (about 10 s on an idle CPU)
def test_second_run_encodes_nothing(faces, model_file, tmp_path, capsys, monkeypatch):
    calls = count_encodes(monkeypatch)
    labels = tmp_path / "labels.csv"
    labels.write_text("name,who\nhopper.jpg,hopper\nastronaut.png,astronaut\nmirrored.png,astronaut\n")
    out = tmp_path / "map.png"
    argv = [str(faces), "-o", str(out), "--weights", str(model_file), "--refine", "0", "--methods", "pca",
            "--labels", str(labels), "--label-column", "who", "--cache-dir", str(tmp_path / "codes"),
            "--device", "cpu", "--thumb-size", "16"]
    assert main(argv + ["-q"]) == 0
    assert len(calls) == 3 and out.is_file()
    rows = list(csv.DictReader(open(tmp_path / "map.csv")))
    assert {r["file"]: r["label"] for r in rows} == {"astronaut.png": "astronaut", "hopper.jpg": "hopper",
                                                     "mirrored.png": "astronaut"}
    morph_module = importlib.import_module("encoders.morph")  # encoders.morph is also a function's name
    original = morph_module.prepare_inputs

    def no_alignment(inputs, *a, **k):
        assert all("broken" in str(p) for p in inputs), f"{inputs} aligned again"  # only the unreadable file
        return original(inputs, *a, **k)

    monkeypatch.setattr(morph_module, "prepare_inputs", no_alignment)
    assert main(argv) == 0
    assert len(calls) == 3  # every code came from the cache, and the faceless photo was not searched again
    summary = capsys.readouterr().out
    assert "mapped 3 faces with pca (0 encoded" in summary and "1 without a face (blank.png)" in summary
    assert "1 unusable (broken.jpg)" in summary


@pytest.mark.parametrize("extra,match", [
    (["--methods", "pca,mds"], "--methods: unknown 'mds'"),
    (["--labels", "x.csv"], "--labels and --label-column go together"),
    (["--no-cache", "--cache-dir", "c"], "contradict"),
    (["--thumb-size", "2"], "--thumb-size must be 8 to 256"),
    (["-o", "{faces}/hopper.jpg"], "name it .png"),
    (["-o", "{faces}/blank.png"], "is the input"),
    (["--model", "no-such-model"], "not a known model name"),
])
def test_errors_are_one_line(extra, match, faces, model_file, tmp_path, capsys):
    argv = [str(faces)] + [a.format(faces=faces) for a in extra] + ["-q", "--device", "cpu"]
    if "--model" not in argv:
        argv += ["--weights", str(model_file)]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "map.png")]
    before = {p.name: p.read_bytes() for p in faces.iterdir()}
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err
    assert {p.name: p.read_bytes() for p in faces.iterdir()} == before
    assert not (tmp_path / "map.png").exists()
