"""The shipped conditional demo model: registered with its hash, small, loads offline with its class names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import pretrained
from stylegan import load_generator

NAME = "cond-faces32-gender"


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No test here may touch the network."""
    monkeypatch.setenv("STYLEGAN_MORPH_OFFLINE", "1")
    monkeypatch.setenv("STYLEGAN_MORPH_CACHE", str(tmp_path / "cache"))


def test_registered_with_matching_hash_size_and_recipe() -> None:
    spec = pretrained.get_spec(NAME)
    path = Path(pretrained.__file__).parent / spec.local_path
    data = path.read_bytes()
    assert len(data) == spec.size <= 10 * 1024 * 1024
    assert hashlib.sha256(data).hexdigest() == spec.sha256
    assert "--labels" in spec.reproduce and "--label-column gender" in spec.reproduce
    assert "non-commercial" in spec.license


def test_loads_by_name_with_class_names_and_follows_labels() -> None:
    G = load_generator(NAME)
    assert (G.c_dim, G.class_names, G.img_resolution) == (2, ("female", "male"), 32)
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(0))
    f, m = G(z, torch.eye(2)[[0] * 4]), G(z, torch.eye(2)[[1] * 4])
    assert f.shape == (4, 3, 32, 32) and (f - m).abs().mean() > 0.01  # the label changes the faces
