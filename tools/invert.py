"""Invert photos into StyleGAN W+ codes with an e4e encoder; save the code and its reconstruction."""

from __future__ import annotations

import argparse
import sys

from tools._cli import (add_compute_options, add_model_options, add_noise_option, add_refine_option, apply_threads,
                        report_folder, run_tool, stderr_logger)

EPILOG = """\
examples:
  python tools/invert.py photo.jpg -o out/
      -> out/photo_aligned.png, out/photo_reconstruction.png, out/photo_latent.npy
  python tools/invert.py a.jpg b.jpg --model e4e-ffhq -o latents/
  python tools/invert.py group.jpg --face-index 1 --weights model.pt -o out/
  python tools/invert.py holiday/ -o holiday_codes/
      -> every photo in holiday/; photos with no face are listed at the end;
         run it again after an interruption and finished photos are skipped

The .npy code ([num_ws, w_dim] float32) can replace the photo in
tools/interpolate.py, which then skips alignment and encoding. The
reconstruction shows how closely the generator reproduces the aligned face.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``sgm-invert``."""
    parser = argparse.ArgumentParser(prog="sgm-invert", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", nargs="+", metavar="PHOTO",
                        help="one or more photos, or one folder of photos (resumable)")
    parser.add_argument("-o", "--output", default=".", metavar="DIR",
                        help="output folder, created if missing (default: the current folder)")
    add_model_options(parser)
    parser.add_argument("--face-index", type=int, default=None, metavar="N",
                        help="which face in each photo, 0 = largest (default: 0); "
                             "for one photo only, write photo.jpg:N")
    add_noise_option(parser)
    add_refine_option(parser)
    add_compute_options(parser, quiet="print nothing on success")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the tool; returns the exit code (0 ok, 1 user error, 130 interrupted)."""
    return run_tool(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from encoders.morph import invert

    log = stderr_logger(args.quiet)
    apply_threads(args.threads)
    if any(Path(p).is_dir() for p in args.photos):
        return _run_folder(args, log)
    results = invert(args.photos, args.output, weights=args.weights or args.model, face_index=args.face_index,
                     device=args.device, noise_mode=args.noise_mode, refine=args.refine, log=log,
                     refine_budget=args.refine_budget, precision=args.precision)
    if not args.quiet:
        for r in results:
            print(f"wrote {r.aligned}, {r.reconstruction}, {r.latent}")


def _run_folder(args: argparse.Namespace, log) -> None:
    from encoders.batch_invert import invert_folder
    from stylegan.errors import UserError

    if len(args.photos) > 1:
        raise UserError("give one folder, or photos; not both or several folders")
    result = invert_folder(args.photos[0], args.output, weights=args.weights or args.model,
                           face_index=args.face_index, device=args.device, noise_mode=args.noise_mode,
                           refine=args.refine, progress=not args.quiet, log=log)
    report_folder(result, log, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
