"""Crop a face from a photo the way FFHQ was cropped (input for the e4e encoder)."""

from __future__ import annotations

import argparse
import sys

from tools._cli import add_compute_options, apply_threads, run_tool

EPILOG = """\
examples:
  python tools/align.py photo.jpg -o aligned.png
  python tools/align.py group.jpg --list
  python tools/align.py group.jpg --face-index 2 --size 256 -o third_face.png

Faces are numbered by size, largest first; the largest is used by default.
Alignment follows the FFHQ recipe (dlib 68-point landmarks, eyes and mouth
placed where StyleGAN's training faces have them).
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``sgm-align``."""
    parser = argparse.ArgumentParser(
        prog="sgm-align",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("photo", help="input photo (JPEG, PNG, ...)")
    parser.add_argument("-o", "--output", help="where to write the aligned face (.png or .jpg); "
                        "required unless --list")
    parser.add_argument("--face-index", type=int, default=None, metavar="N",
                        help="which face to crop, 0 = largest (default: 0)")
    parser.add_argument("--size", type=int, default=1024,
                        help="output side in pixels (default: 1024, as FFHQ; the encoder reads 256)")
    parser.add_argument("--transform-size", type=int, default=None, metavar="PX",
                        help="intermediate warp size, downscaled to --size (default: 4096, as NVIDIA's FFHQ recipe; "
                             "4 x --size is faster and within 3 grey levels)")
    parser.add_argument("--list", action="store_true",
                        help="print the faces found (index, box, area, score) and exit")
    add_compute_options(parser, quiet="print nothing on success", device=False, precision=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the tool; returns the exit code (0 ok, 1 user error, 130 interrupted)."""
    parser = build_parser()
    return run_tool(parser, lambda args: _run(args, parser), argv)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not args.list and not args.output:
        parser.error("-o/--output is required (or use --list)")

    apply_threads(args.threads)
    from stylegan.fileio import check_input_file, check_not_input
    from stylegan.limits import check_size
    from stylegan.imageio import check_image_name, save_image
    from stylegan.video import check_output_path

    # Every option and path first: nothing is decoded before they are all right.
    check_input_file(args.photo, "photo")
    if not args.list:
        check_size(args.size, "size")
        if args.transform_size is not None:
            check_size(args.transform_size, "transform_size")
        check_image_name(args.output)
        check_output_path(args.output, kind="image")
        check_not_input(args.output, [args.photo])
    # Imported here so that --help works even when dlib is broken.
    from encoders.align import align_face, detect_faces

    if args.list:
        faces = detect_faces(args.photo)
        print(f"{args.photo}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
        for i, face in enumerate(faces):
            left, top, right, bottom = face.box
            print(f"  {i}: box=({left}, {top}, {right}, {bottom}) "
                  f"area={face.area} score={face.score:.2f}")
        return
    image = align_face(args.photo, output_size=args.size, face_index=args.face_index,
                       transform_size=args.transform_size)
    save_image(image, args.output)
    if not args.quiet:
        print(f"wrote {args.output} ({args.size}x{args.size})")


if __name__ == "__main__":
    sys.exit(main())
