"""The sgm-download tool: help, listing and fetching (offline, from a hand-placed file)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pretrained import WeightSpec, register, unregister
from tools.download import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Cache in tmp_path and downloads off: nothing here may use the network."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("STYLEGAN_MORPH_CACHE", str(cache))
    monkeypatch.setenv("STYLEGAN_MORPH_OFFLINE", "1")
    return cache


@pytest.fixture
def tiny_spec():
    """A small registered entry whose bytes the test knows."""
    body = b"tiny weights " * 1000
    spec = WeightSpec(
        name="tool-test-tiny",
        kind="toolkit",
        filename="tool_test_tiny.pt",
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        url="http://127.0.0.1:9/tool_test_tiny.pt",  # never contacted: offline
        license="test-only",
        source="tests/tools",
    )
    register(spec)
    yield spec, body
    unregister(spec.name)


def _place_by_hand(cache: Path, spec: WeightSpec, body: bytes) -> Path:
    """Put a file into the cache the way the offline error tells users to."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / spec.filename
    path.write_bytes(body)
    return path


@pytest.mark.parametrize("argv", [["--help"], ["list", "--help"], ["get", "--help"]])
def test_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "sgm-download get" in out


def test_runs_as_a_script_from_the_repo_root(_isolated: Path) -> None:
    env = {**os.environ, "STYLEGAN_MORPH_CACHE": str(_isolated), "STYLEGAN_MORPH_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "tools/download.py", "--help"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "usage: sgm-download" in res.stdout


def test_list_shows_every_entry_and_cache_state(
    tiny_spec: tuple[WeightSpec, bytes], _isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, body = tiny_spec
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "kind", "size", "cached", "licence"]
    rows = {ln.split()[0]: ln.split() for ln in lines[1:] if ln and not ln.startswith("cache:")}
    assert rows["e4e-ffhq"][:5] == ["e4e-ffhq", "e4e", "1.2", "GB", "no"]
    assert rows["stylegan2-ffhq-config-f"][2:5] == ["132.7", "MB", "no"]
    assert rows["stylegan2-ada-ffhq"][2:4] == ["?", "no"]  # unknown size shown as unknown
    assert rows[spec.name][4] == "no"
    assert lines[-1] == f"cache: {_isolated}"

    _place_by_hand(_isolated, spec, body)
    assert main(["list", "tool-test-*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:6] == [spec.name, "toolkit", "13.0", "KB", "yes", "test-only"]
    assert len([ln for ln in out if ln.startswith("tool-test")]) == 1


def test_list_without_matches_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "zzz*"]) == 1
    err = capsys.readouterr().err
    assert err == "error: no pretrained model matches 'zzz*'\n"


def test_get_prints_the_cached_path(
    tiny_spec: tuple[WeightSpec, bytes], _isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, body = tiny_spec
    _place_by_hand(_isolated, spec, body)
    assert main(["get", spec.name, "-q"]) == 0
    assert capsys.readouterr().out == f"{_isolated / spec.filename}\n"


def test_get_offline_says_where_to_put_the_file(
    tiny_spec: tuple[WeightSpec, bytes], _isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, _ = tiny_spec
    assert main(["get", spec.name, "-q"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"place it at {_isolated / spec.filename}" in lines[0]


def test_get_force_offline_keeps_the_cached_file(
    tiny_spec: tuple[WeightSpec, bytes], _isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, body = tiny_spec
    _place_by_hand(_isolated, spec, body)
    assert main(["get", spec.name, "--force", "-q"]) == 1
    assert "a fresh download was requested" in capsys.readouterr().err
    assert (_isolated / spec.filename).read_bytes() == body


def test_get_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown pretrained model 'nope'; known: ") and err.count("\n") == 1


def test_get_rejects_negative_retries(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["get", "e4e-ffhq", "--retries", "-1"])
    assert info.value.code == 2
    assert "must be >= 0" in capsys.readouterr().err


def test_get_with_a_read_only_cache_is_one_line(
    tiny_spec: tuple[WeightSpec, bytes], _isolated: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 9.6: a read-only STYLEGAN_MORPH_CACHE gave a PermissionError traceback (here and in --model)."""
    import tempfile

    spec, _ = tiny_spec
    _isolated.mkdir()
    monkeypatch.setenv("STYLEGAN_MORPH_OFFLINE", "0")  # online, so that a download would start

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")  # root ignores chmod, so simulate EACCES

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert main(["get", spec.name, "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert f"cannot write to the cache folder {_isolated} (Permission denied)" in err
    assert "STYLEGAN_MORPH_CACHE" in err
    assert list(_isolated.iterdir()) == []


def test_unreadable_cache_is_one_line(
    tiny_spec: tuple[WeightSpec, bytes], _isolated: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    spec, body = tiny_spec
    _place_by_hand(_isolated, spec, body)

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)  # hashing the cached file fails as on a 0o000 file
    monkeypatch.setattr(Path, "read_bytes", refuse)
    assert main(["get", spec.name, "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "cannot read the cache" in err
