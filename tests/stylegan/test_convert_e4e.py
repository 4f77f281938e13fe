"""e4e checkpoints: the generator is ``decoder.*`` (rosinality layout) and its mean w is ``latent_avg[0]``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stylegan import CheckpointError, Generator, GeneratorConfig
from stylegan.convert import estimate_w_avg, read_any_generator, to_rosinality


def tiny_generator(seed: int = 0) -> Generator:
    """32 px, 8 ws of 16, every tensor randomised."""
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(32, (16, 16, 12, 8), z_dim=16, w_dim=16, mapping_layers=2))
    with torch.no_grad():
        for t in G.state_dict().values():
            t.add_(torch.randn_like(t) * 0.2)
    return G.eval().requires_grad_(False)


def e4e_file(G: Generator, path: Path, latent_avg: torch.Tensor | None = None, decoder: bool = True,
             extra: dict | None = None) -> Path:
    """A file laid out like e4e_ffhq_encode.pt (a few encoder tensors stand in for the IR-SE50)."""
    state = {"encoder.input_layer.0.weight": torch.randn(8, 3, 3, 3),
             "encoder.styles.0.linear.weight": torch.randn(16, 16)}
    if decoder:
        state.update({f"decoder.{k}": v for k, v in to_rosinality(G)["g_ema"].items()})
    state.update(extra or {})
    ckpt = {"state_dict": state, "opts": {"encoder_type": "Encoder4Editing", "stylegan_size": 32,
                                          "start_from_latent_avg": latent_avg is not None}}
    if latent_avg is not None:
        ckpt["latent_avg"] = latent_avg
    torch.save(ckpt, path)
    return path


def render(G: Generator) -> torch.Tensor:
    return G.synthesis(torch.randn(2, G.num_ws, G.w_dim, generator=torch.Generator().manual_seed(3)))


def test_decoder_is_read_and_w_avg_is_latent_avg_row_0(tmp_path: Path) -> None:
    G = tiny_generator()
    avg = torch.randn(16)
    G2 = read_any_generator(e4e_file(G, tmp_path / "e4e.pt", latent_avg=avg.repeat(G.num_ws, 1)))
    assert torch.equal(G2.w_avg, avg)
    sd, sd2 = G.state_dict(), G2.state_dict()
    assert all(torch.equal(sd[k], sd2[k]) for k in sd if k != "mapping.w_avg")
    assert torch.equal(render(G2), render(G))


def test_no_latent_avg_estimates_the_mean_w(tmp_path: Path) -> None:
    G = tiny_generator()
    G2 = read_any_generator(e4e_file(G, tmp_path / "e4e.pt"))
    assert torch.equal(G2.w_avg, estimate_w_avg(G.mapping))


def test_encoder_only_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="encoder-only checkpoint") as info:
        read_any_generator(e4e_file(tiny_generator(), tmp_path / "enc.pt", decoder=False))
    assert "\n" not in str(info.value)


def test_keys_outside_encoder_and_decoder(tmp_path: Path) -> None:
    path = e4e_file(tiny_generator(), tmp_path / "x.pt", extra={"discriminator.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"outside encoder\.\*/decoder\.\* \(discriminator\.weight\)"):
        read_any_generator(path)


def test_broken_decoder_names_its_keys(tmp_path: Path) -> None:
    G = tiny_generator()
    path = e4e_file(G, tmp_path / "x.pt", extra={"decoder.convs.0.noise.weight": torch.zeros(2)})
    with pytest.raises(CheckpointError, match=r"\(decoder\.\*\).*convs\.0\.noise\.weight is \[2\], expected \[1\]"):
        read_any_generator(path)


def test_bad_latent_avg(tmp_path: Path) -> None:
    path = e4e_file(tiny_generator(), tmp_path / "x.pt", latent_avg=torch.zeros(8, 5))
    with pytest.raises(CheckpointError, match=r"latent_avg is \[8, 5\]"):
        read_any_generator(path)


def test_load_e4e_pairs_a_real_encoder_with_the_decoder(tmp_path: Path) -> None:
    """End to end with the encoders package: encoder and generator from one e4e file."""
    from encoders.e4e import Encoder4Editing, EncoderConfig
    from encoders.loader import load_e4e

    G = tiny_generator()
    enc = Encoder4Editing(EncoderConfig(num_ws=G.num_ws, w_dim=G.w_dim, input_size=32, stage_widths=(4, 8, 12, 16),
                                        stage_units=(1, 1, 1, 1), se_reduction=2)).eval()
    avg = torch.randn(G.num_ws, G.w_dim)
    state = {f"encoder.{k}": v for k, v in enc.state_dict().items() if k != "latent_avg"}
    state.update({f"decoder.{k}": v for k, v in to_rosinality(G)["g_ema"].items()})
    torch.save({"state_dict": state, "latent_avg": avg, "opts": {"start_from_latent_avg": True}}, tmp_path / "e.pt")
    enc2, G2 = load_e4e(tmp_path / "e.pt")
    assert torch.equal(G2.w_avg, avg[0]) and torch.equal(enc2.latent_avg, avg)
    img = G2.synthesis(enc2.encode(torch.rand(1, 3, 32, 32) * 2 - 1), noise_mode="const")
    assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()
