"""Tests for the e4e encoder: parity with the original code, structure, checkpoints, encode().

The golden fixture ``data/e4e_golden.pt`` holds the codes that the ORIGINAL
omertov/encoder4editing ``Encoder4Editing(50, "ir_se")`` (stylegan_size 1024,
eval mode) produced for :func:`golden_input` with every weight set by
:func:`deterministic_state_dict` (seed ``GOLDEN_SEED``). Only the inputs' and
weights' checksums and the [1, 18, 512] output are stored; the 267M weights are
re-created here from the seed. The throwaway script that ran the original code
imported these two functions from this file; it is not part of the repo.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import encoders.loader
from encoders import Encoder4Editing, EncoderConfig, load_encoder, save_encoder
from encoders.e4e import COARSE_END, MIDDLE_END
from encoders.loader import FORMAT_TAG, infer_e4e_config, load_e4e
from encoders.model_file import save_model
from stylegan.errors import CheckpointError, UserError

GOLDEN = Path(__file__).parent / "data" / "e4e_golden.pt"
GOLDEN_SEED = 0
GOLDEN_INPUT_SEED = 1

# Small but structurally complete: 4 stages of distinct widths, all three
# pyramid levels used (num_ws > 7), 64px input so c3 is 4x4.
SMALL = EncoderConfig(num_ws=10, w_dim=32, input_size=64, stage_widths=(8, 16, 24, 32),
                      stage_units=(1, 2, 2, 1), se_reduction=4)


def deterministic_state_dict(shapes: dict[str, torch.Size], seed: int = GOLDEN_SEED) -> dict[str, torch.Tensor]:
    """Weights for an e4e encoder state dict drawn from one seeded generator in sorted key order.

    Scales keep activations O(1) through 24 random residual units: convs get
    1/sqrt(fan_in), the BN closing each residual branch a gain of 0.2, BN
    running variances lie in [0.5, 1.5]. ``num_batches_tracked`` and keys the
    original model lacks are left out.

    Args:
        shapes: key -> shape of the original encoder's state dict.
        seed: generator seed.

    Returns:
        key -> tensor, for every key but ``*.num_batches_tracked``.
    """
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        module = key.rsplit(".", 1)[0]
        is_bn = f"{module}.running_var" in shapes
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("running_var"):
            t = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith("running_mean"):
            t = 0.1 * torch.randn(shape, generator=gen)
        elif is_bn and key.endswith(".weight"):
            gain = 0.2 if key.endswith("res_layer.4.weight") else 1.0
            t = gain * (1.0 + 0.1 * torch.randn(shape, generator=gen))
        elif key.endswith(".bias"):
            t = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            t = torch.randn(shape, generator=gen) / fan_in**0.5
        elif len(shape) == 2:
            t = torch.randn(shape, generator=gen)  # equalized linear: scaled at run time
        elif len(shape) == 1:
            t = 0.25 + 0.05 * torch.randn(shape, generator=gen)  # PReLU slopes
        else:
            raise ValueError(f"no init rule for {key} {shape}")
        out[key] = t
    return out


def golden_input() -> torch.Tensor:
    """The [1, 3, 256, 256] input in [-1, 1] the golden codes were computed from."""
    return torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(GOLDEN_INPUT_SEED)) * 2 - 1


def checksum(state: dict[str, torch.Tensor]) -> float:
    """Order-independent float64 fingerprint of a state dict (detects RNG drift, not bugs)."""
    return float(sum(v.double().sum() * (i + 1) for i, (_, v) in enumerate(sorted(state.items()))))


def randomized(config: EncoderConfig, seed: int = 3) -> Encoder4Editing:
    """A small encoder in eval mode with every weight, BN statistic and latent_avg random."""
    enc = Encoder4Editing(config)
    shapes = {k: v.shape for k, v in enc.state_dict().items() if k != "latent_avg"}
    enc.load_state_dict(deterministic_state_dict(shapes, seed), strict=False)
    enc.latent_avg.copy_(torch.randn(config.num_ws, config.w_dim, generator=torch.Generator().manual_seed(seed)))
    return enc.eval()


def e4e_checkpoint(enc: Encoder4Editing) -> dict:
    """A dict laid out like e4e_ffhq_encode.pt: encoder.*, a few decoder.* keys, latent_avg, opts."""
    state = {f"encoder.{k}": v.clone() for k, v in enc.state_dict().items() if k != "latent_avg"}
    # The loader must skip the generator; a couple of rosinality-style keys stand in for it.
    state["decoder.style.1.weight"] = torch.randn(enc.w_dim, enc.w_dim)
    state["decoder.input.input"] = torch.randn(1, 8, 4, 4)
    opts = {"encoder_type": "Encoder4Editing", "stylegan_size": 1024, "start_from_latent_avg": True, "lr": 1e-4}
    return {"state_dict": state, "latent_avg": enc.latent_avg.clone(), "opts": opts}


def assert_same_module(a: Encoder4Editing, b: Encoder4Editing) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# --------------------------------------------------------------------------- parity


def test_golden_parity_with_original_e4e() -> None:
    golden = torch.load(GOLDEN, weights_only=True)
    assert golden["seed"] == GOLDEN_SEED
    enc = Encoder4Editing().eval()
    shapes = {k: v.shape for k, v in enc.state_dict().items() if k != "latent_avg"}
    weights = deterministic_state_dict(shapes)
    x = golden_input()
    # If these fail, the RNG stream changed, not the model: regenerate the fixture.
    assert checksum(weights) == pytest.approx(golden["weight_checksum"], rel=1e-9)
    assert float(x.double().sum()) == pytest.approx(golden["input_checksum"], rel=1e-9)
    missing, unexpected = enc.load_state_dict(weights, strict=False)
    del weights  # 1 GB
    assert not unexpected
    assert missing == ["latent_avg"]  # BatchNorm tolerates an absent num_batches_tracked

    with torch.no_grad():
        codes = enc(x)
    assert codes.shape == golden["codes"].shape == (1, 18, 512)
    assert codes.abs().mean() > 0.05  # a meaningful comparison, not zeros vs zeros
    assert (codes - golden["codes"]).abs().max().item() <= 1e-4
    # encode() at 256 px is forward + latent_avg (latent_avg is zero here).
    enc.latent_avg.fill_(0.5)
    with torch.no_grad():
        assert torch.allclose(enc.encode(x), codes + 0.5, atol=1e-6)


def test_full_model_matches_published_structure() -> None:
    with torch.device("meta"):
        enc = Encoder4Editing()
    state = enc.state_dict()
    # e4e_ffhq_encode.pt: 621 encoder.* entries and 267,136,704 parameters (+ our latent_avg buffer).
    assert len(state) == 622
    assert sum(p.numel() for p in enc.parameters()) == 267_136_704
    assert [len(s.convs) // 2 for s in enc.styles] == [4] * 3 + [5] * 4 + [6] * 11
    assert state["body.3.shortcut_layer.0.weight"].shape == (128, 64, 1, 1)
    assert "body.0.shortcut_layer.0.weight" not in state  # 64 -> 64: parameter-free subsampling
    assert state["body.23.res_layer.5.fc1.weight"].shape == (32, 512, 1, 1)
    assert state["latlayer1.weight"].shape == (512, 256, 1, 1)
    assert state["latlayer2.weight"].shape == (512, 128, 1, 1)
    assert infer_e4e_config({k: v for k, v in state.items() if k != "latent_avg"}) == EncoderConfig()


# --------------------------------------------------------------------------- model behaviour


def test_coarse_middle_fine_split_and_shared_w0() -> None:
    enc = randomized(SMALL)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 2 - 1
    with torch.no_grad():
        base = enc(x)
        enc.latlayer2.bias.add_(1.0)  # only p1 changes: heads >= MIDDLE_END
        fine = enc(x)
        enc.latlayer1.bias.add_(1.0)  # p2 and p1 change: heads >= COARSE_END
        middle = enc(x)
        enc.styles[0].linear.bias.add_(1.0)  # w0 is shared by every position
        shifted = enc(x)
    changed = (fine - base).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [i >= MIDDLE_END for i in range(SMALL.num_ws)]
    changed = (middle - fine).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [i >= COARSE_END for i in range(SMALL.num_ws)]
    assert torch.allclose(shifted - middle, torch.ones_like(shifted), atol=1e-5)


@pytest.mark.parametrize("num_ws", [1, 3, 5])
def test_fewer_ws_use_fewer_levels(num_ws: int) -> None:
    enc = randomized(EncoderConfig(**{**SMALL.to_dict(), "num_ws": num_ws}))
    with torch.no_grad():
        out = enc(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, num_ws, SMALL.w_dim)


def test_batch_rows_are_independent() -> None:
    enc = randomized(SMALL)
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(6)) * 2 - 1
    with torch.no_grad():
        together = enc(x)
        alone = torch.cat([enc(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)
    assert not torch.allclose(together[0], together[1])


@pytest.mark.parametrize("size", [(64, 64), (100, 80), (300, 300), (17, 33)])
def test_encode_any_size(size: tuple[int, int]) -> None:
    enc = randomized(SMALL)
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(7)) * 2 - 1
    with torch.no_grad():
        ws = enc.encode(x.double())  # converted to the encoder's dtype
        if size == (64, 64):
            ref = enc(x) + enc.latent_avg
        else:
            ref = enc(F.interpolate(x, size=(64, 64), mode="bilinear", antialias=True)) + enc.latent_avg
    assert ws.shape == (2, SMALL.num_ws, SMALL.w_dim) and ws.dtype == torch.float32
    assert torch.allclose(ws, ref, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 4, 64, 64), (0, 3, 64, 64)])
def test_encode_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(UserError, match=r"\[B, 3, H, W\]"):
        randomized(SMALL).encode(torch.zeros(shape))


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="power of two"):
        EncoderConfig(input_size=96)
    with pytest.raises(ValueError, match="4 IR-SE stages"):
        EncoderConfig(stage_widths=(64, 128, 256))
    assert EncoderConfig.irse(100).stage_units == (3, 13, 30, 3)
    assert EncoderConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ValueError, match="unknown"):
        EncoderConfig.from_dict({**SMALL.to_dict(), "depth": 3})


# --------------------------------------------------------------------------- checkpoints


def test_e4e_checkpoint_loads_and_equals_source(tmp_path: Path) -> None:
    enc = randomized(SMALL)
    path = tmp_path / "e4e_small.pt"
    torch.save(e4e_checkpoint(enc), path)
    loaded = load_encoder(path)
    assert loaded.config == SMALL
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert_same_module(enc, loaded)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(enc.encode(x), loaded.encode(x))


def test_e4e_checkpoint_latent_avg_handling(tmp_path: Path) -> None:
    enc = randomized(SMALL)
    ckpt = e4e_checkpoint(enc)
    ckpt["latent_avg"] = enc.latent_avg[0].clone()  # [w_dim] is broadcast to every position
    torch.save(ckpt, tmp_path / "a.pt")
    assert torch.equal(load_encoder(tmp_path / "a.pt").latent_avg, enc.latent_avg[0].expand(SMALL.num_ws, -1))
    ckpt["opts"]["start_from_latent_avg"] = False  # the original then adds nothing
    torch.save(ckpt, tmp_path / "b.pt")
    assert not load_encoder(tmp_path / "b.pt").latent_avg.any()
    ckpt["opts"]["start_from_latent_avg"] = True
    ckpt["latent_avg"] = torch.zeros(3, SMALL.w_dim)
    torch.save(ckpt, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"latent_avg is \(3, 32\)"):
        load_encoder(tmp_path / "c.pt")


def test_e4e_checkpoint_key_errors_name_keys(tmp_path: Path) -> None:
    ckpt = e4e_checkpoint(randomized(SMALL))
    state = ckpt["state_dict"]

    del state["encoder.body.2.res_layer.3.weight"]
    torch.save(ckpt, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=r"missing 1 keys \(body\.2\.res_layer\.3\.weight\)") as err:
        load_encoder(tmp_path / "missing.pt")
    assert "missing.pt" in str(err.value) and "\n" not in str(err.value)

    ckpt = e4e_checkpoint(randomized(SMALL))
    ckpt["state_dict"]["encoder.styles.3.extra.weight"] = torch.zeros(2)
    torch.save(ckpt, tmp_path / "unexpected.pt")
    with pytest.raises(CheckpointError, match=r"unexpected 1 keys \(styles\.3\.extra\.weight\)"):
        load_encoder(tmp_path / "unexpected.pt")

    ckpt = e4e_checkpoint(randomized(SMALL))
    ckpt["state_dict"]["discriminator.weight"] = torch.zeros(2)
    torch.save(ckpt, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match=r"outside encoder\.\*/decoder\.\* \(discriminator\.weight\)"):
        load_encoder(tmp_path / "foreign.pt")

    ckpt = e4e_checkpoint(randomized(SMALL))
    ckpt["state_dict"]["encoder.latlayer1.weight"] = torch.zeros(32, 24, 3, 3)
    torch.save(ckpt, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=r"latlayer1\.weight: file \(32, 24, 3, 3\) vs model \(32, 24, 1, 1\)"):
        load_encoder(tmp_path / "shape.pt")

    ckpt = e4e_checkpoint(randomized(SMALL))
    del ckpt["state_dict"]["encoder.styles.0.linear.weight"]
    torch.save(ckpt, tmp_path / "noinfer.pt")
    with pytest.raises(CheckpointError, match=r"noinfer\.pt: not an e4e encoder: no styles\.0\.linear\.weight"):
        load_encoder(tmp_path / "noinfer.pt")


def test_unreadable_files_give_one_line_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    save_encoder(good, randomized(SMALL))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.txt"
    text.write_text("these are not weights\n")
    listing = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listing)
    generator_only = tmp_path / "g.pt"
    torch.save({"g_ema": {}, "latent_avg": torch.zeros(512)}, generator_only)
    for path in (truncated, text, listing, generator_only):
        with pytest.raises(CheckpointError) as err:
            load_encoder(path)
        message = str(err.value)
        assert path.name in message and "\n" not in message, message
    with pytest.raises(UserError, match="nowhere.pt"):
        load_encoder(tmp_path / "nowhere.pt")


def test_save_load_round_trip(tmp_path: Path) -> None:
    enc = randomized(SMALL)
    path = tmp_path / "sub" / "enc.pt"
    save_encoder(path, enc, meta={"source": "test"})
    assert sorted(p.name for p in path.parent.iterdir()) == ["enc.pt"]  # no temp file left behind
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT_TAG and raw["meta"] == {"source": "test"}
    loaded = load_encoder(str(path))
    assert loaded.config == SMALL
    assert_same_module(enc, loaded)

    raw["config"]["se_reduction"] = 2  # a config that no longer fits the weights
    torch.save(raw, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="res_layer.5.fc1.weight"):
        load_encoder(tmp_path / "bad.pt")


def test_encoder_part_of_a_model_file_loads(tmp_path: Path) -> None:
    enc = randomized(SMALL)

    class TinyG(torch.nn.Module):  # save_model only needs .config.to_dict() and a state dict
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))
            self.config = SimpleNamespace(to_dict=lambda: {"img_resolution": 8})

    path = tmp_path / "model.pt"
    save_model(path, TinyG(), enc, meta={"note": "test"})
    assert_same_module(enc, load_encoder(path))
    raw = torch.load(path, weights_only=True)
    del raw["encoder"]
    torch.save(raw, tmp_path / "no_encoder.pt")
    with pytest.raises(CheckpointError, match="no_encoder.pt: model file without an encoder part"):
        load_encoder(tmp_path / "no_encoder.pt")


def test_default_model_not_registered_is_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import pretrained

    def unknown(name: str) -> Path:
        raise UserError(f"{name!r} is not a file and not a known model name")

    monkeypatch.setattr(pretrained, "resolve_weights", unknown)
    with pytest.raises(UserError, match="no default encoder weights"):
        load_encoder(None)


def test_load_e4e_pairs_encoder_with_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = randomized(SMALL)
    path = tmp_path / "e4e.pt"
    torch.save(e4e_checkpoint(enc), path)
    seen = []

    class FakeG:
        num_ws, w_dim = SMALL.num_ws, SMALL.w_dim

        def to(self, device: object) -> "FakeG":
            return self

    def fake_generator_from(ckpt) -> FakeG:  # the generator is built from the same read as the encoder
        seen.append(Path(ckpt.source))
        return FakeG()

    monkeypatch.setattr(encoders.loader, "generator_from", fake_generator_from)
    loaded, G = load_e4e(path)
    assert seen == [path] and isinstance(G, FakeG)
    assert_same_module(enc, loaded)
    FakeG.num_ws = 18
    with pytest.raises(CheckpointError, match="generator takes 18x32"):
        load_e4e(path)



# --------------------------------------------------------------------------- issue 9: items 4 and 17


def test_encode_takes_uint8_and_numpy_and_refuses_0_255_floats() -> None:
    enc = randomized(SMALL)
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pixels = ((x + 1) * 127.5).round().to(torch.uint8)
    with torch.no_grad():
        ws = enc.encode(x)
        assert torch.allclose(enc.encode(pixels), enc.encode(pixels.float() / 127.5 - 1))
        assert torch.allclose(enc.encode(x.numpy()), ws)  # a numpy array is taken like a tensor
        assert (enc.encode(pixels) - ws).abs().max() < 0.1  # 8-bit rounding only
    with pytest.raises(UserError, match=r"images must be in \[-1, 1\].*uint8") as err:
        enc.encode(pixels.float())  # the issue: codes off by up to 4e4, silently
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad, match", [
    ("ab", "images must be a tensor or numpy array"),
    (torch.full((1, 3, 40, 40), float("nan")), "NaN"),
    (torch.zeros(1, 3, 40, 40, dtype=torch.int32), "float in \\[-1, 1\\] or uint8"),
    (torch.zeros(1, 3, 40, 40, dtype=torch.int32).numpy(), "uint8 or float"),
])
def test_encode_refuses_other_inputs_in_one_line(bad: object, match: str) -> None:
    with pytest.raises(UserError, match=match):
        randomized(SMALL).encode(bad)


def test_forward_at_the_wrong_size_is_a_user_error() -> None:
    enc = randomized(SMALL)
    with pytest.raises(UserError, match=r"x must be a tensor \[B, 3, 64, 64\].*encode\(\)"):
        enc(torch.zeros(1, 3, 40, 40))


@pytest.mark.parametrize("field, value", [("num_ws", 10**9), ("w_dim", -1), ("input_size", 2**20),
                                          ("stage_units", (3, 4, 10**6, 3)), ("stage_widths", (64, 128, 256, 2**31)),
                                          ("se_reduction", 0), ("se_reduction", 9), ("num_ws", "18"),
                                          ("stage_units", "3443")])
def test_encoder_config_fields_are_bounded(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field if field != "stage_units" or value != "3443" else "4 IR-SE stages"):
        EncoderConfig(**{**SMALL.to_dict(), field: value})


def test_crafted_encoder_file_fails_fast_in_little_memory(tmp_path: Path, refused_in_little_memory) -> None:
    """10**6 units in a 1 KB file: refused by the config bounds before a layer is built."""
    path = tmp_path / "enc.pt"
    torch.save({"format": FORMAT_TAG, "config": {**SMALL.to_dict(), "stage_units": [3, 4, 10**6, 3]},
                "state_dict": {}, "meta": {}}, path)
    message = refused_in_little_memory(f"encoders.load_encoder({str(path)!r})")
    assert "stage_units must be an integer from 1 to 64" in message


def test_encoder_tensors_are_checked_before_allocation(tmp_path: Path) -> None:
    enc = randomized(SMALL)
    state = {k: v.clone() for k, v in enc.state_dict().items()}
    state["body.0.res_layer.1.weight"] = torch.full_like(state["body.0.res_layer.1.weight"], float("inf"))
    torch.save({"format": FORMAT_TAG, "config": SMALL.to_dict(), "state_dict": state, "meta": {}}, tmp_path / "e.pt")
    with pytest.raises(CheckpointError, match="NaN or infinite values \\(body.0.res_layer.1.weight\\)"):
        load_encoder(tmp_path / "e.pt")


def test_unknown_device_is_a_user_error(tmp_path: Path) -> None:
    save_encoder(tmp_path / "e.pt", randomized(SMALL))
    with pytest.raises(UserError, match="unknown device 'banana'"):
        load_encoder(tmp_path / "e.pt", device="banana")
