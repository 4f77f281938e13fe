"""The shared options of tools/_cli: one --device, one --batch-size (old --batch still accepted)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from tools._cli import DEVICE_CHOICES, add_batch_size_option, add_device_option

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
