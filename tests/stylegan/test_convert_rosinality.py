"""rosinality ``.pt`` reader: parity with the original model.py, layout facts, dispatch and errors."""

from __future__ import annotations

import argparse
import datetime
import math
from pathlib import Path

import pytest
import torch

from stylegan import CheckpointError, Generator, GeneratorConfig, UserError, save_generator
from stylegan.convert import (MODEL_FORMAT, estimate_w_avg, generator_from_rosinality, ours_layout,
                              read_any_generator, rosinality_layout, to_rosinality)
from stylegan.convert.layout import RESAMPLE_FILTER, nvidia_filter_keys

GOLDEN = Path(__file__).parent / "data" / "rosinality_golden.pt"


def tiny_generator(seed: int = 0, res: int = 32) -> Generator:
    """A small generator with every tensor randomised (biases and noise strengths start at 0)."""
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(res, tuple([16, 16, 12, 8, 8, 4][: int(math.log2(res)) - 1]), z_dim=16, w_dim=16,
                                  mapping_layers=2))
    with torch.no_grad():
        for t in G.state_dict().values():
            t.add_(torch.randn_like(t) * 0.2)
    return G.eval().requires_grad_(False)


def render(G: Generator, seed: int = 1) -> torch.Tensor:
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(seed))
    return G(z, truncation_psi=0.8, noise_mode="const")


def save_rosinality(G: Generator, path: Path, **extra: object) -> Path:
    torch.save({**to_rosinality(G), **extra}, path)
    return path


def one_line_error(fn, *args) -> str:
    with pytest.raises(CheckpointError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


# --------------------------------------------------------------------------- golden parity


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(GOLDEN, weights_only=True)


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_matches_original_rosinality_model(golden: dict, impl: str, tmp_path: Path) -> None:
    """Images rendered by rosinality's own model.py (see data/make_rosinality_golden.py)."""
    path = tmp_path / "g.pt"
    torch.save({"g_ema": golden["g_ema"], "latent_avg": golden["latent_avg"]}, path)
    G = read_any_generator(path).set_impl(impl)
    img_ws = G.synthesis(golden["ws"], noise_mode="const")  # their input_is_latent=True, stored noises
    assert (img_ws - golden["img_ws"]).abs().max().item() <= 1e-4
    ws = G.mapping(golden["z"], truncation_psi=0.7)  # their truncation=0.7 toward latent_avg
    img_z = G.synthesis(ws, noise_mode="const")
    assert (img_z - golden["img_z_trunc07"]).abs().max().item() <= 1e-4
    assert golden["img_ws"].abs().max() > 1  # the reference is a real image, not zeros


def test_golden_architecture_is_inferred(golden: dict, tmp_path: Path) -> None:
    path = tmp_path / "g.pt"
    torch.save({"g_ema": golden["g_ema"], "latent_avg": golden["latent_avg"]}, path)
    cfg = read_any_generator(path).config
    meta = golden["meta"]
    assert (cfg.img_resolution, list(cfg.channels), cfg.z_dim, cfg.w_dim, cfg.mapping_layers) == (
        meta["size"], meta["channels"], meta["style_dim"], meta["style_dim"], meta["n_mlp"])


# --------------------------------------------------------------------------- layout facts


def test_official_1024_layout_counts() -> None:
    cfg = GeneratorConfig.from_channel_multiplier(1024)
    layout = rosinality_layout(cfg)
    assert len(layout) == 171
    params = [math.prod(s) for k, (ours, s) in layout.items() if ours is not None and not k.startswith("noises.")]
    assert sum(params) == 30_370_060
    assert sum(math.prod(s) for k, (_, s) in layout.items() if k.startswith("style.")) == 2_101_248
    assert len([k for k in layout if k.startswith("noises.")]) == 17
    assert [layout[f"noises.noise_{i}"][1][-1] for i in range(17)] == [2 ** ((i + 5) // 2) for i in range(17)]
    assert len(ours_layout(cfg)) == 156 and len(ours_layout(cfg)) + len(nvidia_filter_keys(cfg)) == 182


def test_official_1024_round_trip_through_rosinality_layout() -> None:
    """Full size: 30 M random weights written in rosinality's layout and read back unchanged."""
    G = Generator(GeneratorConfig.from_channel_multiplier(1024))
    ros = to_rosinality(G)
    assert len(ros["g_ema"]) == 171
    G2 = generator_from_rosinality(ros["g_ema"], ros["latent_avg"], "mem")
    assert G2.config == G.config
    sd, sd2 = G.state_dict(), G2.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)


@pytest.mark.parametrize("res", [4, 8, 64])
def test_layout_matches_the_model(res: int) -> None:
    G = tiny_generator(res=res)
    assert {k: tuple(v.shape) for k, v in G.state_dict().items()} == ours_layout(G.config)
    assert len(rosinality_layout(G.config)) == len(ours_layout(G.config)) - 1 + 2 * (int(math.log2(res)) - 2)


def test_key_mapping_follows_the_documented_order() -> None:
    layout = rosinality_layout(tiny_generator(res=32).config)
    assert layout["noises.noise_0"][0] == "synthesis.b4.conv1.noise_const"
    assert layout["noises.noise_1"][0] == "synthesis.b8.conv0.noise_const"
    assert layout["noises.noise_2"][0] == "synthesis.b8.conv1.noise_const"
    assert layout["convs.2.conv.weight"][0] == "synthesis.b16.conv0.weight"
    assert layout["convs.3.activate.bias"][0] == "synthesis.b16.conv1.bias"
    assert layout["to_rgbs.1.conv.modulation.weight"][0] == "synthesis.b16.torgb.affine.weight"
    assert layout["to_rgb1.bias"] == ("synthesis.b4.torgb.bias", (1, 3, 1, 1))
    assert layout["style.1.weight"][0] == "mapping.fc0.weight"
    assert layout["conv1.noise.weight"] == ("synthesis.b4.conv1.noise_strength", (1,))
    assert layout["convs.0.conv.blur.kernel"][0] is None and layout["to_rgbs.0.upsample.kernel"][0] is None


# --------------------------------------------------------------------------- reading files


def test_round_trip_renders_identically(tmp_path: Path) -> None:
    G = tiny_generator()
    G2 = read_any_generator(save_rosinality(G, tmp_path / "r.pt"))
    assert torch.equal(G2.w_avg, G.w_avg)
    assert torch.equal(render(G2), render(G))


@pytest.mark.parametrize("shape", [(16,), (1, 16), (6, 16)])
def test_latent_avg_shapes(tmp_path: Path, shape: tuple[int, ...]) -> None:
    G = tiny_generator()
    avg = torch.randn(16)
    path = tmp_path / "r.pt"
    torch.save({"g_ema": to_rosinality(G)["g_ema"], "latent_avg": avg.expand(shape).clone()}, path)
    assert torch.equal(read_any_generator(path).w_avg, avg)


def test_training_checkpoint_reads_g_ema_and_estimates_w_avg(tmp_path: Path) -> None:
    G = tiny_generator()
    g_ema = to_rosinality(G)["g_ema"]
    other = to_rosinality(tiny_generator(seed=5))["g_ema"]
    path = tmp_path / "train.pt"
    torch.save({"g": other, "d": {"convs.0.0.weight": torch.zeros(1)}, "g_ema": g_ema, "g_optim": {"state": {}},
                "d_optim": {"state": {}}, "args": argparse.Namespace(size=32, n_mlp=2, latent=16), "ada_aug_p": 0.1},
               path)
    G2 = read_any_generator(path)
    assert torch.equal(G2.synthesis.b32.torgb.weight, G.synthesis.b32.torgb.weight)  # g_ema, not g
    # No latent_avg in training checkpoints: the mean w of 10,000 z, with a fixed seed.
    assert torch.equal(G2.w_avg, estimate_w_avg(G.mapping))
    assert torch.equal(read_any_generator(path).w_avg, G2.w_avg)
    sample = G.mapping(torch.randn(20000, 16))[:, 0].mean(0)
    assert torch.allclose(G2.w_avg, sample, atol=0.05 * sample.abs().max().item())


def test_training_checkpoint_with_other_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train.pt"
    torch.save({"g_ema": to_rosinality(tiny_generator())["g_ema"], "args": argparse.Namespace(size=32),
                "when": datetime.date(2020, 1, 1)}, path)
    msg = one_line_error(read_any_generator, path)
    assert "datetime.date" in msg and "refused" in msg


def test_bare_rosinality_state_dict(tmp_path: Path) -> None:
    G = tiny_generator()
    torch.save(to_rosinality(G)["g_ema"], tmp_path / "sd.pt")
    G2 = read_any_generator(tmp_path / "sd.pt")
    assert torch.equal(G2.synthesis.b4.const, G.synthesis.b4.const)
    assert torch.equal(G2.w_avg, estimate_w_avg(G.mapping))  # a bare g_ema has no latent_avg


def test_fp16_file_loads_as_fp32(tmp_path: Path) -> None:
    G = tiny_generator()
    ros = to_rosinality(G)
    torch.save({"g_ema": {k: v.half() for k, v in ros["g_ema"].items()}, "latent_avg": ros["latent_avg"]},
               tmp_path / "h.pt")
    G2 = read_any_generator(tmp_path / "h.pt")
    assert G2.synthesis.b4.const.dtype == torch.float32
    assert torch.equal(G2.synthesis.b4.const, G.synthesis.b4.const.half().float())


# --------------------------------------------------------------------------- our own formats via the dispatcher


def test_our_format_and_model_file(tmp_path: Path) -> None:
    G = tiny_generator()
    save_generator(tmp_path / "ours.pt", G)
    assert torch.equal(render(read_any_generator(tmp_path / "ours.pt")), render(G))
    torch.save({"format": MODEL_FORMAT, "generator": {"config": G.config.to_dict(), "state_dict": G.state_dict()},
                "encoder": {"config": {}, "state_dict": {}}, "meta": {}}, tmp_path / "model.pt")
    assert torch.equal(render(read_any_generator(tmp_path / "model.pt")), render(G))
    torch.save({"format": MODEL_FORMAT, "encoder": {}}, tmp_path / "nogen.pt")
    assert "without a generator" in one_line_error(read_any_generator, tmp_path / "nogen.pt")


# --------------------------------------------------------------------------- errors


def _broken(tmp_path: Path, edit) -> Path:
    ros = to_rosinality(tiny_generator())
    edit(ros["g_ema"])
    torch.save(ros, tmp_path / "bad.pt")
    return tmp_path / "bad.pt"


def test_missing_key_is_named(tmp_path: Path) -> None:
    msg = one_line_error(read_any_generator, _broken(tmp_path, lambda sd: sd.pop("convs.1.noise.weight")))
    assert "missing 1 (convs.1.noise.weight)" in msg


def test_unexpected_key_is_named(tmp_path: Path) -> None:
    msg = one_line_error(read_any_generator, _broken(tmp_path, lambda sd: sd.update({"convs.1.extra": torch.ones(1)})))
    assert "unexpected 1 (convs.1.extra)" in msg


def test_wrong_shape_is_named(tmp_path: Path) -> None:
    msg = one_line_error(read_any_generator,
                         _broken(tmp_path, lambda sd: sd.update({"convs.1.activate.bias": torch.zeros(5)})))
    assert "convs.1.activate.bias is [5], expected [16]" in msg


def test_foreign_blur_kernel_is_refused(tmp_path: Path) -> None:
    msg = one_line_error(read_any_generator,
                         _broken(tmp_path, lambda sd: sd.update({"convs.0.conv.blur.kernel": RESAMPLE_FILTER.clone()})))
    assert "convs.0.conv.blur.kernel" in msg and "[1,3,3,1]" in msg


def test_bad_latent_avg(tmp_path: Path) -> None:
    torch.save({"g_ema": to_rosinality(tiny_generator())["g_ema"], "latent_avg": torch.zeros(3, 7)}, tmp_path / "a.pt")
    assert "latent_avg is [3, 7]" in one_line_error(read_any_generator, tmp_path / "a.pt")


def test_g_ema_not_a_dict(tmp_path: Path) -> None:
    torch.save({"g_ema": torch.zeros(3)}, tmp_path / "a.pt")
    assert "g_ema is a Tensor" in one_line_error(read_any_generator, tmp_path / "a.pt")


def test_truncated_file(tmp_path: Path) -> None:
    path = save_rosinality(tiny_generator(), tmp_path / "r.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated" in one_line_error(read_any_generator, path)


@pytest.mark.parametrize("content, expected", [
    (b"", "empty"),
    (b"<!DOCTYPE html><html><title>Google Drive - Quota exceeded</title>", "HTML page"),
    (b"just some text\n", "not a PyTorch checkpoint"),
])
def test_wrong_kind_of_file(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    assert expected in one_line_error(read_any_generator, path)


@pytest.mark.parametrize("obj, expected", [
    (torch.zeros(3), "holds a Tensor"),
    ({"foo": 1, "bar": torch.zeros(1)}, "top-level keys: bar, foo"),
    ({"input_layer.0.weight": torch.zeros(1), "body.0.x": torch.zeros(1)}, "encoder-only"),
    ({"format": "stylegan-morph/e4e-encoder/v1"}, "encoder-only"),
])
def test_unknown_contents_are_described(tmp_path: Path, obj: object, expected: str) -> None:
    torch.save(obj, tmp_path / "x.pt")
    assert expected in one_line_error(read_any_generator, tmp_path / "x.pt")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        read_any_generator(tmp_path / "nope.pt")
    with pytest.raises(UserError, match="folder"):
        read_any_generator(tmp_path)
