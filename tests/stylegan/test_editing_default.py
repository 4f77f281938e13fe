"""Editing with the embedded default model: its sampler, its shipped directions and what it offers."""

from __future__ import annotations

import hashlib

import pytest
import torch

from stylegan import load_generator
from stylegan.editing import (Direction, GaussianMapping, apply_edit, available_directions, load_direction,
                              model_fingerprint, shipped_directions)
from stylegan.editing.available import directions_root, read_sha256sums
from stylegan.render import seeds_to_z


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN_MORPH_OFFLINE", "1")
    monkeypatch.setenv("STYLEGAN_MORPH_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def G():
    return load_generator()


def test_default_model_samples_through_a_fitted_gaussian(G) -> None:
    assert G.config.mapping_kind == "gaussian" and isinstance(G.mapping, GaussianMapping)
    z = seeds_to_z(range(4), G.z_dim)
    mean = G.mapping(z, truncation_psi=0.0)
    assert torch.allclose(mean, G.w_avg.expand(4, -1, -1))  # psi = 0: the mean code
    ws = G.mapping(z, truncation_psi=0.7)
    full = G.mapping(z)
    assert torch.allclose(ws - G.w_avg, 0.7 * (full - G.w_avg), atol=1e-5)
    assert not torch.allclose(full[0], full[1])  # different seeds, different faces
    with torch.no_grad():
        img = G.synthesis(ws[:1])
    assert img.shape == (1, 3, 128, 128) and img.std() > 0.1


def test_shipped_directions_match_their_hashes_and_the_model(G) -> None:
    folder = directions_root() / "default"
    sums = read_sha256sums(folder)
    files = sorted(folder.glob("*.pt"))
    assert {"age.pt", "gender.pt"} <= {p.name for p in files}
    for p in files:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == sums[p.name]
    found = shipped_directions("default")
    for d in found.values():
        assert d.metadata["model_fingerprint"] == model_fingerprint(G)
        assert abs(float(d.vector.norm()) - 1) < 1e-5
        assert d.metadata["val_accuracy"] >= 0.85  # the bar, on held-out identities
        assert "learn_directions.py" in d.metadata["command"]


def test_available_directions_for_the_default_model(G) -> None:
    offered = available_directions(G, k_sefa=2, k_pca=3)
    assert {"age", "gender", "pca0", "pca1", "pca2", "sefa0", "sefa1"} <= set(offered)
    assert offered["pca0"].vector.shape == (G.num_ws, G.w_dim)
    # the first component carries more variance than the second
    assert offered["pca0"].scale >= offered["pca1"].scale
    age = load_direction("age", model=G)
    ws = G.mapping(seeds_to_z([0], G.z_dim), truncation_psi=0.7)
    assert torch.equal(apply_edit(ws, age, 0), ws)
    assert isinstance(age, Direction) and age.source == "interfacegan"
