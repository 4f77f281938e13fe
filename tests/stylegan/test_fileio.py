"""stylegan.fileio: inputs are never outputs (paths, symlinks, hard links), regular-file inputs, one-line OS errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from stylegan.errors import UserError
from stylegan.fileio import (
    atomic_output,
    atomic_write_text,
    check_input_file,
    check_not_input,
    fit_name,
    make_temp,
    os_error_message,
    publish,
    same_file,
    temp_prefix,
)


def test_same_file_sees_through_symlinks_hard_links_and_dots(tmp_path):
    a = tmp_path / "a.jpg"
    a.write_bytes(b"photo")
    (tmp_path / "sym.jpg").symlink_to(a)
    os.link(a, tmp_path / "hard.jpg")
    (tmp_path / "sub").mkdir()
    assert same_file(a, tmp_path / "sym.jpg")
    assert same_file(a, tmp_path / "hard.jpg")
    assert same_file(a, tmp_path / "sub" / ".." / "a.jpg")
    assert same_file(tmp_path / "new.gif", tmp_path / "." / "new.gif")  # neither exists yet: same path
    (tmp_path / "b.jpg").write_bytes(b"photo")  # same bytes, another file
    assert not same_file(a, tmp_path / "b.jpg")


def test_check_not_input_names_the_input(tmp_path):
    a = tmp_path / "a.jpg"
    a.write_bytes(b"photo")
    os.link(a, tmp_path / "hard.gif")
    with pytest.raises(UserError, match="hard.gif: is the input .*a.jpg"):
        check_not_input(tmp_path / "hard.gif", [tmp_path / "b.jpg", a])
    check_not_input(tmp_path / "out.gif", [a])  # a new name is fine
    # A folder that will be replaced whole may not hold an input either.
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frame_00000.png").write_bytes(b"x")
    with pytest.raises(UserError, match="holds the input"):
        check_not_input(frames, [frames / "frame_00000.png"], folder=True)
    check_not_input(frames, [a], folder=True)


def test_non_regular_inputs_are_refused(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="pipe.jpg: is a FIFO"):
        check_input_file(fifo)
    with pytest.raises(UserError, match="is a folder"):
        check_input_file(tmp_path)
    with pytest.raises(UserError, match="file not found"):
        check_input_file(tmp_path / "gone.jpg")
    if Path("/dev/null").exists():
        with pytest.raises(UserError, match="not a regular file"):
            check_input_file("/dev/null")
    (tmp_path / "ok.jpg").write_bytes(b"x")
    assert check_input_file(tmp_path / "ok.jpg") == tmp_path / "ok.jpg"


def test_os_errors_read_as_their_cause():
    assert os_error_message(OSError(errno.ENOSPC, "No space left on device")) == "disk full (no space left on device)"
    assert "too long" in os_error_message(OSError(errno.ENAMETOOLONG, "File name too long"))
    assert os_error_message(OSError(errno.EACCES, "Permission denied")) == "Permission denied"


def test_fit_name_cuts_by_bytes_and_leaves_room_for_temp_names(tmp_path):
    assert fit_name("short", ".mp4", tmp_path) == "short.mp4"
    for stem in ("x" * 400, "\u00e9" * 400, "\U0001F600" * 100):  # 1-, 2- and 4-byte characters
        name = fit_name(stem, ".mp4", tmp_path)
        assert name.endswith(".mp4") and len(name.encode()) <= 255 - 32
        tmp = tmp_path / (temp_prefix(tmp_path / name) + "XXXXXXXX.tmp.mp4")
        tmp.write_bytes(b"")  # the writers' temporary name fits too
        (tmp_path / name).write_bytes(b"")


def test_atomic_output_turns_a_full_disk_into_one_line_and_keeps_the_old_file(tmp_path):
    dest = tmp_path / "report.json"
    dest.write_text("old")
    with pytest.raises(UserError, match=r"report.json: cannot write \(disk full") as err:
        with atomic_output(dest) as tmp:
            tmp.write_text("partial")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert "\n" not in str(err.value)
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
    with pytest.raises(UserError, match="file name too long"):
        with atomic_output(tmp_path / ("n" * 300 + ".json")):
            pytest.fail("must not start")
    with pytest.raises(ValueError):  # anything else is not a write error and keeps its type
        with atomic_output(dest):
            raise ValueError("bug")


def test_atomic_output_survives_ctrl_c_and_keeps_the_suffix(tmp_path):
    dest = tmp_path / "codes.npy"
    dest.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(dest) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".codes.npy.") and tmp.name.endswith(".tmp.npy")
            tmp.write_text("partial")
            raise KeyboardInterrupt
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["codes.npy"]


def test_atomic_write_text_replaces_with_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        assert atomic_write_text(tmp_path / "a.json", "{}\n") == tmp_path / "a.json"
        atomic_write_text(tmp_path / "a.json", "caf\u00e9")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == "caf\u00e9"
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize("folder", [False, True])
def test_make_temp_is_private_until_published(tmp_path, folder):
    dest = tmp_path / "out"
    tmp = make_temp(dest, ".tmp", folder=folder)
    assert tmp.name.startswith(".out.") and tmp.is_dir() == folder
    assert tmp.stat().st_mode & 0o077 == 0  # mkstemp/mkdtemp: nobody else may read it half-written
    old = os.umask(0o022)
    try:
        publish(tmp, dest, folder=folder)
    finally:
        os.umask(old)
    assert dest.stat().st_mode & 0o777 == (0o755 if folder else 0o644)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
