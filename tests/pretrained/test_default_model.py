"""The embedded default model: registered, verified, small, loads offline, and drives the README morph."""

from __future__ import annotations

import hashlib
from pathlib import Path

import imageio_ffmpeg
import pytest
import torch

import pretrained
from encoders import load_encoder
from stylegan import load_generator
from tools.interpolate import main as interpolate_main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "pretrained" / "examples"


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    """No test here may touch the network: downloads are off and the cache is empty."""
    monkeypatch.setenv("STYLEGAN_MORPH_OFFLINE", "1")
    monkeypatch.setenv("STYLEGAN_MORPH_CACHE", str(tmp_path / "cache"))


def test_registered_with_matching_hash_size_and_reproduction_command() -> None:
    spec = pretrained.get_spec("default")
    path = Path(pretrained.__file__).parent / spec.local_path
    data = path.read_bytes()
    assert len(data) == spec.size <= 25 * 1024 * 1024
    assert hashlib.sha256(data).hexdigest() == spec.sha256
    assert "tools/train_encoder.py" in spec.reproduce and "--export" in spec.reproduce
    assert "non-commercial" in spec.license
    assert pretrained.resolve_weights("default") == path


def test_loads_with_no_path_and_reconstructs_faces() -> None:
    G, E = load_generator(), load_encoder()
    assert E.num_ws == G.num_ws and E.w_dim == G.w_dim
    from encoders import align_face
    from stylegan.imageio import to_tensor

    hopper = to_tensor(align_face(EXAMPLES / "grace_hopper.jpg", output_size=G.img_resolution))
    astronaut = to_tensor(align_face(EXAMPLES / "astronaut.png", output_size=G.img_resolution))
    with torch.no_grad():
        rec_h = G.synthesis(E.encode(hopper), noise_mode="const")
        rec_a = G.synthesis(E.encode(astronaut), noise_mode="const")

    def mse(a: torch.Tensor, b: torch.Tensor) -> float:
        return (a - b).square().mean().item()

    # Better than the flat mean colour, and each face is closer to its own reconstruction.
    for face, rec in ((hopper, rec_h), (astronaut, rec_a)):
        assert mse(rec, face) < mse(face.mean(), face)
    assert mse(rec_h, hopper) < mse(rec_a, hopper)
    assert mse(rec_a, astronaut) < mse(rec_h, astronaut)


def test_readme_morph_runs_offline_with_no_model_named(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = interpolate_main([str(EXAMPLES / "astronaut.png"), str(EXAMPLES / "grace_hopper.jpg"), "--steps", "5",
                             "--size", "256", "-q"])
    assert code == 0
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "astronaut_to_grace_hopper.mp4"))
    meta = next(reader)
    assert meta["size"] == (256, 256)
    assert sum(1 for _ in reader) == 5
