"""The weights registry: built-in entries, lookup, registration and validation."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pretrained import WeightSpec, get_spec, list_pretrained, register, unregister
from pretrained.registry import KINDS
from stylegan.errors import UserError


def _spec(**overrides: object) -> WeightSpec:
    fields: dict[str, object] = {
        "name": "tmp-model",
        "kind": "toolkit",
        "filename": "tmp.pt",
        "size": 10,
        "sha256": "0" * 64,
        "url": "https://example.invalid/tmp.pt",
        "license": "test",
        "source": "tests",
    }
    fields.update(overrides)
    return WeightSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
def temp_registration():
    """Names registered by a test are removed afterwards."""
    names: list[str] = []
    yield names
    for n in names:
        unregister(n)


def test_builtin_entries_match_the_recorded_facts() -> None:
    # Sizes, ids and hashes from the published checkpoint notes (CHECKPOINTS.md, section 4).
    e4e = get_spec("e4e-ffhq")
    assert (e4e.kind, e4e.filename, e4e.size) == ("e4e", "e4e_ffhq_encode.pt", 1_201_649_680)
    assert e4e.gdrive_id == "1cUv_reLE6k3604or78EranS7XzuVMWeO"
    assert e4e.sha256 == "2ace1d9a8c05c10a399bcd500b8dda118f759ff1aac89dbdab7435f2136a0999"

    sg2 = get_spec("stylegan2-ffhq-config-f")
    assert (sg2.kind, sg2.filename, sg2.size) == ("stylegan2-rosinality", "stylegan2-ffhq-config-f.pt", 132_729_083)
    assert sg2.gdrive_id == "1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT"
    assert sg2.sha256 == "d0d7c5e71531c816b8cf01037393ee4fb65ed09dcb6434cc0197771e3051199b"

    ada = get_spec("stylegan2-ada-ffhq")
    assert ada.kind == "stylegan2-nvidia-pkl"
    assert ada.url == "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl"
    # Unknown values stay unknown rather than guessed.
    assert ada.size is None and ada.sha256 is None


@pytest.mark.parametrize("spec", list_pretrained(), ids=lambda s: s.name)
def test_every_builtin_entry_is_complete(spec: WeightSpec) -> None:
    assert spec.kind in KINDS
    assert spec.license and spec.description
    if spec.local_path is not None:  # shipped in the package: no download, but a hash and a recipe
        assert spec.sha256 and spec.reproduce
        return
    assert spec.source.startswith("https://")
    assert spec.sources, "nowhere to download from"
    assert spec.manual_url is not None


def test_list_pretrained_filters_and_sorts() -> None:
    names = [s.name for s in list_pretrained()]
    assert names == sorted(names)
    assert {"e4e-ffhq", "stylegan2-ffhq-config-f", "stylegan2-ada-ffhq"} <= set(names)
    assert [s.name for s in list_pretrained("stylegan2-*")] == ["stylegan2-ada-ffhq", "stylegan2-ffhq-config-f"]
    assert list_pretrained("no-such-*") == []


def test_get_spec_unknown_name_lists_known_names() -> None:
    with pytest.raises(UserError) as info:
        get_spec("e4e")
    msg = str(info.value)
    assert "unknown pretrained model 'e4e'" in msg
    for s in list_pretrained():
        assert s.name in msg


def test_register_and_unregister(temp_registration: list[str]) -> None:
    spec = _spec(name="tmp-reg")
    assert register(spec) is spec
    temp_registration.append("tmp-reg")
    assert get_spec("tmp-reg") is spec
    assert spec in list_pretrained("tmp-*")
    register(spec)  # the same spec again is harmless
    with pytest.raises(ValueError, match="already registered"):
        register(_spec(name="tmp-reg", size=11))
    register(_spec(name="tmp-reg", size=11), replace=True)
    assert get_spec("tmp-reg").size == 11
    unregister("tmp-reg")
    with pytest.raises(UserError):
        get_spec("tmp-reg")
    with pytest.raises(TypeError):
        register({"name": "x"})  # type: ignore[arg-type]


def test_spec_is_frozen_and_hashable() -> None:
    spec = _spec(mirrors=["https://a.invalid/x", "https://b.invalid/x"])
    assert spec.mirrors == ("https://a.invalid/x", "https://b.invalid/x")  # lists become tuples
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.size = 3  # type: ignore[misc]
    assert hash(spec) == hash(_spec(mirrors=("https://a.invalid/x", "https://b.invalid/x")))


def test_sources_are_tried_url_then_drive_then_mirrors() -> None:
    spec = _spec(url="https://a.invalid/x", gdrive_id="ID", mirrors=("https://m.invalid/x",))
    assert spec.sources == (("http", "https://a.invalid/x"), ("gdrive", "ID"), ("http", "https://m.invalid/x"))
    assert spec.manual_url == "https://a.invalid/x"
    drive_only = _spec(url=None, gdrive_id="ID")
    assert drive_only.manual_url == "https://drive.google.com/file/d/ID/view"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "has space"}, "bad weight name"),
        ({"kind": "pickle"}, "kind 'pickle'"),
        ({"filename": "../evil.pt"}, "bare file name"),
        ({"filename": "sub/dir.pt"}, "bare file name"),
        ({"size": 0}, "positive int"),
        ({"sha256": "ABC"}, "64 lowercase hex"),
        ({"sha256": "A" * 64}, "64 lowercase hex"),
        ({"url": "ftp://x.invalid/a.pt"}, "only http"),
        ({"url": None}, "needs a url"),
        ({"url": None, "local_path": "/abs/w.pt"}, "relative to the package"),
        ({"url": None, "local_path": "../w.pt"}, "relative to the package"),
        ({"url": None, "local_path": "weights/w.pt", "sha256": None}, "needs a sha256"),
    ],
)
def test_invalid_specs_are_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _spec(**overrides)


def test_packaged_spec_needs_no_url() -> None:
    spec = _spec(url=None, local_path="weights/default.pt")
    assert spec.sources == ()
