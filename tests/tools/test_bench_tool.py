"""tools/bench.py: --help works and a tiny run reports every variant with ratios and PSNR."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_help_shows_examples():
    done = subprocess.run([sys.executable, "tools/bench.py", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "examples:" in done.stdout and "--resolutions" in done.stdout


def test_tiny_run_reports_ratios_and_psnr(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "tools/bench.py", "--resolutions", "16", "--repeats", "1", "--warmup", "0",
                           "--variants", "ref-fp32", "fast-fp32", "fast-bf16", "--json", str(out), "-q"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = {r["variant"]: r for r in json.loads(out.read_text())["results"]}
    assert set(rows) == {"ref-fp32", "fast-fp32", "fast-bf16"}
    assert rows["ref-fp32"]["speedup"] == 1.0
    assert all(r["seconds"] > 0 and r["speedup"] > 0 for r in rows.values())
    # fast fp32 is the same math as ref; bf16 is close but visibly not identical.
    assert rows["fast-fp32"]["psnr_db"] > 80
    assert 25 < rows["fast-bf16"]["psnr_db"] < 80
    assert "| 16 | fast-fp32 |" in done.stdout
