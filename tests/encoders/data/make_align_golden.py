"""How ``align_golden.npz`` was made (kept for the record; tests only read the .npz).

The golden set pins our FFHQ alignment (``encoders/align.py``) to NVIDIA's own
``recreate_aligned_images`` from NVlabs/ffhq-dataset ``download_ffhq.py``: for a
handful of fixed landmark sets it stores the quad their code hands to Pillow's
``QUAD`` transform, the size of the (shrunk, cropped, padded) image it warps,
and the small crop it writes. ``tests/encoders/test_align.py`` checks that our
:func:`encoders.align.plan_alignment` gives the same quad and image size, and
that :func:`encoders.align.align_from_landmarks` gives the same pixels.

Cases (see ``CASES``): the two public-domain photos in ``pretrained/examples``
with their dlib landmarks, moved or scaled so that the recipe must pad, shrink,
or both; and a synthetic 301x257 pattern (stored as a PNG in the .npz) with
rotated faces, where ``size / shrink`` is not a whole number. Every case runs
at 64 px or less with a small ``transform_size``, except one that uses the
reference's 4096, to cover our default.

Recipe (nothing from that project is committed here):

1. Fetch https://github.com/NVlabs/ffhq-dataset (commit 4826aa6, 2022-03-08)
   into a throwaway folder outside this repository, e.g. ``git archive HEAD |
   tar -x -C /tmp/ffhq-dataset``.
2. Make scipy importable (``pip install --target /tmp/ffhqlib scipy``); their
   module also imports ``requests``, which is stubbed here when missing because
   only the alignment function is called.
3. From the repository root, with dlib installed (landmarks come from our
   detector):
   ``PYTHONPATH=/tmp/ffhqlib python tests/encoders/data/make_align_golden.py /tmp/ffhq-dataset``

Their function is called unmodified. Two shims only: ``PIL.Image.ANTIALIAS``,
which Pillow 10 removed, is set to ``LANCZOS`` (the same filter), and
``PIL.Image.Image.transform`` is wrapped to record its arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import PIL.Image

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "pretrained" / "examples"
OUT = Path(__file__).resolve().parent / "align_golden.npz"
SOURCE = "NVlabs/ffhq-dataset 4826aa6 download_ffhq.py recreate_aligned_images"

# name, source image, landmark edit (scale about the eye midpoint, then shift,
# then rotation about the eye midpoint in radians), output size, transform size
CASES = [
    ("astronaut_crop", "astronaut", (1.0, (0, 0), 0.0), 64, 256),        # crop only, quad at the top edge
    ("hopper_shrink2", "hopper", (1.0, (0, 0), 0.0), 64, 256),           # shrink 2, even sizes
    ("hopper_shrink3_odd", "hopper", (1.0, (0, 0), 0.0), 48, 192),       # shrink 3: 512/3, 600/3 rounded
    ("hopper_no_supersample", "hopper", (1.0, (0, 0), 0.0), 64, 64),     # transform == output (e4e style)
    ("astronaut_pad_corner", "astronaut", (1.0, (-140, -70), 0.0), 64, 256),
    ("hopper_shrink_pad", "hopper", (1.6, (0, 40), 0.0), 64, 256),       # shrink 4 and pad
    ("synthetic_rotated_pad", "synthetic", (1.0, (0, 0), 0.35), 64, 256),
    ("synthetic_shrink3_odd", "synthetic", (1.0, (0, 0), -0.5), 32, 128),
    ("astronaut_pad_t4096", "astronaut", (1.0, (-140, -70), 0.0), 64, 4096),  # the default transform size
]


def synthetic_image() -> np.ndarray:
    """A 301x257 pattern with edges, ramps and fine texture (exercises blur and resampling)."""
    ys, xs = np.mgrid[0:257, 0:301]
    red = (xs * 3 + ys * 5) % 256
    green = ((xs // 9 + ys // 7) % 2) * 180 + 40
    blue = (xs * xs + 2 * ys * ys) // 53 % 256
    return np.uint8(np.stack([red, green, blue], axis=-1))


def synthetic_landmarks(case: str) -> np.ndarray:
    """Upright 68-point layout (only the points the recipe reads are set)."""
    if case == "synthetic_rotated_pad":  # near the bottom-right corner: must pad
        centre, eye_dist, mouth_drop = np.array([250.0, 205.0]), 36.0, 40.0
    else:  # qsize ~205 at 32 px out: shrink 3, 301/3 and 257/3 are not whole
        centre, eye_dist, mouth_drop = np.array([150.0, 120.0]), 51.0, 52.0
    lm = np.zeros((68, 2))
    lm[36:42] = (-eye_dist / 2, 0.0)
    lm[42:48] = (eye_dist / 2, 0.0)
    lm[48] = (-eye_dist / 3, mouth_drop)
    lm[54] = (eye_dist / 3, mouth_drop)
    return lm + centre


def edit_landmarks(lm: np.ndarray, scale: float, shift: tuple[int, int], angle: float) -> np.ndarray:
    pivot = (lm[36:42].mean(axis=0) + lm[42:48].mean(axis=0)) / 2
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (lm - pivot) @ rot.T * scale + pivot + np.asarray(shift, dtype=np.float64)


def load_reference(folder: Path) -> types.ModuleType:
    try:
        import requests  # noqa: F401
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")  # download code is never called
    if not hasattr(PIL.Image, "ANTIALIAS"):
        PIL.Image.ANTIALIAS = PIL.Image.LANCZOS
    spec = importlib.util.spec_from_file_location("download_ffhq", folder / "download_ffhq.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="folder holding NVlabs/ffhq-dataset's download_ffhq.py")
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()
    reference = args.reference.resolve()
    ref = load_reference(reference)

    sys.path.insert(0, str(ROOT))
    from encoders.align import detect_faces

    sources = {
        "astronaut": np.asarray(PIL.Image.open(EXAMPLES / "astronaut.png").convert("RGB")),
        "hopper": np.asarray(PIL.Image.open(EXAMPLES / "grace_hopper.jpg").convert("RGB")),
        "synthetic": synthetic_image(),
    }
    base = {name: detect_faces(PIL.Image.fromarray(sources[name]))[0].landmarks
            for name in ("astronaut", "hopper")}

    recorded = []
    original_transform = PIL.Image.Image.transform

    def recording_transform(self, size, method, data=None, *rest, **kw):
        recorded.append((self.size, np.array(data, dtype=np.float64).reshape(4, 2)))
        return original_transform(self, size, method, data, *rest, **kw)

    PIL.Image.Image.transform = recording_transform
    png = io.BytesIO()
    PIL.Image.fromarray(sources["synthetic"]).save(png, "PNG", optimize=True)  # 15 KB, lossless
    out: dict[str, np.ndarray] = {"synthetic_png": np.frombuffer(png.getvalue(), dtype=np.uint8)}
    for name in ("astronaut", "hopper", "synthetic"):
        out[f"source_sha256_{name}"] = np.array(hashlib.sha256(sources[name].tobytes()).hexdigest())
    names = []
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for case, src, (scale, shift, angle), out_size, t_size in CASES:
            lm = synthetic_landmarks(case) if src == "synthetic" else base[src]
            lm = edit_landmarks(lm, scale, shift, angle)
            PIL.Image.fromarray(sources[src]).save(tmp / f"{case}.png")
            item = {"in_the_wild": {"face_landmarks": lm.tolist(), "file_path": f"{case}.png"}}
            dst = tmp / f"out_{case}"
            recorded.clear()
            os.chdir(reference)  # their function copies LICENSE.txt from the working directory
            try:
                ref.recreate_aligned_images({"0": item}, str(tmp), dst_dir=str(dst),
                                            output_size=out_size, transform_size=t_size)
            finally:
                os.chdir(cwd)
            assert len(recorded) == 1, recorded
            (warp_size, quad_edges), = recorded
            crop = np.asarray(PIL.Image.open(dst / "00000" / "00000.png").convert("RGB"))
            names.append(case)
            out[f"{case}/source"] = np.array(src)
            out[f"{case}/landmarks"] = lm
            out[f"{case}/output_size"] = np.array(out_size)
            out[f"{case}/transform_size"] = np.array(t_size)
            out[f"{case}/quad"] = quad_edges - 0.5            # pixel centres, as plan_alignment gives
            out[f"{case}/warp_image_size"] = np.array(warp_size)
            out[f"{case}/crop"] = crop
            print(f"{case}: warp image {warp_size}, quad {np.round(quad_edges - 0.5, 2).tolist()}")
    PIL.Image.Image.transform = original_transform
    out["cases"] = np.array(names)
    out["source"] = np.array(SOURCE)
    out["scipy_version"] = np.array(__import__("scipy").__version__)
    out["pillow_version"] = np.array(PIL.__version__)
    out["numpy_version"] = np.array(np.__version__)
    np.savez_compressed(args.output, **out)
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes); meta {json.dumps(SOURCE)}")


if __name__ == "__main__":
    main()
