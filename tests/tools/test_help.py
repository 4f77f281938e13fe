"""Every tool answers --help with examples, run as a script from the repository root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = sorted(p.stem for p in (REPO / "tools").glob("*.py") if not p.stem.startswith("_"))


def test_every_tool_is_a_console_entry_point():
    setup = (REPO / "setup.py").read_text()
    for name in TOOLS:
        assert f'"{name}"' in setup, f"tools/{name}.py has no console entry point in setup.py"


@pytest.mark.parametrize("tool", TOOLS)
def test_help(tool):
    done = subprocess.run([sys.executable, f"tools/{tool}.py", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "example" in done.stdout.lower()
