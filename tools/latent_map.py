"""Map a folder of faces: encode photos (cached), project their W+ codes to 2-D, draw thumbnails at the points."""

from __future__ import annotations

import argparse
import sys

from tools._cli import (add_batch_size_option, add_compute_options, add_model_options, add_refine_option, apply_threads,
                        report_folder, run_tool, stderr_logger)

EPILOG = """\
examples:
  python tools/latent_map.py faces/ -o faces_map.png
      -> faces_map.png (PCA | t-SNE panels) and faces_map.csv (coordinates)
  python tools/latent_map.py faces/ --labels labels.csv --label-column gender -o by_gender.png
  python tools/latent_map.py codes/ --methods pca -o pca.png         (a folder of .npy codes)
  python tools/latent_map.py faces/ --methods pca,tsne,umap          (UMAP: pip install umap-learn)

Photos are encoded once: their codes are cached by the sha256 of the photo's
bytes, the model and the --refine steps (in $STYLEGAN_MORPH_CACHE/codes, else
~/.cache/stylegan-morph/codes), so a second run encodes nothing. Photos without
a face are listed and left out. The labels CSV needs a header with a file-name
column (file, filename, name, path, image or photo) matched by base name or
stem. Thumbnails are the codes rendered by the generator.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``sgm-latent-map``."""
    parser = argparse.ArgumentParser(prog="sgm-latent-map", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", metavar="DIR", help="a folder of photos and/or .npy codes")
    parser.add_argument("-o", "--output", default=None, metavar="PNG",
                        help="the map (default: <DIR name>_map.png in the current folder)")
    parser.add_argument("--csv", default=None, metavar="PATH", help="coordinates CSV (default: the PNG's name .csv)")
    parser.add_argument("--methods", default="pca,tsne", metavar="LIST",
                        help="comma-separated: pca, tsne, umap (default: pca,tsne)")
    parser.add_argument("--labels", default=None, metavar="CSV", help="a CSV with a label per file")
    parser.add_argument("--label-column", default=None, metavar="NAME", help="the column that colours the faces")
    add_model_options(parser)
    add_refine_option(parser, budget=False)  # codes are cached by their step count
    parser.add_argument("--face-index", type=int, default=None, metavar="N",
                        help="which face in each photo, 0 = largest (default: 0)")
    parser.add_argument("--cache-dir", default=None, metavar="DIR",
                        help="where codes are cached (default: the code cache beside the weights cache)")
    parser.add_argument("--no-cache", action="store_true", help="encode every photo, keep no codes")
    parser.add_argument("--thumb-size", type=int, default=48, metavar="PX", help="thumbnail side (default: 48)")
    parser.add_argument("--max-thumbnails", type=int, default=400, metavar="N",
                        help="at most N thumbnails, the other faces are dots (default: 400)")
    parser.add_argument("--seed", type=int, default=0, help="random state of t-SNE/UMAP (default: 0)")
    add_batch_size_option(parser, 8, "codes rendered together")
    add_compute_options(parser, quiet="no progress bars or messages", precision=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the tool; returns the exit code (0 ok, 1 user error, 130 interrupted)."""
    return run_tool(build_parser(), _run, argv)  # the library's parameter names are shown as flags


def _run(args: argparse.Namespace) -> None:
    from pathlib import Path

    from stylegan.errors import UserError

    log = stderr_logger(args.quiet)
    apply_threads(args.threads)
    if args.no_cache and args.cache_dir:
        raise UserError("--no-cache and --cache-dir contradict each other")
    if (args.labels is None) != (args.label_column is None):
        raise UserError("--labels and --label-column go together")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_thumbnails < 0:
        raise UserError(f"--max-thumbnails must be 0 or more, got {args.max_thumbnails}")
    if not 8 <= args.thumb_size <= 256:
        raise UserError(f"--thumb-size must be 8 to 256 pixels, got {args.thumb_size}")
    methods = [m.strip().lower().replace("-", "") for m in args.methods.split(",") if m.strip()]
    from encoders.latent_map import METHODS, latent_map

    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise UserError(f"--methods: unknown {bad[0] if bad else 'empty list'!r}; choose from {', '.join(METHODS)}")
    output = args.output or f"{Path(args.folder.rstrip('/')).name or 'faces'}_map.png"
    cache = False if args.no_cache else (args.cache_dir or True)
    result = latent_map(args.folder, output, csv_path=args.csv, methods=methods, labels_csv=args.labels,
                        label_column=args.label_column, weights=args.weights or args.model, cache=cache,
                        refine=args.refine, face_index=args.face_index, thumb_size=args.thumb_size,
                        max_thumbnails=args.max_thumbnails, batch_size=args.batch_size, seed=args.seed,
                        device=args.device, progress=not args.quiet, log=log)
    report_folder(result, log, args.quiet, left_out="left out")


if __name__ == "__main__":
    sys.exit(main())
