"""Atomic file output: write to a temp file beside the destination, rename on success."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import UserError

__all__ = ["atomic_output", "default_permissions"]


def default_permissions(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a temporary file (or folder) the mode a plain ``open`` would have given it.

    ``mkstemp``/``mkdtemp`` create private 0600/0700 entries; renamed into place they
    would stay unreadable to other users. Apply the usual 0666/0777 minus the umask.
    """
    mask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(mask)
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in the destination folder; ``os.replace`` it onto ``path`` if the block succeeds.

    On any exception (Ctrl-C included) the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{path}: folder {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=parent)
    except OSError as e:
        raise UserError(f"{path}: cannot write there ({e.strerror})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        default_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
