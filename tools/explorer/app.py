"""The explorer's HTTP side: a Flask app over an :class:`~tools.explorer.engine.Explorer`.

Every request is treated as hostile:

- **Host header** must name the address being served (or localhost / 127.0.0.1 /
  [::1] on its port), which defeats DNS rebinding, as Jupyter does; a browser's
  ``Origin`` header, when sent, must match too, so another site cannot post here.
- **Sizes** are bounded: the whole request body (``MAX_CONTENT_LENGTH``), every
  photo's pixel count (the library's decompression-bomb guard), counts of faces,
  sessions and videos.
- **No request path reaches the file system**: the page's assets are read into
  memory at start-up and served from a dict; faces, videos and sessions have ids
  made by the server, and their files have names made by the server.
- **Errors** are JSON ``{"error": "one line"}`` with a 4xx code; an unexpected
  exception logs its trace on the server and answers a plain 500 message.
"""

from __future__ import annotations

import io
import re
import sys
import traceback
from importlib import resources
from typing import Any

import numpy as np
from flask import Flask, Response, g, jsonify, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from stylegan.errors import UserError

from .engine import Explorer, ExplorerConfig, NotFound, View

__all__ = ["create_app", "set_address", "bind", "COOKIE", "allowed_hosts"]

COOKIE = "sgm_explorer"
_TAB_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
           "style.css": "text/css; charset=utf-8"}
_CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; "
        "script-src 'self'; connect-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'")
_LOCAL_NAMES = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host header values accepted for a server bound to ``host:port``.

    The served address and the loopback names, each with the port (and without it
    only for port 80, where browsers omit it). For ``0.0.0.0`` / ``::`` the machine's
    own name and addresses are added; other names can be allowed with ``extra_hosts`` of :func:`set_address`.
    """
    names = set(_LOCAL_NAMES)
    if host in ("0.0.0.0", "::", ""):
        import socket

        hostname = socket.gethostname().lower()
        names.add(hostname)
        try:  # the machine's own addresses, as a browser on the network would type them
            names.update(socket.gethostbyname_ex(hostname)[2])
        except OSError:
            pass
    else:
        names.add(f"[{host}]" if ":" in host else host.lower())
    out = {f"{n}:{port}" for n in names}
    if port == 80:
        out |= names
    return out


def set_address(app: Flask, host: str, port: int, extra_hosts: tuple[str, ...] = ()) -> None:
    """Tell the app the address it is served on (known only once the port is bound)."""
    hosts = allowed_hosts(host, port) | {f"{h.lower()}:{port}" for h in extra_hosts}
    app.config["EXPLORER_HOSTS"] = frozenset(hosts)
    app.config["EXPLORER_ORIGINS"] = frozenset(f"http://{h}" for h in hosts)


def bind(app: Flask, host: str, port: int, extra_hosts: tuple[str, ...] = (), log: Any = None) -> Any:
    """A threaded server for ``app`` on ``host:port``, or on a free port when that one is taken.

    The app's Host check is set to the port actually bound.

    Returns:
        A werkzeug server: ``server.port`` is the port, ``serve_forever()`` serves.

    Raises:
        UserError: the address cannot be bound at all (e.g. not an address of this machine).
    """
    import socket

    from werkzeug.serving import make_server, select_address_family

    # Bind the socket here: werkzeug's own bind exits the process when the port is taken.
    sock = socket.socket(select_address_family(host, port), socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if port == 0:
                raise UserError(f"cannot listen on {host}: {err.strerror or err}") from None
            if log is not None:
                log(f"port {port} is not available ({err.strerror or err}); choosing a free one")
            try:
                sock.bind((host, 0))
            except OSError as err2:
                raise UserError(f"cannot listen on {host}: {err2.strerror or err2}") from None
        sock.listen(128)
        server = make_server(host, sock.getsockname()[1], app, threaded=True, fd=sock.fileno())
    finally:
        sock.close()  # the server holds its own duplicate of the socket
    set_address(app, host, server.port, extra_hosts)
    return server


def _error(message: str, status: int) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def _json_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise UserError("expected a JSON object body (Content-Type: application/json)")
    return data


def _png(data: bytes, download: str | None = None) -> Response:
    response = Response(data, mimetype="image/png")
    if download:
        response.headers["Content-Disposition"] = f'attachment; filename="{download}"'
    return response


def create_app(config: ExplorerConfig | None = None, explorer: Explorer | None = None, *,
               host: str = "127.0.0.1", port: int = 80, log: Any = None) -> Flask:
    """Build the web app.

    Args:
        config: what to serve (ignored when ``explorer`` is given).
        explorer: an explorer to share (tests reuse one loaded model across apps).
        host, port: the served address, for the Host check; call :func:`set_address`
            again once the real port is known.
        log: receives one-line status messages while the model loads.

    Returns:
        The Flask app; ``app.extensions["explorer"]`` is the :class:`Explorer`.
    """
    config = config or ExplorerConfig()
    explorer = explorer or Explorer(config, log=log or (lambda m: None))
    app = Flask(__name__, static_folder=None)
    app.config.update(MAX_CONTENT_LENGTH=explorer.config.max_upload_bytes, DEBUG=False, PROPAGATE_EXCEPTIONS=False,
                      TRAP_HTTP_EXCEPTIONS=False, JSON_SORT_KEYS=False)
    app.extensions["explorer"] = explorer
    set_address(app, host, port)
    package = resources.files(__package__) / "static"
    assets = {name: (package / name).read_bytes() for name in _ASSETS}

    # ------------------------------------------------------------------ every request

    @app.before_request
    def _guard() -> Response | None:
        hostname = (request.host or "").lower()
        if hostname not in app.config["EXPLORER_HOSTS"]:
            return _error(f"unexpected Host header {hostname[:100]!r}; open the address the server printed", 403)
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower() not in app.config["EXPLORER_ORIGINS"]:
            return _error("cross-origin requests are not allowed", 403)
        g.new_session = None
        session = explorer.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            session = explorer.sessions.create()
            g.new_session = session.id
        g.session = session
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        if getattr(g, "new_session", None):
            response.set_cookie(COOKIE, g.new_session, httponly=True, samesite="Strict", path="/")
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(UserError)
    def _user_error(err: UserError) -> Response:
        return _error(" ".join(str(err).split()), 404 if isinstance(err, NotFound) else 400)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge) -> Response:
        limit = app.config["MAX_CONTENT_LENGTH"] / 2**20
        return _error(f"upload too large: at most {limit:g} MB per request", 413)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        return _error(err.name.lower() if err.code != 405 else "method not allowed", err.code or 500)

    @app.errorhandler(Exception)
    def _bug(err: Exception) -> Response:
        traceback.print_exc(file=sys.stderr)
        return _error("internal error (see the server's log)", 500)

    # ------------------------------------------------------------------ page

    @app.get("/")
    def index() -> Response:
        return Response(assets["index.html"], content_type=_ASSETS["index.html"])

    @app.get("/static/<name>")
    def static_asset(name: str) -> Response:
        if name not in assets:  # a dict lookup: the name never becomes a path
            raise NotFound("no such file")
        return Response(assets[name], content_type=_ASSETS[name], headers={"Cache-Control": "no-cache"})

    @app.get("/api/info")
    def info() -> Response:
        return jsonify(explorer.info())

    # ------------------------------------------------------------------ faces

    def _face(face_id: str) -> Any:
        face = g.session.face(face_id)
        if face is None:
            raise NotFound("unknown face")
        return face

    @app.get("/api/faces")
    def faces() -> Response:
        with g.session.lock:
            listed = [f.to_json() for f in g.session.faces.values()]
        return jsonify({"faces": listed})

    @app.post("/api/faces")
    def upload() -> Response:
        files = request.files.getlist("photos")
        if not files:
            raise UserError("no photo in the upload (form field 'photos')")
        if len(files) > 16:
            raise UserError(f"at most 16 photos per upload, got {len(files)}")
        added = [explorer.add_photo(g.session, f.filename or "photo", f.read()) for f in files]
        return jsonify({"faces": [f.to_json() for f in added]})

    @app.post("/api/faces/example")
    def example() -> Response:
        return jsonify({"faces": [explorer.add_example(g.session, _json_body().get("index")).to_json()]})

    @app.post("/api/faces/random")
    def random_face() -> Response:
        return jsonify({"faces": [explorer.add_random(g.session, _json_body().get("seed")).to_json()]})

    @app.post("/api/faces/gallery")
    def gallery_face() -> Response:
        return jsonify({"faces": [explorer.add_gallery(g.session, _json_body().get("index")).to_json()]})

    @app.get("/api/faces/<face_id>")
    def face(face_id: str) -> Response:
        return jsonify(_face(face_id).to_json())

    @app.get("/api/faces/<face_id>/<image>.png")
    def face_image(face_id: str, image: str) -> Response:
        face = _face(face_id)
        data = {"aligned": face.aligned_png, "reconstruction": face.reconstruction_png}.get(image)
        if data is None:
            raise NotFound(f"face {face.name!r} has no {image[:20]} image")
        return _png(data)

    @app.get("/api/gallery/<int:index>.png")
    def gallery_image(index: int) -> Response:
        return _png(explorer.gallery_png(index))

    # ------------------------------------------------------------------ frames

    @app.post("/api/render")
    def render() -> Response:
        body = _json_body()
        tab, seq = body.get("tab"), body.get("seq")
        if not isinstance(tab, str) or not _TAB_RE.fullmatch(tab):
            raise UserError("tab must be 1-32 letters, digits, '-' or '_'")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**53:
            raise UserError("seq must be a non-negative integer")
        ws = explorer.code(g.session, View.from_json(body.get("view")))
        data = explorer.render_latest(g.session, tab, seq, ws)
        if data is None:  # a newer request of this tab arrived: this one is stale
            return Response(status=204, headers={"X-Superseded": "1"})
        return _png(data)

    @app.post("/api/frame.png")
    def frame_png() -> Response:
        ws = explorer.code(g.session, View.from_json(_json_body().get("view")))
        return _png(explorer.render_png(ws), download="frame.png")

    @app.post("/api/code.npy")
    def code_npy() -> Response:
        ws = explorer.code(g.session, View.from_json(_json_body().get("view")))
        buf = io.BytesIO()
        np.save(buf, ws.detach().float().cpu().numpy(), allow_pickle=False)
        return Response(buf.getvalue(), mimetype="application/octet-stream",
                        headers={"Content-Disposition": 'attachment; filename="code.npy"'})

    @app.get("/api/map")
    def latent_map() -> Response:
        return jsonify(explorer.latent_map(g.session, request.args.get("method", "pca")))

    # ------------------------------------------------------------------ export

    @app.post("/api/export")
    def export() -> Response:
        body = _json_body()
        job = explorer.export(g.session, View.from_json(body.get("view")), body.get("steps", 60), body.get("fps", 30))
        return jsonify(job.to_json())

    @app.get("/api/exports/<job_id>")
    def export_status(job_id: str) -> Response:
        job = g.session.job(job_id)
        if job is None:
            raise NotFound("unknown export")
        return jsonify(job.to_json())

    @app.get("/api/exports/<job_id>/morph.mp4")
    def export_video(job_id: str) -> Response:
        job = g.session.job(job_id)
        if job is None or job.status != "done" or job.path is None or not job.path.is_file():
            raise NotFound("no finished video with that id")
        return send_file(job.path, mimetype="video/mp4", as_attachment=True, download_name="morph.mp4",
                         max_age=0)

    return app
