"""encoders.edit sweeps: a sweep is a PathSpec path between the two edited ends."""

from __future__ import annotations

import pytest
import torch

from encoders.edit import MAX_SWEEP_FRAMES, sweep_codes, sweep_strengths
from stylegan.editing import Direction, apply_edit
from stylegan.errors import UserError
from stylegan.specs import PathSpec


@pytest.fixture()
def code_and_direction() -> tuple[torch.Tensor, Direction]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(6, 8, generator=gen), Direction(torch.randn(8, generator=gen), name="d", scale=0.5)


def test_a_linear_sweep_matches_the_edits_at_evenly_spaced_strengths(code_and_direction):
    code, d = code_and_direction
    frames = sweep_codes(code, d, 2.0, PathSpec(steps=5))
    expected = apply_edit(code.expand(5, -1, -1), d, sweep_strengths(2.0, 5))
    assert frames.shape == (5, 6, 8)
    torch.testing.assert_close(frames, expected.to(frames.dtype), atol=1e-6, rtol=0)
    torch.testing.assert_close(frames[2], code, atol=1e-6, rtol=0)  # strength 0 in the middle


def test_loop_hold_and_easing_come_from_the_spec(code_and_direction):
    code, d = code_and_direction
    looped = sweep_codes(code, d, 1.0, PathSpec(steps=4, loop=True))
    assert len(looped) == 2 * 4 - 2 and torch.allclose(looped[4], looped[2], atol=1e-6)  # back the same way
    held = sweep_codes(code, d, 1.0, PathSpec(steps=4, hold=2))
    assert len(held) == 4 + 2 * 2 and torch.equal(held[0], held[1])
    eased = sweep_codes(code, d, 1.0, PathSpec(steps=5, easing="ease-in-out"))
    linear = sweep_codes(code, d, 1.0, PathSpec(steps=5))
    assert not torch.allclose(eased[1], linear[1])  # eased frames really differ


def test_old_step_count_still_works_with_a_warning(code_and_direction):
    code, d = code_and_direction
    with pytest.warns(DeprecationWarning, match=r"sweep_codes\(steps=, loop=\) is deprecated"):
        old = sweep_codes(code, d, 1.0, 4, None, loop=True)
    assert torch.equal(old, sweep_codes(code, d, 1.0, PathSpec(steps=4, loop=True)))


def test_too_long_a_sweep_is_refused(code_and_direction):
    code, d = code_and_direction
    with pytest.raises(UserError, match=f"a sweep has at most {MAX_SWEEP_FRAMES} frames"):
        sweep_codes(code, d, 1.0, PathSpec(steps=MAX_SWEEP_FRAMES, hold=1))
