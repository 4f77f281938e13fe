"""The GAN trainer runs, logs, samples, checkpoints, resumes and keeps the best model (tiny data)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan import Generator, GeneratorConfig, load_generator
from stylegan.training.dataset import ImageSet, split_by_identity
from stylegan.training.discriminator import Discriminator
from stylegan.training.gan import GanTrainConfig, train_gan
from stylegan.training.metrics import pixel_frechet_distance


def _blobs(n: int, res: int, seed: int) -> ImageSet:
    """Smooth random colour images: real structure, cheap to make."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(res, res), mode="bilinear")
    return ImageSet((x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())


def test_discriminator_shapes() -> None:
    for res in (4, 16, 32):
        D = Discriminator(res, channel_base=128, channel_max=16)
        assert D(torch.randn(4, 3, res, res)).shape == (4, 1)


def test_pixel_fd_zero_for_same_set_and_positive_otherwise() -> None:
    a = torch.rand(64, 3, 16, 16) * 2 - 1
    assert pixel_frechet_distance(a, a, size=4) == pytest.approx(0, abs=1e-6)
    assert pixel_frechet_distance(a, a * 0.5, size=4) > 0.1


def test_split_by_identity_keeps_identities_apart() -> None:
    files = [Path(f"p{i // 3}_{i % 3}.jpg") for i in range(60)]
    ids = {f.name: f.name.split("_")[0] for f in files}
    train, val = split_by_identity(files, 0.3, ids)
    assert val and train
    assert not {ids[f.name] for f in train} & {ids[f.name] for f in val}
    assert split_by_identity(files, 0.3, ids) == (train, val)  # deterministic


def test_train_gan_logs_checkpoints_and_resumes(tmp_path: Path) -> None:
    cfg_g = GeneratorConfig.from_channel_base(16, channel_base=128, channel_max=16, z_dim=8, w_dim=8,
                                              mapping_layers=2)
    G, D = Generator(cfg_g), Discriminator(16, channel_base=128, channel_max=16)
    train, val = _blobs(32, 16, 0), _blobs(16, 16, 1)
    cfg = GanTrainConfig(batch_size=4, total_steps=4, eval_every=2, sample_every=2, ckpt_every=2,
                         eval_samples=16, r1_interval=2, bf16=False)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    best = train_gan(G, D, train, val, tmp_path, cfg, log=lambda s: None)
    assert any(not torch.equal(before[k], v) for k, v in G.state_dict().items()), "G did not train"
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert all(np.isfinite(float(r["loss_g"])) and np.isfinite(float(r["pixel_fd16"])) for r in rows)
    assert (tmp_path / "losses.png").stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step_000002.png", "step_000004.png"]
    G_best = load_generator(best)
    assert G_best.img_resolution == 16

    # Resume: the state says step 4, so two more steps end at 6.
    cfg.total_steps = 6
    G2, D2 = Generator(cfg_g), Discriminator(16, channel_base=128, channel_max=16)
    msgs: list[str] = []
    train_gan(G2, D2, train, val, tmp_path, cfg, log=msgs.append)
    assert any("resumed" in m and "step 4" in m for m in msgs)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
