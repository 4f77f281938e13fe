"""Crafted weights files: bounded configs, tensors checked before allocation, one-line errors.

Issue 9 items 4 (unbounded config), 17 (``load_generator(device="banana")``) and 18
(a truncated file's message cut mid-sentence).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from stylegan import Generator, GeneratorConfig, load_generator
from stylegan.checkpoint import FORMAT_TAG, save_generator
from stylegan.config import LIMITS
from stylegan.errors import CheckpointError, UserError


def tiny() -> Generator:
    return Generator(GeneratorConfig(16, (8, 8, 8), z_dim=8, w_dim=8, mapping_layers=2)).eval()


def crafted(path: Path, config: dict, state: dict | None = None) -> Path:
    """Our generator format holding ``config`` and (by default) no tensors at all."""
    torch.save({"format": FORMAT_TAG, "config": config, "state_dict": state or {}, "meta": {}}, path)
    return path


HAS_C_DIM = "c_dim" in {f.name for f in dataclasses.fields(GeneratorConfig)}  # class labels (engineer D)
needs_c_dim = pytest.mark.skipif(not HAS_C_DIM, reason="GeneratorConfig has no c_dim yet")

BASE = {"img_resolution": 16, "channels": [8, 8, 8], "z_dim": 8, "w_dim": 8, "mapping_layers": 2}


def test_the_official_and_default_configs_are_within_bounds() -> None:
    ffhq = GeneratorConfig.from_channel_multiplier(1024)
    assert max(ffhq.channels) == 512 and ffhq.mapping_layers == 8 and ffhq.z_dim == ffhq.w_dim == 512
    assert GeneratorConfig.from_channel_base(1024).channels == ffhq.channels
    if HAS_C_DIM:
        GeneratorConfig(16, (8, 8, 8), c_dim=1000)  # class-conditional models of ImageNet size
    for name, (lo, hi) in LIMITS.items():
        assert lo <= hi and math.isfinite(hi), name


@pytest.mark.parametrize("field, value", [
    ("mapping_layers", 10**9), ("mapping_layers", 0), ("z_dim", -512), ("w_dim", 10**7), ("img_channels", 1000),
    ("channels", [8, -8, 8]), ("channels", [8, 2**40, 8]), ("channels", "888"), ("channels", 8),
    ("img_resolution", 2**20), ("img_resolution", 16.0), ("z_dim", "512"), ("w_dim", True),
    ("mapping_lr_mul", float("nan")), ("mapping_lr_mul", -1.0), ("conv_clamp", float("inf")), pytest.param("c_dim", 10**8, marks=needs_c_dim),
    ("channels", [float("inf"), 8, 8]),
])
def test_every_field_is_bounded(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        GeneratorConfig(**{**BASE, field: value})


@pytest.mark.parametrize("field, value", [("mapping_layers", 10**9), ("channels", [8, 2**40, 8]),
                                          ("z_dim", -3), ("channels", [float("inf"), 8, 8])])
def test_crafted_config_in_a_file_is_a_checkpoint_error(tmp_path: Path, field: str, value: object) -> None:
    path = crafted(tmp_path / "bad.pt", {**BASE, field: value})
    with pytest.raises(CheckpointError, match=f"bad.pt: broken generator file.*{field}"):
        load_generator(path)


def test_a_14_kb_file_with_a_billion_mapping_layers_fails_fast_in_little_memory(
        tmp_path: Path, refused_in_little_memory) -> None:
    """The issue's reproduction: this file once grew to 22 GB before the kernel killed it."""
    path = crafted(tmp_path / "bomb.pt", {**BASE, "mapping_layers": 10**9})
    assert path.stat().st_size < 2000
    message = refused_in_little_memory(f"stylegan.load_generator({str(path)!r})")
    assert "mapping_layers must be an integer from 1 to 32" in message


def test_tensors_are_checked_before_the_model_is_allocated(tmp_path: Path, refused_in_little_memory) -> None:
    """A config within bounds but much bigger than its tensors: refused without building it.

    2048 channels at every block of a 1024 px model would be ~3 GB of weights; the file has none.
    """
    big = {"img_resolution": 1024, "channels": [2048] * 9, "z_dim": 2048, "w_dim": 2048, "mapping_layers": 32}
    message = refused_in_little_memory(f"stylegan.load_generator({str(crafted(tmp_path / 'big.pt', big))!r})", 1.0)
    assert "weights do not match the model: missing" in message


@pytest.mark.parametrize("edit, message", [
    (lambda sd: sd.__setitem__("mapping.fc0.bias", 3), "mapping.fc0.bias is a int, not a tensor"),
    (lambda sd: sd.__setitem__("mapping.w_avg", torch.zeros(8, dtype=torch.int64)), "mapping.w_avg is torch.int64"),
    (lambda sd: sd["mapping.fc1.weight"].__setitem__((0, 0), float("nan")), "NaN or infinite values"),
    (lambda sd: sd.__setitem__("mapping.fc0.weight", torch.zeros(3)), "shape mismatches"),
])
def test_bad_tensors_in_our_format_are_named(tmp_path: Path, edit, message: str) -> None:
    sd = {k: v.clone() for k, v in tiny().state_dict().items()}
    edit(sd)
    path = crafted(tmp_path / "g.pt", tiny().config.to_dict(), sd)
    with pytest.raises(CheckpointError, match=message):
        load_generator(path)


def test_a_good_file_still_loads(tmp_path: Path) -> None:
    G = tiny()
    save_generator(tmp_path / "g.pt", G, dtype=torch.float16)
    H = load_generator(tmp_path / "g.pt")
    assert H.config == G.config and next(H.parameters()).dtype == torch.float32


@pytest.mark.parametrize("keys", [
    {"style.1.weight": torch.zeros(8, 8), "style.999999.weight": torch.zeros(8, 8), "input.input": torch.zeros(1, 8, 4, 4)},
    {"style.1.weight": torch.zeros(8, 8), "to_rgbs.999999.x": torch.zeros(1), "input.input": torch.zeros(1, 8, 4, 4)},
    {"style.1.weight": torch.zeros(()), "input.input": torch.zeros(1, 8, 4, 4)},
    {"style.1.weight": torch.zeros(8, 8), "style." + "9" * 5000 + ".weight": torch.zeros(8, 8)},
])
def test_crafted_rosinality_keys_are_checkpoint_errors(tmp_path: Path, keys: dict) -> None:
    torch.save({"g_ema": keys, "latent_avg": torch.zeros(8)}, tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match="r.pt"):
        load_generator(tmp_path / "r.pt")


def test_crafted_nvidia_state_with_wrong_ndim(tmp_path: Path) -> None:
    torch.save({"mapping.fc0.weight": torch.zeros(8), "synthesis.b4.const": torch.zeros(8, 4, 4)}, tmp_path / "n.pt")
    with pytest.raises(CheckpointError, match="mapping.fc0.weight is \\[8\\], expected 2 dimensions"):
        load_generator(tmp_path / "n.pt")


@pytest.mark.parametrize("device", ["banana", "cuda:x", 7.5])
def test_unknown_device_is_a_user_error(tmp_path: Path, device: object) -> None:
    save_generator(tmp_path / "g.pt", tiny())
    with pytest.raises(UserError, match="device"):
        load_generator(tmp_path / "g.pt", device=device)


def test_truncated_file_message_ends_with_a_whole_sentence(tmp_path: Path) -> None:
    save_generator(tmp_path / "g.pt", tiny())
    data = (tmp_path / "g.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as info:
        load_generator(tmp_path / "cut.pt")
    text = str(info.value)
    assert "\n" not in text and "truncated" in text
    assert text.endswith((".", ")")) and not text.rstrip(")").endswith((" is", " file is", " the"))
    assert "likelihood that your checkpoint file is)" not in text
