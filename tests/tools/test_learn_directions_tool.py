"""tools/learn_directions.py end to end on a tiny random model and synthetic labelled faces."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan.editing import Direction
from stylegan.editing.labels import parse_rule, parse_where, read_labels
from stylegan.errors import UserError
from tools.learn_directions import main

pytestmark = pytest.mark.usefixtures("offline")  # no network, no user cache (tests/conftest.py)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """40 'faces' in two folders: bright ones are label 1; the second CSV codes the label the other way."""
    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for sub, name, flip in (("a", "labels.csv", False), ("b", "other_labels.csv", True)):
        (root / sub).mkdir()
        with open(root / name, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file", "person_id", "age", "bright"])
            for i in range(20):
                bright = i % 2
                img = rng.integers(0, 60, (32, 32, 3)) + 150 * bright
                Image.fromarray(img.astype(np.uint8)).save(root / sub / f"{i:02d}.png")
                w.writerow([f"{sub}/{i:02d}.png", f"{sub}{i // 2}", 10 + i, 1 - bright if flip else bright])
    return root


def _args(dataset: Path, model_file: Path, out: Path, *extra: str) -> list[str]:
    return ["--labels", str(dataset / "labels.csv"), str(dataset / "other_labels.csv"), "--column", "bright",
            "--positive", "1", "0", "--negative", "0", "1", "--weights", str(model_file), "--device", "cpu",
            "-q", "-o", str(out), *extra]


def test_learns_stores_accuracy_and_caches_codes(dataset, model_file, tmp_path, capsys) -> None:
    out, cache = tmp_path / "bright.pt", tmp_path / "codes.pt"
    assert main(_args(dataset, model_file, out, "--cache", str(cache), "--val-fraction", "0.3")) == 0
    printed = capsys.readouterr().out
    d = Direction.load(out)
    assert d.name == "bright" and abs(float(d.vector.norm()) - 1) < 1e-6 and d.vector.shape == (8, 16)
    acc = d.metadata["val_accuracy"]
    assert 0 <= acc <= 1 and f"held-out accuracy {acc:.1%}" in printed
    assert "learn_directions.py" in d.metadata["command"] and d.metadata["model_fingerprint"]
    assert d.metadata["standardized"] is False and 1 <= d.metadata["pca_k"] <= 128  # fitted in the top components
    cached = torch.load(cache, weights_only=True)
    assert len(cached["files"]) == 40
    # a second direction reuses the cache: the encoder is never called
    import encoders.e4e as e4e

    calls = []
    original = e4e.Encoder4Editing.encode
    e4e.Encoder4Editing.encode = lambda self, x: calls.append(1) or original(self, x)
    try:
        cond = tmp_path / "cond.pt"
        assert main(_args(dataset, model_file, cond, "--cache", str(cache), "--condition-on", str(out))) == 0
    finally:
        e4e.Encoder4Editing.encode = original
    assert not calls
    c = Direction.load(cond)
    assert abs(float((c.vector * d.vector).sum())) < 1e-5  # conditional: orthogonal to what was projected out


@pytest.mark.parametrize("extra, message", [
    (["--val-fraction", "1.5"], "--val-fraction"),
    (["--column", "bright", "bright", "bright"], "--column takes one value or one per CSV"),
    (["--positive", "lots"], "--positive must be a number or a comparison"),
    (["--where", "age"], "--where must look like"),
    (["--pca-k", "-1"], "--pca-k must be >= 0"),
])
def test_bad_options_fail_in_one_line_before_any_work(dataset, model_file, tmp_path, capsys, extra, message) -> None:
    assert main(_args(dataset, model_file, tmp_path / "x.pt", *extra)) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


def test_output_may_not_overwrite_an_input(dataset, model_file, tmp_path, capsys) -> None:
    out = tmp_path / "in.pt"
    Direction(torch.ones(16)).save(out)
    before = out.read_bytes()
    assert main(_args(dataset, model_file, out, "--condition-on", str(out))) == 1
    assert "is one of the inputs" in capsys.readouterr().err and out.read_bytes() == before


def test_label_rules_and_filters(dataset) -> None:
    rows = read_labels(dataset / "labels.csv", "age", parse_rule(">25"), parse_rule("<15"), [parse_where("bright=1")])
    assert {r.label for r in rows} == {0, 1} and all(int(r.path.stem) % 2 == 1 for r in rows)
    assert parse_rule("=1")(1.0) and parse_rule(">=50")(50) and not parse_rule("<20")(20)
    with pytest.raises(UserError, match="matches both"):
        read_labels(dataset / "labels.csv", "age", parse_rule(">5"), parse_rule("<50"))
    with pytest.raises(UserError, match="no column"):
        read_labels(dataset / "labels.csv", "height", parse_rule("1"), parse_rule("0"))
