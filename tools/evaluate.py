"""Measure inversion quality (MSE, MS-SSIM, dlib identity distance) on photos, and face stability in a morph.

Each photo is FFHQ-aligned at --size, inverted, rendered, upscaled to --size and
compared with the aligned photo. dlib's identity distance below 0.6 means "same
person" by dlib's convention.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from tools._cli import add_compute_options, add_model_options, add_refine_option, apply_threads, run_tool

EPILOG = """examples:
  python tools/evaluate.py test-photos/ --single-only --sheet sheet.png --json scores.json
  python tools/evaluate.py a.jpg b.jpg --weights e4e_ffhq_encode.pt
  python tools/evaluate.py --morph astronaut_to_grace_hopper.mp4
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", nargs="*", help="photos or folders of photos (files named *nonface* are skipped)")
    add_model_options(p)
    p.add_argument("--single-only", action="store_true",
                   help="for a folder with a SOURCES.md table (a table with file and content columns): only its single-face photos")
    p.add_argument("--size", type=int, default=256, help="evaluation size (default 256)")
    add_refine_option(p, budget=False)  # evaluation keeps a fixed step count per generator size
    p.add_argument("--sheet", help="write a contact sheet image, .png or .jpg (input | reconstruction)")
    p.add_argument("--json", help="write per-photo scores and the summary as JSON")
    p.add_argument("--morph", help="a morph video (or folder of frames): report the share of frames with exactly one face")
    add_compute_options(p, quiet="no progress bars", precision=False)
    return p


def _photos(args: list[str], single_only: bool = False) -> list[Path]:
    from encoders.evaluate import single_face_photos
    from stylegan.errors import UserError
    from stylegan.training.dataset import IMAGE_EXTS

    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir() and single_only:
            out += single_face_photos(p)
        elif p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_EXTS and "nonface" not in q.name)
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    return out


def _frames(path: str):
    from stylegan.errors import UserError

    p = Path(path)
    if p.is_dir():
        import numpy as np

        from encoders.images import load_image

        return [np.asarray(load_image(f)) for f in sorted(p.glob("*.png"))]
    if not p.is_file():
        raise UserError(f"{p}: no such video")
    if p.stat().st_size == 0:
        raise UserError(f"{p}: the file is empty (0 bytes), not a video")
    import imageio.v3 as iio

    try:
        frames = list(iio.imiter(p))
    except Exception as e:  # imageio raises several types, with several lines, for files it cannot read
        first = " ".join(str(e).split())[:160] or type(e).__name__
        raise UserError(f"{p}: not a video this tool can read (an MP4, a GIF or a folder of PNG frames; "
                        f"reader said: {first})") from None
    if not frames:
        raise UserError(f"{p}: the video has no frames")
    return frames


def main(argv: list[str] | None = None) -> int:
    return run_tool(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    apply_threads(args.threads)
    from encoders import load_encoder
    from encoders.refine import auto_refine_steps
    from encoders.evaluate import contact_sheet, evaluate_inversion, single_face_fraction, summarize
    from stylegan import load_generator
    from stylegan.errors import UserError
    from stylegan.fileio import atomic_write_text
    from stylegan.imageio import check_image_name, save_image

    if not args.photos and not args.morph:
        raise UserError("give photos to evaluate and/or --morph VIDEO")
    from stylegan.fileio import check_not_input

    photos = _photos(args.photos, args.single_only) if args.photos else []
    for out in (args.sheet, args.json):  # checked before any work: inputs are never overwritten
        if out:
            check_not_input(out, photos + ([Path(args.morph)] if args.morph else []))
    if args.sheet:
        check_image_name(args.sheet)  # the format comes from the name: refuse .xyz now, not after the work
    report: dict = {}
    if args.photos:
        from stylegan.render import resolve_device

        device = resolve_device(args.device)
        weights = args.weights or args.model
        E = load_encoder(weights, device=device).eval()
        G = load_generator(weights, device=device)
        scores, pairs = evaluate_inversion(photos, E, G, args.size, args.refine,
                                          progress=not args.quiet)
        summary = summarize(scores)
        report = {"summary": summary, "refine": args.refine, "photos": [s.as_dict() for s in scores]}
        print(f"{'photo':34s} {'MSE':>8s} {'MS-SSIM':>8s} {'ID dist':>8s}  note")
        for s in scores:
            note = s.error or ("" if s.face_found_in_reconstruction else "no face found in reconstruction")
            print(f"{s.name[:34]:34s} {s.mse:8.4f} {s.ms_ssim:8.3f} {s.id_distance:8.3f}  {note}")
        if not summary["evaluated"]:
            # Every photo failed: say so and exit non-zero, so that scripts notice (issue 9 item 23).
            raise UserError(f"none of the {len(scores)} photos could be evaluated; first error: {scores[0].error}"
                            if scores else "no photos to evaluate (empty folder?)")
        print(f"refinement: {args.refine} steps" if args.refine != "auto" else
              f"refinement: auto ({auto_refine_steps(G)} steps for this {G.img_resolution} px generator)")
        print(f"median over {summary['evaluated']} photos: MSE {summary['median_mse']:.4f}, "
              f"MS-SSIM {summary['median_ms_ssim']:.3f}, identity distance {summary['median_id_distance']:.3f} "
              f"({100 * summary['same_person_fraction']:.0f}% below 0.6)")
        if args.sheet:
            save_image(contact_sheet(pairs), args.sheet)
            print(f"contact sheet: {args.sheet}")
    if args.morph:
        frac, counts = single_face_fraction(_frames(args.morph), progress=not args.quiet)
        report["morph"] = {"video": args.morph, "frames": len(counts), "single_face_fraction": frac,
                           "face_counts": counts}
        print(f"{args.morph}: exactly one face in {sum(c == 1 for c in counts)}/{len(counts)} frames "
              f"({100 * frac:.1f}%)")
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2, default=lambda v: None if isinstance(v, float)
                                                and math.isnan(v) else v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
