"""stylegan.imageio: exact conversions both ways, one grid, atomic image files, and the old names that forward."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan.errors import UserError
from stylegan.imageio import JPEG_QUALITY, from_uint8, image_grid, save_image, to_tensor, to_uint8

# ----------------------------------------------------------------------------- conversions


def test_to_uint8_rounds_and_clamps():
    step = 1 / 127.5  # one uint8 level in [-1, 1]
    x = torch.tensor([-1.0, 0.0, 1.0, 5.0, -5.0, 1 - 1e-4, -1 + 0.4 * step, -1 + 0.6 * step])
    got = to_uint8(x.reshape(1, 1, 1, -1))[0, 0, :, 0].tolist()
    # 1 - 1e-4 is 254.99 levels: truncating would give 254; 0.4 and 0.6 of a level round to 0 and 1.
    assert got == [0, 128, 255, 255, 0, 255, 0, 1]


def test_uint8_tensor_round_trip_is_exact(rgb_image):
    x = to_tensor(rgb_image)
    assert x.shape == (1, 3, 24, 32) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    assert np.array_equal(to_uint8(x)[0], rgb_image)
    batch = np.stack([rgb_image, rgb_image[::-1]])
    assert np.array_equal(to_uint8(to_tensor(batch)), batch)
    assert torch.equal(to_tensor(Image.fromarray(rgb_image)), x)  # PIL and arrays agree


def test_the_encoder_reads_uint8_pixels_with_the_same_formula(rgb_image):
    """encoders.e4e takes uint8 NCHW tensors; its conversion is from_uint8, as to_tensor's is."""
    from encoders.e4e import _check_images

    nchw = torch.from_numpy(rgb_image).permute(2, 0, 1)[None].contiguous()
    assert torch.equal(_check_images(nchw), to_tensor(rgb_image))
    assert torch.equal(from_uint8(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([-1.0, 1.0]))


def test_to_tensor_converts_pil_modes_and_refuses_floats(rgb_image):
    assert to_tensor(Image.new("L", (5, 4), 255)).shape == (1, 3, 4, 5)
    with pytest.raises(ValueError, match="uint8"):
        to_tensor(rgb_image.astype(np.float32))


def test_to_uint8_resizes_and_checks_rank():
    x = torch.zeros(2, 3, 16, 16)
    assert to_uint8(x, 8).shape == (2, 8, 8, 3)
    assert to_uint8(x, (12, 6)).shape == (2, 6, 12, 3)  # (width, height)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        to_uint8(x[0])


# ----------------------------------------------------------------------------- grid


def test_image_grid_layout():
    imgs = [np.full((2, 3, 3), i * 40, np.uint8) for i in range(5)]
    grid = image_grid(imgs, cols=3, pad=1)
    assert grid.shape == (2 * 2 + 1, 3 * 3 + 2, 3)
    assert grid[0, 0, 0] == 0 and grid[0, 4, 0] == 40 and grid[3, 4, 0] == 160
    assert grid[3, 8, 0] == 0  # the empty sixth cell stays black
    assert grid[2, 0, 0] == 0 and grid[0, 3, 0] == 0  # the padding is black too
    assert image_grid(imgs).shape == (2 * 2, 3 * 3, 3)  # ceil(sqrt(5)) = 3 columns
    assert image_grid(imgs, cols=9).shape == (2, 5 * 3, 3)  # never wider than the images
    with pytest.raises(ValueError, match="at least one"):
        image_grid([])


# ----------------------------------------------------------------------------- files


def test_png_is_exact_and_replaces_atomically(tmp_path, rgb_image):
    dest = tmp_path / "out.png"
    dest.write_bytes(b"old")
    assert save_image(rgb_image, dest) == dest
    assert np.array_equal(np.asarray(Image.open(dest)), rgb_image)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_jpeg_quality_is_chosen_once_and_can_be_overridden(tmp_path, rgb_image):
    def pillow_bytes(quality: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rgb_image).save(buf, format="JPEG", quality=quality)
        return buf.getvalue()

    save_image(rgb_image, tmp_path / "a.jpg")
    save_image(rgb_image, tmp_path / "b.jpeg", quality=60)
    assert (tmp_path / "a.jpg").read_bytes() == pillow_bytes(JPEG_QUALITY)
    assert (tmp_path / "b.jpeg").read_bytes() == pillow_bytes(60)


def test_save_errors_are_one_line_and_leave_nothing(tmp_path):
    img = Image.new("RGB", (4, 4))
    with pytest.raises(UserError, match="unknown image extension"):
        save_image(img, tmp_path / "out.xyz")
    with pytest.raises(UserError, match="does not exist"):
        save_image(img, tmp_path / "missing" / "out.png")
    with pytest.raises(UserError, match="cannot write image"):
        save_image(Image.new("RGBA", (4, 4)), tmp_path / "alpha.jpg")  # JPEG has no alpha
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        save_image(img, tmp_path / "dir.png")
    assert [p.name for p in tmp_path.iterdir()] == ["dir.png"]


def test_interrupted_save_keeps_the_old_file(tmp_path, monkeypatch):
    dest = tmp_path / "keep.png"
    dest.write_bytes(b"old")

    def half_then_ctrl_c(self, fp, *args, **kwargs):
        open(fp, "wb").write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", half_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        save_image(Image.new("RGB", (4, 4)), dest)
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


# ----------------------------------------------------------------------------- old names


def _old(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("module", ["stylegan.render", "stylegan.training.logging"])
def test_old_to_uint8_warns_and_agrees(module):
    x = torch.rand(2, 3, 5, 5) * 2.2 - 1.1
    with pytest.warns(DeprecationWarning, match="stylegan.imageio.to_uint8"):
        got = _old(module, "to_uint8")(x)
    assert np.array_equal(got, to_uint8(x))


def test_old_image_grid_warns_and_agrees(rgb_image):
    with pytest.warns(DeprecationWarning, match="stylegan.imageio.image_grid"):
        got = _old("stylegan.render", "image_grid")([rgb_image] * 3, cols=2, pad=1)
    assert np.array_equal(got, image_grid([rgb_image] * 3, cols=2, pad=1))


def test_old_writers_warn_and_write_the_same_bytes(tmp_path, rgb_image):
    save_image(rgb_image, tmp_path / "new.jpg")
    with pytest.warns(DeprecationWarning, match="stylegan.imageio.save_image"):
        _old("stylegan.video", "write_image")(rgb_image, tmp_path / "old.jpg")
    assert (tmp_path / "old.jpg").read_bytes() == (tmp_path / "new.jpg").read_bytes()


def test_old_save_grid_warns_and_makes_its_folder(tmp_path):
    x = torch.rand(5, 3, 4, 4) * 2 - 1
    with pytest.warns(DeprecationWarning, match="save_grid"):
        _old("stylegan.training.logging", "save_grid")(x, tmp_path / "samples" / "g.png", cols=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new spelling is silent
        expected = image_grid(to_uint8(x), cols=2)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "samples" / "g.png")), expected)
