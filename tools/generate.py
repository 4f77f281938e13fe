"""Random faces from a StyleGAN2 generator: a grid of seeds, or a video morphing between seeds."""

from __future__ import annotations

import argparse
import sys
import time

from stylegan.errors import UserError
from tools._cli import (add_batch_size_option, add_compute_options, add_noise_option, add_path_options, add_size_option,
                        add_video_options, add_yes_option, apply_threads, path_spec, render_spec, run_tool)

EPILOG = """\
examples:
  python tools/generate.py --weights ffhq.pkl --seeds 0-7 --trunc 0.7 -o grid.png
  python tools/generate.py --model stylegan2-ffhq-config-f --seeds 1,5,9 --cols 3 -o three.jpg
  python tools/generate.py --weights model.pt --interp --seeds 0,1,2 --steps 30 --loop -o seeds.mp4

Any supported weights file works: our own, rosinality .pt, e4e .pt (its
generator) or NVIDIA stylegan2-ada .pkl (read without running pickled code).
Seed s gives z = numpy.random.RandomState(s).randn(z_dim), as NVIDIA's scripts
do, so seeds name the same faces there. --interp slerps between the seeds' z
(z is Gaussian, so slerp keeps every frame a typical sample) and renders
--steps frames per pair with the generator's fixed noise (no flicker).
"""


MAX_SEEDS = 1_000_000  # a hard stop; --seeds 0-100000000 once took 4.8 GB before printing anything


def parse_seeds(text: str) -> list[int]:
    """``"0-7"``, ``"1,5,9"`` or a mix such as ``"0-3,10"`` -> a list of ints (order kept).

    Ranges are counted before they are expanded: more than :data:`MAX_SEEDS` seeds is refused.
    """
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                if len(seeds) + hi - lo + 1 > MAX_SEEDS:
                    raise argparse.ArgumentTypeError(f"{text!r} names more than {MAX_SEEDS} seeds")
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
                if len(seeds) > MAX_SEEDS:
                    raise argparse.ArgumentTypeError(f"{text!r} names more than {MAX_SEEDS} seeds")
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad seed list {text!r}; use e.g. 0-7 or 1,5,9") from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"bad seed list {text!r}; seeds are integers >= 0")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``sgm-generate``."""
    parser = argparse.ArgumentParser(prog="sgm-generate", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--weights", metavar="PATH", help="generator weights file (default: the default model)")
    model.add_argument("--model", metavar="NAME", help="a registered model name (see tools/download.py --list)")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-7"),
                        help="seeds, e.g. 0-7 or 1,5,9 (default: 0-7)")
    parser.add_argument("--trunc", type=float, default=1.0, metavar="PSI",
                        help="truncation psi: 1 = none, 0.7 = typical, 0 = the average face (default: 1.0)")
    parser.add_argument("-o", "--output", default=None,
                        help="grid image (.png/.jpg) or, with --interp, .mp4/.gif/folder "
                             "(default: seeds.png, or seeds.mp4 with --interp)")
    parser.add_argument("--cols", type=int, default=None, help="grid columns (default: about square)")
    add_size_option(parser, "face side")
    add_noise_option(parser)
    interp = parser.add_argument_group("interpolation video (--interp)")
    interp.add_argument("--interp", action="store_true", help="render a video through the seeds instead of a grid")
    add_path_options(interp, what="seed", kind=False, schedule=False)
    add_video_options(interp)
    add_batch_size_option(parser, 4, "faces synthesised together")
    add_yes_option(parser)
    add_compute_options(parser, quiet="no progress bar or summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the tool; returns the exit code (0 ok, 1 user error, 130 interrupted)."""
    return run_tool(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> None:
    start = time.perf_counter()  # before the imports: the summary's time includes loading torch
    from stylegan import load_generator
    from stylegan.fileio import check_not_input
    from stylegan.limits import RenderPlan, check_frame_count, check_grid, measure_generator
    from stylegan.imageio import check_image_name, image_grid, save_image
    from stylegan.render import render_seeds, render_video, resolve_device, seed_interpolation
    from stylegan.video import check_output_path, check_video_options, output_kind

    # Every option first: nothing is loaded before they are all right.
    output = args.output or ("seeds.mp4" if args.interp else "seeds.png")
    render = render_spec(args)
    if args.cols is not None and args.cols < 1:
        raise UserError(f"cols must be at least 1, got {args.cols}")
    if args.interp:
        if len(args.seeds) < 2:
            raise UserError("--interp needs at least 2 seeds, e.g. --seeds 0,1")
        path = path_spec(args, kind="slerp")  # z is Gaussian: slerp keeps every frame a typical sample
        kind = output_kind(output)
        check_video_options(kind, render.fps, render.crf)
        count = path.num_frames(len(args.seeds))
        check_frame_count(count, args.yes)
        check_output_path(output, kind)  # before the model loads
    else:
        kind, count = "image", len(args.seeds)
        check_frame_count(count, args.yes, what="faces")
        if args.size is not None:
            check_grid(count, args.size)
        check_image_name(output)
        check_output_path(output, kind="image")
    if args.weights:
        check_not_input(output, [args.weights])
    device = resolve_device(args.device)
    from stylegan.precision import check_precision

    check_precision(render.precision, device)  # "auto" is resolved for this model when it renders
    apply_threads(args.threads)
    G = load_generator(args.weights or args.model, device=device)
    side = args.size or G.img_resolution
    if not args.interp:
        check_grid(count, side)  # the whole grid is one image in memory
    plan = RenderPlan(count, side, side, "image" if not args.interp else kind, measure_generator(G, render.noise_mode),
                      unit="frames" if args.interp else "faces")
    if not args.quiet:
        print(f"plan: {plan.describe()}", file=sys.stderr)
    plan.check(args.yes)
    if args.interp:
        codes = seed_interpolation(G, args.seeds, path, args.trunc)
        count = render_video(G, codes, output, **render.video_options(), progress=not args.quiet)
        summary = f"{count} frames at {render.fps:g} fps"
    else:
        faces = render_seeds(G, args.seeds, args.trunc, **render.frame_options(), progress=not args.quiet)
        save_image(image_grid(faces, cols=args.cols), output)
        summary = f"{len(faces)} faces"
    if not args.quiet:
        print(f"wrote {output} ({summary}, {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
