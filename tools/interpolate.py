"""Morph between faces: invert photos with an e4e encoder and render a video through their codes."""

from __future__ import annotations

import argparse
import sys

from tools._cli import (add_batch_size_option, add_compute_options, add_model_options, add_noise_option,
                        add_path_options, add_refine_option, add_size_option, add_video_options, add_yes_option,
                        apply_threads, path_spec, render_spec, run_tool, stderr_logger)

EPILOG = """\
examples:
  python tools/interpolate.py face1.jpg face2.jpg --steps 60
      -> face1_to_face2.mp4 in the current folder
  python tools/interpolate.py a.jpg b.jpg c.jpg --loop --hold 15 --easing ease-in-out -o abc.gif
  python tools/interpolate.py a.jpg b.jpg --model e4e-ffhq --side-by-side --size 512 -o ab.mp4
  python tools/interpolate.py a.jpg b.jpg --schedule coarse-to-fine --save-latents -o frames/
  python tools/interpolate.py a_latent.npy b.jpg --weights model.pt     (latents from tools/invert.py)
  python tools/interpolate.py group.jpg:2 b.jpg -o ab.mp4     (the third-largest face of group.jpg)

Inputs are photos (the largest face is used; --face-index picks another) or .npy
W+ codes. The output type follows its name: .mp4 (H.264), .gif, or a folder of
PNG frames. Each transition has --steps frames including both faces, plus
--hold extra frames on every face. --schedule coarse-to-fine changes pose and
face shape first, then features, then colour. Output is written to a temporary
file and renamed at the end: an error, Ctrl-C, SIGTERM or SIGHUP leaves
nothing behind. An input is never overwritten; an existing frames folder is
replaced only if a previous render wrote it. Before rendering, the frame count,
an estimated time (one frame is measured) and disk use are printed; more than
10,000 frames or an estimated hour needs --yes.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``sgm-interpolate``."""
    parser = argparse.ArgumentParser(prog="sgm-interpolate", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="two or more photos and/or .npy latents; photo.jpg:N uses face N of that photo")
    parser.add_argument("-o", "--output", default=None,
                        help="video (.mp4/.gif) or frames folder (default: <face1>_to_<face2>.mp4 here)")
    add_model_options(parser)
    add_path_options(parser)
    add_video_options(parser)
    add_size_option(parser)
    parser.add_argument("--side-by-side", action="store_true",
                        help="show the current pair of input faces left and right of the morph")
    parser.add_argument("--save-latents", action="store_true",
                        help="also write each input's code as <output>_<input>.npy next to the output")
    parser.add_argument("--face-index", type=int, default=None, metavar="N",
                        help="which face in every photo, 0 = largest (default: 0); "
                             "for one photo only, write photo.jpg:N")
    add_noise_option(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed, used by --noise-mode random (default: 0)")
    add_batch_size_option(parser, 4, "frames synthesised together")
    add_refine_option(parser)
    add_yes_option(parser)
    add_compute_options(parser, quiet="no progress bar or messages")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the tool; returns the exit code (0 ok, 1 user error, 130 interrupted)."""
    return run_tool(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> None:
    import torch

    from encoders.morph import default_output_name, morph

    log = stderr_logger(args.quiet)
    torch.manual_seed(args.seed)
    apply_threads(args.threads)
    result = morph(
        args.inputs, args.output or default_output_name(args.inputs), path=path_spec(args),
        render=render_spec(args), weights=args.weights or args.model, side_by_side=args.side_by_side,
        save_latents=args.save_latents, face_index=args.face_index, device=args.device, refine=args.refine,
        refine_budget=args.refine_budget, progress=not args.quiet, log=log, yes=args.yes,
    )
    if not args.quiet:
        w, h = result.size
        print(f"wrote {result.output} ({result.frames} frames, {w}x{h}, {args.fps:g} fps, {result.seconds:.1f} s)")
        for path in result.latents:
            print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
