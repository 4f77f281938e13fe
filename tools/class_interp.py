"""Label versus noise: interpolate a class-conditional generator three ways, as a grid and a video.

Rows of the grid (and panels of the video, left to right):
  label  z fixed (first seed), the label moves from class --from to class --to
  noise  the label fixed at --from, z moves from the first seed to the second
  both   label and noise move together
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tools._cli import (add_batch_size_option, add_compute_options, add_video_options, apply_threads, render_spec,
                        run_tool)

DEMO_MODEL = "cond-faces32-gender"

EPILOG = f"""\
examples:
  python tools/class_interp.py --from female --to male -o label_vs_noise.png
      -> label_vs_noise.png (3 rows x 8 steps) and label_vs_noise.mp4
  python tools/class_interp.py --weights runs/cond/best.pt --seeds 3,7 --steps 10 --size 128 \\
      --video lvn.gif -o lvn.png
  python tools/class_interp.py --weights cifar10.pkl --from 3 --to 5 --no-video -o cat_dog.png

Classes are given by the names saved with the weights (our format) or by index
(NVIDIA .pkl files carry no names). Seeds give z as in tools/generate.py. The
default model is the shipped demo, {DEMO_MODEL} (32 px faces, female/male).
"""


def _two_seeds(text: str) -> list[int]:
    from tools.generate import parse_seeds

    seeds = parse_seeds(text)
    if len(seeds) != 2:
        raise argparse.ArgumentTypeError(f"need exactly two seeds (z1,z2), got {text!r}")
    return seeds


def add_conditional_model_options(parser: argparse.ArgumentParser) -> None:
    """``--weights PATH | --model NAME`` for the tools that need a class-conditional generator."""
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--weights", metavar="PATH", help="a class-conditional generator file (ours or NVIDIA .pkl)")
    model.add_argument("--model", metavar="NAME", help=f"a registered model name (default: {DEMO_MODEL})")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``sgm-class-interp``."""
    p = argparse.ArgumentParser(prog="sgm-class-interp", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_conditional_model_options(p)
    p.add_argument("--from", dest="class_a", default="0", metavar="CLASS",
                   help="start class, a name or an index (default: 0)")
    p.add_argument("--to", dest="class_b", default="1", metavar="CLASS", help="end class (default: 1)")
    p.add_argument("--seeds", type=_two_seeds, default=[0, 1], metavar="S1,S2", help="z1 and z2 (default: 0,1)")
    p.add_argument("--trunc", type=float, default=1.0, metavar="PSI", help="truncation psi (default: 1.0)")
    p.add_argument("--steps", type=int, default=8, help="grid columns per path, both ends included (default: 8)")
    p.add_argument("-o", "--output", default="class_interp.png", help="grid image (default: class_interp.png)")
    p.add_argument("--video", default=None, metavar="PATH",
                   help="video (.mp4/.gif) or frames folder (default: the grid's name with .mp4)")
    p.add_argument("--no-video", action="store_true", help="write the grid only")
    p.add_argument("--frames", type=int, default=60, help="video frames per path, both ends included (default: 60)")
    add_video_options(p)
    p.add_argument("--size", type=int, default=None, metavar="PX",
                   help="side of each face in pixels (default: the generator's resolution, at least 128)")
    add_batch_size_option(p, 8, "faces synthesised together")
    add_compute_options(p, quiet="no progress bar or summary", precision=False)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the tool; returns the exit code (0 ok, 1 user error, 130 interrupted)."""
    return run_tool(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    import math

    import numpy as np

    from stylegan import load_generator
    from stylegan.conditional import MODES, class_index, class_interp_ws, require_conditional
    from stylegan.errors import UserError
    from stylegan.fileio import check_not_input, same_file
    from stylegan.imageio import image_grid, save_image
    from stylegan.render import render_frames, render_images, resolve_device, seeds_to_z
    from stylegan.video import check_image_name, check_output_path, open_writer, output_kind

    start = time.perf_counter()
    apply_threads(args.threads)
    if args.steps < 2 or args.steps > 64:
        raise UserError(f"--steps must be from 2 to 64, got {args.steps}")
    if args.frames < 2 or args.frames > 10_000:
        raise UserError(f"--frames must be from 2 to 10000, got {args.frames}")
    if args.size is not None and not 8 <= args.size <= 1024:
        raise UserError(f"--size must be from 8 to 1024 pixels, got {args.size}")
    render_spec(args)  # fps, crf and batch_size, before any work
    if not math.isfinite(args.trunc):
        raise UserError(f"--trunc must be a finite number, got {args.trunc}")
    check_image_name(args.output)
    grid_path = check_output_path(args.output, kind="image")
    video = None
    if not args.no_video:
        video = Path(args.video) if args.video else grid_path.with_suffix(".mp4")
        check_output_path(video, output_kind(video))
        if same_file(video, grid_path):
            raise UserError("the video and the grid must be different files")
    if args.weights:
        for out in (grid_path, video):
            if out is not None:
                check_not_input(out, [args.weights])
    device = resolve_device(args.device)
    G = load_generator(args.weights or args.model or DEMO_MODEL, device=device)
    require_conditional(G)
    a, b = class_index(G, args.class_a), class_index(G, args.class_b)
    size = args.size or max(G.img_resolution, 128)
    z = seeds_to_z(args.seeds, G.z_dim)
    names = tuple(G.class_names) or tuple(str(i) for i in range(G.c_dim))

    ws = class_interp_ws(G, z, a, b, args.steps, args.trunc)
    rows = [render_images(G, ws[m], batch_size=args.batch_size, size=size) for m in MODES]
    save_image(image_grid(np.concatenate(rows), cols=args.steps, pad=2), grid_path)
    summary = f"grid {grid_path} (rows: {', '.join(MODES)}; {names[a]} -> {names[b]}, seeds {args.seeds[0]} -> " \
              f"{args.seeds[1]})"
    if video is not None:
        ws = class_interp_ws(G, z, a, b, args.frames, args.trunc)
        # Interleave the paths so that each consecutive triple of rendered faces is one frame.
        codes = _interleave([ws[m] for m in MODES])
        faces = render_frames(G, codes, batch_size=args.batch_size, size=size, progress=not args.quiet,
                              desc="rendering video")
        with open_writer(video, fps=args.fps, crf=args.crf) as writer:
            for _ in range(args.frames):
                writer.write(image_grid([next(faces) for _ in MODES], cols=len(MODES), pad=2))
        summary += f", video {video} ({args.frames} frames)"
    if not args.quiet:
        print(f"wrote {summary} in {time.perf_counter() - start:.1f} s")
    return 0


def _interleave(paths: list) -> "torch.Tensor":  # noqa: F821 (torch is imported lazily)
    """P tensors [N, num_ws, w_dim] -> [N*P, num_ws, w_dim], the paths' i-th codes side by side."""
    import torch

    return torch.stack(paths, dim=1).flatten(0, 1)


if __name__ == "__main__":
    sys.exit(main())
