"""Images in and out of the generator: one conversion each way, one grid, one atomic image writer.

The generator works in float [-1, 1], NCHW; files and screens want uint8 [H, W, 3].

* :func:`to_uint8`: [-1, 1] tensors -> uint8 arrays, ``round((x + 1) * 127.5)`` after clamping.
* :func:`to_tensor`: PIL images or uint8 arrays -> [-1, 1] float, ``x / 127.5 - 1`` (the
  encoder's normalisation, mean = std = 0.5). The two are exact inverses on uint8 values.
* :func:`image_grid`: tile equally sized images into one.
* :func:`save_image`: write an image atomically (through :func:`stylegan.fileio.atomic_output`);
  the format comes from the extension, JPEG at :data:`JPEG_QUALITY`.

Example:
    >>> import numpy as np
    >>> px = np.arange(12, dtype=np.uint8).reshape(1, 2, 2, 3)
    >>> np.array_equal(to_uint8(to_tensor(px)), px)
    True
    >>> image_grid([px[0]] * 3, cols=2).shape
    (4, 4, 3)
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from PIL import Image

from .errors import UserError
from .fileio import atomic_output, check_name_length

if TYPE_CHECKING:
    import torch

# torch is imported inside the two functions that need it: stylegan.video imports this module
# for save_image, and writing a video or an image must not pay for loading torch.

__all__ = [
    "to_uint8", "to_tensor", "from_uint8", "image_grid", "save_image", "check_image_name", "JPEG_QUALITY", "Size"
]

#: Pillow's default of 75 visibly blurs skin and hair in faces; at 95 a face is hard to tell
#: from its PNG, and above 95 files grow quickly for no visible gain.
JPEG_QUALITY = 95

Size = int | tuple[int, int] | None


def _size_hw(size: Size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        w = h = size
    else:
        w, h = (int(s) for s in size)
    if w < 1 or h < 1:
        raise UserError(f"frame size must be positive, got {size}")
    return h, w


def to_uint8(images: torch.Tensor, size: Size = None) -> np.ndarray:
    """Generator output in [-1, 1] to uint8 images, optionally resized.

    Rounded to nearest, not truncated: truncating would darken every image by half a
    level on average and map 1.0 - eps to 254.

    Args:
        images: [B, C, H, W] float in about [-1, 1] (values outside are clamped).
        size: output side (int) or ``(width, height)``; resized with antialiased
            bilinear filtering (area-like when shrinking, smooth when enlarging).

    Returns:
        uint8 [B, H', W', C] on the CPU.
    """
    import torch
    import torch.nn.functional as F

    if images.ndim != 4:
        raise ValueError(f"expected images [B, C, H, W], got {tuple(images.shape)}")
    hw = _size_hw(size)
    x = images.detach().float()
    if hw is not None and tuple(x.shape[2:]) != hw:
        x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # 127.5 maps [-1, 1] onto [0, 255]
    return x.permute(0, 2, 3, 1).cpu().numpy()


def to_tensor(images: Image.Image | np.ndarray) -> torch.Tensor:
    """PIL images or uint8 arrays to float [-1, 1], NCHW; the inverse of :func:`to_uint8`.

    Args:
        images: a PIL image (converted to RGB), uint8 [H, W, C] or uint8 [B, H, W, C].

    Returns:
        float32 [1, C, H, W] for one image, [B, C, H, W] for a batch.
    """
    import torch

    arr = np.asarray(images.convert("RGB") if isinstance(images, Image.Image) else images)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4):
        raise ValueError(f"expected uint8 [H, W, C] or [B, H, W, C], got {arr.dtype} {arr.shape}")
    x = torch.from_numpy(np.array(arr if arr.ndim == 4 else arr[None]))  # a copy: PIL's arrays are read-only
    return from_uint8(x.permute(0, 3, 1, 2))


def from_uint8(x: torch.Tensor) -> torch.Tensor:
    """A uint8 tensor of pixels (any layout) as float32 in [-1, 1]: the one formula, ``x / 127.5 - 1``."""
    return x.float() / 127.5 - 1


def image_grid(images: np.ndarray | Sequence[np.ndarray], cols: int | None = None, pad: int = 0) -> np.ndarray:
    """Tile equally sized uint8 [H, W, C] images row by row; empty cells are black.

    Args:
        images: N images.
        cols: images per row; default ``ceil(sqrt(N))``, at most N.
        pad: black pixels between cells.

    Returns:
        uint8 [rows*H + (rows-1)*pad, cols*W + (cols-1)*pad, C].
    """
    images = list(images)
    if not images:
        raise ValueError("image_grid needs at least one image")
    n = len(images)
    cols = max(1, min(cols or math.ceil(math.sqrt(n)), n))
    rows = math.ceil(n / cols)
    h, w, c = images[0].shape
    grid = np.zeros((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), dtype=np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        grid[r * (h + pad): r * (h + pad) + h, q * (w + pad): q * (w + pad) + w] = img
    return grid


def check_image_name(path: str | os.PathLike) -> str:
    """The Pillow format for an image destination's extension, checked before any work.

    Raises:
        UserError: an unknown extension, or a name the file system cannot hold.
    """
    dest = Path(path)
    fmt = Image.registered_extensions().get(dest.suffix.lower())
    if fmt is None:
        raise UserError(f"{dest}: unknown image extension {dest.suffix!r}; use .png or .jpg")
    check_name_length(dest)
    return fmt


def _pil(image: np.ndarray | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    arr = np.asarray(image, dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)  # [H, W, 1]: grey


def save_image(image: np.ndarray | Image.Image, path: str | os.PathLike, **save_kwargs: Any) -> Path:
    """Save one image atomically; the format comes from the extension (.png, .jpg, ...).

    Args:
        image: uint8 [H, W, 3] (or [H, W, 1]) array, or a PIL image.
        path: destination file; its folder must exist.
        **save_kwargs: passed to ``PIL.Image.save``; JPEG gets ``quality=JPEG_QUALITY`` unless given.

    Returns:
        The destination path.

    Raises:
        UserError: unknown extension, a folder in the way, a missing folder, an image the
            format cannot hold (RGBA as JPEG), or a write error (disk full, ...), in one line.
    """
    dest = Path(path)
    fmt = check_image_name(dest)
    if dest.is_dir():
        raise UserError(f"{dest}: is a folder; give an image file name such as grid.png")
    if fmt == "JPEG":
        save_kwargs.setdefault("quality", JPEG_QUALITY)
    img = _pil(image)
    with atomic_output(dest) as tmp:
        try:
            img.save(tmp, format=fmt, **save_kwargs)
        except OSError as err:
            if err.errno is not None:  # a real I/O error: atomic_output words it (disk full, ...)
                raise
            raise UserError(f"{dest}: cannot write image ({err})") from None  # Pillow: "cannot write mode RGBA as JPEG"
        except (ValueError, KeyError) as err:
            raise UserError(f"{dest}: cannot write image ({err})") from None
    return dest
