"""Robust image loading for photos that come from users (saving: :func:`stylegan.imageio.save_image`).

Photos arrive in every shape Pillow can open: phone JPEGs that are stored
sideways with an EXIF orientation tag, RGBA PNGs, palette GIFs, CMYK print
JPEGs, 16-bit scans, truncated downloads and the odd text file with a ``.jpg``
name. :func:`load_image` turns all of them into a plain 8-bit RGB
``PIL.Image`` or raises :class:`~stylegan.errors.UserError` with a one-line
message that names the file, so that tools never print a traceback for bad
input.

Example:
    >>> from PIL import Image
    >>> load_image(Image.new("LA", (4, 3))).mode
    'RGB'
"""

from __future__ import annotations

import os
import re
import struct
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from stylegan.deprecation import moved
from stylegan.errors import UserError
from stylegan.imageio import save_image

__all__ = ["MAX_PIXELS", "ImageSource", "load_image", "describe_source", "save_image_atomic"]

# About 100 megapixels: larger than any camera photo people will align (a
# 50 MP phone shot fits), small enough that decoding cannot eat all memory.
# A 100 MP RGB image is 300 MB decoded; a crafted PNG can claim far more.
MAX_PIXELS = 100_000_000

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]

# ISO base-media "ftyp" brands of HEIC/HEIF photos (iPhones save these by default).
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}

# The exceptions Pillow's decoders raise for broken files: OSError covers
# "image file is truncated" and "broken data stream", the others come from
# individual format plugins parsing corrupt headers.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


def describe_source(source: ImageSource) -> str:
    """Name an image source for error messages.

    Args:
        source: a path, an in-memory ``PIL.Image`` or a numpy array.

    Returns:
        The path as given, the file an in-memory image was read from,
        ``"<in-memory image>"`` or ``"<numpy array>"``.
    """
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<in-memory image>"
    if isinstance(source, np.ndarray):
        return "<numpy array>"
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"<{type(source).__name__}>"


def _from_array(arr: np.ndarray, max_pixels: int) -> Image.Image:
    """An RGB image from a [H, W], [H, W, 3] or [H, W, 4] array: uint8, or floats in [0, 1]."""
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)) or min(arr.shape[:2]) < 1:
        raise UserError(f"image array must be [H, W], [H, W, 3] or [H, W, 4], got shape {list(arr.shape)}")
    if arr.shape[0] * arr.shape[1] > max_pixels:
        raise UserError(f"<numpy array>: image is too large ({arr.shape[1]}x{arr.shape[0]} pixels, "
                        f"limit {max_pixels:,})")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or arr.min(initial=0) < 0 or arr.max(initial=0) > 1:
            raise UserError("a float image array must hold values in [0, 1]; pass uint8 for 0..255 pixels")
        arr = np.rint(arr * 255).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise UserError(f"image array must be uint8 (0..255) or float in [0, 1], got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    mode = "L" if arr.ndim == 2 else {3: "RGB", 4: "RGBA"}[arr.shape[2]]
    return _to_rgb(Image.fromarray(np.ascontiguousarray(arr), mode))


def _sniff_unreadable(path: Path) -> str:
    """Why Pillow could not identify ``path``, from its first bytes: a HEIC hint or the generic reason."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        head = b""
    if len(head) == 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return ("a HEIC/HEIF photo, which is not supported; convert it to JPEG or PNG first "
                "(e.g. `heif-convert photo.heic photo.jpg` from libheif, or export as JPEG from Photos/Preview)")
    return "not an image file, or a format Pillow cannot read"


def _one_line(err: BaseException) -> str:
    """Collapse an exception text to one line (tools print errors on one line)."""
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _check_pixels(img: Image.Image, name: str, max_pixels: int) -> None:
    """Refuse images whose header claims more pixels than we are willing to decode."""
    width, height = img.size
    if width * height > max_pixels:
        raise UserError(
            f"{name}: image is too large ({width}x{height} = {width * height:,} pixels, "
            f"limit {max_pixels:,}); downscale it first (possible decompression bomb)"
        )


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB.

    Transparent pixels are composited on white (a cut-out portrait on a white
    page looks natural; dropping alpha would expose arbitrary colours that
    were hidden). 16-bit and 32-bit grey images are rescaled instead of
    clipped: Pillow's own ``convert("L")`` clips every value above 255.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            scale = 257.0  # 65535 / 255: the full 16-bit range maps onto 8 bits
        else:
            # Mode "I"/"F" carries no bit depth. Most such files are 16-bit
            # PNG/TIFF scans; values that fit 8 bits are kept as they are.
            peak = float(values.max()) if values.size else 0.0
            scale = 1.0 if peak <= 255.0 else (257.0 if peak <= 65535.0 else peak / 255.0)
        grey = np.clip(np.rint(values / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # "1", "L", "P", "CMYK", "YCbCr", "LAB", "HSV": Pillow converts these directly.
    return img.convert("RGB")


def load_image(source: ImageSource, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Load a photo as an upright 8-bit RGB image.

    Args:
        source: path to an image file, a ``PIL.Image`` already in memory (it is
            normalised the same way and not modified), or a numpy array [H, W],
            [H, W, 3] (RGB) or [H, W, 4] (RGBA): uint8, or floats in [0, 1].
        max_pixels: refuse images with more pixels than this (decompression
            bomb guard); the default is :data:`MAX_PIXELS`.

    Returns:
        A new, fully decoded ``PIL.Image`` in mode ``"RGB"``, rotated
        according to its EXIF orientation tag.

    Raises:
        UserError: the file is missing, empty, not an image (HEIC gets its own
            message), truncated or corrupt, or larger than ``max_pixels``; or
            ``source`` is of another type. The message names the file.
    """
    name = describe_source(source)
    if isinstance(source, Image.Image):
        return _normalise(source, name, max_pixels)
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if not isinstance(source, (str, os.PathLike)):
        raise UserError(f"image must be a path, a PIL.Image or a numpy array, got {type(source).__name__}")

    path = Path(source)
    if not path.exists():
        raise UserError(f"{name}: image file not found")
    if path.is_dir():
        raise UserError(f"{name}: is a directory, expected an image file")
    try:
        empty = path.stat().st_size == 0 and path.is_file()
    except OSError:
        empty = False
    if empty:
        raise UserError(f"{name}: the file is empty (0 bytes), not an image")
    try:
        # Our own pixel check replaces Pillow's global MAX_IMAGE_PIXELS
        # warning; Pillow still raises DecompressionBombError past twice its
        # limit, which is caught below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # corrupt EXIF: Pillow skips it, we stay quiet
            with Image.open(path) as img:
                return _normalise(img, name, max_pixels)
    except Image.DecompressionBombError as err:
        # Pillow's text quotes its own limit; ours is the one that applies.
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(found.group(1)):,} pixels, " if found else ""
        raise UserError(f"{name}: image is too large ({size}limit {max_pixels:,}); downscale it first "
                        f"(possible decompression bomb)") from err
    except UnidentifiedImageError as err:
        raise UserError(f"{name}: {_sniff_unreadable(path)}") from err
    except PermissionError as err:
        raise UserError(f"{name}: cannot read image: permission denied") from err
    except _DECODE_ERRORS as err:
        raise UserError(f"{name}: cannot decode image, file is corrupt or truncated ({_one_line(err)})") from err


def _normalise(img: Image.Image, name: str, max_pixels: int) -> Image.Image:
    """Size-check, decode, orient and convert ``img`` (which stays untouched)."""
    _check_pixels(img, name, max_pixels)
    try:
        # Decode fully here, inside the caller's try: Pillow decodes lazily,
        # and a truncated JPEG would otherwise fail much later, far from the
        # file name.
        img.load()
        upright = _upright(img)
        rgb = _to_rgb(upright)
    except Image.DecompressionBombError:
        raise
    except _DECODE_ERRORS as err:
        raise UserError(f"{name}: cannot decode image, file is corrupt or truncated ({_one_line(err)})") from err
    # exif_transpose/convert may hand back the very object we were given;
    # callers must own their result (and the file handle must be closable).
    if rgb is img:
        rgb = img.copy()
    rgb.info.pop("exif", None)  # orientation is applied; a stale tag would rotate it twice
    return rgb


def _upright(img: Image.Image) -> Image.Image:
    """``img`` turned by its EXIF orientation; as stored when the EXIF block cannot be read.

    A corrupt EXIF block makes Pillow warn (two lines on stderr) or raise while the pixels
    are fine; the photo is then used as stored, silently.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            return ImageOps.exif_transpose(img)
        except (*_DECODE_ERRORS, KeyError, TypeError):
            return img


# Moved to stylegan.imageio (issue 8): the one atomic image writer. Kept here, warning, for one release.
save_image_atomic = moved(save_image, "encoders.images.save_image_atomic", "stylegan.imageio.save_image")
