"""Robust image loading and atomic saving for photos that come from users.

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
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from stylegan.errors import UserError

__all__ = ["MAX_PIXELS", "ImageSource", "load_image", "describe_source", "save_image_atomic"]

# About 100 megapixels: larger than any camera photo people will align (a
# 50 MP phone shot fits), small enough that decoding cannot eat all memory.
# A 100 MP RGB image is 300 MB decoded; a crafted PNG can claim far more.
MAX_PIXELS = 100_000_000

ImageSource = Union[str, os.PathLike, Image.Image]

# The exceptions Pillow's decoders raise for broken files: OSError covers
# "image file is truncated" and "broken data stream", the others come from
# individual format plugins parsing corrupt headers.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


def describe_source(source: ImageSource) -> str:
    """Name an image source for error messages.

    Args:
        source: a path, or an in-memory ``PIL.Image``.

    Returns:
        The path as given, the file an in-memory image was read from, or
        ``"<in-memory image>"``.
    """
    if isinstance(source, Image.Image):
        return getattr(source, "filename", "") or "<in-memory image>"
    return os.fspath(source)


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
        source: path to an image file, or a ``PIL.Image`` already in memory
            (it is normalised the same way and not modified).
        max_pixels: refuse images with more pixels than this (decompression
            bomb guard); the default is :data:`MAX_PIXELS`.

    Returns:
        A new, fully decoded ``PIL.Image`` in mode ``"RGB"``, rotated
        according to its EXIF orientation tag.

    Raises:
        UserError: the file is missing, is not an image, is truncated or
            corrupt, or is larger than ``max_pixels``. The message names the
            file.
    """
    name = describe_source(source)
    if isinstance(source, Image.Image):
        return _normalise(source, name, max_pixels)

    path = Path(source)
    if not path.exists():
        raise UserError(f"{name}: image file not found")
    if path.is_dir():
        raise UserError(f"{name}: is a directory, expected an image file")
    try:
        # Our own pixel check replaces Pillow's global MAX_IMAGE_PIXELS
        # warning; Pillow still raises DecompressionBombError past twice its
        # limit, which is caught below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return _normalise(img, name, max_pixels)
    except Image.DecompressionBombError as err:
        raise UserError(f"{name}: image is too large ({_one_line(err)})") from err
    except UnidentifiedImageError as err:
        raise UserError(f"{name}: not an image file, or a format Pillow cannot read") from err
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
        upright = ImageOps.exif_transpose(img)
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


def save_image_atomic(img: Image.Image, path: str | os.PathLike, **save_kwargs: object) -> None:
    """Write an image so that ``path`` is either the old file or the complete new one.

    The image goes to a temporary file in the destination folder, which is
    then renamed over ``path`` (``os.replace`` is atomic within a folder).

    Args:
        img: the image to write.
        path: destination; its extension picks the format (``.png``, ``.jpg``, ...).
        **save_kwargs: passed to ``PIL.Image.save`` (e.g. ``quality=95``).

    Raises:
        UserError: unknown extension, missing destination folder, or a write error.
    """
    dest = Path(path)
    ext = dest.suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None:
        raise UserError(f"{dest}: unknown image extension {ext!r}; use .png or .jpg")
    if fmt == "JPEG":
        save_kwargs.setdefault("quality", 95)  # Pillow's default 75 visibly blurs faces
    folder = dest.parent
    if not folder.is_dir():
        raise UserError(f"{dest}: output folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            img.save(handle, format=fmt, **save_kwargs)
        # mkstemp creates 0600 files; give the result the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    except (OSError, ValueError, KeyError) as err:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"{dest}: cannot write image ({_one_line(err)})") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
