"""One command for the day a GPU is lent: build the CUDA ops strictly, run every GPU test, time cuda against fast.

The CUDA kernels compile without a GPU, and the CPU tests emulate their arithmetic, but
only a GPU runs them. This tool does the three checks that need one, in order, within
a time limit (default 9.5 minutes) so that it fits a short loan:

1. build the extension with ``STYLEGAN_MORPH_CUDA_STRICT=1`` in a child process (a
   failed build is an error, never a silent fallback; the build is cached for the rest);
2. ``pytest -m gpu`` over the repository's tests, strict as well;
3. :func:`stylegan.benchmark.run_benchmark` of the generator with the ``fast`` and
   ``cuda`` ops at 256 and 1024 px.

It prints a Markdown report ready for the README and exits 0 only if every step
passed. Without a visible GPU it stops at once with a one-line error (exit 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from tools._cli import run_tool

__all__ = ["main", "build_parser", "TestCounts", "StepResult", "parse_junit", "format_report"]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VARIANTS = ("fast-fp32", "cuda-fp32", "fast-fp16", "cuda-fp16")
STRICT_ENV = {"STYLEGAN_MORPH_CUDA_STRICT": "1"}
BENCH_RESERVE_S = 90.0  # kept back for the benchmark while the build and the tests run

EPILOG = """\
examples:
  sgm-gpu-check                                  # build, pytest -m gpu, benchmark at 256 and 1024 px
  python -m tools.gpu_check --output gpu-check.md  # from a checkout, without installing
  sgm-gpu-check --skip-tests --resolutions 1024 --repeats 3

The report is Markdown: paste it under "Ops, CUDA and speed" in the README. The exit
status is 0 only when the build, every GPU test and the benchmark succeeded; without a
visible GPU it is 1 with a one-line error. Set TORCH_CUDA_ARCH_LIST to build for other
architectures than the visible GPU's, CUDA_HOME to choose the toolkit.
"""


def _repeats(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be from 1 to 100, got {value}")
    return value


def _resolution(text: str) -> int:
    value = int(text)
    if value < 4 or value > 1024 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"must be a power of two from 4 to 1024, got {value}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 60 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 60 and 3600 seconds, got {value:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sgm-gpu-check", description=__doc__.splitlines()[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolutions", type=_resolution, nargs="+", default=[256, 1024], metavar="PX",
                   help="benchmark output sizes (default: 256 1024)")
    p.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), metavar="V",
                   help="benchmark variants IMPL-PRECISION (see sgm-bench); the first is the baseline "
                        f"(default: {' '.join(DEFAULT_VARIANTS)})")
    p.add_argument("--repeats", type=_repeats, default=5,
                   help="timed frames per variant, the median is reported (default: 5)")
    p.add_argument("--time-limit", type=_seconds, default=570.0, metavar="S",
                   help="stop (and fail) after this many seconds in all (default: 570)")
    p.add_argument("--tests", type=Path, default=REPO / "tests", metavar="DIR",
                   help="the test folder to run with -m gpu (default: the checkout's tests/)")
    p.add_argument("--skip-tests", action="store_true", help="do not run pytest -m gpu")
    p.add_argument("--skip-bench", action="store_true", help="do not run the benchmark")
    p.add_argument("-o", "--output", type=Path, default=None, metavar="PATH", help="also write the report to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr, only the report")
    return p


@dataclasses.dataclass(frozen=True)
class TestCounts:
    """What a pytest run reported (from its JUnit XML)."""

    passed: int
    failed: int
    errors: int
    skipped: int
    seconds: float
    failed_names: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0 and self.passed > 0


@dataclasses.dataclass(frozen=True)
class StepResult:
    """One step of the check: its name, whether it passed, a one-line summary and how long it took."""

    name: str
    ok: bool
    summary: str
    seconds: float


def parse_junit(path: Path) -> TestCounts:
    """Counts from pytest's ``--junitxml`` file (one ``testsuite``, possibly inside ``testsuites``)."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise ValueError(f"{path} holds no testsuite")
    total = int(suite.get("tests", 0))
    failed, errors, skipped = (int(suite.get(k, 0)) for k in ("failures", "errors", "skipped"))
    names = tuple(f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
                  if case.find("failure") is not None or case.find("error") is not None)
    return TestCounts(total - failed - errors - skipped, failed, errors, skipped, float(suite.get("time", 0.0)),
                      names)


def format_report(device: str, steps: Sequence[StepResult], bench_table: str | None, total_s: float) -> str:
    """The Markdown report: a summary table of the steps, then the benchmark table."""
    lines = [f"GPU check on {device} (`sgm-gpu-check`, {time.strftime('%Y-%m-%d')}):", "",
             "| step | result | time |", "|---|---|---:|"]
    for s in steps:
        lines.append(f"| {s.name} | {'ok' if s.ok else '**FAILED**'}: {s.summary} | {s.seconds:.0f} s |")
    lines.append(f"| total | {'ok' if steps and all(s.ok for s in steps) else '**FAILED**'} | {total_s:.0f} s |")
    if bench_table:
        lines += ["", "Seconds per frame of `G.synthesis` at batch 1 (random weights, FFHQ shapes), "
                      "median of the repeats; speed-up and PSNR against the first row of each resolution:", "",
                  bench_table]
    return "\n".join(lines)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def _build(deadline: float, env: dict[str, str]) -> StepResult:
    """Build (or reuse) the extension in a child process, so that the time limit can stop it."""
    code = ("from stylegan.ops import custom_ops; custom_ops.get_ops(); "
            "print(next(iter(custom_ops.loaded_plugins())))")
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=max(deadline - BENCH_RESERVE_S - time.monotonic(), 30.0))
    except subprocess.TimeoutExpired:
        return StepResult("strict build", False, "timed out", time.monotonic() - start)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith(("RuntimeError", "ImportError"))]
        return StepResult("strict build", False, errors[-1][:300] if errors else _last_line(done.stderr), seconds)
    from stylegan.ops import custom_ops

    nvcc = custom_ops.toolchain_versions()[0].split("release")[-1].split(",")[0].strip()
    return StepResult("strict build", True, f"arch {custom_ops.cuda_arch_list()}, nvcc {nvcc}", seconds)


def _run_tests(tests: Path, deadline: float, env: dict[str, str]) -> StepResult:
    """``pytest -m gpu`` in a child process, counted from its JUnit XML."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sgm-gpu-check-") as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                   f"--junitxml={junit}", str(tests)]
        try:
            done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                                  timeout=max(deadline - BENCH_RESERVE_S - time.monotonic(), 30.0))
        except subprocess.TimeoutExpired:
            return StepResult("`pytest -m gpu`", False, "timed out", time.monotonic() - start)
        seconds = time.monotonic() - start
        if not junit.is_file():
            return StepResult("`pytest -m gpu`", False, f"pytest exited {done.returncode}: {_last_line(done.stdout)}",
                              seconds)
        counts = parse_junit(junit)
    summary = f"{counts.passed} passed, {counts.failed} failed, {counts.errors} errors, {counts.skipped} skipped"
    if counts.failed_names:
        summary += " (" + ", ".join(counts.failed_names[:5]) + (", ..." if len(counts.failed_names) > 5 else "") + ")"
    return StepResult("`pytest -m gpu`", counts.ok and done.returncode == 0, summary, seconds)


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``sgm-gpu-check``.

    Args:
        argv: Arguments without the program name; None reads ``sys.argv``.

    Returns:
        Exit status: 0 when every step passed, 1 on a failed step or a user error (no GPU), 130 when interrupted.
    """
    return run_tool(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    from stylegan.errors import UserError

    if not args.skip_tests and not args.tests.is_dir():
        raise UserError(f"no test folder at {args.tests}: run from a source checkout or pass --tests DIR")
    import torch

    if not torch.cuda.is_available():
        raise UserError("no CUDA GPU is visible (torch.cuda.is_available() is False); the GPU check needs one")
    from tqdm import tqdm

    from stylegan.benchmark import format_table, parse_variant, run_benchmark

    for v in args.variants:
        parse_variant(v)  # a bad spec fails now, not after the build and the tests
    start = time.monotonic()
    deadline = start + args.time_limit
    env = {**os.environ, **STRICT_ENV}
    device = f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    steps: list[StepResult] = []
    bench_table = None
    stages = ["build"] + ([] if args.skip_tests else ["tests"]) + ([] if args.skip_bench else ["benchmark"])
    bar = tqdm(stages, desc="gpu check", unit="step", disable=args.quiet, file=sys.stderr)
    for stage in bar:
        bar.set_postfix_str(stage)
        if stage == "build":
            steps.append(_build(deadline, env))
            if not steps[-1].ok:
                break  # nothing else can run on the kernels
        elif stage == "tests":
            steps.append(_run_tests(args.tests, deadline, env))
        elif time.monotonic() > deadline - 30:
            steps.append(StepResult("benchmark", False, "no time left", 0.0))
        else:
            t0 = time.monotonic()
            previous = os.environ.get("STYLEGAN_MORPH_CUDA_STRICT")
            os.environ.update(STRICT_ENV)  # this process's own cuda variants must not fall back either
            try:
                results = run_benchmark(args.resolutions, args.variants, repeats=args.repeats, warmup=1,
                                        device="cuda", progress=None if args.quiet else tqdm.write)
            except RuntimeError as err:
                steps.append(StepResult("benchmark", False, _last_line(str(err)), time.monotonic() - t0))
            else:
                bench_table = format_table(results)
                res = ", ".join(f"{r} px" for r in args.resolutions)
                steps.append(StepResult("benchmark", True, f"{len(results)} runs at {res}",
                                        time.monotonic() - t0))
            finally:
                if previous is None:
                    os.environ.pop("STYLEGAN_MORPH_CUDA_STRICT", None)
                else:
                    os.environ["STYLEGAN_MORPH_CUDA_STRICT"] = previous
    bar.close()
    total = time.monotonic() - start
    if total > args.time_limit:
        steps.append(StepResult("time limit", False, f"took longer than {args.time_limit:.0f} s", 0.0))
    report = format_report(device, steps, bench_table, total)
    print(report)
    if args.output:
        from stylegan.fileio import atomic_write_text

        args.output.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.output, report + "\n")
    return 0 if all(s.ok for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
