"""Latent refinement: it lowers the reconstruction loss, leaves the generator alone, and 'auto' is size-aware."""

from __future__ import annotations

import pytest
import torch

from encoders.losses import face_mask, masked_reconstruction_loss
from encoders.refine import AUTO_REFINE_STEPS, auto_refine_steps, refine_latent, steps_for_budget
from stylegan import Generator, GeneratorConfig
from stylegan.errors import UserError


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


class FakeClock:
    """A clock that advances ``step`` seconds per reading pair: each step appears to take ``step`` s."""

    def __init__(self, step: float) -> None:
        self.now, self.step, self.reads = 0.0, step, 0

    def __call__(self) -> float:
        self.reads += 1
        if self.reads % 2 == 0:
            self.now += self.step
        return self.now


def _count_steps(G: Generator, monkeypatch) -> list[int]:
    calls = [0]
    real = G.synthesis.forward

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(G.synthesis, "forward", counting)
    return calls


@pytest.mark.parametrize("step_s, budget, expected", [(4.0, 20.0, 5), (3.0, 20.0, 6), (0.01, 20.0, 7),
                                                      (30.0, 20.0, 1)])
def test_auto_fits_the_budget(monkeypatch, step_s: float, budget: float, expected: int):
    """A step of ``step_s`` seconds: as many as fit, capped (here at 7 to keep the test fast)."""
    G = _tiny()
    calls = _count_steps(G, monkeypatch)
    lines: list[str] = []
    ws = G.mapping(torch.randn(1, 8))
    out = refine_latent(G, torch.zeros(1, 3, 32, 32), ws, steps="auto", budget=budget, max_steps=7,
                        clock=FakeClock(step_s), log=lines.append)
    assert calls[0] == expected
    assert out.shape == ws.shape
    assert len(lines) == 1 and f"so {expected} step" in lines[0]


class SlowingClock(FakeClock):
    """Each step takes 1 s longer than the one before (load rising while refining)."""

    def __call__(self) -> float:
        self.reads += 1
        if self.reads % 2 == 0:
            self.now += self.step
            self.step += 1.0
        return self.now


def test_auto_stops_when_steps_slow_down(monkeypatch):
    G = _tiny()
    calls = _count_steps(G, monkeypatch)
    clock = SlowingClock(2.0)  # steps of 2, 3, 4, 5 ... s: 2 + 3 + 4 + 5 = 14 fits 15, a fifth would not
    refine_latent(G, torch.zeros(1, 3, 32, 32), G.mapping(torch.randn(1, 8)), steps="auto", budget=15.0,
                  clock=clock)
    assert calls[0] == 4


def test_steps_for_budget_bounds():
    assert steps_for_budget(2.0, 20.0) == 10
    assert steps_for_budget(2.0, 20.0, max_steps=4) == 4
    assert steps_for_budget(50.0, 20.0) == 1  # the timed step is done already
    assert steps_for_budget(1.0, 0.0) == 0
    with pytest.raises(UserError, match="budget must be"):
        steps_for_budget(1.0, -1.0)


def test_zero_budget_and_fixed_steps(monkeypatch):
    G = _tiny()
    calls = _count_steps(G, monkeypatch)
    ws = G.mapping(torch.randn(1, 8))
    assert refine_latent(G, torch.zeros(1, 3, 32, 32), ws, steps="auto", budget=0.0) is ws
    refine_latent(G, torch.zeros(1, 3, 32, 32), ws, steps=3, clock=FakeClock(100.0))  # the clock is not asked
    assert calls[0] == 3
