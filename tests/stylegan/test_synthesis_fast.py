"""The fast CPU synthesis path (stylegan.synthesis_fast) against impl="ref": values, gradients, caching, bf16."""

from __future__ import annotations

import math

import pytest
import torch

from stylegan import Generator, GeneratorConfig, networks
from stylegan.synthesis_fast import fast_path_applies


def generator(res: int = 32, clamp: float | None = None, seed: int = 0) -> Generator:
    """Official channel layout shrunk (channel_max 32); biases, noise strengths and w_avg away from zero."""
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig.from_channel_base(res, channel_base=512, channel_max=32, z_dim=16, w_dim=16,
                                                    mapping_layers=2, conv_clamp=clamp))
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.4)
            elif name.endswith("bias") and "synthesis" in name:
                p.normal_(0, 0.3)
    return G.eval().requires_grad_(False)


def codes(G: Generator, n: int = 1, seed: int = 1) -> torch.Tensor:
    ws = G.mapping(torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)))
    return ws + 0.3 * torch.randn(ws.shape, generator=torch.Generator().manual_seed(seed + 1))  # distinct rows


def render(G: Generator, ws: torch.Tensor, impl: str | None, noise_mode: str = "const") -> torch.Tensor:
    return G.set_impl(impl).synthesis(ws, noise_mode=noise_mode)


def test_applies_only_to_fast_cpu_batch_one() -> None:
    x = torch.zeros(1, 3, 4, 4)
    assert fast_path_applies(None, x) and fast_path_applies("fast", x)
    assert not fast_path_applies("ref", x)
    assert not fast_path_applies(None, torch.zeros(2, 3, 4, 4))


@pytest.mark.parametrize("noise_mode", ["const", "none"])
@pytest.mark.parametrize("clamp", [None, 0.5])
def test_matches_ref(noise_mode: str, clamp: float | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(networks, "PER_FRAME_MIN_RESOLUTION", 32)  # batch 3 runs frame by frame here
    G = generator(clamp=clamp)
    ws = codes(G, 3)
    with torch.no_grad():
        ref = render(G, ws, "ref", noise_mode)
        fast = render(G, ws, None, noise_mode)
    assert fast.shape == ref.shape == (3, 3, 32, 32)
    assert fast.is_contiguous()  # images come back NCHW
    assert float((fast - ref).abs().max()) <= 1e-4
    assert float((fast - ref).abs().max()) > 0 or noise_mode == "none"  # really another path


def test_clamp_is_applied() -> None:
    G = generator(clamp=0.05)
    with torch.no_grad():
        out = G.synthesis(codes(G), noise_mode="none")
        free = generator(clamp=None).synthesis(codes(G), noise_mode="none")
    assert not torch.allclose(out, free)


def test_random_noise_has_the_reference_statistics() -> None:
    G = generator()
    ws = codes(G)
    with torch.no_grad():
        torch.manual_seed(5)
        a = render(G, ws, None, "random")
        torch.manual_seed(5)
        b = render(G, ws, "ref", "random")
    assert float((a - b).abs().max()) <= 1e-4  # same draws in the same order


def test_gradients_match_ref() -> None:
    """Refinement differentiates through x and the styles; the in-place ops must keep that exact."""
    G = generator()
    ws = codes(G)
    grads = []
    for impl in ("ref", None):
        w = ws.clone().requires_grad_(True)
        render(G, w, impl).square().mean().backward()
        grads.append(w.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_weight_gradients_match_ref() -> None:
    """Training: the weight cache is bypassed when the weight needs a gradient."""
    G = generator().requires_grad_(True)
    layer = G.synthesis.b8.conv0
    grads = []
    for impl in ("ref", None):
        layer.weight.grad = None
        render(G, codes(G), impl).sum().backward()
        grads.append(layer.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_weight_cache_follows_in_place_updates() -> None:
    G = generator()
    ws = codes(G)
    with torch.no_grad():
        render(G, ws, None)  # fills the cache
        G.synthesis.b16.conv1.weight.mul_(1.5).add_(0.1)  # as an optimiser step would
        G.load_state_dict(G.state_dict())  # and a reload
        fast = render(G, ws, None)
        ref = render(G, ws, "ref")
    assert float((fast - ref).abs().max()) <= 1e-4


def test_small_batches_stay_batched() -> None:
    """Below PER_FRAME_MIN_RESOLUTION a batch takes the batched form, which agrees too."""
    G = generator()
    ws = codes(G, 2)
    with torch.no_grad():
        batched = render(G, ws, None)
        frames = torch.cat([render(G, ws[i: i + 1], None) for i in range(2)])
    assert float((batched - frames).abs().max()) <= 1e-4


def test_cache_made_in_inference_mode_still_allows_gradients() -> None:
    G = generator()
    ws = codes(G)
    with torch.inference_mode():
        render(G, ws, None)  # a preview fills the cache
    w = ws.clone().requires_grad_(True)
    render(G, w, None).mean().backward()  # then refinement differentiates through the same layers
    assert w.grad is not None and torch.isfinite(w.grad).all()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(4.0 / float((a.double() - b.double()).square().mean()))


def test_bf16_keeps_activations_and_rgb_in_float32() -> None:
    """Under autocast only the 3x3 convs round: the frame is float32 and much closer than plain autocast."""
    G = generator(res=64)
    ws = codes(G)
    with torch.no_grad():
        ref = render(G, ws, None)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = render(G, ws, None)
            plain = render(G, ws, "ref")  # the reference path under autocast rounds every op
    assert mixed.dtype == torch.float32
    assert _psnr(mixed, ref) >= 40
    assert _psnr(mixed, ref) > _psnr(plain.float(), ref) + 1
