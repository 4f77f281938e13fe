"""The encoder trainer (e4e losses, joint autoencoder mode) reduces reconstruction error and writes its files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from encoders import Encoder4Editing, EncoderConfig, load_encoder
from encoders.training import EncoderTrainConfig, delta_regularization, face_mask, laplacian_l1, train_encoder
from stylegan import Generator, GeneratorConfig, load_generator


def _tiny() -> tuple[Generator, Encoder4Editing]:
    G = Generator(GeneratorConfig(32, (32, 32, 16, 16), z_dim=16, w_dim=16, mapping_layers=2))
    E = Encoder4Editing(EncoderConfig(num_ws=G.num_ws, w_dim=16, input_size=32, stage_widths=(8, 8, 16, 16),
                                      stage_units=(1, 1, 1, 1), se_reduction=4))
    return G, E


def test_losses_behave() -> None:
    m = face_mask(32, 0.25)
    assert m.shape == (1, 1, 32, 32) and m.max() <= 1 and m.min() >= 0.25
    assert m[0, 0, 17, 16] > 0.9 and m[0, 0, 0, 0] < 0.3  # face centre vs corner
    a = torch.rand(2, 3, 32, 32)
    assert laplacian_l1(a, a, m) == 0 and laplacian_l1(a, a.flip(3), m) > 0
    ws = torch.randn(1, 1, 8).repeat(2, 5, 1)
    assert delta_regularization(ws) == 0
    ws[:, 3] += 1
    assert delta_regularization(ws).item() == pytest.approx(8**0.5, rel=1e-5)


def test_joint_training_lowers_validation_error_and_resumes(tmp_path: Path, blob_images) -> None:
    G, E = _tiny()
    train, val = blob_images(64, 32, 0), blob_images(8, 32, 1)
    cfg = EncoderTrainConfig(batch_size=8, lr=3e-3, joint=True, total_steps=30, val_every=10, sample_every=10,
                             ckpt_every=10, bf16=False)
    best = train_encoder(G, E, train, val, tmp_path, cfg, log=lambda s: None)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["step"]) for r in rows] == [10, 20, 30]
    first, last = float(rows[0]["val_mse_face"]), min(float(r["val_mse_face"]) for r in rows)
    assert last < first, f"validation error did not fall: {first} -> {last}"
    assert (tmp_path / "losses.png").exists() and len(list((tmp_path / "samples").iterdir())) == 3

    # The best model file holds both networks and each loader finds its part.
    G2, E2 = load_generator(best), load_encoder(best)
    with torch.no_grad():
        x = val.batch([0, 1])
        y = G2.synthesis(E2.encode(x))
    assert y.shape == (2, 3, 32, 32) and torch.isfinite(y).all()

    cfg.total_steps = 40
    G3, E3 = _tiny()
    msgs: list[str] = []
    train_encoder(G3, E3, train, val, tmp_path, cfg, log=msgs.append)
    assert any("resumed" in m for m in msgs)
    assert int(list(csv.DictReader(open(tmp_path / "log.csv")))[-1]["step"]) == 40


def test_encoder_only_training_keeps_generator_fixed(tmp_path: Path, blob_images) -> None:
    G, E = _tiny()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    cfg = EncoderTrainConfig(batch_size=4, total_steps=3, val_every=3, sample_every=3, ckpt_every=3, bf16=False,
                             synthetic_fraction=0.5)
    train_encoder(G, E, blob_images(16, 32, 0), blob_images(4, 32, 1), tmp_path, cfg, log=lambda s: None)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
