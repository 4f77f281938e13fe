"""Tests for encoders.images: every odd photo becomes 8-bit RGB or a one-line UserError."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from encoders.images import load_image
from stylegan.errors import UserError

FACES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "faces"


def _gradient(width: int = 40, height: int = 30) -> np.ndarray:
    """An RGB test pattern whose orientation is visible (no symmetry)."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs * 255 // (width - 1), ys * 255 // (height - 1), (xs + ys) % 256], -1).astype(np.uint8)


def _assert_rgb8(img: Image.Image, size: tuple[int, int]) -> None:
    assert img.mode == "RGB"
    assert img.size == size
    assert np.asarray(img).dtype == np.uint8


def _assert_one_line_naming(err: pytest.ExceptionInfo, path: Path) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg


def test_rgb_round_trip_keeps_pixels(tmp_path: Path) -> None:
    arr = _gradient()
    Image.fromarray(arr).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    _assert_rgb8(img, (40, 30))
    assert np.array_equal(np.asarray(img), arr)


def test_grayscale_becomes_rgb(tmp_path: Path) -> None:
    grey = _gradient()[..., 0]
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    _assert_rgb8(img, (40, 30))
    out = np.asarray(img)
    for c in range(3):
        assert np.array_equal(out[..., c], grey)


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 0] = 200           # red everywhere
    rgba[:, :6, 3] = 255         # left half opaque
    rgba[:, 6:, 3] = 0           # right half fully transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    out = np.asarray(load_image(tmp_path / "t.png"))
    assert out.shape == (10, 12, 3)
    assert (out[:, :6] == [200, 0, 0]).all()
    assert (out[:, 6:] == 255).all()


def test_palette_with_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([10, 20, 30] + [0, 255, 0] * 255)
    pal.putpixel((0, 0), 1)
    pal.info["transparency"] = 1
    pal.save(tmp_path / "p.png", transparency=1)
    out = np.asarray(load_image(tmp_path / "p.png"))
    assert tuple(out[0, 0]) == (255, 255, 255)   # transparent index -> white
    assert tuple(out[4, 4]) == (10, 20, 30)


def test_palette_gif(tmp_path: Path) -> None:
    Image.fromarray(_gradient()).convert("P").save(tmp_path / "p.gif")
    _assert_rgb8(load_image(tmp_path / "p.gif"), (40, 30))


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (16, 9), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=95)
    img = load_image(tmp_path / "c.jpg")
    _assert_rgb8(img, (16, 9))
    r, g, b = np.asarray(img)[4, 8].astype(int)
    assert r > 200 and g < 60 and b < 60   # cyan 0, magenta+yellow full = red


def test_16bit_grey_is_rescaled_not_clipped(tmp_path: Path) -> None:
    values = np.linspace(0, 65535, 64 * 4).reshape(4, 64).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    out = np.asarray(load_image(tmp_path / "deep.png"))[..., 0].astype(int)
    expected = np.rint(values / 257.0).astype(int)
    assert np.abs(out - expected).max() <= 1
    assert out.min() == 0 and out.max() == 255
    assert len(np.unique(out)) > 200   # a clipping conversion would give ~2 levels


def test_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    arr = _gradient(40, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.fromarray(arr).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    assert Image.open(tmp_path / "rot.jpg").size == (40, 30)
    img = load_image(tmp_path / "rot.jpg")
    _assert_rgb8(img, (30, 40))
    # Orientation 6 means the stored top row is the displayed right column.
    expected = np.rot90(arr, k=-1)
    assert np.abs(np.asarray(img).astype(int) - expected).mean() < 8


def test_pil_input_is_normalised_and_untouched() -> None:
    src = Image.new("LA", (5, 4), (100, 255))
    out = load_image(src)
    _assert_rgb8(out, (5, 4))
    assert src.mode == "LA"
    rgb = Image.new("RGB", (3, 3))
    assert load_image(rgb) is not rgb


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jpg"
    with pytest.raises(UserError) as err:
        load_image(path)
    _assert_one_line_naming(err, path)
    assert "not found" in str(err.value)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        load_image(tmp_path)
    _assert_one_line_naming(err, tmp_path)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    with pytest.raises(UserError) as err:
        load_image(path)
    _assert_one_line_naming(err, path)
    assert "not an image" in str(err.value)


def test_truncated_jpeg(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(
        buf, format="JPEG", quality=90)
    data = buf.getvalue()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError) as err:
        load_image(path)
    _assert_one_line_naming(err, path)
    assert "truncated" in str(err.value)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height but that holds (almost) no pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [12_000, 200_000])
def test_decompression_bomb_header(tmp_path: Path, side: int) -> None:
    # 144 MP is over our 100 MP limit but under Pillow's hard limit (2 x 89 MP),
    # so our own check must catch it; 40 GP also trips Pillow's DecompressionBombError.
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(side, side))
    with pytest.raises(UserError) as err:
        load_image(path)
    _assert_one_line_naming(err, path)
    assert "too large" in str(err.value)


def test_lowered_pixel_limit(tmp_path: Path) -> None:
    Image.fromarray(_gradient()).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png", max_pixels=1200).size == (40, 30)
    with pytest.raises(UserError, match="too large"):
        load_image(tmp_path / "a.png", max_pixels=1199)


@pytest.mark.skipif(not FACES.is_dir(), reason=f"test photos not found at {FACES}")
@pytest.mark.parametrize("name", ["fr_alex_lacamoire.png", "dlib_tom_cruise.jpg"])
def test_real_photos(name: str) -> None:
    img = load_image(FACES / name)
    with Image.open(FACES / name) as raw:
        assert img.size == raw.size
    assert img.mode == "RGB"


# ----------------------------------------------------------------------------- issue 9: items 15, 17, 18


def test_bomb_message_quotes_our_limit_not_pillows(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(200_000, 200_000))
    with pytest.raises(UserError) as err:
        load_image(path)
    msg = str(err.value)
    assert "limit 100,000,000" in msg and "40,000,000,000 pixels" in msg
    assert "178956970" not in msg and "DOS attack" not in msg


def test_empty_file_is_called_empty(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"")
    with pytest.raises(UserError, match=r"the file is empty \(0 bytes\)") as err:
        load_image(path)
    _assert_one_line_naming(err, path)


def test_heic_gets_its_own_message(tmp_path: Path) -> None:
    # The first box of an iPhone photo: size, "ftyp", major brand "heic", then compatible brands.
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(struct.pack(">I", 24) + b"ftypheic" + b"\0\0\0\0" + b"mif1heic" + b"\0" * 200)
    with pytest.raises(UserError) as err:
        load_image(path)
    _assert_one_line_naming(err, path)
    assert "HEIC" in str(err.value) and "not supported" in str(err.value) and "JPEG" in str(err.value)


def test_corrupt_exif_block_is_silent(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    # An IFD whose ImageDescription points far beyond the block: Pillow warns while parsing it.
    ifd = (struct.pack("<H", 2) + struct.pack("<HHII", 0x0112, 3, 1, 6) + struct.pack("<HHII", 0x010E, 2, 100, 1000)
           + struct.pack("<I", 0))
    exif = b"Exif\0\0" + b"II*\0" + struct.pack("<I", 8) + ifd
    Image.fromarray(_gradient()).save(tmp_path / "a.jpg", exif=exif)
    img = load_image(tmp_path / "a.jpg")
    _assert_rgb8(img, (30, 40))  # orientation 6 is still applied
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize("shape, dtype", [((30, 40, 3), np.uint8), ((30, 40), np.uint8), ((30, 40, 4), np.uint8),
                                          ((30, 40, 1), np.uint8), ((30, 40, 3), np.float32)])
def test_numpy_arrays_are_accepted(shape: tuple, dtype: type) -> None:
    rgba = np.concatenate([_gradient(), np.full((30, 40, 1), 255, np.uint8)], axis=2)
    arr = rgba[..., :3] if shape == (30, 40, 3) else rgba[..., 0].reshape(shape) if len(shape) < 3 or shape[2] == 1 \
        else rgba
    if dtype == np.float32:
        arr = arr.astype(np.float32) / 255
    img = load_image(arr)
    _assert_rgb8(img, (40, 30))
    if shape == (30, 40, 3):
        assert np.abs(np.asarray(img).astype(int) - _gradient()).max() <= 1


@pytest.mark.parametrize("bad, match", [
    (np.zeros((30, 40, 2), np.uint8), r"\[H, W, 3\]"), (np.full((3, 3), 300.0), r"\[0, 1\]"),
    (np.zeros((3, 3), np.int64), "uint8"), (np.zeros((0, 3, 3), np.uint8), r"\[H, W\]"),
    (12, "path, a PIL.Image or a numpy array"), (b"abc", "path, a PIL.Image or a numpy array"),
])
def test_bad_inputs_give_one_line_user_errors(bad: object, match: str) -> None:
    with pytest.raises(UserError, match=match) as err:
        load_image(bad)
    assert "\n" not in str(err.value)


def test_pil_images_and_arrays_align(tmp_path: Path) -> None:
    """``align_face`` takes what ``load_image`` takes (issue 9 item 17)."""
    pytest.importorskip("dlib")
    from encoders.align import align_face, find_predictor

    photo = FACES / "dlib_tom_cruise.jpg"
    if not photo.is_file():
        pytest.skip(f"test photo not found at {photo}")
    try:
        find_predictor()
    except UserError as err:
        pytest.skip(str(err))
    img = load_image(photo)
    by_path = np.asarray(align_face(photo, output_size=64, transform_size=64))
    assert np.array_equal(np.asarray(align_face(img, output_size=64, transform_size=64)), by_path)
    assert np.array_equal(np.asarray(align_face(np.asarray(img), output_size=64, transform_size=64)), by_path)


# ----------------------------------------------------------------------------- issue 8: names moved to stylegan.imageio


def test_old_encoder_names_warn_and_agree(tmp_path: Path, rgb_image: np.ndarray) -> None:
    import torch

    from encoders.evaluate import pil_to_tensor
    from encoders.images import save_image_atomic
    from stylegan.imageio import save_image, to_tensor

    save_image(Image.fromarray(rgb_image), tmp_path / "new.jpg")
    with pytest.warns(DeprecationWarning, match="stylegan.imageio.save_image"):
        save_image_atomic(Image.fromarray(rgb_image), tmp_path / "old.jpg")
    assert (tmp_path / "old.jpg").read_bytes() == (tmp_path / "new.jpg").read_bytes()
    with pytest.warns(DeprecationWarning, match="stylegan.imageio.to_tensor"):
        assert torch.equal(pil_to_tensor(Image.fromarray(rgb_image)), to_tensor(rgb_image))
