"""Fetch registered weights into a local cache, verified by size and full sha256.

The contract, in order:

1. A file already in the cache that matches its spec (size and full sha256) is
   returned without touching the network.
2. Otherwise each source is tried in turn (``url``, then Google Drive, then
   ``mirrors``); each one is retried with a short exponential backoff when
   the failure looks transient (timeouts, dropped connections, HTTP 5xx).
3. Bytes go to a temporary file in the cache dir. Size and sha256 are checked
   *before* ``os.replace`` moves the file into place, so the cache never holds a
   truncated file, a Google Drive "quota exceeded" page or a wrong file.
   Temporary files are removed on every failure, Ctrl-C included.
4. When nothing works, or downloads are off (``STYLEGAN_MORPH_OFFLINE=1``), a
   one-line :class:`DownloadError` says which file, where to get it by hand and
   the exact path to put it at.

Example::

    >>> from pretrained import resolve_weights
    >>> path = resolve_weights("stylegan2-ffhq-config-f")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import http.client
import inspect
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import BinaryIO

from .errors import UserError

from .registry import WeightSpec, get_spec, list_pretrained

__all__ = [
    "ENV_CACHE",
    "ENV_OFFLINE",
    "DownloadError",
    "UnverifiedWeightsWarning",
    "cache_dir",
    "cached_path",
    "cache_status",
    "download",
    "resolve_weights",
]

ENV_CACHE = "STYLEGAN_MORPH_CACHE"
ENV_OFFLINE = "STYLEGAN_MORPH_OFFLINE"

#: Folder that ``WeightSpec.local_path`` is relative to (this package).
PACKAGE_DIR = Path(__file__).resolve().parent
#: First wait between retries of one source, in seconds; doubles per retry.
#: Short on purpose: a source that fails three times in ~7 s is better skipped
#: for the next mirror than waited on. Tests pass ``backoff=0``.
RETRY_BACKOFF_S = 1.0
#: Socket timeout per blocking read/connect, in seconds (not for the whole file).
TIMEOUT_S = 60.0

_CHUNK = 1 << 20
_USER_AGENT = "stylegan-morph/0.1"
# HTTP codes worth retrying on the same source; anything else (404, 403, ...) will not change.
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}

# Per-process memo of files whose sha256 we already checked: key is
# (path, size, mtime_ns, inode, expected sha256). Hashing the 1.2 GB e4e file
# takes seconds; a changed size or mtime invalidates the entry.
_VERIFIED: set[tuple[str, int, int, int, str]] = set()


class DownloadError(UserError):
    """Weights could not be fetched or failed verification (one-line message)."""


class UnverifiedWeightsWarning(UserWarning):
    """A registry entry has no sha256, so its file cannot be verified."""


class _Failure(Exception):
    """One attempt on one source failed.

    ``retry`` says whether trying the same source again may help (a dropped
    connection may; an HTML page or a wrong hash will not).
    """

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(_one_line(message))
        self.retry = retry


# --------------------------------------------------------------------------- paths


def cache_dir() -> Path:
    """Folder where downloaded weights live.

    Returns:
        ``$STYLEGAN_MORPH_CACHE`` if set, else ``~/.cache/stylegan-morph``.
        The folder is not created here.
    """
    env = os.environ.get(ENV_CACHE, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stylegan-morph"


def cached_path(spec_or_name: WeightSpec | str) -> Path:
    """Where a registry entry's file lives (or will live) on this machine.

    Args:
        spec_or_name: A spec or a registry name.

    Returns:
        The packaged file for entries with ``local_path``, else the cache path.
        The file may not exist yet.
    """
    spec = _as_spec(spec_or_name)
    if spec.local_path is not None:
        return PACKAGE_DIR / spec.local_path
    return cache_dir() / spec.filename


def cache_status(spec_or_name: WeightSpec | str) -> str:
    """A cheap look at the cache for listings (no hashing).

    Args:
        spec_or_name: A spec or a registry name.

    Returns:
        ``"packaged"`` (ships with the package), ``"yes"`` (present with the
        right size; the hash is checked on use), ``"no"``, or ``"wrong size"``.
    """
    spec = _as_spec(spec_or_name)
    path = cached_path(spec)
    if not path.is_file():
        return "no"
    if spec.size is not None and path.stat().st_size != spec.size:
        return "wrong size"
    return "packaged" if spec.local_path is not None else "yes"


# --------------------------------------------------------------------------- public API


def download(
    spec_or_name: WeightSpec | str,
    *,
    progress: bool = True,
    retries: int = 3,
    offline: bool | None = None,
    force: bool = False,
    backoff: float | None = None,
    timeout: float | None = None,
) -> Path:
    """Return a verified local copy of a registered weights file, downloading it if needed.

    Args:
        spec_or_name: A :class:`WeightSpec` or a registry name such as ``"e4e-ffhq"``.
        progress: Show a tqdm progress bar on stderr.
        retries: Extra attempts per source after the first, for transient errors.
        offline: Never use the network. None reads ``$STYLEGAN_MORPH_OFFLINE``
            (``1``/``true``/``yes``/``on``).
        force: Download again even if a verified copy is cached.
        backoff: First wait between retries in seconds (doubles each time);
            None uses :data:`RETRY_BACKOFF_S`.
        timeout: Socket timeout in seconds; None uses :data:`TIMEOUT_S`.

    Returns:
        Path of the verified file (in :func:`cache_dir`, or inside the package
        for packaged entries).

    Raises:
        UserError: Unknown name.
        DownloadError: Offline and not cached, every source failed, or a
            packaged file is missing/corrupted. The message is one line naming
            the file, a link to fetch it by hand and the path to put it at.

    Warns:
        UnverifiedWeightsWarning: The entry has no sha256 (only its size, if
            known, can be checked). A fresh download's warning prints the
            measured size and sha256 so they can be recorded in the registry.
    """
    spec = _as_spec(spec_or_name)
    if retries < 0:
        raise ValueError("retries must be >= 0")
    if spec.local_path is not None:
        return _packaged_file(spec)

    target = cache_dir() / spec.filename
    stale = None  # why an existing cache file was rejected, for the error message
    try:
        cached = target.exists()
        if cached and not force:
            stale = _verify_file(target, spec)
    except OSError as err:  # a cache folder or file we may not read
        raise DownloadError(f"cannot read the cache {target} ({err.strerror or err}); "
                            f"set {ENV_CACHE} to a folder you can read and write") from None
    if cached and not force:
        if stale is None:
            _warn_unverified(spec, target)
            return target

    if _is_offline(offline):
        switch = f"{ENV_OFFLINE}=1" if offline is None else "offline=True"
        if stale:
            where = f"{target} exists but {stale}"
        elif target.exists():
            where = "a fresh download was requested"
        else:
            where = "it is not in the cache"
        raise DownloadError(
            f"cannot get {spec.filename}: {where} and downloads are off ({switch}); "
            + _manual_hint(spec, target)
        )

    folder = _make_cache_dir(target.parent)
    if spec.size is not None:
        free = shutil.disk_usage(folder).free
        if free < spec.size:
            raise DownloadError(
                f"not enough disk space in {folder} for {spec.filename}: need {spec.size} B, "
                f"have {free} B (set {ENV_CACHE} to another folder)"
            )

    first_wait = RETRY_BACKOFF_S if backoff is None else backoff
    sock_timeout = TIMEOUT_S if timeout is None else timeout
    errors: list[str] = []
    for kind, locator in spec.sources:
        for attempt in range(1, retries + 2):
            try:
                digest = _fetch_once(kind, locator, spec, target, progress, sock_timeout)
            except _Failure as fail:
                if fail.retry and attempt <= retries:
                    time.sleep(first_wait * 2 ** (attempt - 1))
                    continue
                tries = f" (after {attempt} attempts)" if attempt > 1 else ""
                errors.append(f"{fail}{tries}")
                break
            _remember_verified(target, spec)
            if spec.sha256 is None:
                _warn_unverified(spec, target, measured=digest)
            return target

    raise DownloadError(
        f"could not download {spec.filename}: {'; '.join(errors)}; " + _manual_hint(spec, target)
    )


def resolve_weights(name_or_path: str | os.PathLike[str]) -> Path:
    """Turn a command-line weights argument into a local file.

    An existing file path wins; otherwise a registry name is downloaded (or
    taken from the cache).

    Args:
        name_or_path: A path to a weights file, or a registry name.

    Returns:
        Path of a local file.

    Raises:
        UserError: Neither an existing file nor a known name.
        DownloadError: A known name whose download failed (see :func:`download`).
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a weights file")
    name = os.fspath(name_or_path)
    if name in {s.name for s in list_pretrained()}:
        return download(name)
    known = ", ".join(s.name for s in list_pretrained())
    raise UserError(f"{name!r} is not a file and not a known model name; known: {known}")


# --------------------------------------------------------------------------- helpers


def _as_spec(spec_or_name: WeightSpec | str) -> WeightSpec:
    return spec_or_name if isinstance(spec_or_name, WeightSpec) else get_spec(spec_or_name)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _is_offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def _manual_hint(spec: WeightSpec, target: Path) -> str:
    link = spec.manual_url or "its source"
    return f"download it by hand from {link} (see {spec.source}) and place it at {target}"


def _make_cache_dir(folder: Path) -> Path:
    """Create the cache folder and prove it takes new files (a read-only cache fails here, in one line)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(
            f"cannot create the cache folder {folder} ({err.strerror}); set {ENV_CACHE} to a writable folder"
        ) from None
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=".part")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise DownloadError(
            f"cannot write to the cache folder {folder} ({err.strerror or err}); set {ENV_CACHE} to a writable folder"
        ) from None
    return folder


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _memo_key(path: Path, spec: WeightSpec) -> tuple[str, int, int, int, str]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, spec.sha256 or "")


def _remember_verified(path: Path, spec: WeightSpec) -> None:
    if spec.sha256 is not None:
        _VERIFIED.add(_memo_key(path, spec))


def _verify_file(path: Path, spec: WeightSpec) -> str | None:
    """Check a file on disk against its spec.

    Returns:
        None if it matches, else a short reason ("size 12 B, expected 34 B").
    """
    if not path.is_file():
        return "it is not a regular file"
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        return f"its size is {size} B, expected {spec.size} B"
    if spec.sha256 is None:
        # Nothing to compare against; at least refuse a saved error page.
        with path.open("rb") as f:
            if _looks_like_html(f.read(4096)):
                return "it is an HTML page, not weights"
        return None
    if _memo_key(path, spec) in _VERIFIED:
        return None
    digest = _sha256_file(path)
    if digest != spec.sha256:
        return f"its sha256 is {digest[:16]}..., expected {spec.sha256[:16]}..."
    _remember_verified(path, spec)
    return None


def _packaged_file(spec: WeightSpec) -> Path:
    """A file shipped inside the package: never downloaded, verified once per process."""
    assert spec.local_path is not None
    path = PACKAGE_DIR / spec.local_path
    if not path.is_file():
        raise DownloadError(f"{spec.name}: the packaged file {path} is missing; reinstall stylegan-morph")
    reason = _verify_file(path, spec)
    if reason is not None:
        raise DownloadError(
            f"{spec.name}: the packaged file {path} is corrupted ({reason}); reinstall stylegan-morph"
        )
    return path


def _warn_unverified(spec: WeightSpec, path: Path, measured: str | None = None) -> None:
    if spec.sha256 is not None:
        return
    msg = f"{spec.name}: no sha256 is recorded for {spec.filename}, so {path} cannot be verified"
    if measured is not None:
        msg += f" (downloaded {path.stat().st_size} B, sha256 {measured}; record these in the registry)"
    warnings.warn(msg, UnverifiedWeightsWarning, stacklevel=3)


# --------------------------------------------------------------------------- one attempt


def _source_label(kind: str, locator: str) -> str:
    return "Google Drive" if kind == "gdrive" else locator


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:64].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<!--"))


def _html_reason(text: str, *, drive: bool) -> str:
    """Guess why a server sent an HTML page, from the page text."""
    low = text.lower()
    if "quota exceeded" in low or "too many users" in low:
        return "download quota exceeded"
    if "virus scan" in low or "scan this file for viruses" in low:
        return "a virus-scan warning page"
    # Drive's quota page is by far the most common HTML answer users report.
    return "download quota exceeded?" if drive else "an error or login page?"


def _html_failure(label: str, spec: WeightSpec, page_text: str) -> _Failure:
    drive = "google" in label.lower()
    return _Failure(
        f"{label} returned an HTML page ({_html_reason(page_text, drive=drive)}) instead of {spec.filename}",
        retry=False,
    )


def _check_download(label: str, spec: WeightSpec, nbytes: int, digest: str) -> None:
    """Raise _Failure if a finished download does not match the spec."""
    if spec.size is not None and nbytes != spec.size:
        # Short means a cut connection (worth another try); long means another file.
        raise _Failure(
            f"{label} sent {nbytes} B of {spec.filename}, expected {spec.size} B",
            retry=nbytes < spec.size,
        )
    if spec.sha256 is not None and digest != spec.sha256:
        raise _Failure(
            f"{label} sent a corrupted or different {spec.filename} "
            f"(sha256 {digest[:16]}..., expected {spec.sha256[:16]}...)",
            retry=False,
        )


def _fetch_once(
    kind: str, locator: str, spec: WeightSpec, target: Path, progress: bool, timeout: float
) -> str:
    """Download from one source into a temp file, verify it, move it to ``target``.

    Returns:
        The sha256 of the file now at ``target``.

    Raises:
        _Failure: The attempt failed; nothing is left behind.
    """
    label = _source_label(kind, locator)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{spec.filename}.", suffix=".part")
    tmp = Path(tmp_name)
    scratch: Path | None = None
    try:
        if kind == "http":
            with os.fdopen(fd, "wb") as out:
                nbytes, digest = _fetch_http(locator, label, spec, out, progress, timeout)
        else:
            os.close(fd)
            scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{spec.filename}.", suffix=".gdown"))
            nbytes, digest = _fetch_gdrive(locator, label, spec, scratch, tmp, progress, timeout)
        _check_download(label, spec, nbytes, digest)
        try:
            os.replace(tmp, target)
        except OSError as err:
            raise DownloadError(f"cannot move the download to {target}: {err.strerror}") from None
        return digest
    finally:
        # Runs on success (tmp is gone by then), on _Failure and on KeyboardInterrupt.
        tmp.unlink(missing_ok=True)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _fetch_http(
    url: str, label: str, spec: WeightSpec, out: BinaryIO, progress: bool, timeout: float
) -> tuple[int, str]:
    """Stream ``url`` into ``out`` while hashing it.

    Returns:
        (bytes written, sha256 hex digest).
    """
    from tqdm import tqdm  # only needed when something is actually downloaded

    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            ctype = resp.headers.get("Content-Type", "") or ""
            length_hdr = resp.headers.get("Content-Length")
            length = int(length_hdr) if length_hdr and length_hdr.isdigit() else None
            head = resp.read(64 * 1024)
            if "text/html" in ctype.lower() or _looks_like_html(head):
                raise _html_failure(label, spec, head.decode("utf-8", "replace"))
            if length is not None and spec.size is not None and length != spec.size:
                # Fail before fetching a large wrong file.
                raise _Failure(
                    f"{label} announced {length} B for {spec.filename}, expected {spec.size} B",
                    retry=False,
                )
            h = hashlib.sha256()
            nbytes = 0
            with tqdm(total=length or spec.size, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=spec.filename, disable=not progress, file=sys.stderr) as bar:
                block = head
                while block:
                    try:
                        out.write(block)
                    except OSError as err:  # a full disk is not the server's fault: no retry
                        raise DownloadError(f"cannot write {spec.filename} into {cache_dir()}: {err.strerror}") from None
                    h.update(block)
                    nbytes += len(block)
                    bar.update(len(block))
                    block = resp.read(_CHUNK)
            if length is not None and nbytes < length:
                # http.client returns b"" instead of raising when the peer closes early.
                raise _Failure(f"{label}: connection closed after {nbytes} of {length} B", retry=True)
            return nbytes, h.hexdigest()
    except urllib.error.HTTPError as err:
        raise _Failure(f"{label} answered HTTP {err.code} {err.reason}", retry=err.code in _TRANSIENT_HTTP) from None
    except urllib.error.URLError as err:
        raise _Failure(f"{label}: {err.reason}", retry=True) from None
    except (http.client.HTTPException, socket.timeout, ConnectionError, OSError) as err:
        # IncompleteRead, RemoteDisconnected, timeouts, resets: all transient.
        raise _Failure(f"{label}: {type(err).__name__}: {err}", retry=True) from None


def _fetch_gdrive(
    file_id: str, label: str, spec: WeightSpec, scratch: Path, tmp: Path, progress: bool, timeout: float
) -> tuple[int, str]:
    """Fetch a Google Drive file with gdown into ``scratch``, then move it to ``tmp``.

    gdown handles Drive's confirm-token dance; it writes its own partial files,
    so it gets a private scratch folder that the caller deletes afterwards.

    Returns:
        (bytes, sha256 hex digest) of ``tmp``.
    """
    try:
        import gdown  # lazy: only Drive entries need it
    except ImportError:
        raise _Failure("Google Drive downloads need gdown (pip install gdown)", retry=False) from None

    out = scratch / spec.filename
    kwargs: dict[str, object] = {"id": file_id, "output": str(out), "quiet": not progress}
    params = inspect.signature(gdown.download).parameters
    if "timeout" in params:  # gdown >= 5; older versions wait forever
        kwargs["timeout"] = timeout
    try:
        result = gdown.download(**kwargs)
    except Exception as err:  # gdown has no stable exception hierarchy across versions
        text = _one_line(str(err))
        if type(err).__name__ == "FileURLRetrievalError" or "too many users" in text.lower():
            # gdown raises this when Drive serves its HTML page instead of the file.
            raise _html_failure(label, spec, text) from None
        raise _Failure(f"{label}: {type(err).__name__}: {text}", retry=True) from None
    if result is None or not out.is_file():
        # Old gdown versions print the problem and return None instead of raising.
        raise _html_failure(label, spec, "")
    with out.open("rb") as f:
        if _looks_like_html(f.read(4096)):
            raise _html_failure(label, spec, out.read_bytes()[:100_000].decode("utf-8", "replace"))
    os.replace(out, tmp)
    return tmp.stat().st_size, _sha256_file(tmp)
