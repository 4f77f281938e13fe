"""Our FFHQ alignment against NVIDIA's own recipe, through a stored golden set.

``data/align_golden.npz`` holds, for nine fixed landmark sets on the two
public-domain photos in ``pretrained/examples`` and on a synthetic pattern,
the quad that NVlabs/ffhq-dataset's ``recreate_aligned_images`` hands to
Pillow, the size of the image it warps, and the crop it writes
(``data/make_align_golden.py`` says how it was made). The cases force every
branch of the recipe: crop only, shrink by 2 and by 3 with sizes that do not
divide, padding at a corner, shrink plus padding, rotated faces, a warp at the
output size and one at the reference's 4096.

No dlib and no shared data are needed; the whole file runs in a few seconds.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoders.align import (TRANSFORM_SIZE, _gaussian_blur, align_from_landmarks, map_to_aligned,
                            plan_alignment)

DATA = Path(__file__).resolve().parent / "data" / "align_golden.npz"
EXAMPLES = Path(__file__).resolve().parents[2] / "pretrained" / "examples"
GOLDEN = dict(np.load(DATA))
CASES = [str(c) for c in GOLDEN["cases"]]

# Measured: every case is bit-identical. One level of slack, on at most 0.1%
# of the values, allows for float rounding of the FFT blur landing on the
# other side of a .5 before the final rounding to 8 bits.
MAX_LEVEL_DIFF = 1
MAX_DIFF_FRACTION = 0.001


def _sources() -> dict[str, Image.Image]:
    synthetic = Image.open(io.BytesIO(GOLDEN["synthetic_png"].tobytes())).convert("RGB")
    return {
        "astronaut": Image.open(EXAMPLES / "astronaut.png").convert("RGB"),
        "hopper": Image.open(EXAMPLES / "grace_hopper.jpg").convert("RGB"),
        "synthetic": synthetic,
    }


SOURCES = _sources()


def _case(name: str) -> tuple[Image.Image, np.ndarray, int, int]:
    src = str(GOLDEN[f"{name}/source"])
    img = SOURCES[src]
    if hashlib.sha256(np.asarray(img).tobytes()).hexdigest() != str(GOLDEN[f"source_sha256_{src}"]):
        # A different JPEG decoder gives different pixels, and then different crops.
        pytest.skip(f"{src}: decoded pixels differ from those the golden set was made from")
    return (img, GOLDEN[f"{name}/landmarks"], int(GOLDEN[f"{name}/output_size"]),
            int(GOLDEN[f"{name}/transform_size"]))


def test_golden_set_covers_every_branch() -> None:
    plans = []
    for name in CASES:
        img, lm, out_size, _ = _case(name)
        plans.append((img.size, plan_alignment(img.size, lm, out_size)))
    assert any(p.shrink == 1 and p.pad is None and p.crop is not None for _, p in plans)
    assert any(p.shrink == 2 and p.pad is None for _, p in plans)
    # shrink 3 where a side does not divide by 3: rint(size / 3) rounds
    assert any(p.shrink == 3 and (size[0] % 3 or size[1] % 3) for size, p in plans)
    assert any(p.shrink == 1 and p.pad is not None for _, p in plans)
    assert any(p.shrink > 1 and p.pad is not None for _, p in plans)
    sizes = [(int(GOLDEN[f"{n}/output_size"]), int(GOLDEN[f"{n}/transform_size"])) for n in CASES]
    assert any(t == TRANSFORM_SIZE for _, t in sizes) and any(t == o for o, t in sizes)


@pytest.mark.parametrize("name", CASES)
def test_quad_and_warp_image_match_reference(name: str) -> None:
    img, lm, out_size, _ = _case(name)
    plan = plan_alignment(img.size, lm, out_size)
    assert np.allclose(plan.quad, GOLDEN[f"{name}/quad"], rtol=0, atol=1e-9)
    width, height = plan.shrunk_size
    if plan.crop is not None:
        width, height = plan.crop[2] - plan.crop[0], plan.crop[3] - plan.crop[1]
    if plan.pad is not None:
        width, height = width + plan.pad[0] + plan.pad[2], height + plan.pad[1] + plan.pad[3]
    assert (width, height) == tuple(int(v) for v in GOLDEN[f"{name}/warp_image_size"])


@pytest.mark.parametrize("name", CASES)
def test_crop_matches_reference(name: str) -> None:
    img, lm, out_size, t_size = _case(name)
    # The 4096 case goes through the default, which must be the reference's.
    got = align_from_landmarks(img, lm, out_size, None if t_size == TRANSFORM_SIZE else t_size)
    want = GOLDEN[f"{name}/crop"]
    diff = np.abs(np.asarray(got, dtype=np.int16) - want.astype(np.int16))
    assert diff.max() <= MAX_LEVEL_DIFF, f"max diff {diff.max()} levels"
    assert (diff > 0).mean() <= MAX_DIFF_FRACTION, f"{(diff > 0).mean():.2%} of values differ"


def _direct_gaussian(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Slow, obvious float64 reference: per-axis sums with half-sample reflection indices."""
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()

    def reflect(i: np.ndarray, n: int) -> np.ndarray:
        i = np.mod(i, 2 * n)
        return np.where(i < n, i, 2 * n - 1 - i)

    out = arr.astype(np.float64)
    for axis in (0, 1):
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for k, w in zip(range(-radius, radius + 1), taps):
            acc += w * np.take(out, reflect(np.arange(n) + k, n), axis=axis)
        out = acc.astype(np.float32).astype(np.float64)  # float32 between passes, as scipy
    return out.astype(np.float32)


@pytest.mark.parametrize("shape,sigma", [((23, 17, 3), 1.7), ((9, 40, 2), 3.0), ((60, 45, 3), 0.6)])
def test_gaussian_blur_equals_direct_sum(shape: tuple[int, int, int], sigma: float) -> None:
    # (9, 40) with sigma 3: the 25-tap kernel is wider than the image, so the
    # reflection repeats, as scipy.ndimage's 'reflect' mode does.
    arr = np.random.default_rng(0).integers(0, 256, shape).astype(np.float32)
    got = _gaussian_blur(arr, sigma)
    assert got.dtype == np.float32 and got.shape == shape
    assert np.allclose(got, _direct_gaussian(arr, sigma), rtol=0, atol=1e-4)
    # Channels are never mixed: a blur of one channel alone gives the same.
    assert np.array_equal(_gaussian_blur(arr[..., :1].copy(), sigma)[..., 0], got[..., 0])


def test_map_to_aligned_follows_reference_shrink_rounding() -> None:
    # In the shrink-3 synthetic case (301x257 -> 100x86) the reference's quad,
    # divided by 3 in pixel-centre coordinates, and Pillow's resize disagree by
    # a fraction of a shrunk pixel; map_to_aligned with the photo size
    # reproduces where a point really lands, and without it stays within 1/4
    # output pixel.
    name = "synthetic_shrink3_odd"
    img, lm, out_size, _ = _case(name)
    plan = plan_alignment(img.size, lm, out_size)
    assert plan.shrink == 3
    corners = np.array([[0.0, 0.0], [300.0, 256.0], [150.0, 128.0]])
    exact = map_to_aligned(lm, corners, out_size, image_size=img.size)
    rough = map_to_aligned(lm, corners, out_size)
    assert 0 < np.abs(exact - rough).max() <= 0.25
    # Independent route: photo centre -> shrunk image (Pillow scales pixel
    # edges by new/old size) -> minus crop, plus pad -> the plan's quad.
    scale = np.array(plan.shrunk_size) / np.array(img.size)
    offset = np.zeros(2)
    if plan.crop is not None:
        offset -= plan.crop[:2]
    if plan.pad is not None:
        offset += plan.pad[:2]
    pts = (corners + 0.5) * scale - 0.5 + offset
    tl, bl, _, tr = plan.quad
    uv = np.linalg.solve(np.stack([tr - tl, bl - tl], axis=1), (pts - tl).T).T
    assert np.allclose(exact, uv * out_size - 0.5, atol=1e-9)
