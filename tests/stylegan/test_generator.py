"""Generator API: shapes, truncation, noise modes, every resolution, official channel tables."""

from __future__ import annotations

import pytest
import torch

from stylegan import Generator, GeneratorConfig


def tiny_generator(res: int = 32, seed: int = 0) -> Generator:
    """Small channels, w_avg and noise strengths set away from their zero init."""
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig.from_channel_base(res, channel_base=256, channel_max=16, z_dim=12, w_dim=10,
                                                    mapping_layers=3))
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        for m in G.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.5)
    return G.eval().requires_grad_(False)


def z(batch: int = 3, dim: int = 12, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed))


def test_mapping_and_synthesis_shapes() -> None:
    G = tiny_generator()
    assert (G.z_dim, G.w_dim, G.num_ws, G.img_resolution) == (12, 10, 8, 32)
    ws = G.mapping(z())
    assert ws.shape == (3, 8, 10)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))  # one w broadcast to every position
    img = G.synthesis(ws)
    assert img.shape == (3, 3, 32, 32) and img.dtype == torch.float32
    assert torch.equal(G(z()), img)


@pytest.mark.parametrize("bad", [torch.zeros(3), torch.zeros(3, 11), torch.zeros(1, 3, 12)])
def test_mapping_rejects_bad_z(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"z must be \[B, 12\]"):
        tiny_generator().mapping(bad)


@pytest.mark.parametrize("bad", [torch.zeros(2, 7, 10), torch.zeros(2, 8, 9), torch.zeros(8, 10)])
def test_synthesis_rejects_bad_ws(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"ws must be \[B, 8, 10\]"):
        tiny_generator().synthesis(bad)


def test_unknown_noise_mode() -> None:
    G = tiny_generator()
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(G.mapping(z()), noise_mode="fixed")


def test_truncation_psi() -> None:
    G = tiny_generator()
    w = G.mapping(z())
    avg = G.w_avg.expand_as(w)
    torch.testing.assert_close(G.mapping(z(), truncation_psi=0.0), avg)
    torch.testing.assert_close(G.mapping(z(), truncation_psi=0.5), (w + avg) / 2)
    torch.testing.assert_close(G.mapping(z(), truncation_psi=-1.0), 2 * avg - w)
    assert torch.equal(G.mapping(z(), truncation_psi=1.0), w)


def test_truncation_cutoff_leaves_later_positions_alone() -> None:
    G = tiny_generator()
    w = G.mapping(z())
    t = G.mapping(z(), truncation_psi=0.0, truncation_cutoff=3)
    torch.testing.assert_close(t[:, :3], G.w_avg.expand(3, 3, 10))
    assert torch.equal(t[:, 3:], w[:, 3:])


def test_const_noise_is_deterministic_and_per_layer() -> None:
    G = tiny_generator()
    ws = G.mapping(z())
    a = G.synthesis(ws, noise_mode="const")
    assert torch.equal(a, G.synthesis(ws, noise_mode="const"))
    # the same w in two batch rows gives the same image: the noise does not depend on the row
    pair = G.synthesis(ws[:1].expand(2, -1, -1), noise_mode="const")
    torch.testing.assert_close(pair[0], pair[1], rtol=1e-5, atol=1e-5)  # batched kernels round differently
    torch.testing.assert_close(pair[0], a[0], rtol=1e-5, atol=1e-5)


def test_random_and_none_noise() -> None:
    G = tiny_generator()
    ws = G.mapping(z())
    const = G.synthesis(ws, noise_mode="const")
    r1, r2 = G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random")
    assert not torch.allclose(r1, r2) and not torch.allclose(r1, const)
    none = G.synthesis(ws, noise_mode="none")
    assert torch.equal(none, G.synthesis(ws, noise_mode="none"))
    with torch.no_grad():  # "none" is const noise with zero noise_const
        for m in G.modules():
            if hasattr(m, "noise_const"):
                m.noise_const.zero_()
    torch.testing.assert_close(G.synthesis(ws, noise_mode="const"), none)
    assert not torch.allclose(none, const)


def test_noise_strength_zero_makes_modes_equal() -> None:
    G = tiny_generator()
    with torch.no_grad():
        for m in G.modules():
            if hasattr(m, "noise_strength"):
                m.noise_strength.zero_()
    ws = G.mapping(z())
    assert torch.equal(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="none"))


@pytest.mark.parametrize("res", [2**i for i in range(2, 11)])
def test_every_power_of_two_builds_and_renders(res: int) -> None:
    G = Generator(GeneratorConfig.from_channel_base(res, channel_base=1024, channel_max=8, z_dim=8, w_dim=8,
                                                    mapping_layers=2)).eval()
    assert G.num_ws == 2 * res.bit_length() - 4
    with torch.no_grad():
        img = G(torch.randn(1, 8))
    assert img.shape == (1, 3, res, res) and torch.isfinite(img).all()


@pytest.mark.parametrize("res", [2, 3, 48, 2048])
def test_other_resolutions_are_refused(res: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        GeneratorConfig.from_channel_base(res)


def test_both_channel_formulas_give_the_official_1024_channels() -> None:
    official = (512, 512, 512, 512, 512, 256, 128, 64, 32)  # 4 .. 1024 px, CHECKPOINTS.md section 1
    assert GeneratorConfig.from_channel_multiplier(1024, channel_multiplier=2).channels == official
    assert GeneratorConfig.from_channel_base(1024, channel_base=32768, channel_max=512).channels == official
    assert GeneratorConfig.from_channel_multiplier(1024) == GeneratorConfig.from_channel_base(1024)


def test_official_1024_parameter_count() -> None:
    G = Generator(GeneratorConfig.from_channel_multiplier(1024))
    assert sum(p.numel() for p in G.parameters()) == 30_370_060
    assert sum(p.numel() for p in G.mapping.parameters()) == 2_101_248
    assert G.num_ws == 18


def test_config_round_trips_through_a_dict() -> None:
    cfg = GeneratorConfig.from_channel_base(64, channel_base=512, channel_max=32, z_dim=8, w_dim=16, conv_clamp=256.0)
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        GeneratorConfig.from_dict({**cfg.to_dict(), "bogus": 1})
