"""tools/_cli: one-line errors that name flags, and SIGTERM/SIGHUP handled like Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal

import pytest

from stylegan.errors import UserError
from tools._cli import _translate, add_yes_option, flag_names, run_cli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fps", type=float)
    parser.add_argument("--face-index", type=int)
    parser.add_argument("-o", "--output")
    add_yes_option(parser)
    return parser


def test_flag_names_come_from_the_parser():
    assert flag_names(_parser()) == {"fps": "--fps", "face_index": "--face-index", "output": "--output",
                                     "yes": "--yes"}


def test_library_parameter_names_become_flags_but_paths_stay():
    flags = flag_names(_parser())
    assert _translate("fps must be above 0, got 0", flags) == "--fps must be above 0, got 0"
    assert (_translate("a.jpg: face index 3 is out of range; face_index applies to every photo", flags)
            == "a.jpg: face index 3 is out of range; --face-index applies to every photo")
    assert _translate("20000 frames is more than 10000; set yes=True to go ahead", flags) == \
        "20000 frames is more than 10000; set --yes to go ahead"
    assert _translate("output/fps is not a folder", flags) == "output/fps is not a folder"
    assert _translate("too few images; add some or choose another face_index", flags) == \
        "too few images; add some or choose another --face-index"
    assert _translate("my_face_index.png: no face", flags) == "my_face_index.png: no face"


@pytest.mark.parametrize("name,code", [("SIGTERM", 143), ("SIGHUP", 129), ("SIGINT", 130)])
def test_signals_end_like_ctrl_c_and_handlers_are_restored(name, code, capsys):
    """Issue 9.24: SIGTERM/SIGHUP must run the writers' cleanup (raised as a KeyboardInterrupt)."""
    cleaned = []

    def body() -> None:
        try:
            os.kill(os.getpid(), getattr(signal, name))
            pytest.fail("the signal did not interrupt")
        except KeyboardInterrupt:
            cleaned.append(True)
            raise

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    assert run_cli(body) == code
    assert cleaned == [True]
    assert capsys.readouterr().err == "interrupted\n"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == before


def test_user_error_is_one_line_with_flags(capsys):
    def body() -> None:
        raise UserError("fps must be a finite number of frames per second, got inf")

    assert run_cli(body, flags=_parser()) == 1
    assert capsys.readouterr().err == "error: --fps must be a finite number of frames per second, got inf\n"


def test_stderr_logger_prints_one_line_unless_quiet(capsys):
    from tools._cli import stderr_logger

    stderr_logger(False)("plan: 60 frames")
    stderr_logger(True)("never shown")
    out = capsys.readouterr()
    assert out.err == "plan: 60 frames\n" and out.out == ""
