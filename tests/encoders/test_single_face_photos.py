"""single_face_photos: which photos a folder's SOURCES.md table calls single-face, found by column name."""

from __future__ import annotations

from pathlib import Path

import pytest

from encoders.evaluate import single_face_photos
from stylegan.errors import UserError


def _folder(tmp_path: Path, table: str, files=("a.jpg", "b.jpg", "c.jpg", "d.jpg")) -> Path:
    for name in files:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "SOURCES.md").write_text(table, encoding="utf-8")
    return tmp_path


def test_columns_are_found_by_name_in_any_order(tmp_path):
    folder = _folder(tmp_path, "# Photos\n\nSome prose | with a bar.\n\n"
                     "| Content | note | File |\n|:---|---|---:|\n"
                     "| single, frontal | | a.jpg |\n| group (~8 faces) | | b.jpg |\n"
                     "| two faces | | c.jpg |\n| partly cut face | | d.jpg |\n| single | | missing.jpg |\n")
    assert [p.name for p in single_face_photos(folder)] == ["a.jpg", "d.jpg"]


def test_only_the_table_with_both_columns_counts_and_names_stay_inside(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.jpg").write_bytes(b"x")
    folder = _folder(tmp_path, "| file | licence |\n|---|---|\n| b.jpg | MIT |\n\n"
                     "| file | content |\n|---|---|\n| a.jpg | single |\n| sub/e.jpg | single |\n"
                     "| c.jpg | NO human face (dogs) |\n| d.jpg | crowd |\n")
    assert [p.name for p in single_face_photos(folder)] == ["a.jpg"]


@pytest.mark.parametrize("table, match", [
    (None, "no SOURCES.md"),
    ("| file | size |\n|---|---|\n| a.jpg | 10x10 |\n", "no table with 'file' and 'content' columns"),
])
def test_a_folder_without_the_table_is_one_clear_error(tmp_path, table, match):
    if table is not None:
        _folder(tmp_path, table)
    with pytest.raises(UserError, match=match):
        single_face_photos(tmp_path)
