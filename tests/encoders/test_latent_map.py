"""encoders.latent_map: projections separate what is apart, labels are read, maps are written and inputs kept."""

from __future__ import annotations

import csv
import importlib

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan import save_generator
from stylegan.errors import UserError
from tests.helpers import tiny_generator

pytestmark = pytest.mark.usefixtures("offline")  # no network, no user cache (tests/conftest.py)

# The module (the package exports its latent_map function under the same name).
lm = importlib.import_module("encoders.latent_map")


def clusters(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Two clouds of W+ codes [n, 8, 16], far apart along one random direction."""
    g = torch.Generator().manual_seed(seed)
    side = torch.arange(n) % 2
    axis = torch.randn(8, 16, generator=g)
    codes = 0.1 * torch.randn(n, 8, 16, generator=g) + 5 * (side[:, None, None] * 2 - 1) * axis
    return codes, side.numpy()


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projection_keeps_two_clusters_apart(method):
    codes, side = clusters()
    xy = lm.project(codes, method)
    assert xy.shape == (12, 2) and np.isfinite(xy).all()
    a, b = xy[side == 0], xy[side == 1]
    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    spread = max(np.linalg.norm(a - a.mean(0), axis=1).max(), np.linalg.norm(b - b.mean(0), axis=1).max())
    assert gap > 2 * spread


def test_projection_refuses_bad_requests(monkeypatch):
    codes, _ = clusters()
    with pytest.raises(UserError, match="at least 3"):
        lm.project(codes[:2], "pca")
    with pytest.raises(UserError, match="unknown method"):
        lm.project(codes, "mds")
    monkeypatch.setattr(lm, "MAX_TSNE_POINTS", 10)
    with pytest.raises(UserError, match="t-SNE is limited to 10"):
        lm.project(codes, "tsne")


def test_read_labels_matches_names_and_stems(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("Filename,gender,age\nsub/a.jpg,f,30\nb.png,m,60\n")
    labels = lm.read_labels(path, "gender")
    assert labels["a.jpg"] == labels["a"] == "f" and labels["b"] == "m"
    with pytest.raises(UserError, match="no column 'smile'"):
        lm.read_labels(path, "smile")
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(UserError, match="no file-name column"):
        lm.read_labels(tmp_path / "bad.csv", "y")


@pytest.fixture
def codes_folder(tmp_path):
    """Six .npy codes of the tiny generator (two clusters) and the generator file."""
    G = tiny_generator()
    gen = tmp_path / "gen.pt"
    save_generator(gen, G)
    folder = tmp_path / "codes"
    folder.mkdir()
    codes, side = clusters(6)
    for i, ws in enumerate(codes):
        np.save(folder / f"face{i}_latent.npy", (G.w_avg + 0.2 * ws).numpy())
    (folder / "notes.txt").write_text("ignored")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,side\n" + "".join(f"face{i}.jpg,{'ab'[s]}\n" for i, s in enumerate(side)))
    return folder, gen, labels


def test_map_of_codes_writes_png_and_csv(codes_folder, tmp_path):
    folder, gen, labels = codes_folder
    out = tmp_path / "map.png"
    result = lm.latent_map(folder, out, methods=("pca", "tsne"), labels_csv=labels, label_column="side",
                           weights=gen, cache=False, thumb_size=16, device="cpu", progress=False)
    assert result.points == 6 and result.encoded == 0 and result.csv == tmp_path / "map.csv"
    assert Image.open(out).size[0] > Image.open(out).size[1]  # two panels side by side
    rows = list(csv.DictReader(open(result.csv)))
    assert [r["file"] for r in rows] == [f"face{i}_latent.npy" for i in range(6)]
    assert [r["label"] for r in rows] == ["a", "b"] * 3  # matched through the stem without "_latent"
    xs = np.array([float(r["pca_x"]) for r in rows])
    assert (np.sign(xs[0::2]) != np.sign(xs[1::2])).all()  # the two clusters split along PC 1


def test_map_refuses_bad_options_before_any_work(codes_folder, tmp_path):
    folder, gen, labels = codes_folder
    run = dict(weights=gen, cache=False, device="cpu", progress=False)
    with pytest.raises(UserError, match="is the input"):
        lm.latent_map(folder, tmp_path / "map.png", csv_path=labels, labels_csv=labels, label_column="side", **run)
    with pytest.raises(UserError, match="name it .png"):
        lm.latent_map(folder, tmp_path / "map.jpg", **run)
    with pytest.raises(UserError, match="unknown method"):
        lm.latent_map(folder, tmp_path / "map.png", methods=("mds",), **run)
    with pytest.raises(UserError, match="no photos or .npy"):
        lm.latent_map(tmp_path, tmp_path / "map.png", **run)  # holds only gen.pt, labels.csv, a folder
    assert not (tmp_path / "map.png").exists() and not (tmp_path / "map.csv").exists()
