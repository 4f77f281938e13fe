"""Downloads against a real HTTP server on 127.0.0.1 (no mocks, no real network).

Every test runs with the cache in ``tmp_path``, ``STYLEGAN_MORPH_OFFLINE=1``
and a socket guard that refuses any address but loopback, so a bug can never
reach the internet. Tests that talk to the local server pass ``offline=False``.
"""

from __future__ import annotations

import _thread
import hashlib
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import pretrained
from pretrained import WeightSpec, download, register, resolve_weights, unregister
from pretrained.download import DownloadError, UnverifiedWeightsWarning
from stylegan.errors import UserError

# The package re-exports the function ``download`` under the module's name, so
# reach the module itself through sys.modules.
download_mod = sys.modules["pretrained.download"]

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}

# --------------------------------------------------------------------------- isolation


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cache in tmp_path, downloads off by default, and no socket beyond loopback."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("STYLEGAN_MORPH_CACHE", str(cache))
    monkeypatch.setenv("STYLEGAN_MORPH_OFFLINE", "1")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")

    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(sock: socket.socket, address: object) -> None:
        if isinstance(address, tuple) and address[0] not in _LOOPBACK:
            raise RuntimeError(f"test tried to reach the network: {address}")
        return real_connect(sock, address)

    def guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host not in _LOOPBACK and host is not None:
            raise RuntimeError(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return cache


def _cache_entries(cache: Path) -> list[str]:
    """Everything in the cache folder, hidden temp files included."""
    return sorted(os.listdir(cache)) if cache.exists() else []


def _body(n: int = 300_000, seed: int = 0) -> bytes:
    # Deterministic, incompressible-looking bytes; larger than one 64 KiB read.
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


# --------------------------------------------------------------------------- local server

Route = Callable[[BaseHTTPRequestHandler], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection; closing ends the body

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        srv: _LocalServer = self.server  # type: ignore[assignment]
        with srv.lock:
            srv.requests.append(self.path)
        route = srv.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        route(self)

    def log_message(self, *args: object) -> None:
        pass  # keep test output clean


class _LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.lock = threading.Lock()
        # A short poll interval keeps shutdown() (and so every test) fast.
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self.alive = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def stop(self) -> None:
        if self.alive:
            self.shutdown()
            self.server_close()
            self.alive = False


@pytest.fixture
def server() -> Iterator[_LocalServer]:
    srv = _LocalServer()
    yield srv
    srv.stop()


def serve(body: bytes, content_type: str = "application/octet-stream") -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return route


def fail_first(n: int, then: Route, code: int = 503) -> Route:
    """Answer ``code`` to the first ``n`` requests, then behave like ``then``."""
    count = {"n": 0}

    def route(h: BaseHTTPRequestHandler) -> None:
        count["n"] += 1
        if count["n"] <= n:
            h.send_error(code)
        else:
            then(h)

    return route


def die_midway(body: bytes) -> Route:
    """Announce the full length, send a third of it, then close the connection."""

    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[: len(body) // 3])
        h.wfile.flush()
        h.close_connection = True

    return route


@pytest.fixture
def make_spec() -> Iterator[Callable[..., WeightSpec]]:
    """Register temporary specs (unregistered at teardown)."""
    names: list[str] = []

    def make(name: str, body: bytes, *, known: bool = True, **kw: object) -> WeightSpec:
        spec = WeightSpec(
            name=name,
            kind="toolkit",
            filename=f"{name}.pt",
            size=len(body) if known else None,
            sha256=hashlib.sha256(body).hexdigest() if known else None,
            license="test-only",
            source="tests/pretrained",
            **kw,  # type: ignore[arg-type]
        )
        register(spec)
        names.append(name)
        return spec

    yield make
    for n in names:
        unregister(n)


def fetch(spec: WeightSpec | str, **kw: object) -> Path:
    """download() as the tests call it: network allowed (loopback only), no waits."""
    opts: dict[str, object] = {"offline": False, "progress": False, "backoff": 0.0, "timeout": 10.0}
    opts.update(kw)
    return download(spec, **opts)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- tests


def test_network_guard_blocks_real_addresses() -> None:
    # If this fails, the other tests could leak onto the internet.
    with pytest.raises(RuntimeError, match="tried to resolve"):
        socket.create_connection(("example.com", 80), timeout=1)
    with socket.socket() as sock, pytest.raises(RuntimeError, match="tried to reach the network"):
        sock.connect(("192.0.2.1", 80))


def test_cache_dir_env_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STYLEGAN_MORPH_CACHE", str(tmp_path / "x"))
    assert pretrained.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("STYLEGAN_MORPH_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert pretrained.cache_dir() == tmp_path / "home" / ".cache" / "stylegan-morph"


def test_good_file_is_cached_and_verified(server: _LocalServer, make_spec, _isolated: Path) -> None:
    body = _body()
    server.routes["/w.pt"] = serve(body)
    spec = make_spec("good", body, url=server.url("/w.pt"))
    path = fetch("good")  # by registry name
    assert path == _isolated / spec.filename
    assert path.read_bytes() == body
    assert _cache_entries(_isolated) == [spec.filename]  # no temp file left over
    assert server.requests == ["/w.pt"]
    assert pretrained.cache_status(spec) == "yes"


def test_second_call_is_served_from_cache_without_network(server: _LocalServer, make_spec) -> None:
    body = _body()
    server.routes["/w.pt"] = serve(body)
    spec = make_spec("twice", body, url=server.url("/w.pt"))
    first = fetch(spec)
    server.stop()
    # Offline from the environment (the autouse fixture sets it) and no server.
    assert download(spec, progress=False) == first
    # Even with downloads allowed, a verified copy means no request.
    assert fetch(spec) == first
    assert server.requests == ["/w.pt"]


def test_corrupted_bytes_are_refused_and_leave_nothing(server: _LocalServer, make_spec, _isolated: Path) -> None:
    body = _body()
    bad = bytearray(body)
    bad[len(bad) // 2] ^= 0xFF  # same size, one flipped byte: only the hash can tell
    server.routes["/w.pt"] = serve(bytes(bad))
    spec = make_spec("corrupt", body, url=server.url("/w.pt"))
    with pytest.raises(DownloadError, match="sha256") as info:
        fetch(spec, retries=3)
    assert spec.filename in str(info.value)
    assert _cache_entries(_isolated) == []
    assert server.requests == ["/w.pt"]  # a wrong hash is not retried on the same source


def test_wrong_announced_size_is_refused_early(server: _LocalServer, make_spec, _isolated: Path) -> None:
    body = _body()
    server.routes["/w.pt"] = serve(body + b"extra")
    spec = make_spec("longer", body, url=server.url("/w.pt"))
    with pytest.raises(DownloadError, match=f"announced {len(body) + 5} B"):
        fetch(spec)
    assert _cache_entries(_isolated) == []


@pytest.mark.parametrize(
    ("payload", "content_type", "reason"),
    [
        (b"<html><body>Google Drive - Quota exceeded</body></html>", "text/html; charset=utf-8",
         "download quota exceeded"),
        # A server that lies about the type: the first bytes give it away.
        (b"\n  <!DOCTYPE html><html><title>Error</title></html>", "application/octet-stream",
         "an error or login page?"),
        (b"<!doctype html><p>Google Drive can't scan this file for viruses.</p>", "text/html",
         "a virus-scan warning page"),
    ],
)
def test_html_page_gives_a_clear_error(
    server: _LocalServer, make_spec, _isolated: Path, payload: bytes, content_type: str, reason: str
) -> None:
    body = _body()
    server.routes["/w.pt"] = serve(payload, content_type)
    spec = make_spec("html", body, url=server.url("/w.pt"))
    with pytest.raises(DownloadError) as info:
        fetch(spec)
    msg = str(info.value)
    assert f"returned an HTML page ({reason}) instead of {spec.filename}" in msg
    assert "\n" not in msg
    assert _cache_entries(_isolated) == []
    assert len(server.requests) == 1  # an HTML page is not retried


@pytest.mark.parametrize("known", [True, False], ids=["size-known", "size-unknown"])
def test_server_dying_mid_transfer_leaves_no_partial_file(
    server: _LocalServer, make_spec, _isolated: Path, known: bool
) -> None:
    body = _body()
    server.routes["/w.pt"] = die_midway(body)
    spec = make_spec(f"cut-{known}", body, known=known, url=server.url("/w.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedWeightsWarning)
        with pytest.raises(DownloadError, match=f"connection closed after {len(body) // 3} of {len(body)} B"):
            fetch(spec, retries=1)
    assert server.requests == ["/w.pt", "/w.pt"]  # a cut connection is retried
    assert _cache_entries(_isolated) == []


def test_transient_errors_are_retried(server: _LocalServer, make_spec) -> None:
    body = _body()
    server.routes["/w.pt"] = fail_first(2, serve(body), code=503)
    spec = make_spec("flaky", body, url=server.url("/w.pt"))
    assert fetch(spec, retries=2).read_bytes() == body
    assert server.requests == ["/w.pt"] * 3


def test_retries_run_out(server: _LocalServer, make_spec, _isolated: Path) -> None:
    body = _body()
    server.routes["/w.pt"] = fail_first(5, serve(body), code=503)
    spec = make_spec("flakier", body, url=server.url("/w.pt"))
    t0 = time.perf_counter()
    with pytest.raises(DownloadError, match=r"HTTP 503 .*\(after 3 attempts\)"):
        fetch(spec, retries=2, backoff=0.05)
    # Backoff doubles: 0.05 + 0.1 s of waiting at least.
    assert time.perf_counter() - t0 >= 0.15
    assert server.requests == ["/w.pt"] * 3
    assert _cache_entries(_isolated) == []


def test_mirror_fallback(server: _LocalServer, make_spec) -> None:
    body = _body()
    bad = bytearray(body)
    bad[0] ^= 1
    server.routes["/corrupt.pt"] = serve(bytes(bad))
    server.routes["/good.pt"] = serve(body)
    spec = make_spec(
        "mirrored", body,
        url=server.url("/missing.pt"),  # 404: permanent, go to the next source at once
        mirrors=(server.url("/corrupt.pt"), server.url("/good.pt")),
    )
    assert fetch(spec).read_bytes() == body
    assert server.requests == ["/missing.pt", "/corrupt.pt", "/good.pt"]


def test_all_sources_failing_gives_one_line_with_every_reason(server: _LocalServer, make_spec, _isolated: Path) -> None:
    body = _body()
    spec = make_spec("hopeless", body, url=server.url("/a.pt"), mirrors=(server.url("/b.pt"),))
    with pytest.raises(DownloadError) as info:
        fetch(spec)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"{server.url('/a.pt')} answered HTTP 404" in msg
    assert f"{server.url('/b.pt')} answered HTTP 404" in msg
    assert f"place it at {_isolated / spec.filename}" in msg


def test_offline_env_gives_one_line_with_target_path(server: _LocalServer, make_spec, _isolated: Path) -> None:
    body = _body()
    server.routes["/w.pt"] = serve(body)
    spec = make_spec("offline", body, url=server.url("/w.pt"))
    with pytest.raises(DownloadError) as info:
        download(spec, progress=False)  # offline=None: read from the env var (set to 1)
    msg = str(info.value)
    assert "\n" not in msg
    assert "STYLEGAN_MORPH_OFFLINE=1" in msg
    assert spec.filename in msg and server.url("/w.pt") in msg
    assert f"place it at {_isolated / spec.filename}" in msg
    assert server.requests == []


def test_offline_drive_entry_names_the_drive_link(_isolated: Path) -> None:
    with pytest.raises(DownloadError) as info:
        download("e4e-ffhq", progress=False)
    msg = str(info.value)
    assert "https://drive.google.com/file/d/1cUv_reLE6k3604or78EranS7XzuVMWeO/view" in msg
    assert str(_isolated / "e4e_ffhq_encode.pt") in msg
    assert "\n" not in msg


def test_file_placed_by_hand_is_used_offline(make_spec, _isolated: Path) -> None:
    body = _body()
    spec = make_spec("manual", body, url="http://127.0.0.1:9/unused.pt")
    _isolated.mkdir()
    (_isolated / spec.filename).write_bytes(body)
    assert download(spec, progress=False) == _isolated / spec.filename


def test_bad_cached_file_is_reported_offline_and_replaced_online(
    server: _LocalServer, make_spec, _isolated: Path
) -> None:
    body = _body()
    server.routes["/w.pt"] = serve(body)
    spec = make_spec("stale", body, url=server.url("/w.pt"))
    _isolated.mkdir()
    (_isolated / spec.filename).write_bytes(body[:-10])
    with pytest.raises(DownloadError, match=f"exists but its size is {len(body) - 10} B"):
        download(spec, progress=False)
    assert fetch(spec).read_bytes() == body
    assert _cache_entries(_isolated) == [spec.filename]


def test_force_downloads_again(server: _LocalServer, make_spec) -> None:
    body = _body()
    server.routes["/w.pt"] = serve(body)
    spec = make_spec("forced", body, url=server.url("/w.pt"))
    fetch(spec)
    fetch(spec, force=True)
    assert server.requests == ["/w.pt", "/w.pt"]


def test_keyboard_interrupt_mid_download_leaves_no_temp_file(
    server: _LocalServer, make_spec, _isolated: Path
) -> None:
    body = _body(1_000_000)

    def interrupting(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[:200_000])
        h.wfile.flush()
        # Raise KeyboardInterrupt in the main thread, as Ctrl-C would; it fires
        # when the client next runs Python code, i.e. while the body is incomplete.
        _thread.interrupt_main()
        time.sleep(0.2)
        try:
            h.wfile.write(body[200_000:])
        except OSError:
            pass

    server.routes["/w.pt"] = interrupting
    spec = make_spec("ctrl-c", body, url=server.url("/w.pt"))
    with pytest.raises(KeyboardInterrupt):
        fetch(spec)
    assert _cache_entries(_isolated) == []


def test_unverifiable_entry_warns_with_measured_hash(server: _LocalServer, make_spec) -> None:
    body = _body()
    server.routes["/w.pt"] = serve(body)
    spec = make_spec("nohash", body, known=False, url=server.url("/w.pt"))
    digest = hashlib.sha256(body).hexdigest()
    with pytest.warns(UnverifiedWeightsWarning, match=f"{len(body)} B, sha256 {digest}"):
        path = fetch(spec)
    assert path.read_bytes() == body
    # From the cache it still cannot be verified, and says so.
    with pytest.warns(UnverifiedWeightsWarning, match="cannot be verified"):
        assert fetch(spec) == path


def test_packaged_file_is_verified_once_per_process(
    make_spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = _body(10_000)
    monkeypatch.setattr(download_mod, "PACKAGE_DIR", tmp_path / "pkg")
    monkeypatch.setattr(download_mod, "_VERIFIED", set())
    file = tmp_path / "pkg" / "weights" / "tiny.pt"
    file.parent.mkdir(parents=True)
    file.write_bytes(body)
    spec = make_spec("packaged", body, local_path="weights/tiny.pt")
    assert download(spec) == file
    assert pretrained.cache_status(spec) == "packaged"

    # Same size and mtime: the per-process memo answers without hashing again.
    st = file.stat()
    file.write_bytes(body[::-1])
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert download(spec) == file
    # A new mtime invalidates the memo, and the corruption is found.
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(DownloadError, match="packaged file .* is corrupted"):
        download(spec)
    file.unlink()
    with pytest.raises(DownloadError, match="is missing; reinstall"):
        download(spec)


def test_resolve_weights_prefers_an_existing_path(
    tmp_path: Path, make_spec, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A local file named like a registry entry still wins.
    make_spec("local-name", b"x", url="http://127.0.0.1:9/unused.pt")
    local = tmp_path / "local-name"
    local.write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    assert resolve_weights("local-name") == Path("local-name")
    assert resolve_weights(local) == local


def test_resolve_weights_downloads_a_registry_name(server: _LocalServer, make_spec, _isolated: Path) -> None:
    body = _body()
    server.routes["/w.pt"] = serve(body)
    spec = make_spec("by-name", body, url=server.url("/w.pt"))
    _isolated.mkdir()
    (_isolated / spec.filename).write_bytes(body)  # cached: resolve must not need the (offline) network
    assert resolve_weights("by-name") == _isolated / spec.filename
    assert server.requests == []


def test_resolve_weights_rejects_unknown_names_and_folders(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a file and not a known model name; known: .*e4e-ffhq"):
        resolve_weights(str(tmp_path / "nope.pt"))
    with pytest.raises(UserError, match="is a folder"):
        resolve_weights(tmp_path)


def test_unknown_name_to_download() -> None:
    with pytest.raises(UserError, match="unknown pretrained model 'nope'; known: "):
        download("nope")
