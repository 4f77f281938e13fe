"""The morph pipeline on a tiny random model: photos and latents in, a checked video out, bad input refused."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoders import align_face
from encoders.morph import (
    ALIGN_SIZE,
    default_output_name,
    invert,
    latent_paths,
    load_latent,
    morph,
    resolve_model,
    save_latent,
    split_input,
)
from stylegan import load_generator
from stylegan.errors import CheckpointError, UserError
from stylegan.render import render_images
from stylegan.specs import PathSpec, RenderSpec
from tests.helpers import ASTRONAUT, HOPPER

pytestmark = pytest.mark.usefixtures("offline")  # no network, no user cache (tests/conftest.py)


@pytest.fixture(scope="module")
def codes(model_file) -> dict[str, torch.Tensor]:
    """Each photo's code, computed here independently of morph()."""
    from encoders import load_encoder

    E = load_encoder(model_file)
    out = {}
    for photo in (HOPPER, ASTRONAUT):
        img = np.asarray(align_face(photo, output_size=ALIGN_SIZE), dtype=np.float32)
        x = torch.from_numpy(img).permute(2, 0, 1)[None] / 127.5 - 1
        with torch.no_grad():
            out[photo.stem] = E.encode(x)[0]
    return out


def read_frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("frame_*.png"))]).astype(int)


def with_specs(kw: dict) -> dict:
    """``steps=5, fps=10, ...`` -> ``path=PathSpec(steps=5), render=RenderSpec(fps=10)``: tests read shorter."""
    kw = dict(kw)
    for name, spec in (("path", PathSpec), ("render", RenderSpec)):
        own = {f.name: kw.pop(f.name) for f in fields(spec) if f.name in kw}
        if own:
            kw[name] = spec(**own)
    return kw


def run(inputs, output, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("device", "cpu")
    kw.setdefault("refine", 0)  # compare against encoder-only codes; refinement has its own test
    return morph([str(p) for p in inputs], output, **with_specs(kw))


# ----------------------------------------------------------------------------- the happy path


def test_two_photos_morph_from_a_to_b(model_file, codes, tmp_path):
    out = tmp_path / "frames"
    result = run([HOPPER, ASTRONAUT], out, weights=model_file, steps=5, hold=1)
    assert result.frames == 5 + 2 * 1 and result.size == (32, 32)
    frames = read_frames(out)
    assert frames.shape == (7, 32, 32, 3)
    G = load_generator(model_file)
    a, b = render_images(G, torch.stack([codes["grace_hopper"], codes["astronaut"]])).astype(int)
    assert np.abs(frames[0] - a).max() <= 1 and np.abs(frames[1] - a).max() <= 1
    assert np.abs(frames[-1] - b).max() <= 1
    assert np.abs(a - b).mean() > 3
    dist = np.abs(frames - frames[0]).mean(axis=(1, 2, 3))
    assert dist[-1] == dist.max()


def test_saved_latents_round_trip_to_the_same_video(model_file, codes, tmp_path):
    out = tmp_path / "m"
    result = run([HOPPER, ASTRONAUT], out, weights=model_file, steps=4, save_latents=True)
    assert [p.name for p in result.latents] == ["m_grace_hopper.npy", "m_astronaut.npy"]
    saved = np.load(result.latents[0])
    assert saved.shape == (8, 16) and saved.dtype == np.float32
    assert np.allclose(saved, codes["grace_hopper"].numpy(), atol=1e-6)
    # The codes alone (no encoder, no alignment) reproduce the video.
    again = tmp_path / "again"
    run(result.latents, again, weights=model_file, steps=4)
    assert np.abs(read_frames(again) - read_frames(out)).max() <= 1


def test_latents_work_with_a_generator_only_file(generator_file, tmp_path):
    G = load_generator(generator_file)
    ws = G.mapping(torch.randn(2, G.z_dim))
    a, b = save_latent(tmp_path / "a.npy", ws[0]), save_latent(tmp_path / "b.npy", ws[1])
    result = run([a, b], tmp_path / "ab.gif", weights=generator_file, steps=6, loop=True)
    assert result.frames == 2 * 5
    with Image.open(tmp_path / "ab.gif") as im:
        assert im.n_frames == 10


def test_side_by_side_shows_the_current_pair(model_file, generator_file, tmp_path):
    G = load_generator(generator_file)
    ws = G.mapping(torch.randn(1, G.z_dim))[0]
    c = save_latent(tmp_path / "c.npy", ws)
    out = tmp_path / "sbs"
    result = run([HOPPER, ASTRONAUT, c], out, weights=model_file, steps=3, side_by_side=True, size=24)
    frames = read_frames(out)
    assert result.size == (72, 24) and frames.shape == (5, 24, 72, 3)
    hopper = np.asarray(align_face(HOPPER, ALIGN_SIZE).resize((24, 24), Image.Resampling.LANCZOS)).astype(int)
    astronaut = np.asarray(align_face(ASTRONAUT, ALIGN_SIZE).resize((24, 24), Image.Resampling.LANCZOS))
    assert np.array_equal(frames[0, :, :24], hopper)            # segment 0: A | morph | B
    assert np.array_equal(frames[0, :, 48:], astronaut)
    assert np.array_equal(frames[3, :, :24], astronaut)         # segment 1: B | morph | C
    latent_panel = render_images(load_generator(model_file), ws[None], size=24)[0]
    assert np.array_equal(frames[3, :, 48:], latent_panel)      # a latent input shows its own render


def test_invert_writes_aligned_reconstruction_and_latent(model_file, codes, tmp_path):
    outdir = tmp_path / "new" / "dir"
    (res,) = invert([HOPPER], outdir, weights=model_file, device="cpu", refine=0)
    assert [res.aligned.name, res.reconstruction.name, res.latent.name] == [
        "grace_hopper_aligned.png", "grace_hopper_reconstruction.png", "grace_hopper_latent.npy"]
    assert Image.open(res.aligned).size == (ALIGN_SIZE, ALIGN_SIZE)
    latent = load_latent(res.latent, 8, 16)
    assert torch.allclose(latent, codes["grace_hopper"], atol=1e-6)
    expected = render_images(load_generator(model_file), latent[None])[0].astype(int)
    assert np.abs(np.asarray(Image.open(res.reconstruction)).astype(int) - expected).max() <= 1
    assert sorted(p.name for p in outdir.iterdir()) == sorted(
        [res.aligned.name, res.reconstruction.name, res.latent.name])


# ----------------------------------------------------------------------------- bad input


def _bad_photos(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(HOPPER.read_bytes()[:3000])
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    return {"text": text, "truncated": truncated, "blank": blank}


@pytest.mark.parametrize("case,match", [
    ("missing", "file not found"),
    ("text", "not an image file"),
    ("truncated", "corrupt or truncated"),
    ("blank", "no face found"),
    ("folder", "is a folder"),
])
def test_bad_inputs_fail_with_one_line_and_write_nothing(case, match, model_file, tmp_path):
    photos = _bad_photos(tmp_path)
    bad = {"missing": tmp_path / "nobody.jpg", "folder": tmp_path, **photos}[case]
    out = tmp_path / "out.mp4"
    with pytest.raises(UserError, match=match) as err:
        run([HOPPER, bad], out, weights=model_file, steps=3)
    assert "\n" not in str(err.value) and str(bad.name) in str(err.value)
    assert not out.exists()


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=1), "steps must be at least 2"),
    (dict(steps=0), "steps must be at least 2"),
    (dict(hold=-1), "hold must be"),
    (dict(easing="wobbly"), "easing must be one of linear, ease-in-out, cosine"),
    (dict(kind="cubic"), "kind must be one of lerp, slerp"),
    (dict(fps=0), "fps must be above 0"),
    (dict(fps=float("inf")), "fps must be a finite number"),
    (dict(crf=99), "crf must be an integer from 0"),
    (dict(size=100000), "size must be a positive number of pixels, at most 4096"),
    (dict(steps=100000), "more than 10000; set yes=True"),
])
def test_bad_options_are_refused_before_any_work(kwargs, match, tmp_path):
    # No weights exist at all: the options must be refused before the model is looked up.
    with pytest.raises(UserError, match=match):
        run([HOPPER, ASTRONAUT], tmp_path / "x.mp4", weights=tmp_path / "none.pt", **kwargs)


def test_loose_keywords_still_work_for_one_release_with_a_warning(tmp_path):
    """Issue 8: morph(steps=..., fps=...) became morph(path=PathSpec(...), render=RenderSpec(...))."""
    with pytest.warns(DeprecationWarning, match=r"morph\(steps=\) is deprecated; pass path=PathSpec\(steps=...\)"):
        with pytest.raises(UserError, match="steps must be at least 2"):  # the old keywords are really used
            morph([str(HOPPER), str(ASTRONAUT)], tmp_path / "x.mp4", steps=1, fps=10)
    with pytest.raises(TypeError, match="unexpected keyword arguments: stepz"):
        morph([str(HOPPER), str(ASTRONAUT)], tmp_path / "x.mp4", stepz=5)
    assert not list(tmp_path.iterdir())


def test_one_input_is_not_a_morph(model_file, tmp_path):
    with pytest.raises(UserError, match="at least 2 inputs"):
        run([HOPPER], tmp_path / "x.mp4", weights=model_file)


@pytest.mark.parametrize("output,match", [
    ("missing_dir/out.mp4", "does not exist"),
    ("out.avi", "unsupported output type"),
    ("a_file/out.mp4", "is not a folder"),
])
def test_unwritable_outputs(output, match, model_file, tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match=match):
        run([HOPPER, ASTRONAUT], tmp_path / output, weights=model_file)


def test_read_only_folder_is_refused(model_file, tmp_path, monkeypatch):
    import tempfile

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # root ignores chmod, so simulate EACCES
    with pytest.raises(UserError, match="cannot write to"):
        run([HOPPER, ASTRONAUT], tmp_path / "x.mp4", weights=model_file)


def test_unknown_model_name_fails_before_any_photo_is_aligned(tmp_path, monkeypatch):
    import encoders.align

    monkeypatch.setattr(encoders.align, "align_face", lambda *a, **k: pytest.fail("aligned a photo"))
    with pytest.raises(UserError, match="'no-such-model' is not a file and not a known model name; known: ") as err:
        run([HOPPER, ASTRONAUT], tmp_path / "x.mp4", weights="no-such-model")
    assert "e4e-ffhq" in str(err.value)


def test_missing_weights_file(tmp_path):
    with pytest.raises(UserError, match="weights file not found"):
        run([HOPPER, ASTRONAUT], tmp_path / "x.mp4", weights=tmp_path / "gone.pt")


def test_registered_weights_offline_say_what_to_download(tmp_path):
    from pretrained import DownloadError

    with pytest.raises(DownloadError, match="downloads are off") as err:
        run([HOPPER, ASTRONAUT], tmp_path / "x.mp4", weights="e4e-ffhq")
    assert "\n" not in str(err.value) and "e4e_ffhq_encode.pt" in str(err.value)
    assert not (tmp_path / "cache" / "e4e_ffhq_encode.pt").exists()


def test_no_default_model_message(monkeypatch):
    import pretrained.registry

    monkeypatch.delitem(pretrained.registry._REGISTRY, "default", raising=False)  # an install without one
    with pytest.raises(UserError, match="weights is needed: no default model is installed"):
        resolve_model(None)


def test_photo_with_a_generator_only_file_asks_for_an_encoder(generator_file, tmp_path):
    with pytest.raises(CheckpointError, match="photos need a model with an encoder"):
        run([HOPPER, ASTRONAUT], tmp_path / "x.mp4", weights=generator_file)


def test_face_index_out_of_range(model_file, tmp_path):
    with pytest.raises(UserError, match="out of range"):
        run([HOPPER, ASTRONAUT], tmp_path / "x.mp4", weights=model_file, face_index=5)


@pytest.mark.parametrize("array,match", [
    (np.zeros((18, 512), np.float32), r"shape \[18, 512\]"),
    (np.full((8, 16), np.nan, np.float32), "NaN"),
    (np.array(["a", "b"]), "floats"),
])
def test_bad_latents(array, match, generator_file, tmp_path):
    np.save(tmp_path / "bad.npy", array)
    np.save(tmp_path / "good.npy", np.zeros((8, 16), np.float32))
    with pytest.raises(UserError, match=match):
        run([tmp_path / "good.npy", tmp_path / "bad.npy"], tmp_path / "x.mp4", weights=generator_file)


def test_pickled_or_garbage_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="must hold plain numbers"):  # never numpy's "use allow_pickle"
        load_latent(tmp_path / "obj.npy")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(UserError, match=r"junk.npy: .*\.npy"):
        load_latent(tmp_path / "junk.npy")
    w = np.arange(16, dtype=np.float32)
    np.save(tmp_path / "w.npy", w)  # a single w is broadcast to every position
    assert torch.equal(load_latent(tmp_path / "w.npy", 8, 16), torch.from_numpy(w).expand(8, 16))


def test_ctrl_c_mid_render_leaves_nothing(model_file, tmp_path, monkeypatch):
    from stylegan.networks import SynthesisNetwork

    calls = {"n": 0}
    forward = SynthesisNetwork.forward

    def interrupted(self, ws, noise_mode="const"):
        calls["n"] += 1
        if calls["n"] == 4:  # one frame timed for the plan, then two batches in the writer
            raise KeyboardInterrupt
        return forward(self, ws, noise_mode)

    monkeypatch.setattr(SynthesisNetwork, "forward", interrupted)
    (tmp_path / "out").mkdir()
    for name in ("x.mp4", "x"):  # every writer kind is covered in tests/stylegan/test_video.py
        calls["n"] = 0
        with pytest.raises(KeyboardInterrupt):
            run([HOPPER, ASTRONAUT], tmp_path / "out" / name, weights=model_file, steps=20, batch_size=2,
                save_latents=True)
        assert calls["n"] == 4
    assert list((tmp_path / "out").iterdir()) == []  # no video, no temp file, no latents


# ----------------------------------------------------------------------------- names


def test_default_names():
    assert default_output_name(["x/face1.jpg", "face2.png"]) == "face1_to_face2.mp4"
    assert default_output_name(["a.jpg", "b.npy", "c.jpg"], ".gif") == "a_to_b_to_c.gif"
    long = default_output_name([f"person_{i:03d}_portrait.jpg" for i in range(10)])
    assert long == "person_000_portrait_to_person_009_portrait_10_faces.mp4"
    assert [p.name for p in latent_paths(["d1/face.jpg", "d2/face.jpg"], "out/m.mp4")] == [
        "m_face.npy", "m_face_1.npy"]
    assert latent_paths(["a.jpg"], "out/frames/")[0] == Path("out/frames_a.npy")


def test_refined_codes_reconstruct_the_photos_better(model_file, codes, tmp_path):  # noqa: F811
    """The default ('auto') refines small models: the saved codes differ from the encoder's and fit better."""
    from encoders.losses import face_mask, masked_reconstruction_loss
    from stylegan import load_generator

    out = tmp_path / "r.mp4"
    result = morph([str(HOPPER), str(ASTRONAUT)], out, weights=str(model_file), path=PathSpec(steps=2),
                   progress=False, device="cpu", save_latents=True)
    G = load_generator(model_file)
    mask = face_mask(G.img_resolution, 0.25)
    for name, photo in (("grace_hopper", HOPPER), ("astronaut", ASTRONAUT)):
        refined = torch.from_numpy(np.load(tmp_path / f"r_{name}.npy"))[None]
        plain = codes[name][None]
        assert not torch.allclose(refined, plain)
        img = np.asarray(align_face(photo, output_size=G.img_resolution), dtype=np.float32)
        x = torch.from_numpy(img).permute(2, 0, 1)[None] / 127.5 - 1
        with torch.no_grad():
            loss_refined = masked_reconstruction_loss(G.synthesis(refined), x, mask).item()
            loss_plain = masked_reconstruction_loss(G.synthesis(plain), x, mask).item()
        assert loss_refined < loss_plain
    assert len(result.latents) == 2


# ----------------------------------------------------------------------------- issue 9


def test_split_input_reads_a_per_photo_face_index(tmp_path):
    assert split_input("group.jpg:2") == (Path("group.jpg"), 2)
    assert split_input("dir/a.b.jpg") == (Path("dir/a.b.jpg"), None)
    assert split_input("weird:name.jpg") == (Path("weird:name.jpg"), None)
    odd = tmp_path / "shot.jpg:3"  # a file whose name really ends in :3 is taken as it is
    odd.write_bytes(b"x")
    assert split_input(str(odd)) == (odd, None)


def test_face_index_per_photo_and_errors_that_name_the_photo(model_file, tmp_path):
    """Issue 9.16: --face-index applied to every photo, and the error named the other photo."""
    with pytest.raises(UserError, match=r"grace_hopper.jpg: face index 1 is out of range") as err:
        run([f"{HOPPER}:1", ASTRONAUT], tmp_path / "x.gif", weights=model_file)
    assert "applies to every photo" not in str(err.value)
    with pytest.raises(UserError, match=r"grace_hopper.jpg: face index 1 .*give this one its own as "
                                        r"'.*grace_hopper.jpg:N'"):
        run([HOPPER, ASTRONAUT], tmp_path / "x.gif", weights=model_file, face_index=1)
    # A per-photo index wins over the shared one.
    result = run([f"{HOPPER}:0", f"{ASTRONAUT}:0"], tmp_path / "x.gif", weights=model_file, face_index=5,
                 steps=2, save_latents=True)
    assert result.frames == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.gif", "x_astronaut.npy", "x_grace_hopper.npy"]


def test_invert_never_overwrites_an_input(model_file, tmp_path):
    """Issue 9.1/9.3 for invert: a photo named like another photo's output, or two photos with one stem."""
    a = tmp_path / "a.jpg"
    a.write_bytes(HOPPER.read_bytes())
    aligned = tmp_path / "a_aligned.png"
    Image.open(ASTRONAUT).convert("RGB").save(aligned)
    before = aligned.read_bytes()
    with pytest.raises(UserError, match="a_aligned.png: is the input"):
        invert([a, aligned], tmp_path, weights=model_file, device="cpu", refine=0)
    assert aligned.read_bytes() == before
    (tmp_path / "a.png").write_bytes(aligned.read_bytes())
    with pytest.raises(UserError, match="would both write a_aligned.png"):
        invert([a, tmp_path / "a.png"], tmp_path / "out", weights=model_file, device="cpu", refine=0)
    assert not (tmp_path / "out").exists()


def test_invert_on_a_full_disk_is_one_line_and_leaves_no_folder(model_file, tmp_path, monkeypatch):
    """Issue 9.10: a full disk gave an OSError traceback and left an empty folder behind."""
    import errno

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", no_space)
    with pytest.raises(UserError, match="disk full") as err:
        invert([HOPPER], tmp_path / "new" / "deep", weights=model_file, device="cpu", refine=0)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_save_latent_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    import errno

    dest = save_latent(tmp_path / "w.npy", torch.zeros(2, 3))
    before = dest.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", no_space)
    with pytest.raises(UserError, match="w.npy: cannot write \\(disk full"):
        save_latent(dest, torch.ones(2, 3))
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.npy"]


def test_default_names_from_long_inputs_fit_the_file_system(tmp_path):
    """Issue 9.9: the default name built from two long input names was too long to create."""
    name = default_output_name(["x" * 200 + ".jpg", "y" * 200 + ".jpg"], folder=tmp_path)
    assert name.endswith(".mp4") and len(name.encode()) <= 255 - 32
    (tmp_path / name).write_bytes(b"")  # creatable
    latents = latent_paths(["z" * 250 + ".jpg"], tmp_path / name)
    assert len(latents[0].name.encode()) <= 255 - 32
    latents[0].write_bytes(b"")
    many = default_output_name(["\u00e9" * 120 + ".jpg"] * 5, folder=tmp_path)  # 2-byte characters
    assert len(many.encode()) <= 255 - 32


# ----------------------------------------------------------------------------- issue 9 item 17


@pytest.mark.parametrize("inputs, kw, match", [
    ("ab", {}, "inputs must be a list of paths, got str 'ab'"),
    (["a.npy", "b.npy"], {"steps": 2.5}, "steps must be a whole number, got 2.5"),
    (["a.npy", "b.npy"], {"size": 7.5}, "size must be a whole number"),
    (["a.npy", "b.npy"], {"hold": 1.0}, "hold must be a whole number"),
])
def test_api_type_errors_are_one_line_user_errors(tmp_path, inputs, kw, match):
    with pytest.raises(UserError, match=match) as err:
        morph(inputs, tmp_path / "o.mp4", **with_specs(kw))
    assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_invert_refuses_a_lone_string(tmp_path):
    with pytest.raises(UserError, match="photos must be a list of paths"):
        invert("photo.jpg", tmp_path / "out")
