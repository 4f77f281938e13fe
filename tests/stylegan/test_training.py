"""The GAN trainer runs, logs, samples, checkpoints, resumes and keeps the best model (tiny data)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan import Generator, GeneratorConfig, load_generator
from stylegan.errors import UserError
from stylegan.training.dataset import split_by_identity
from stylegan.training.discriminator import Discriminator
from stylegan.training.gan import GanTrainConfig, train_gan
from stylegan.training.metrics import pixel_frechet_distance


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


def test_train_gan_logs_checkpoints_and_resumes(tmp_path: Path, blob_images) -> None:
    cfg_g = GeneratorConfig.from_channel_base(16, channel_base=128, channel_max=16, z_dim=8, w_dim=8,
                                              mapping_layers=2)
    G, D = Generator(cfg_g), Discriminator(16, channel_base=128, channel_max=16)
    train, val = blob_images(32, 16, 0), blob_images(16, 16, 1)
    cfg = GanTrainConfig(batch_size=4, total_steps=4, eval_every=2, sample_every=2, ckpt_every=2,
                         eval_samples=16, r1_interval=2, bf16=False)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    best = train_gan(G, D, train, val, tmp_path, cfg, log=lambda s: None, device="cpu")
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


def _tiny_pair() -> tuple[Generator, Discriminator]:
    cfg_g = GeneratorConfig.from_channel_base(16, channel_base=128, channel_max=16, z_dim=8, w_dim=8,
                                              mapping_layers=2)
    return Generator(cfg_g), Discriminator(16, channel_base=128, channel_max=16)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without a GPU")
def test_train_gan_on_cuda_without_a_gpu_is_a_clear_error(tmp_path: Path, blob_images) -> None:
    G, D = _tiny_pair()
    with pytest.raises(UserError, match="no CUDA GPU is visible"):
        train_gan(G, D, blob_images(8, 16, 0), blob_images(4, 16, 1), tmp_path / "run",
                  GanTrainConfig(total_steps=1), device="cuda", log=lambda s: None)
    assert not (tmp_path / "run").exists()


@pytest.mark.gpu
def test_train_gan_bf16_on_cuda_autocasts_there(tmp_path: Path, blob_images, cuda_device) -> None:
    """The old trainer autocast on the CPU only, so bf16 did nothing on a GPU: D must see bf16 activations."""
    G, D = _tiny_pair()
    seen: list[torch.dtype] = []
    D.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    cfg = GanTrainConfig(batch_size=4, total_steps=2, eval_every=2, sample_every=2, ckpt_every=2, eval_samples=16,
                         r1_interval=2, bf16=True)
    best = train_gan(G, D, blob_images(16, 16, 0), blob_images(8, 16, 1), tmp_path, cfg, device=cuda_device,
                     log=lambda s: None)
    assert next(G.parameters()).is_cuda and next(D.parameters()).is_cuda
    assert torch.bfloat16 in seen
    assert load_generator(best).img_resolution == 16
