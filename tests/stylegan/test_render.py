"""Batched rendering: frame counts, endpoints, steady motion, fixed noise, streaming and Ctrl-C."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import weakref

import imageio_ffmpeg
import numpy as np
import pytest
import torch

from stylegan import Generator
from stylegan.errors import UserError
from stylegan.imageio import to_uint8
from stylegan.interpolation import interpolation_path, slerp
from stylegan.render import (
    MappedPath,
    render_frames,
    render_images,
    render_video,
    resolve_device,
    seed_interpolation,
    seeds_to_z,
)
from stylegan.specs import PathSpec
from stylegan.video import write_video
from tests.helpers import tiny_generator


@pytest.fixture(scope="module")
def G() -> Generator:
    return tiny_generator()


@pytest.fixture(scope="module")
def keys(G) -> torch.Tensor:
    torch.manual_seed(1)
    return G.mapping(torch.randn(2, G.z_dim))  # [2, 8, 16]


def frames_of(G, ws, **kw) -> np.ndarray:
    return np.stack(list(render_frames(G, ws, progress=False, **kw)))


def test_frames_are_uint8_rgb_one_per_code(G, keys):
    frames = frames_of(G, interpolation_path(keys, 7), batch_size=3)
    assert frames.shape == (7, 32, 32, 3) and frames.dtype == np.uint8
    assert frames.std() > 5  # a real picture, not a constant


def test_batch_size_does_not_change_the_pictures(G, keys):
    path = interpolation_path(keys, 6)
    one = frames_of(G, path, batch_size=1).astype(int)
    many = frames_of(G, path, batch_size=4).astype(int)
    assert np.abs(one - many).max() <= 1  # float summation order only


def test_first_and_last_frames_are_the_endpoint_renders(G, keys):
    path = interpolation_path(keys, 9, hold=2)
    frames = frames_of(G, path, batch_size=4).astype(int)
    assert len(frames) == 9 + 2 * 2
    a, b = frames_of(G, keys, batch_size=1).astype(int)
    assert np.abs(frames[0] - a).max() <= 1 and np.abs(frames[-1] - b).max() <= 1
    assert np.abs(frames[2] - a).max() <= 1 and np.abs(frames[-3] - b).max() <= 1
    assert np.abs(a - b).mean() > 5  # the endpoints really differ


def test_linear_morph_moves_steadily_from_a_to_b(G, keys):
    frames = frames_of(G, interpolation_path(keys, 15), batch_size=5).astype(float)
    dist = np.sqrt(((frames - frames[0]) ** 2).mean(axis=(1, 2, 3)))
    # Pixels are a non-linear function of w, so only roughly monotone: a rank
    # correlation near 1 and the far end reached last.
    ranks = np.argsort(np.argsort(dist))
    assert np.corrcoef(ranks, np.arange(len(dist)))[0, 1] > 0.95
    assert dist.argmax() >= len(dist) - 2


def test_const_noise_is_the_same_for_every_frame(G, keys):
    ws = keys[:1].repeat(3, 1, 1)
    const = frames_of(G, ws, noise_mode="const", batch_size=2)
    assert all(np.array_equal(const[0], f) for f in const)
    torch.manual_seed(0)
    rand = frames_of(G, ws, noise_mode="random", batch_size=3)
    assert not np.array_equal(rand[0], rand[1])  # the stored noise is what keeps frames still


def test_resize_and_conversion(G, keys):
    frames = frames_of(G, keys, size=48)
    assert frames.shape == (2, 48, 48, 3)
    assert frames_of(G, keys, size=(40, 20)).shape == (2, 20, 40, 3)
    x = torch.tensor([-1.0, 0.0, 1.0, 5.0]).reshape(1, 1, 1, 4).repeat(1, 3, 1, 1)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 128, 255, 255]


def test_wrong_code_shape_is_refused(G):
    with pytest.raises(ValueError, match=r"\[8, 16\]"):
        list(render_frames(G, [torch.zeros(18, 512)], progress=False))


def test_render_video_mp4_has_steps_plus_holds_frames(G, keys, tmp_path):
    dest = tmp_path / "m.mp4"
    n = render_video(G, interpolation_path(keys, 10, hold=3), dest, fps=25, batch_size=4, progress=False)
    assert n == 16
    reader = imageio_ffmpeg.read_frames(str(dest))
    meta = next(reader)
    assert meta["size"] == (32, 32) and sum(1 for _ in reader) == 16


def test_frames_are_never_held_beyond_one_batch(G, keys, tmp_path):
    """Count live frame arrays while streaming 200 frames into a video: at most one batch."""
    alive: list[weakref.ref] = []
    peak = 0

    def tracked():
        nonlocal peak
        for f in render_frames(G, interpolation_path(keys, 200), batch_size=4, progress=False):
            alive.append(weakref.ref(f))
            peak = max(peak, sum(r() is not None for r in alive))
            yield f
            del f

    assert write_video(tracked(), tmp_path / "long.gif") == 200
    assert peak <= 4


def test_keyboard_interrupt_mid_render_leaves_no_file(G, keys, tmp_path):
    def codes():
        for i, w in enumerate(interpolation_path(keys, 30)):
            if i == 12:
                raise KeyboardInterrupt
            yield w

    for name in ("k.mp4", "k.gif", "k"):
        with pytest.raises(KeyboardInterrupt):
            render_video(G, codes(), tmp_path / name, batch_size=4, progress=False)
    assert list(tmp_path.iterdir()) == []


_RSS_SCRIPT = textwrap.dedent("""
    import resource, sys, torch
    sys.path.insert(0, sys.argv[2])
    from tests.helpers import tiny_generator
    from stylegan.interpolation import interpolation_path
    from stylegan.render import render_video

    G = tiny_generator()
    keys = G.mapping(torch.randn(2, G.z_dim))
    peaks = []
    for steps in (10, 200):
        render_video(G, interpolation_path(keys, steps), sys.argv[1], size=256, batch_size=4,
                     progress=False, preset="ultrafast")
        peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(*peaks)
""")


def test_peak_memory_does_not_grow_with_steps(tmp_path):
    # 200 frames at 256x256 are 39 MB as uint8 and 157 MB as float: holding them
    # would show; 15 MB is allocator noise.
    here = str(__import__("pathlib").Path(__file__).resolve().parents[2])  # the repo root, for tests.helpers
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(tmp_path / "r.mp4"), here],
                         capture_output=True, text=True, timeout=300, check=True)
    short, long = map(float, out.stdout.split())
    assert long - short < 15, f"peak RSS grew from {short:.0f} MB (10 steps) to {long:.0f} MB (200 steps)"


# ----------------------------------------------------------------------------- seeds, grids, devices


def test_seeds_follow_the_randomstate_convention():
    z = seeds_to_z([0, 5], 16)
    assert z.shape == (2, 16) and z.dtype == torch.float32
    assert np.allclose(z[1].numpy(), np.random.RandomState(5).randn(16).astype(np.float32))
    with pytest.raises(UserError, match="seeds"):
        seeds_to_z([-1], 16)


def test_seed_interpolation_is_lazy_slerp_in_z_then_mapped(G):
    path = seed_interpolation(G, [3, 4, 5], PathSpec(steps=6, hold=1, kind="slerp"), truncation_psi=0.7)
    assert isinstance(path, MappedPath) and len(path) == 3 * 1 + 2 * 5 + 1
    ws = list(path)
    expected_first = G.mapping(seeds_to_z([3], G.z_dim), truncation_psi=0.7)[0]
    assert torch.allclose(ws[0], expected_first) and torch.allclose(ws[1], expected_first)
    z = seeds_to_z([3, 4], G.z_dim)
    middle = G.mapping(slerp(z[0], z[1], 0.4)[None], truncation_psi=0.7)[0]  # frame 1 + 2 of 6 steps: alpha 2/5
    assert torch.allclose(ws[3], middle, atol=1e-6)
    assert not torch.is_inference_mode_enabled()  # a suspended generator must not leak the mode


def test_seed_interpolation_keeps_its_old_keywords_for_one_release(G):
    with pytest.warns(DeprecationWarning, match=r"seed_interpolation\(steps=, hold=\) is deprecated"):
        old = seed_interpolation(G, [3, 4, 5], 6, 0.7, hold=1)
    new = seed_interpolation(G, [3, 4, 5], PathSpec(steps=6, hold=1, kind="slerp"), 0.7)
    assert all(torch.equal(a, b) for a, b in zip(old, new)) and len(old) == len(new)


def test_seed_interpolation_refuses_a_layer_schedule_and_one_seed(G):
    with pytest.raises(UserError, match="schedule must be uniform for seeds"):
        seed_interpolation(G, [1, 2], PathSpec(schedule="coarse-to-fine"))
    with pytest.raises(UserError, match="at least 2 seeds"):
        seed_interpolation(G, [1], PathSpec())


def test_render_images_matches_render_frames(G, keys):
    assert np.array_equal(render_images(G, keys), frames_of(G, keys))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(UserError, match="no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(UserError, match="unknown device"):
        resolve_device("tpu9")


# ----------------------------------------------------------------------------- issue 9 item 22


@pytest.mark.parametrize("value, match", [(float("nan"), "NaN or infinite"), (float("inf"), "NaN or infinite"),
                                          (1e30, "reach 1e\\+30")])
def test_non_finite_or_absurd_codes_are_refused_not_rendered_black(G, keys, value: float, match: str) -> None:
    bad = keys.clone()
    bad[1, 3, 5] = value
    with pytest.raises(UserError, match=match):
        frames_of(G, bad)


def test_nan_truncation_is_refused(G) -> None:
    """``generate.py --trunc nan`` once gave a black image."""
    for psi in (float("nan"), float("inf")):
        with pytest.raises(UserError, match="truncation_psi must be a finite number"):
            MappedPath(G, [torch.zeros(G.z_dim)], psi)
    with pytest.raises(UserError, match="truncation_psi"):
        seed_interpolation(G, [1, 2], PathSpec(steps=3), truncation_psi=float("nan"))
