"""Read ``.npy`` files from users without trusting their header.

``np.load`` believes the header: a 100-byte file that claims a shape of
``(10**12,)`` makes numpy try to allocate terabytes, and a file that is not
``.npy`` at all gets numpy's advice to pass ``allow_pickle=True`` (which would let
the file run code). :func:`read_npy` reads the header alone first with
``numpy.lib.format``, checks its dtype and size against what the caller can use
and against the file's real length, and only then reads the data.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "w.npy")
    >>> np.save(path, np.zeros((2, 3), np.float32))
    >>> read_npy(path, max_values=6).shape
    (2, 3)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from stylegan.errors import UserError

__all__ = ["read_npy", "MAX_HEADER_BYTES"]

#: numpy's own default limit on the header length (a real header is ~128 bytes).
MAX_HEADER_BYTES = 10_000


def read_npy(path: str | os.PathLike, max_values: int, kinds: str = "f", what: str = "array") -> np.ndarray:
    """Load a plain numeric ``.npy`` after checking its header.

    Args:
        path: the file.
        max_values: the most elements the caller accepts; larger headers are refused
            before anything is allocated.
        kinds: accepted ``dtype.kind`` letters (``"f"``: floats).
        what: what the file should hold, for messages ("latent").

    Returns:
        The array (its own memory, not a memory map).

    Raises:
        UserError: missing file, not a ``.npy`` file, an unsupported or object dtype, more
            than ``max_values`` elements, or a file shorter or longer than its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found" if not path.exists() else f"{path}: not a regular file")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise UserError(f"{path}: the file is empty, not a .npy {what}")
            shape, fortran, dtype = _read_header(f, path, what)
            offset = f.tell()
            if dtype.hasobject or dtype.fields is not None or dtype.kind not in kinds or dtype.itemsize > 16:
                raise UserError(f"{path}: a .npy {what} must hold plain numbers ({_kinds(kinds)}), found {dtype}")
            count = 1
            for n in shape:
                if not isinstance(n, int) or n < 0:
                    raise UserError(f"{path}: not a valid .npy file (shape {shape!r:.60} in its header)")
                count *= n
            if count > max_values:
                raise UserError(f"{path}: the header claims {count:,} values (shape {list(shape)!s:.60}); a {what} "
                                f"holds at most {max_values:,}")
            expected = offset + count * dtype.itemsize
            if size != expected:
                state = "cut short (truncated)" if size < expected else "longer than its header says"
                raise UserError(f"{path}: the .npy file is {state}: {size:,} bytes, expected {expected:,}")
            data = f.read(count * dtype.itemsize)
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror or err})") from None
    arr = np.frombuffer(data, dtype=dtype, count=count)
    return arr.reshape(shape, order="F" if fortran else "C").copy()


def _read_header(f: object, path: Path, what: str) -> tuple[tuple, bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from the header, or a UserError that never mentions pickles."""
    try:
        version = npy_format.read_magic(f)
    except ValueError:
        raise UserError(f"{path}: not a .npy file (no NumPy header); a {what} must be written by np.save "
                        f"or encoders.save_latent") from None
    try:
        if version == (1, 0):
            return npy_format.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)
        if version == (2, 0):
            return npy_format.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)
    except Exception as err:  # noqa: BLE001 - numpy raises ValueError, SyntaxError... on a crafted header
        first = " ".join(str(err).split())[:120] or type(err).__name__
        raise UserError(f"{path}: not a valid .npy file (damaged header: {first})") from None
    raise UserError(f"{path}: .npy format version {version[0]}.{version[1]} is not supported (1.0 and 2.0 are)")


def _kinds(kinds: str) -> str:
    names = {"f": "floats", "u": "unsigned integers", "i": "integers", "b": "booleans"}
    return ", ".join(names.get(k, k) for k in kinds)
