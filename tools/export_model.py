"""Re-save a model file (generator + encoder), optionally with float16 weights for a file half the size.

Training writes checkpoints (best.pt, last.pt) that carry everything a run needs; this
command writes the model file that the other tools load with ``--weights``. Buffers that renders
need exactly (stored noise, w_avg, latent_avg) stay float32; the loaders cast back to fp32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools._cli import run_tool

EPILOG = """examples:
  # the best checkpoint of a training run, with float16 weights (half the size):
  sgm-export-model runs/default/best.pt default.pt --fp16

  # a plain float32 copy:
  python tools/export_model.py runs/default/last.pt model.pt
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="a model file or training checkpoint (e.g. runs/default/best.pt)")
    p.add_argument("output", metavar="OUT", help="the model file to write (never the same file as MODEL)")
    p.add_argument("--fp16", action="store_true", help="store weights as float16 (half the size)")
    return p


def export(model: str, output: str, fp16: bool) -> int:
    """Check the paths, then write ``output`` with :func:`encoders.export.export_model`; print and return 0.

    Shared with ``train_encoder --export`` (deprecated), so both behave the same.
    """
    from encoders.export import export_model
    from stylegan.errors import UserError

    src, dst = Path(model), Path(output)
    if not src.is_file():
        raise UserError(f"{src}: no such model file")
    if dst.exists() and dst.resolve() == src.resolve():
        raise UserError(f"{dst}: the output would overwrite the input model; choose another OUT")
    size = export_model(src, dst, fp16=fp16)
    print(f"wrote {dst} ({size / 1e6:.1f} MB)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_tool(build_parser(), lambda args: export(args.model, args.output, args.fp16), argv)


if __name__ == "__main__":
    sys.exit(main())
