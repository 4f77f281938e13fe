"""The explorer's HTTP API through Flask's test client, with the embedded default model.

One explorer (model loaded once, refinement off for speed) serves every test; each
test client gets its own session. Frames are compared pixel for pixel with the
library's own render of the code the view describes.
"""

from __future__ import annotations

import io
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("flask")

from stylegan.render import render_images  # noqa: E402
from tools.explorer import ALPHA_STEPS, Explorer, ExplorerConfig, bind, create_app  # noqa: E402
from tools.explorer.engine import View  # noqa: E402
from tools.explorer.sessions import SessionLimits, SessionStore  # noqa: E402

BASE = "http://127.0.0.1:5123"
pytestmark = pytest.mark.slow  # one model load (a few seconds) shared by the module


@pytest.fixture(scope="module")
def explorer(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    ex = Explorer(ExplorerConfig(refine=0, cache_dir=tmp_path_factory.mktemp("codes"), gallery_size=8))
    yield ex
    ex.close()


@pytest.fixture
def app(explorer):
    return create_app(explorer=explorer, host="127.0.0.1", port=5123)


@pytest.fixture
def client(app):
    c = app.test_client()
    c.get("/", base_url=BASE)  # creates the session cookie
    return c


def post(client, path, **kw):
    return client.post(path, base_url=BASE, **kw)


def get(client, path, **kw):
    return client.get(path, base_url=BASE, **kw)


def add_examples(client, explorer) -> list[str]:
    ids = [post(client, "/api/faces/example", json={"index": i}).json["faces"][0]["id"] for i in range(2)]
    assert explorer.wait_idle(120)
    for face_id in ids:
        assert get(client, f"/api/faces/{face_id}").json["status"] == "ready"
    return ids


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def session_of(explorer, client):
    cookie = client.get_cookie("sgm_explorer", domain="127.0.0.1")
    return explorer.sessions.get(cookie.value)


def library_frame(explorer, ws: torch.Tensor) -> np.ndarray:
    return render_images(explorer.G, ws.unsqueeze(0), batch_size=1)[0]


def photo_bytes(size=(64, 48), color=(128, 128, 128)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- page and safety


def test_page_and_assets_are_served_from_memory_without_cdn(app, client):
    page = get(client, "/")
    assert page.status_code == 200 and b"<html" in page.data
    for name in ("app.js", "style.css"):
        r = get(client, f"/static/{name}")
        assert r.status_code == 200 and r.data
        assert b"https://" not in r.data and b"http://" not in r.data.replace(b"http://www.w3.org/2000/svg", b"")
    assert b"https://" not in page.data and b"http://" not in page.data
    for bad in ("/static/engine.py", "/static/..%2fengine.py", "/static/%2e%2e/app.py"):
        r = get(client, bad)
        assert r.status_code == 404 and r.is_json and "error" in r.json
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    fresh = get(app.test_client(), "/")
    assert {"HttpOnly", "SameSite=Strict"} <= set(fresh.headers["Set-Cookie"].replace(";", " ").split())


def test_wrong_host_and_foreign_origin_are_refused(app, client):
    assert get(client, "/api/info").status_code == 200
    for host in ("http://evil.example:5123", "http://127.0.0.1:9999", "http://localhost.evil.example:5123"):
        r = client.get("/api/info", base_url=host)
        assert r.status_code == 403 and r.is_json and "Host" in r.json["error"]
    assert client.get("/api/info", base_url="http://localhost:5123").status_code == 200
    r = post(client, "/api/faces/example", json={"index": 0}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and r.is_json


def test_bind_chooses_a_free_port_when_taken(app):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        messages = []
        server = bind(app, "127.0.0.1", port, log=messages.append)
        try:
            assert server.port != port and messages and "not available" in messages[0]
            assert f"127.0.0.1:{server.port}" in app.config["EXPLORER_HOSTS"]
            assert f"127.0.0.1:{port}" not in app.config["EXPLORER_HOSTS"]
        finally:
            server.server_close()


def test_info_lists_model_directions_and_examples(client, explorer):
    info = get(client, "/api/info").json
    assert info["resolution"] == explorer.G.img_resolution and info["num_ws"] == explorer.G.num_ws
    assert [e["name"] for e in info["examples"]] == [p.name for p in explorer.examples]
    assert {d["name"] for d in info["directions"]} == set(explorer.directions)
    assert info["alpha_steps"] == ALPHA_STEPS


# ----------------------------------------------------------------------------- faces


def test_examples_encode_with_crop_and_reconstruction(client, explorer):
    ids = add_examples(client, explorer)
    for face_id in ids:
        aligned = decode(get(client, f"/api/faces/{face_id}/aligned.png").data)
        recon = decode(get(client, f"/api/faces/{face_id}/reconstruction.png").data)
        assert aligned.shape == (256, 256, 3)
        face = session_of(explorer, client).face(face_id)
        np.testing.assert_array_equal(recon, library_frame(explorer, face.ws))
    listed = get(client, "/api/faces").json["faces"]
    assert [f["id"] for f in listed] == ids


def test_same_photo_again_comes_from_the_cache(client, explorer):
    first, _ = add_examples(client, explorer)
    again = post(client, "/api/faces/example", json={"index": 0}).json["faces"][0]["id"]
    assert explorer.wait_idle(60)
    face = get(client, f"/api/faces/{again}").json
    assert face["status"] == "ready" and face["cached"]
    session = session_of(explorer, client)
    assert torch.equal(session.face(first).ws, session.face(again).ws)
    assert list(Path(explorer.config.cache_dir).rglob("*.npy")), "codes are kept on disk by content hash"


def test_uploads_are_judged_by_content_and_fail_one_by_one(client, explorer):
    good = explorer.examples[1].read_bytes()
    files = [(io.BytesIO(good), "renamed.txt"), (io.BytesIO(b"this is not an image"), "fake.jpg"),
             (io.BytesIO(photo_bytes()), "grey.png"), (io.BytesIO(b""), "empty.jpg"),
             (io.BytesIO(photo_bytes()), "../../etc/passwd\x07.png")]
    r = post(client, "/api/faces", data={"photos": files}, content_type="multipart/form-data")
    assert r.status_code == 200, r.json
    ids = [f["id"] for f in r.json["faces"]]
    assert explorer.wait_idle(60)
    faces = [get(client, f"/api/faces/{i}").json for i in ids]
    assert [f["status"] for f in faces] == ["ready", "error", "error", "error", "error"]
    for f in faces[1:]:
        assert f["error"].startswith(f["name"]) and "\n" not in f["error"]
        assert "upload-" not in f["error"] and str(explorer.sessions.root) not in f["error"]
    assert "no face" in faces[2]["error"].lower() or "face" in faces[2]["error"].lower()
    assert faces[4]["name"] == "passwd.png"  # shown name only: no folders, no control characters
    assert not list(session_of(explorer, client).folder.glob("upload-*")), "uploads are deleted after use"


def test_oversized_upload_and_pixel_bomb(client, explorer):
    big = io.BytesIO(b"\0" * (explorer.config.max_upload_bytes + 1024))
    r = post(client, "/api/faces", data={"photos": [(big, "big.jpg")]}, content_type="multipart/form-data")
    assert r.status_code == 413 and r.is_json and "too large" in r.json["error"]
    buf = io.BytesIO()
    Image.new("1", (12_000, 9_000)).save(buf, format="PNG")  # 108 MP in a few kB
    r = post(client, "/api/faces", data={"photos": [(io.BytesIO(buf.getvalue()), "bomb.png")]},
             content_type="multipart/form-data")
    face_id = r.json["faces"][0]["id"]
    assert explorer.wait_idle(60)
    face = get(client, f"/api/faces/{face_id}").json
    assert face["status"] == "error" and "too large" in face["error"]


def test_no_photo_and_bad_requests_are_json(client):
    r = post(client, "/api/faces", data={}, content_type="multipart/form-data")
    assert r.status_code == 400 and "no photo" in r.json["error"]
    r = post(client, "/api/faces/example", json={"index": 99})
    assert r.status_code == 404 and r.is_json
    r = post(client, "/api/render", data="not json", content_type="text/plain")
    assert r.status_code == 400 and r.is_json
    assert get(client, "/api/nothing").status_code == 404 and get(client, "/api/nothing").is_json
    r = client.put("/api/render", base_url=BASE)
    assert r.status_code == 405 and r.is_json


# ----------------------------------------------------------------------------- frames


def render(client, view, tab="t", seq=0):
    return post(client, "/api/render", json={"tab": tab, "seq": seq, "view": view})


def test_morph_frame_equals_the_library_render(client, explorer):
    from stylegan.interpolation import interpolation_path, lerp

    a, b = add_examples(client, explorer)
    session = session_of(explorer, client)
    wa, wb = session.face(a).ws, session.face(b).ws
    r = render(client, {"a": a, "b": b, "alpha": 0.5})
    assert r.status_code == 200 and r.mimetype == "image/png"
    np.testing.assert_array_equal(decode(r.data), library_frame(explorer, lerp(wa, wb, 0.5)))
    view = {"a": a, "b": b, "alpha": 0.3, "kind": "slerp", "easing": "ease-in-out", "schedule": "coarse-to-fine"}
    r = render(client, view, seq=1)
    path = interpolation_path(torch.stack([wa, wb]), ALPHA_STEPS + 1, kind="slerp", easing="ease-in-out",
                              schedule="coarse-to-fine")
    np.testing.assert_array_equal(decode(r.data), library_frame(explorer, path[30]))
    assert not np.array_equal(decode(r.data), library_frame(explorer, lerp(wa, wb, 0.3)))


def test_edit_mix_and_arithmetic_follow_the_library(client, explorer):
    from stylegan.editing import apply_edit, arithmetic, style_mix
    from stylegan.interpolation import lerp

    a, b = add_examples(client, explorer)
    name = next(iter(explorer.directions))
    session = session_of(explorer, client)
    wa, wb = session.face(a).ws, session.face(b).ws
    view = {"a": a, "b": b, "alpha": 0.25, "edits": {name: 2.0}, "mix": {"face": b, "layers": "fine"},
            "arith": {"b": a, "c": b, "scale": 0.5}}
    expected = lerp(wa, wb, 0.25)
    expected = style_mix(arithmetic(expected, wa, wb, scale=0.5), wb, "fine")
    expected = apply_edit(expected, explorer.directions[name], 2.0)
    r = render(client, view)
    np.testing.assert_array_equal(decode(r.data), library_frame(explorer, expected))
    code = np.load(io.BytesIO(post(client, "/api/code.npy", json={"view": view}).data), allow_pickle=False)
    np.testing.assert_allclose(code, expected.numpy(), rtol=0, atol=0)
    png = post(client, "/api/frame.png", json={"view": view})
    assert "attachment" in png.headers["Content-Disposition"]
    np.testing.assert_array_equal(decode(png.data), decode(r.data))
    reset = render(client, {"a": a, "b": b, "alpha": 0.25, "edits": {name: 0}}, seq=1)
    np.testing.assert_array_equal(decode(reset.data), library_frame(explorer, lerp(wa, wb, 0.25)))


def test_unknown_faces_directions_and_bad_views(client, explorer):
    a, b = add_examples(client, explorer)
    cases = [({"a": "nope"}, 404), ({"a": a, "b": "nope"}, 404), ({"a": a, "edits": {"nope": 1.0}}, 404),
             ({"a": a, "mix": {"face": "nope", "layers": "coarse"}}, 404), ({"a": a, "alpha": 1.5}, 400),
             ({"a": a, "alpha": "x"}, 400), ({"a": a, "kind": "cubic"}, 400), ({"a": a, "edits": {"x": 1e9}}, 400),
             ({"a": a, "mix": {"face": b, "layers": "../../x"}}, 400), ({}, 400)]
    for i, (view, status) in enumerate(cases):
        r = render(client, view, seq=i)
        assert r.status_code == status, (view, r.json)
        assert r.is_json and r.json["error"] and "Traceback" not in r.get_data(as_text=True)
    assert post(client, "/api/render", json={"tab": "../x", "seq": 0, "view": {"a": a}}).status_code == 400
    assert get(client, "/api/faces/nope").status_code == 404
    assert get(client, f"/api/faces/{a}/secret.png").status_code == 404
    assert get(client, "/api/exports/nope").status_code == 404
    assert get(client, "/api/exports/nope/morph.mp4").status_code == 404
    other = create_app(explorer=explorer, host="127.0.0.1", port=5123).test_client()
    assert other.get(f"/api/faces/{a}", base_url=BASE).status_code == 404, "faces belong to their session"


def test_stale_slider_requests_are_dropped(client, explorer):
    a, b = add_examples(client, explorer)
    assert render(client, {"a": a, "b": b, "alpha": 0.9}, tab="one", seq=5).status_code == 200
    stale = render(client, {"a": a, "b": b, "alpha": 0.1}, tab="one", seq=3)
    assert stale.status_code == 204 and not stale.data
    assert render(client, {"a": a, "b": b, "alpha": 0.1}, tab="two", seq=3).status_code == 200


def test_two_tabs_moving_sliders_at_once_get_their_own_frames(app, client, explorer):
    from stylegan.interpolation import lerp

    a, b = add_examples(client, explorer)
    session = session_of(explorer, client)
    wa, wb = session.face(a).ws, session.face(b).ws
    second = app.test_client()
    second.set_cookie("sgm_explorer", client.get_cookie("sgm_explorer", domain="127.0.0.1").value, domain="127.0.0.1")
    alphas = {"left": [0.0, 0.1, 0.2, 0.3, 0.4], "right": [1.0, 0.9, 0.8, 0.7, 0.6]}
    results: dict[str, list] = {"left": [], "right": []}
    errors: list[BaseException] = []

    def move(tab: str, c) -> None:
        try:
            for seq, alpha in enumerate(alphas[tab]):
                r = c.post("/api/render", base_url=BASE, json={"tab": tab, "seq": seq,
                                                                "view": {"a": a, "b": b, "alpha": alpha}})
                results[tab].append((alpha, r.status_code, r.data))
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=move, args=("left", client)), threading.Thread(target=move, args=("right", second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for tab in alphas:
        assert len(results[tab]) == 5
        for alpha, status, data in results[tab]:
            assert status == 200
            np.testing.assert_array_equal(decode(data), library_frame(explorer, lerp(wa, wb, alpha)))


# ----------------------------------------------------------------------------- map, random faces, export


def test_map_places_every_face_and_the_gallery(client, explorer):
    a, b = add_examples(client, explorer)
    third = post(client, "/api/faces/example", json={"index": 0}).json["faces"][0]["id"]
    assert explorer.wait_idle(60)
    for method in ("pca", "tsne"):
        data = get(client, f"/api/map?method={method}").json
        faces = [p for p in data["points"] if p["kind"] == "face"]
        gallery = [p for p in data["points"] if p["kind"] == "gallery"]
        assert {p["id"] for p in faces} == {a, b, third}
        assert len(gallery) == len(explorer.gallery())
        assert all(0 <= p["x"] <= 1 and 0 <= p["y"] <= 1 for p in data["points"])
    assert get(client, "/api/map?method=umap").status_code == 400


def test_random_and_gallery_faces(client, explorer):
    r = post(client, "/api/faces/random", json={"seed": 3})
    if not explorer.has_sampler:
        assert r.status_code == 400 and "sampler" in r.json["error"]
        assert post(client, "/api/faces/gallery", json={"index": 0}).status_code == 404
        return
    face = r.json["faces"][0]
    assert face["status"] == "ready"
    ws = session_of(explorer, client).face(face["id"]).ws
    assert torch.equal(ws, explorer._sample([3])[0])
    g = post(client, "/api/faces/gallery", json={"index": 1}).json["faces"][0]
    assert torch.equal(session_of(explorer, client).face(g["id"]).ws, explorer.gallery()[1])
    np.testing.assert_array_equal(decode(get(client, "/api/gallery/1.png").data),
                                  library_frame(explorer, explorer.gallery()[1]))


def test_export_renders_the_morph_with_edits_to_mp4(client, explorer):
    a, b = add_examples(client, explorer)
    name = next(iter(explorer.directions))
    assert post(client, "/api/export", json={"view": {"a": a}, "steps": 4}).status_code == 400
    assert post(client, "/api/export", json={"view": {"a": a, "b": b}, "steps": 100000}).status_code == 400
    job = post(client, "/api/export", json={"view": {"a": a, "b": b, "edits": {name: 1.0}}, "steps": 5,
                                            "fps": 10}).json
    assert job["total"] == 5
    assert explorer.wait_idle(120)
    status = get(client, f"/api/exports/{job['id']}").json
    assert status["status"] == "done" and status["done"] == 5, status
    video = get(client, status["url"])
    assert video.status_code == 200 and video.data[4:8] == b"ftyp"
    assert "morph.mp4" in video.headers["Content-Disposition"]
    folder = session_of(explorer, client).folder
    assert [p.name for p in folder.iterdir()] == [f"export-{job['id']}.mp4"]


def test_internal_errors_never_show_a_trace(app, client, explorer, monkeypatch, capsys):
    a, _ = add_examples(client, explorer)

    def boom(*args, **kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(explorer, "code", boom)
    r = render(client, {"a": a})
    assert r.status_code == 500 and r.is_json
    assert "secret" not in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)
    assert "secret detail" in capsys.readouterr().err, "the trace goes to the server's log"


# ----------------------------------------------------------------------------- no model needed


@pytest.mark.parametrize("data, fragment", [
    ({"a": "x", "alpha": True}, "alpha"), ({"a": 3}, "a must"), ({"a": "x", "easing": "bounce"}, "easing"),
    ({"a": "x", "arith": {"b": "y"}}, "arith.c"), ({"a": "x", "edits": ["age"]}, "edits"),
])
def test_view_validation_names_the_field(data, fragment):
    from stylegan.errors import UserError

    with pytest.raises(UserError, match=fragment):
        View.from_json(data)


def test_view_quantises_alpha_and_drops_zero_edits():
    view = View.from_json({"a": "x", "b": "y", "alpha": 0.504, "edits": {"age": 0, "smile": -1.5}})
    assert view.position == 50 and view.alpha == 0.5 and view.edits == (("smile", -1.5),)


def test_allowed_hosts_name_the_served_address_and_loopback_only():
    from tools.explorer.app import allowed_hosts

    local = allowed_hosts("127.0.0.1", 8765)
    assert local == {"127.0.0.1:8765", "localhost:8765", "[::1]:8765"}
    everywhere = allowed_hosts("0.0.0.0", 8765)
    assert local < everywhere and f"{socket.gethostname().lower()}:8765" in everywhere
    assert not any(h.startswith("0.0.0.0") for h in everywhere)
    assert "localhost" in allowed_hosts("localhost", 80) and "localhost" not in local


def test_sessions_are_bounded_and_clean_up_their_folders(tmp_path):
    store = SessionStore(SessionLimits(max_sessions=2, max_faces=1, max_jobs=1), root=tmp_path)
    first = store.create()
    (first.folder / "x.bin").write_bytes(b"x")
    second, third = store.create(), store.create()
    assert len(store) == 2 and not first.folder.exists() and store.get(first.id) is None
    assert store.get(second.id) is second and store.get(None) is None and store.get(["x"]) is None
    second.add_face("a", "upload")
    with pytest.raises(LookupError):
        second.add_face("b", "upload")
    assert second.accept_seq("t", 2) and not second.accept_seq("t", 1) and second.is_latest("t", 2)
    store.close()
    assert not store.root.exists() and not third.folder.exists()
