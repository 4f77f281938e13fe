"""Safe file output: atomic writes, never an input overwritten, one-line OS errors.

The overwrite policy every tool follows (README, "Safety: overwrite policy and limits"):

* An output never replaces an input. :func:`check_not_input` compares resolved paths *and*
  ``(st_dev, st_ino)``, so a symlink or a hard link to an input counts as that input.
* Existing output files are replaced atomically: the new file is written beside the old one
  and renamed over it only when complete, so an error, Ctrl-C, SIGTERM or SIGHUP leaves the
  old file as it was.
* A frames folder is replaced only when it is empty or was written by us (it carries the
  manifest :data:`stylegan.video.MANIFEST`); see :func:`stylegan.video.check_output_path`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UserError

__all__ = [
    "atomic_output", "atomic_write_text", "make_temp", "publish", "default_permissions", "same_file",
    "check_not_input", "check_input_file", "os_error_message", "WRITE_ERRNOS", "check_name_length", "name_max",
    "fit_name", "temp_prefix",
]

# OS errors that mean "this output cannot be written here" (a user's problem, not a bug).
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES,
                          errno.EPERM, errno.ENAMETOOLONG})

# Room a temporary name needs beyond the destination's (``.`` + ``.XXXXXXXX.tmp.mp4``); the
# destination's own name is cut in temp names so that a 255-byte name still gets a temp file.
_TEMP_NAME_ROOM = 32


def default_permissions(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a temporary file (or folder) the mode a plain ``open`` would have given it.

    ``mkstemp``/``mkdtemp`` create private 0600/0700 entries; renamed into place they
    would stay unreadable to other users. Apply the usual 0666/0777 minus the umask.
    """
    mask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(mask)
    os.chmod(path, (0o777 if directory else 0o666) & ~mask)


def os_error_message(err: OSError) -> str:
    """One short line for an OS error: the cause a user can act on (disk full, name too long, ...)."""
    known = {
        errno.ENOSPC: "disk full (no space left on device)",
        errno.EDQUOT: "disk quota exceeded",
        errno.ENAMETOOLONG: "file name too long for this file system",
        errno.EROFS: "read-only file system",
    }
    if err.errno in known:
        return known[err.errno]
    text = err.strerror or str(err) or type(err).__name__
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def name_max(folder: str | os.PathLike) -> int:
    """The longest file name (in bytes) the file system holding ``folder`` accepts (255 if unknown)."""
    try:
        return int(os.pathconf(os.fspath(folder) or ".", "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def fit_name(stem: str, suffix: str, folder: str | os.PathLike = ".") -> str:
    """``stem + suffix``, with ``stem`` cut (on a character boundary) so the name fits ``folder``'s file system.

    Leaves room for the temporary name the atomic writers derive from it. Used for the
    default output names that tools build from input names.
    """
    limit = max(16, name_max(folder) - _TEMP_NAME_ROOM) - len(os.fsencode(suffix))
    cut = stem
    while len(os.fsencode(cut)) > limit:
        cut = cut[:-1]
    return cut + suffix


def temp_prefix(dest: Path) -> str:
    """Prefix of a hidden temporary beside ``dest``: ``.name.``, with the name cut to leave room."""
    name = dest.name
    while len(os.fsencode(name)) > 100:
        name = name[:-1]
    return f".{name}."


def check_name_length(dest: Path) -> None:
    """Refuse a destination name the file system cannot hold (ENAMETOOLONG), in one line."""
    parent = dest.parent if str(dest.parent) else Path(".")
    size, limit = len(os.fsencode(dest.name)), name_max(parent)
    if size > limit:
        raise UserError(f"{dest.name[:40]}...: file name too long ({size} bytes; this file system allows {limit})")


def _identity(path: Path) -> tuple[Path, tuple[int, int] | None]:
    try:
        st = os.stat(path)
        ident = (st.st_dev, st.st_ino)
    except OSError:
        ident = None
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        resolved = Path(os.path.abspath(path))
    return resolved, ident


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file: same resolved path, or same device and inode (hard links)."""
    ra, ia = _identity(Path(a))
    rb, ib = _identity(Path(b))
    return ra == rb or (ia is not None and ia == ib)


def check_not_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike], folder: bool = False) -> None:
    """Refuse an output that would overwrite one of the inputs.

    Args:
        output: the destination (a file, or a folder when ``folder`` is True).
        inputs: every file the run reads.
        folder: ``output`` is a folder that will be replaced whole, so an input *inside*
            it would be lost too.

    Raises:
        UserError: naming the input, before any work.
    """
    out = Path(os.fspath(output).rstrip("/" + os.sep) or ".")
    out_resolved, _ = _identity(out)
    for item in inputs:
        src = Path(item)
        if same_file(out, src):
            which = "itself" if os.path.abspath(out) == os.path.abspath(src) else f"{src} (the same file)"
            raise UserError(f"{out}: is the input {which}; choose another output name (inputs are never overwritten)")
        if folder:
            src_resolved, _ = _identity(src)
            if out_resolved in src_resolved.parents:
                raise UserError(f"{out}: holds the input {src}; choose another output folder "
                                "(inputs are never overwritten)")


def check_input_file(path: str | os.PathLike, what: str = "file") -> Path:
    """An input that exists and is a regular file (not a folder, FIFO, socket or device, which could block forever).

    Raises:
        UserError: missing, a folder, or not a regular file.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise UserError(f"{p}: file not found") from None
    except OSError as err:
        raise UserError(f"{p}: cannot read ({os_error_message(err)})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{p}: is a folder, expected a {what}")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "not a regular file"
        raise UserError(f"{p}: is {kind}; expected a {what}")
    return p


def make_temp(dest: Path, suffix: str = ".tmp", folder: bool = False) -> Path:
    """Create a hidden temporary file (or folder) beside ``dest``: ``.name.XXXXXXXX<suffix>``.

    Beside, not in ``/tmp``: ``os.replace`` is atomic only within one file system. The
    entry is private (0600/0700) until :func:`publish` gives it the usual permissions.
    """
    parent = dest.parent if str(dest.parent) else Path(".")
    if folder:
        return Path(tempfile.mkdtemp(prefix=temp_prefix(dest), suffix=suffix, dir=parent))
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(dest), suffix=suffix, dir=parent)
    os.close(fd)
    return Path(tmp)


def publish(tmp: str | os.PathLike, dest: str | os.PathLike, folder: bool = False) -> None:
    """Rename a finished temporary from :func:`make_temp` onto ``dest``, with a plain ``open``'s permissions."""
    default_permissions(tmp, directory=folder)
    os.replace(tmp, dest)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path in the destination folder; ``os.replace`` it onto ``path`` if the block succeeds.

    The one atomic file writer: every output file of the toolkit is written through it
    (images, codes, checkpoints, reports), or for streamed videos through its two halves
    :func:`make_temp` and :func:`publish`. The temp name keeps ``path``'s suffix, so
    writers that pick a format from the name (``np.save``, ``savefig``) still do.

    On any exception (Ctrl-C included) the temp file is removed and ``path`` is untouched;
    an OS error (disk full, ...) becomes a one-line :class:`UserError`.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"{path}: folder {parent} does not exist")
    check_name_length(path)
    try:
        tmp = make_temp(path, suffix=".tmp" + path.suffix[:16])
    except OSError as e:
        raise UserError(f"{path}: cannot write there ({os_error_message(e)})") from None
    try:
        yield tmp
        publish(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.errno not in WRITE_ERRNOS:
            raise
        raise UserError(f"{path}: cannot write ({os_error_message(err)})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_output`; returns the path."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
