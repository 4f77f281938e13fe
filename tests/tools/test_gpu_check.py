"""sgm-gpu-check: the no-GPU path for real, the rest of its flow with the GPU steps faked."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

import tools.gpu_check as gpu_check
from stylegan import benchmark
from stylegan.ops import custom_ops

def _refuse(*args, **kwargs):
    raise AssertionError("a GPU step ran")


def test_without_a_gpu_it_fails_at_once_with_one_line(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu_check.subprocess, "run", _refuse)
    assert gpu_check.main([]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: no CUDA GPU is visible")


def test_options_are_checked_before_any_work(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                            tmp_path: Path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu_check.subprocess, "run", _refuse)
    with pytest.raises(SystemExit):
        gpu_check.main(["--resolutions", "300"])
    with pytest.raises(SystemExit):
        gpu_check.main(["--time-limit", "5"])
    assert gpu_check.main(["--variants", "warp-fp32"]) == 1
    assert gpu_check.main(["--tests", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert "bad variant 'warp-fp32'" in err and "no test folder" in err


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="{failures}"
 skipped="0" tests="3" time="12.5"><testcase classname="tests.stylegan.test_ops_bias_act" name="test_a" time="1"/>
<testcase classname="tests.stylegan.test_ops_bias_act" name="test_b" time="1">{failure}</testcase>
<testcase classname="tests.stylegan.test_ops_upfirdn2d" name="test_c" time="1"/></testsuite></testsuites>"""


@pytest.mark.parametrize("failing", [False, True])
def test_the_whole_check_with_faked_gpu_steps(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                              tmp_path: Path, failing: bool) -> None:
    """Build and tests are child processes (faked here), the benchmark runs in process (faked too)."""
    commands = []

    def fake_run(command, cwd, env, **kwargs):
        commands.append((command, env))
        assert env["STYLEGAN_MORPH_CUDA_STRICT"] == "1" and kwargs["timeout"] > 0
        if "pytest" in command:
            junit = next(c for c in command if c.startswith("--junitxml=")).split("=", 1)[1]
            failure = '<failure message="boom">boom</failure>' if failing else ""
            Path(junit).write_text(JUNIT.format(failures=int(failing), failure=failure))
        return subprocess.CompletedProcess(command, int(failing and "pytest" in command), "", "")

    def fake_bench(resolutions, variants, repeats, warmup, device, progress):
        assert device == "cuda" and list(variants) == list(gpu_check.DEFAULT_VARIANTS)
        return [benchmark.BenchResult(r, v, 0.01 * (i + 1), [0.01], 1.0 / (i + 1), float("inf") if i == 0 else 60.0,
                                      0.0 if i == 0 else 1e-3)
                for r in resolutions for i, v in enumerate(variants)]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")
    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    monkeypatch.setattr(benchmark, "run_benchmark", fake_bench)
    monkeypatch.setattr(custom_ops, "toolchain_versions",
                        lambda *a: ("Cuda compilation tools, release 13.0, V13.0.88", "c++ 12"))
    monkeypatch.setattr(custom_ops, "cuda_arch_list", lambda: "9.0")
    monkeypatch.delenv("STYLEGAN_MORPH_CUDA_STRICT", raising=False)
    report = tmp_path / "report.md"
    assert gpu_check.main(["-q", "--output", str(report)]) == int(failing)
    out = capsys.readouterr().out
    assert report.read_text() == out
    assert len(commands) == 2 and "-m" in commands[1][0] and "gpu" in commands[1][0]
    assert "| strict build | ok: arch 9.0, nvcc 13.0 |" in out
    if failing:
        assert "**FAILED**: 2 passed, 1 failed, 0 errors, 0 skipped (tests.stylegan.test_ops_bias_act::test_b)" in out
    else:
        assert "| `pytest -m gpu` | ok: 3 passed, 0 failed, 0 errors, 0 skipped |" in out
    assert "| 1024 | cuda-fp32 |" in out and "| 256 | fast-fp32 |" in out
    assert "STYLEGAN_MORPH_CUDA_STRICT" not in os.environ  # restored after the benchmark


def test_a_failed_build_stops_the_check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "Traceback...\nRuntimeError: building the CUDA ops failed "
                                                           "(STYLEGAN_MORPH_CUDA_STRICT is set): nvcc fatal\n")

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    monkeypatch.setattr(benchmark, "run_benchmark", _refuse)
    assert gpu_check.main(["-q"]) == 1
    out = capsys.readouterr().out
    assert len(calls) == 1 and "| strict build | **FAILED**: RuntimeError: building the CUDA ops failed" in out
