"""tools/evaluate.py: per-photo scores, contact sheet, JSON, the morph face check and its errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from encoders import align_face
from encoders.evaluate import single_face_photos
from tests.helpers import ASTRONAUT, HOPPER
from tools.evaluate import main

pytestmark = pytest.mark.usefixtures("offline")  # no network, no user cache (tests/conftest.py)

FACES = Path(__file__).resolve().parents[3] / "shared" / "data" / "faces"


def test_scores_sheet_and_json(model_file, tmp_path, capsys):  # noqa: F811
    sheet, report = tmp_path / "sheet.png", tmp_path / "scores.json"
    code = main([str(HOPPER), str(ASTRONAUT), "--weights", str(model_file), "--sheet", str(sheet),
                 "--json", str(report), "-q"])
    assert code == 0
    data = json.loads(report.read_text())
    assert [p["name"] for p in data["photos"]] == ["grace_hopper.jpg", "astronaut.png"]
    for p in data["photos"]:
        assert 0 < p["mse"] < 1 and 0 <= p["ms_ssim"] < 1 and p["id_distance"] > 0  # random tiny model
    assert data["summary"]["evaluated"] == 2
    with Image.open(sheet) as im:
        assert im.size == (4 * 2 * 128, 128)  # one row: 2 pairs in a 4-pair-wide grid
    assert "median over 2 photos" in capsys.readouterr().out


def test_morph_check_counts_frames_with_one_face(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    align_face(HOPPER, output_size=256).save(frames / "frame_00000.png")
    Image.new("RGB", (256, 256), (90, 90, 90)).save(frames / "frame_00001.png")
    report = tmp_path / "m.json"
    assert main(["--morph", str(frames), "--json", str(report), "-q"]) == 0
    data = json.loads(report.read_text())["morph"]
    assert data["face_counts"] == [1, 0] and math.isclose(data["single_face_fraction"], 0.5)
    assert "exactly one face in 1/2 frames" in capsys.readouterr().out


def test_errors_are_one_line(tmp_path, capsys):
    assert main([]) == 1
    assert main([str(tmp_path / "nope.jpg")]) == 1
    assert main(["--morph", str(tmp_path / "nope.mp4")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)


@pytest.mark.skipif(not FACES.is_dir(), reason=f"{FACES} not present")
def test_single_face_selection_uses_the_sources_table():
    photos = {p.name for p in single_face_photos(FACES)}
    assert len(photos) == 22
    assert "fr_obama.jpg" in photos and "fr_obama_partial_face.jpg" in photos
    assert not any("nonface" in n or "group" in n or "crowd" in n for n in photos)


# ----------------------------------------------------------------------------- issue 9: items 15 and 23


@pytest.mark.parametrize("content, match", [
    (b"this is text, not a video\n", "not a video this tool can read"),
    (b"", "the file is empty (0 bytes)"),
])
def test_morph_check_of_a_non_video_is_one_line(tmp_path, capsys, content, match):
    path = tmp_path / "text.jpg"
    path.write_bytes(content)
    assert main(["--morph", str(path), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0]


def test_exit_code_is_non_zero_when_every_photo_failed(model_file, tmp_path, capsys):  # noqa: F811
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "IMG_1.heic").write_bytes(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64)
    code = main([str(tmp_path / "empty.jpg"), str(tmp_path / "IMG_1.heic"), "--weights", str(model_file), "-q"])
    captured = capsys.readouterr()
    assert code == 1
    assert "none of the 2 photos could be evaluated" in captured.err and "the file is empty" in captured.err
    assert "HEIC" in captured.out  # the table still says what went wrong with each photo


@pytest.mark.parametrize("flag", ["--sheet", "--json"])
def test_an_output_that_is_an_input_photo_is_refused_before_any_work(tmp_path, capsys, flag):
    photo = tmp_path / "me.png"
    Image.new("RGB", (32, 32), (120, 80, 60)).save(photo)
    before = photo.read_bytes()
    assert main([str(photo), flag, str(photo), "-q"]) == 1
    err = capsys.readouterr().err
    assert "inputs are never overwritten" in err and "Traceback" not in err
    assert photo.read_bytes() == before
