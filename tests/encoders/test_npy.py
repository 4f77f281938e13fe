"""``.npy`` latents: the header is read and checked first (issue 9 items 5, 13 and 22)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from encoders.morph import MAX_LATENT_ABS, load_latent
from encoders.npy import read_npy
from stylegan.errors import UserError


def npy_with_header(path: Path, header: str, payload: bytes = b"") -> Path:
    """A version 1.0 ``.npy`` whose header dict is ``header`` verbatim (padded as numpy pads it)."""
    text = header + " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + payload)
    return path


def test_a_saved_latent_loads(tmp_path: Path) -> None:
    ws = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    np.save(tmp_path / "w.npy", ws)
    assert np.array_equal(load_latent(tmp_path / "w.npy", 4, 8).numpy(), ws)
    assert np.array_equal(load_latent(tmp_path / "w.npy").numpy(), ws)
    np.save(tmp_path / "f.npy", np.asfortranarray(ws.astype(np.float64)))
    assert np.allclose(load_latent(tmp_path / "f.npy", 4, 8).numpy(), ws)


def test_a_huge_shape_in_the_header_is_refused_before_reading(tmp_path: Path, refused_in_little_memory) -> None:
    """A 128-byte file claiming 8 TB: numpy's np.load once died with a MemoryError traceback."""
    path = npy_with_header(tmp_path / "huge.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2199023255552,), }")
    with pytest.raises(UserError, match="header claims 2,199,023,255,552 values.*at most 36"):
        load_latent(path, 4, 9)
    assert "header claims" in refused_in_little_memory(f"encoders.load_latent({str(path)!r})")


@pytest.mark.parametrize("content", [b"hello, I am text", pickle.dumps({"a": 1}), b"PK\x03\x04zip", b"\x93NUMP"])
def test_a_file_that_is_not_npy_never_gets_pickle_advice(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "code.npy"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_latent(path)
    msg = str(err.value)
    assert "not a .npy file" in msg and "pickle" not in msg.lower() and "\n" not in msg


@pytest.mark.parametrize("header, match", [
    ("{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", "plain numbers"),
    ("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", "plain numbers"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }", "not a valid .npy"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': ((((((1,),),),),),), }", "not a valid .npy"),
    ("{'descr': '<f4', 'fortran': 0, 'shape': (3,), }", "not a valid .npy"),
    ("[" * 300, "not a valid .npy"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 8), }", "cut short"),
])
def test_crafted_headers_are_one_line_user_errors(tmp_path: Path, header: str, match: str) -> None:
    path = npy_with_header(tmp_path / "x.npy", header, b"\0" * 12)
    with pytest.raises(UserError, match=match) as err:
        load_latent(path)
    assert "\n" not in str(err.value)


def test_empty_and_too_long_files(tmp_path: Path) -> None:
    (tmp_path / "e.npy").write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        load_latent(tmp_path / "e.npy")
    np.save(tmp_path / "w.npy", np.zeros((4, 8), np.float32))
    with open(tmp_path / "w.npy", "ab") as f:
        f.write(b"trailing")
    with pytest.raises(UserError, match="longer than its header says"):
        load_latent(tmp_path / "w.npy")


@pytest.mark.parametrize("value, match", [(np.nan, "NaN or infinite"), (np.inf, "NaN or infinite"),
                                          (1e30, "reach 1e\\+30"), (-2 * MAX_LATENT_ABS, "reach 2e\\+04")])
def test_non_finite_or_absurd_latents_are_refused(tmp_path: Path, value: float, match: str) -> None:
    ws = np.zeros((4, 8), np.float32)
    ws[1, 2] = value
    np.save(tmp_path / "w.npy", ws)
    with pytest.raises(UserError, match=match):
        load_latent(tmp_path / "w.npy", 4, 8)


def test_read_npy_limits_values_and_kinds(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(6, dtype=np.int16).reshape(2, 3))
    assert read_npy(tmp_path / "a.npy", max_values=6, kinds="i").tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(UserError, match="at most 5"):
        read_npy(tmp_path / "a.npy", max_values=5, kinds="i")
    with pytest.raises(UserError, match="plain numbers \\(floats\\)"):
        read_npy(tmp_path / "a.npy", max_values=6)
