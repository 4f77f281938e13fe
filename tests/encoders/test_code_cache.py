"""encoders.code_cache: keys change with everything that shapes a code, entries round-trip, a hit skips encoding."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from encoders import Encoder4Editing
from encoders.code_cache import CachedEncoder, CodeCache, file_sha256, model_id, photo_key
from stylegan import load_generator
from stylegan.errors import UserError
from tests.helpers import HOPPER

pytestmark = pytest.mark.usefixtures("offline")  # no network, no user cache (tests/conftest.py)


def test_photo_key_follows_bytes_model_steps_and_face(tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"some jpeg bytes")
    key = photo_key(photo, "m@1", 100)
    assert len(key) == 64 and key == photo_key(b"some jpeg bytes", "m@1", 100)  # path or bytes: same key
    moved = tmp_path / "renamed.jpg"
    shutil.copy(photo, moved)
    assert photo_key(moved, "m@1", 100) == key  # the name does not matter, the content does
    others = {photo_key(b"some jpeg bytez", "m@1", 100), photo_key(photo, "m@2", 100),
              photo_key(photo, "m@1", 0), photo_key(photo, "m@1", 100, face_index=1)}
    assert key not in others and len(others) == 4
    assert photo_key(photo, "m@1", 100, face_index=0) == key  # None and 0 both mean the largest face
    with pytest.raises(ValueError, match="refine"):
        photo_key(photo, "m@1", "auto")  # type: ignore[arg-type]


def test_cache_round_trips_and_treats_damage_as_a_miss(tmp_path):
    cache = CodeCache(tmp_path / "codes")
    key = photo_key(b"x", "m", 0)
    assert cache.get(key) is None and key not in cache
    ws = torch.randn(1, 8, 16)
    path = cache.put(key, ws)
    assert key in cache and path.parent.name == key[:2]
    assert torch.equal(cache.get(key), ws[0])
    path.write_bytes(b"truncated")
    assert cache.get(key) is None
    np.save(path, np.full((8, 16), np.nan, np.float32))
    assert cache.get(key) is None
    with pytest.raises(ValueError, match="64 lowercase hex"):
        cache.get("../../etc/passwd")
    with pytest.raises(ValueError, match="finite"):
        cache.put(key, torch.full((8, 16), float("inf")))


def test_model_id_of_a_file_is_its_content_and_of_a_name_its_registry_hash(model_file, tmp_path):
    assert model_id(model_file) == f"file@{file_sha256(model_file)[:16]}"
    copy = tmp_path / "copy.pt"
    shutil.copy(model_file, copy)
    assert model_id(copy) == model_id(model_file)
    assert model_id(None).startswith("default@")
    with pytest.raises(UserError, match="not a file and not a known model"):
        model_id("no-such-model")


def test_second_encoding_is_a_cache_hit(model_file, tmp_path, monkeypatch):
    calls = []
    original = Encoder4Editing.encode

    def counting(self, images):
        calls.append(1)
        return original(self, images)

    monkeypatch.setattr(Encoder4Editing, "encode", counting)
    G = load_generator(model_file)
    cache = CodeCache(tmp_path / "codes")
    first = CachedEncoder(G, model_file, cache, refine=0)
    ws = first(HOPPER)
    assert ws.shape == (8, 16) and len(calls) == 1 and first.encoded == 1
    again = CachedEncoder(G, model_file, cache, refine=0)  # a new run: nothing loaded yet
    assert torch.equal(again(HOPPER), ws)
    assert len(calls) == 1 and again.encoded == 0 and again._E is None  # no encoder was even loaded
    # 'photo.jpg:N' is face N of the photo: its own key.
    assert again.key(f"{HOPPER}:1") == photo_key(HOPPER, model_id(model_file), 0, face_index=1) != again.key(HOPPER)
    other_steps = CachedEncoder(G, model_file, cache, refine=1)
    other_steps(HOPPER)
    assert len(calls) == 2  # different refinement, different code
