"""Seconds per frame of the generator for each op implementation and precision.

This tool only parses arguments; the work is done by :mod:`stylegan.benchmark`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from stylegan.errors import UserError
from stylegan.fileio import atomic_write_text
from stylegan.benchmark import default_variants, format_table, run_benchmark
from tools._cli import add_compute_options, add_refine_option, apply_threads, run_tool

__all__ = ["main", "build_parser"]

EPILOG = """\
examples:
  sgm-bench                                   # 256 and 1024 px, every CPU variant
  sgm-bench --resolutions 256 --repeats 3 -q
  python tools/bench.py --variants ref-fp32 fast-fp32 fast-bf16 --json bench.json
  sgm-bench --device cuda                     # adds the compiled CUDA ops (built on first use)
  sgm-bench --e2e --resolutions 256 1024 --threads 2   # two photos to a 60-step MP4, time per stage

Variants are IMPL-PRECISION[-cl]: IMPL is ref (readable reference ops), fast (the
PyTorch default) or cuda (compiled kernels); PRECISION is fp32, or bf16/fp16 through
torch.autocast; -cl runs channels_last. The first variant is the baseline of the
speed-up and PSNR columns. Weights are random with the official FFHQ shapes.
The table also gives each variant's GFLOP/s and its share of this machine's
3x3 conv rate in the same precision, measured in the same run.

--e2e times a whole morph instead (align, encode with the full IR-SE50, refine,
synthesis, MP4) of two photos (default: the bundled examples) with official-size
random weights built in memory, and prints where the time goes.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the epilog's layout and show defaults."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sgm-bench", description=__doc__.splitlines()[0], epilog=EPILOG,
                                formatter_class=_Formatter)
    p.add_argument("--resolutions", type=_positive_int, nargs="+", default=[256, 1024], metavar="PX",
                   help="output sizes (powers of two up to 1024)")
    p.add_argument("--variants", nargs="+", default=None, metavar="V",
                   help="variants to run (default: all that fit the device, ref-fp32 first)")
    p.add_argument("--repeats", type=_positive_int, default=5, help="timed frames per variant (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed frames per variant first")
    p.add_argument("--e2e", action="store_true", help="time a whole morph per resolution instead of frames")
    p.add_argument("--photos", nargs="+", type=Path, default=None, metavar="PHOTO",
                   help="--e2e: photos to morph (default: the two bundled examples)")
    p.add_argument("--steps", type=_positive_int, default=60, help="--e2e: frames per transition")
    add_refine_option(p)
    p.add_argument("-o", "--output", type=Path, default=Path("bench_e2e.mp4"), metavar="PATH",
                   help="--e2e: the video written (replaced at each resolution)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the latent")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results as JSON")
    add_compute_options(p, quiet="print only the table")
    return p


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=2))


def _e2e(args: argparse.Namespace, threads: int) -> int:
    import os

    from encoders.speed import format_e2e, run_e2e

    examples = Path(__file__).resolve().parents[1] / "pretrained" / "examples"
    photos = args.photos or sorted(p for p in examples.iterdir() if p.suffix.lower() in (".jpg", ".png"))[:2]
    if args.output.suffix.lower() != ".mp4":
        raise UserError("--output must be an .mp4 file")
    if any(args.output.resolve() == Path(p).resolve() for p in photos):
        raise UserError("--output may not be one of the photos")
    say = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    results = []
    for res in args.resolutions:
        results.append(run_e2e(photos, res, args.output, steps=args.steps, refine=args.refine,
                               refine_budget=args.refine_budget, precision=args.precision, seed=args.seed, log=say))
    print(f"{_cpu_name()}, {threads} thread(s), load average {os.getloadavg()[0]:.1f} at the end")
    print(format_e2e(results))
    if args.json:
        _write_json(args.json, {"e2e": [r.to_dict() for r in results], "threads": threads,
                                "torch": torch.__version__, "cpu": _cpu_name()})
    return 0


def _cpu_name() -> str:
    """The CPU's model name (Linux), else the platform's processor string, and whether it has native bf16."""
    import platform

    from stylegan.precision import cpu_has_native_bf16

    name = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return name + (" (native bf16: AMX or AVX512-BF16)" if cpu_has_native_bf16() else " (no native bf16)")


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``sgm-bench``.

    Args:
        argv: Arguments without the program name; None reads ``sys.argv``.

    Returns:
        Exit status: 0 on success, 1 on a user error, 130 when interrupted.
    """
    return run_tool(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    from stylegan.render import resolve_device

    device = resolve_device(args.device)
    threads = apply_threads(args.threads)
    if args.e2e:
        return _e2e(args, threads)
    variants = args.variants or default_variants(device)
    progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    results = run_benchmark(args.resolutions, variants, repeats=args.repeats, warmup=args.warmup,
                            device=device, seed=args.seed, progress=progress)
    print(format_table(results))
    import os

    print(f"{_cpu_name()}, {threads} thread(s), load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        _write_json(args.json, {
            "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "repeats": args.repeats, "warmup": args.warmup, "seed": args.seed, "batch": 1,
            "results": [r.to_dict() for r in results],
        })
    return 0


if __name__ == "__main__":
    sys.exit(main())
