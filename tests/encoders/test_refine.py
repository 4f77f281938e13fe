"""Latent refinement: it lowers the reconstruction loss, leaves the generator alone, and 'auto' is size-aware."""

from __future__ import annotations

import torch

from encoders.losses import face_mask, masked_reconstruction_loss
from encoders.refine import AUTO_REFINE_STEPS, auto_refine_steps, refine_latent
from stylegan import Generator, GeneratorConfig


def _tiny(res: int = 32) -> Generator:
    cfg = GeneratorConfig.from_channel_base(res, channel_base=256, channel_max=16, z_dim=8, w_dim=8,
                                            mapping_layers=2)
    return Generator(cfg).eval().requires_grad_(False)


def test_refinement_lowers_the_loss_and_keeps_the_generator():
    G = _tiny()
    target = G.synthesis(G.mapping(torch.randn(1, 8)))  # a face the generator can make exactly
    start = G.mapping(torch.randn(1, 8))
    weights = {k: v.clone() for k, v in G.state_dict().items()}
    mask = face_mask(32, 0.25)

    def loss(ws: torch.Tensor) -> float:
        with torch.no_grad():
            return masked_reconstruction_loss(G.synthesis(ws), target, mask).item()

    refined = refine_latent(G, target, start, steps=60, lr=0.05)
    assert refined.shape == start.shape and not refined.requires_grad
    assert loss(refined) < 0.5 * loss(start)
    assert all(torch.equal(weights[k], v) for k, v in G.state_dict().items())


def test_zero_steps_is_the_identity_and_targets_of_any_size_work():
    G = _tiny()
    ws = G.mapping(torch.randn(2, 8))
    assert refine_latent(G, torch.zeros(2, 3, 32, 32), ws, steps=0) is ws
    out = refine_latent(G, torch.zeros(2, 3, 100, 100), ws, steps=2)  # resized to 32 px inside
    assert out.shape == ws.shape and not torch.equal(out, ws)


def test_auto_refines_small_generators_only():
    assert auto_refine_steps(_tiny(32)) == AUTO_REFINE_STEPS
    assert auto_refine_steps(Generator(GeneratorConfig.from_channel_base(512, channel_base=512, channel_max=2,
                                                                         z_dim=4, w_dim=4, mapping_layers=1))) == 0
