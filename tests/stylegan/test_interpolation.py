"""Latent paths: blend maths, easing, per-layer timing, frame counts and laziness."""

from __future__ import annotations

import math
import time

import pytest
import torch

from stylegan.interpolation import (
    LayerSchedule,
    alphas,
    cosine,
    ease_in_out,
    get_easing,
    interpolation_path,
    layer_alphas,
    layer_groups,
    lerp,
    linear,
    num_frames,
    slerp,
)


def _keys(k: int = 2, num_ws: int = 18, w_dim: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(k, num_ws, w_dim, generator=g)


# ----------------------------------------------------------------------------- alphas, lerp, slerp


def test_alphas_are_evenly_spaced_with_both_ends():
    a = alphas(7)
    assert a[0].item() == 0.0 and a[-1].item() == 1.0
    assert torch.allclose(a.diff(), torch.full((6,), 1 / 6, dtype=torch.float64))
    assert alphas(2).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("n", [1, 0, -3, 2.5])
def test_alphas_rejects_fewer_than_two(n):
    with pytest.raises(ValueError, match="at least 2"):
        alphas(n)


def test_lerp_is_exact_at_both_ends():
    a, b = torch.randn(5, 64), torch.randn(5, 64) * 1e3
    assert torch.equal(lerp(a, b, 0.0), a)
    assert torch.equal(lerp(a, b, 1.0), b)
    assert torch.allclose(lerp(a, b, 0.25), a + 0.25 * (b - a))


def test_slerp_is_exact_at_both_ends_and_per_row():
    a, b = torch.randn(4, 512), torch.randn(4, 512)
    assert torch.equal(slerp(a, b, 0.0), a)
    assert torch.equal(slerp(a, b, 1.0), b)
    # One weight per row: row i uses t_i.
    t = torch.tensor([[0.0], [0.3], [0.7], [1.0]])
    out = slerp(a, b, t)
    for i in range(4):
        assert torch.allclose(out[i], slerp(a[i], b[i], float(t[i])), atol=1e-6)


def test_slerp_matches_textbook_formula():
    a, b = torch.randn(3, 16, dtype=torch.float64), torch.randn(3, 16, dtype=torch.float64)
    t = 0.35
    cos = (a * b).sum(-1, keepdim=True) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1, keepdim=True))
    om = torch.acos(cos)
    expected = torch.sin((1 - t) * om) / torch.sin(om) * a + torch.sin(t * om) / torch.sin(om) * b
    assert torch.allclose(slerp(a, b, t), expected, atol=1e-10)


def test_slerp_keeps_unit_vectors_on_the_circle():
    a, b = torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    for t in torch.linspace(0, 1, 11):
        v = slerp(a, b, float(t))
        assert v.norm().item() == pytest.approx(1.0, abs=1e-6)
        assert math.atan2(v[0, 1].item(), v[0, 0].item()) == pytest.approx(float(t) * math.pi / 2, abs=1e-6)


@pytest.mark.parametrize("make_b", [
    lambda a: a.clone(),                          # identical
    lambda a: a * (1 + 1e-7),                     # parallel, different norm
    lambda a: a + 1e-9 * torch.randn_like(a),     # nearly parallel
    lambda a: -a,                                 # antiparallel
    lambda a: torch.zeros_like(a),                # zero vector
])
def test_slerp_is_finite_and_sane_for_degenerate_pairs(make_b):
    a = torch.randn(3, 512)
    b = make_b(a)
    for t in (0.0, 0.2, 0.5, 1.0):
        out = slerp(a, b, t)
        assert torch.isfinite(out).all()
        # In every degenerate case the blend falls back to (or agrees with) lerp.
        assert torch.allclose(out, lerp(a, b, t), atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------- easing and schedule


@pytest.mark.parametrize("ease", [linear, ease_in_out, cosine])
def test_easings_fix_the_ends_and_increase(ease):
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    y = ease(t)
    assert y[0].item() == 0.0 and y[-1].item() == 1.0
    assert (y.diff() >= 0).all()


def test_ease_in_out_starts_and_stops_slowly():
    t = torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64)
    y = ease_in_out(t)
    assert y[0].item() < 0.001 and y[2].item() > 0.999
    assert y[1].item() == pytest.approx(0.5)
    assert get_easing("ease_in_out") is ease_in_out
    with pytest.raises(ValueError, match="unknown easing"):
        get_easing("bouncy")


def test_layer_groups_split_by_resolution():
    assert [list(g) for g in layer_groups(18)] == [list(range(0, 4)), list(range(4, 8)), list(range(8, 18))]
    assert [list(g) for g in layer_groups(14)] == [list(range(0, 4)), list(range(4, 8)), list(range(8, 14))]
    assert [len(g) for g in layer_groups(8)] == [4, 4, 0]
    assert [len(g) for g in layer_groups(2)] == [2, 0, 0]


def test_coarse_to_fine_moves_shape_before_colour():
    for t in (0.0, 1.0):
        assert torch.equal(layer_alphas(t, 18, "coarse-to-fine"), torch.full((18,), t, dtype=torch.float64))
    mid = layer_alphas(0.3, 18, "coarse-to-fine")
    coarse, middle, fine = mid[:4], mid[4:8], mid[8:]
    assert (coarse == coarse[0]).all() and (middle == middle[0]).all() and (fine == fine[0]).all()
    assert coarse[0] > middle[0] > fine[0]
    rev = layer_alphas(0.3, 18, "fine-to-coarse")
    assert rev[8] > rev[4] > rev[0]
    assert torch.equal(layer_alphas(0.3, 18, None), torch.full((18,), 0.3, dtype=torch.float64))


def test_layer_schedule_rejects_windows_outside_the_segment():
    with pytest.raises(ValueError, match="window"):
        LayerSchedule(coarse=(0.5, 0.4))
    with pytest.raises(ValueError, match="window"):
        LayerSchedule(fine=(0.2, 1.5))
    with pytest.raises(ValueError, match="unknown schedule"):
        interpolation_path(_keys(), 5, schedule="sideways")


# ----------------------------------------------------------------------------- paths


@pytest.mark.parametrize("k,steps,hold,loop", [
    (2, 2, 0, False), (2, 10, 0, False), (2, 10, 3, False), (3, 7, 2, False),
    (2, 5, 0, True), (3, 6, 1, True), (4, 3, 0, True),
])
def test_frame_count_matches_formula(k, steps, hold, loop):
    path = interpolation_path(_keys(k), steps, hold=hold, loop=loop)
    frames = list(path)
    assert len(frames) == len(path) == num_frames(k, steps, hold, loop)
    if k == 2 and not loop:
        assert len(frames) == steps + 2 * hold


@pytest.mark.parametrize("kind", ["lerp", "slerp"])
@pytest.mark.parametrize("schedule", [None, "coarse-to-fine"])
@pytest.mark.parametrize("easing", ["linear", "ease-in-out", "cosine"])
def test_path_starts_and_ends_on_the_keyframes_exactly(kind, schedule, easing):
    keys = _keys(3)
    frames = interpolation_path(keys, 6, kind=kind, easing=easing, hold=2, schedule=schedule).tensor()
    assert all(torch.equal(frames[i], keys[0]) for i in range(3))     # hold + the keyframe itself
    assert all(torch.equal(frames[-1 - i], keys[2]) for i in range(3))
    assert torch.equal(frames[2 + 5], keys[1])                         # the middle keyframe
    assert torch.isfinite(frames).all()


def test_loop_stops_one_step_short_of_the_first_keyframe():
    keys = _keys(3)
    steps = 5
    frames = interpolation_path(keys, steps, loop=True).tensor()
    assert len(frames) == 3 * (steps - 1)
    assert torch.equal(frames[0], keys[0])
    assert not torch.equal(frames[-1], keys[0])
    assert torch.allclose(frames[-1], lerp(keys[2], keys[0], (steps - 2) / (steps - 1)))


def test_linear_lerp_moves_at_constant_speed_away_from_a():
    keys = _keys(2)
    frames = interpolation_path(keys, 20).tensor()  # [20, 18, 32]
    dist_a = (frames - keys[0]).flatten(1).norm(dim=1)
    assert (dist_a.diff() > 0).all()
    step = (frames.diff(dim=0)).flatten(1).norm(dim=1)
    assert torch.allclose(step, step.mean().expand_as(step), rtol=1e-4)
    assert dist_a[-1].item() == pytest.approx((keys[1] - keys[0]).norm().item(), rel=1e-6)


def test_eased_path_is_slow_at_the_ends():
    keys = _keys(2)
    frames = interpolation_path(keys, 21, easing="ease-in-out").tensor()
    step = frames.diff(dim=0).flatten(1).norm(dim=1)
    assert step[0] < step[10] / 5 and step[-1] < step[10] / 5


def test_schedule_path_has_coarse_rows_ahead_of_fine_rows():
    keys = _keys(2)
    path = interpolation_path(keys, 11, schedule="coarse-to-fine")
    w = path[3]  # t = 0.3
    progress = ((w - keys[0]) * (keys[1] - keys[0])).sum(-1) / (keys[1] - keys[0]).square().sum(-1)
    assert progress[0].item() == pytest.approx(0.5, abs=1e-5)
    assert progress[8].item() == pytest.approx(0.0, abs=1e-6)
    assert progress[0] > progress[5] > progress[10] - 1e-6


def test_locate_names_the_segment_of_every_frame():
    path = interpolation_path(_keys(3), 4, hold=1)
    segs = [path.locate(i)[0] for i in range(len(path))]
    assert segs == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert path.locate(-1) == (1, 1.0)
    with pytest.raises(IndexError):
        path.locate(len(path))


def test_path_is_lazy_memory_does_not_grow_with_steps():
    keys = _keys(2, num_ws=18, w_dim=512)
    start = time.perf_counter()
    path = interpolation_path(keys, steps=10**12)  # a tensor of the frames would need 37 exabytes
    frame = path[len(path) // 2]
    assert time.perf_counter() - start < 1.0
    assert torch.allclose(frame, lerp(keys[0], keys[1], (len(path) // 2) / (10**12 - 1)))
    it = iter(path)
    assert torch.equal(next(it), keys[0])


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=1), "steps"), (dict(steps=5, hold=-1), "hold"), (dict(steps=5, kind="cubic"), "kind"),
])
def test_bad_path_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        interpolation_path(_keys(2), **kwargs)


def test_one_keyframe_and_2d_schedules_are_rejected():
    with pytest.raises(ValueError, match="2 keyframes"):
        interpolation_path(_keys(1), 5)
    with pytest.raises(ValueError, match="W\\+"):
        interpolation_path(torch.randn(2, 16), 5, schedule="coarse-to-fine")
    z = interpolation_path(torch.randn(2, 16), 5, kind="slerp").tensor()  # z paths are fine without one
    assert z.shape == (5, 16)
