"""The shared options of tools/_cli: one --device, one --batch-size (old --batch still accepted)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from tools._cli import (DEVICE_CHOICES, add_batch_size_option, add_compute_options, add_device_option, path_spec,
                        refine_steps, render_spec, threads_value)

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def test_device_option_takes_the_shared_choices():
    parser = argparse.ArgumentParser()
    add_device_option(parser)
    assert parser.parse_args([]).device == "auto"
    for name in DEVICE_CHOICES:
        assert parser.parse_args(["--device", name]).device == name
    with pytest.raises(SystemExit):
        parser.parse_args(["--device", "tpu"])


def test_old_batch_spelling_lands_in_batch_size_and_is_hidden():
    parser = argparse.ArgumentParser()
    add_batch_size_option(parser, 16, "images per step", old_batch=True)
    assert parser.parse_args([]).batch_size == 16
    assert parser.parse_args(["--batch-size", "3"]).batch_size == 3
    assert parser.parse_args(["--batch", "5"]).batch_size == 5
    help_text = parser.format_help()
    assert "--batch-size" in help_text and not re.search(r"--batch\b(?!-)", help_text)


def test_no_tool_declares_device_or_batch_by_hand():
    for path in TOOLS.glob("*.py"):
        if path.name == "_cli.py":
            continue
        text = path.read_text()
        assert 'add_argument("--device"' not in text, path.name
        assert not re.search(r'add_argument\("--batch(-size)?"', text), path.name


def test_choice_copies_match_the_library():
    """tools/_cli keeps torch-free copies of the library's choices; they must not drift."""
    from stylegan import interpolation, networks, precision
    from tools import _cli

    assert _cli.PRECISION_CHOICES == tuple(precision.PRECISIONS)
    assert _cli.NOISE_MODE_CHOICES == tuple(networks.NOISE_MODES)
    assert _cli.EASING_CHOICES == tuple(interpolation.EASINGS)
    assert _cli.KIND_CHOICES == tuple(interpolation.KINDS)
    assert _cli.SCHEDULE_CHOICES == tuple(interpolation.SCHEDULES)


def test_no_tool_types_out_library_choices():
    literal = re.compile(r'choices=[(\[][^)\]]*"(const|ease-in-out|slerp|coarse-to-fine|bf16)"')
    for path in TOOLS.glob("*.py"):
        if path.name != "_cli.py":
            assert not literal.search(path.read_text()), path.name


# ----------------------------------------------------------------------------- issue 8 items 3-4


def _tool_sources() -> list[Path]:
    return sorted(p for p in TOOLS.glob("*.py") if not p.name.startswith("_"))


def test_every_tool_main_goes_through_run_tool():
    """One runner: every tool parses and runs through tools._cli.run_tool (flags named in messages)."""
    import ast

    for path in _tool_sources():
        tree = ast.parse(path.read_text())
        main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
        calls = {n.func.id for n in ast.walk(main) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert "run_tool" in calls, f"{path.name}: main() does not call run_tool"


def test_an_output_option_is_always_dash_o():
    import importlib

    for path in _tool_sources():
        module = importlib.import_module(f"tools.{path.stem}")
        for action in module.build_parser()._actions:
            if "--output" in action.option_strings:
                assert "-o" in action.option_strings, path.name


def test_compute_options_end_every_computing_tool_the_same_way():
    parser = argparse.ArgumentParser()
    add_compute_options(parser, quiet="say nothing", device=False)
    args = parser.parse_args(["--precision", "bf16", "--threads", "2", "-q"])
    assert (args.precision, args.threads, args.quiet) == ("bf16", 2, True) and not hasattr(args, "device")
    assert "say nothing" in parser.format_help()


def test_specs_are_built_from_the_shared_flags():
    from stylegan.specs import PathSpec, RenderSpec
    from tools.interpolate import build_parser

    args = build_parser().parse_args(["a.jpg", "b.jpg", "--steps", "9", "--hold", "2", "--easing", "cosine",
                                      "--schedule", "coarse-to-fine", "--loop", "--fps", "12", "--crf", "20",
                                      "--size", "128", "--batch-size", "3", "--noise-mode", "none",
                                      "--precision", "fp32"])
    assert path_spec(args) == PathSpec(steps=9, hold=2, easing="cosine", schedule="coarse-to-fine", loop=True)
    assert render_spec(args) == RenderSpec(fps=12, crf=20, size=128, batch_size=3, noise_mode="none",
                                           precision="fp32")
    assert path_spec(args, kind="slerp").kind == "slerp"  # a tool may fix a field it does not offer


def test_a_library_message_from_a_spec_names_the_flag(capsys):
    from tools.generate import main

    assert main(["--interp", "--seeds", "0,1", "--hold", "-1", "-q"]) == 1
    assert capsys.readouterr().err.strip() == "error: --hold must be 0 or more frames and at most 1,000,000, got -1"


@pytest.mark.parametrize("parse, good, bad", [
    (refine_steps, {"auto": "auto", "0": 0, "250": 250}, {"-1": "steps must be >= 0", "x": "number of steps"}),
    (threads_value, {"auto": "auto", "1": 1, "1024": 1024},
     {"0": "threads must be from 1 to 1024", "1025": "from 1 to 1024", "2.5": "number of threads"}),
])
def test_auto_or_count_options(parse, good, bad):
    for text, value in good.items():
        assert parse(text) == value
    for text, message in bad.items():
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            parse(text)
