"""Edit faces in StyleGAN's W+ space: attribute directions, style mixing, vector arithmetic, sweeps and sheets."""

from __future__ import annotations

import argparse
import math
import re
import sys

from tools._cli import (add_batch_size_option, add_compute_options, add_model_options, add_path_options,
                        add_refine_option, add_size_option, add_video_options, apply_threads, path_spec, render_spec,
                        run_tool, stderr_logger)

EPILOG = """\
examples:
  python tools/edit.py --list-directions
  python tools/edit.py photo.jpg --direction age --strength 3
      -> photo_age+3.png (photos are encoded once; the code is cached)
  python tools/edit.py a.jpg b_latent.npy --direction gender --strength -2 --layers coarse,middle -o edited/
  python tools/edit.py photo.jpg --direction age --sweep --strength 3 -o age.mp4   (-3 .. +3 video)
  python tools/edit.py photo.jpg --mix other.jpg --layers coarse -o mixed.png      (pose/shape of other.jpg)
  python tools/edit.py --arith smiling_woman.jpg woman.jpg man.jpg -o smiling_man.png   (A - B + C)
  python tools/edit.py photo.jpg --direction my_direction.pt --strength 1.5 -o older.npy   (the edited code)
  python tools/edit.py seed:3 mean --direction pca0 --strength 2   (a random face, the mean face)
  python tools/edit.py a.jpg b.jpg --sheet --direction age --direction gender \\
      --arith a.jpg mean b.jpg --mix b.jpg -o sheet.png                          (a contact sheet)

Inputs are photos (aligned, encoded and refined as in tools/invert.py), .npy
codes from tools/invert.py, "mean" (the model's mean face) or "seed:N" (a
random face; --trunc). Directions are names from --list-directions (learned
ones such as age and gender, e4e's for the official FFHQ models, pca0.. and
sefa0.. for any model) or a direction file from tools/learn_directions.py.
A strength is in steps of the direction (the step is stored with it: for a
learned direction the gap between the two classes' means); 0 gives the input back. --layers takes coarse (pose, face
shape), middle (features, hair), fine (colour), all, or indices like 0-3,8.
Output: an image per input (.png/.jpg), the edited code (.npy), a folder for
several inputs, or with --sweep a video (.mp4/.gif/frames folder) with the
inputs side by side. Inputs are never overwritten.
"""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DEFAULT_STRENGTHS = "-3,-2,-1,0,1,2,3"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``sgm-edit``."""
    parser = argparse.ArgumentParser(prog="sgm-edit", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="photos, .npy codes, 'mean' or 'seed:N'")
    parser.add_argument("-o", "--output", default=None,
                        help="image, .npy code, folder, or video with --sweep (default: named after the input, here)")
    parser.add_argument("--direction", action="append", default=[], metavar="NAME|FILE",
                        help="a direction name (see --list-directions) or file; repeat for several")
    parser.add_argument("--strength", type=float, default=3.0,
                        help="how far along the direction; with --sweep the sweep runs -S..+S (default: 3)")
    parser.add_argument("--layers", default=None, metavar="GROUP|LIST",
                        help="W+ positions to edit or mix: coarse, middle, fine, all or e.g. 0-3,8 "
                             "(default: the direction's own; coarse for --mix)")
    parser.add_argument("--list-directions", action="store_true", help="list the model's directions and exit")
    parser.add_argument("--mix", metavar="B", default=None, help="style mixing: take --layers from B")
    parser.add_argument("--arith", nargs=3, metavar=("A", "B", "C"), default=None,
                        help="vector arithmetic A - B + C (e.g. smiling woman - woman + man)")
    parser.add_argument("--scale", type=float, default=1.0, help="arithmetic: A + scale * (C - B) (default: 1)")
    parser.add_argument("--sweep", action="store_true", help="a video sweeping the strength from -S to +S")
    sweep = parser.add_argument_group("sweep video (--sweep)")
    add_path_options(sweep, what="end of the sweep", steps=31, kind=False, schedule=False,
                     loop_help="sweep back to -S too, for a seamless loop")
    add_video_options(sweep, fps=15)
    parser.add_argument("--sheet", action="store_true",
                        help="one contact sheet: every input along every --direction at --strengths, "
                             "plus --arith and --mix rows when given")
    parser.add_argument("--strengths", default=DEFAULT_STRENGTHS, metavar="LIST",
                        help="strengths of the sheet's columns; write --strengths=-2,0,2 "
                             f"(default: {DEFAULT_STRENGTHS})")
    add_model_options(parser)
    add_refine_option(parser, budget=False)  # photo codes come from the code cache, keyed by the step count
    parser.add_argument("--face-index", type=int, default=None, metavar="N",
                        help="which face in each photo, 0 = largest (default: 0)")
    parser.add_argument("--trunc", type=float, default=0.7, help="truncation of seed:N faces (default: 0.7)")
    add_size_option(parser, "output side")
    parser.add_argument("--no-cache", action="store_true", help="encode photos again, keep no codes")
    add_batch_size_option(parser, 4, "images synthesised together")
    add_compute_options(parser, quiet="no progress bars or messages")
    return parser


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._") or "x"


def _strength_text(s: float) -> str:
    return f"{s:+g}"


def _parse_strengths(text: str) -> list[float]:
    from stylegan.errors import UserError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--strengths must be numbers separated by commas, got {text!r}") from None
    if not 1 <= len(values) <= 25:
        raise UserError(f"--strengths must list 1 to 25 numbers, got {len(values)}")
    return values


def _validate(args: argparse.Namespace) -> tuple[str, object, object]:
    """Check the flags before any work; returns the mode (list, sheet, arith, mix, sweep or edit) and the specs.

    Returns:
        ``(mode, path, render)``: the sweep's :class:`stylegan.specs.PathSpec` (None in other
        modes) and the :class:`stylegan.specs.RenderSpec` (every mode; its precision is checked
        against the device in every mode too).
    """
    from encoders.edit import MAX_SWEEP_FRAMES, check_strength
    from stylegan.errors import UserError

    render = render_spec(args)
    if args.list_directions:
        if args.inputs or args.mix or args.arith or args.sheet or args.sweep:
            raise UserError("--list-directions takes no inputs and no other mode")
        return "list", None, render
    check_strength(args.strength, "--strength")
    for s in _parse_strengths(args.strengths):
        check_strength(s, "--strengths")
    if not math.isfinite(args.scale) or abs(args.scale) > 100:
        raise UserError(f"--scale must be finite and within +-100, got {args.scale}")
    if not 0 <= args.trunc <= 2:
        raise UserError(f"--trunc must be 0 to 2, got {args.trunc}")
    if render.size is not None and render.size < 8:  # the sheet's captions need room
        raise UserError(f"--size must be at least 8 pixels, got {render.size}")
    if args.sheet:
        if args.sweep:
            raise UserError("--sheet and --sweep are different outputs; choose one")
        if not args.inputs:
            raise UserError("--sheet needs input faces")
        if not (args.direction or args.arith or args.mix):
            raise UserError("--sheet needs --direction, --arith or --mix")
        return "sheet", None, render
    if args.arith:
        if args.inputs or args.mix or args.direction or args.sweep:
            raise UserError("--arith A B C takes its three faces itself; no other inputs, --mix, --direction or "
                            "--sweep (use --sheet to combine)")
        return "arith", None, render
    if not args.inputs:
        raise UserError("give input faces (photos, .npy codes, mean or seed:N), or --list-directions")
    if args.mix:
        if args.direction or args.sweep:
            raise UserError("--mix does not take --direction or --sweep (use --sheet to combine)")
        return "mix", None, render
    if not args.direction:
        raise UserError("choose an edit: --direction NAME|FILE, --mix B, --arith A B C or --sheet")
    if args.sweep:
        if len(args.direction) > 1:
            raise UserError("--sweep follows one --direction")
        if args.strength == 0:
            raise UserError("--sweep needs a non-zero --strength")
        path = path_spec(args)
        if path.num_frames(2) > MAX_SWEEP_FRAMES:
            raise UserError(f"a sweep has at most {MAX_SWEEP_FRAMES} frames; --steps, --hold and --loop "
                            f"make {path.num_frames(2)}")
        return "sweep", path, render
    return "edit", None, render


def _plan(names: list[str], output: str | None, reads: list, what: str = "image") -> tuple[list, object]:
    """Destinations for ``names`` (default file names) under ``-o``; checked, nothing created yet.

    Returns:
        ``(paths, folder)``: the files, and the folder to create before writing (or None).
    """
    import os
    from pathlib import Path

    from stylegan.errors import UserError
    from stylegan.fileio import check_not_input
    from stylegan.video import check_output_path

    folder = None
    if output is None:
        dests = [Path(n) for n in names]
    else:
        out = Path(output)
        suffix = out.suffix.lower()
        if (suffix in IMAGE_SUFFIXES or suffix == ".npy") and not output.endswith(("/", os.sep)):
            if len(names) != 1:
                raise UserError(f"{out}: -o names one file but this run makes {len(names)} {what}s; give a folder")
            dests = [out]
        elif suffix == "" or out.is_dir() or output.endswith(("/", os.sep)):
            folder = out
            existing = out
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
            if not existing.is_dir():
                raise UserError(f"{out}: cannot create the output folder ({existing} is a file)")
            dests = [out / n for n in names]
        else:
            raise UserError(f"{out}: unsupported output type {out.suffix!r}; use .png, .jpg, .npy or a folder")
    if len(set(dests)) != len(dests):
        raise UserError("two outputs would have the same name; give the inputs different names")
    for dest in dests:
        check_not_input(dest, reads)
        if dest.parent.exists():
            check_output_path(dest, kind="image")
    return dests, folder


def _run(mode: str, path, render, args: argparse.Namespace, log) -> list[str]:
    """Do the work of one mode; returns the lines to print."""
    from pathlib import Path

    import torch

    from encoders.code_cache import CodeCache, default_cache_dir
    from encoders.edit import check_inputs, input_codes, input_label, render_side_by_side, sweep_codes
    from encoders.morph import check_model, load_models, save_latent
    from stylegan.editing import (apply_edit, arithmetic, available_directions, load_direction, resolve_layers,
                                  style_mix)
    from stylegan.errors import UserError
    from stylegan.fileio import check_not_input
    from stylegan.render import render_images, resolve_device
    from stylegan.imageio import save_image
    from stylegan.video import check_output_path, output_kind

    weights = args.weights or args.model
    dev = resolve_device(args.device)
    from stylegan.precision import check_precision

    check_precision(render.precision, dev)  # "auto" is resolved for this model when it renders
    apply_threads(args.threads)
    check_model(weights)
    wanted = list(dict.fromkeys(args.inputs + ([args.mix] if args.mix else []) + list(args.arith or [])))
    reads = check_inputs(wanted)
    G, _ = load_models(weights, dev, need_encoder=False, log=log)

    known: dict = {}

    def direction(spec: str):
        nonlocal known
        p = Path(spec)
        if p.exists() or p.suffix.lower() in (".pt", ".pth"):
            d = load_direction(p)
        else:
            known = known or available_directions(G)
            if spec not in known:
                raise UserError(f"unknown direction {spec!r}; known: {', '.join(known)} (or give a direction file)")
            d = known[spec]
        if d.w_dim != G.w_dim or (d.num_ws is not None and d.num_ws != G.num_ws):
            shape = f"{d.num_ws}x{d.w_dim}" if d.num_ws is not None else str(d.w_dim)
            raise UserError(f"direction {spec!r} is {shape}, this model's codes are {G.num_ws}x{G.w_dim}")
        return d

    if mode == "list":
        known = available_directions(G)
        lines = []
        for name, d in known.items():
            acc = d.metadata.get("val_accuracy")
            extra = f", held-out accuracy {acc:.1%}" if isinstance(acc, (int, float)) else ""
            where = "W+" if d.is_wplus else "W"
            layers = f", layers {','.join(map(str, d.layers))}" if d.layers else ""
            lines.append(f"{name:16s} {where} {d.source}{layers}{extra}")
        return lines

    directions = [direction(spec) for spec in args.direction]
    layers = resolve_layers(args.layers, G.num_ws, "--layers") if args.layers else None
    names = [_file_safe(d.name) for d in directions]
    labels = {item: _file_safe(input_label(item)) for item in wanted}

    # Outputs are planned and checked before any photo is encoded.
    folder = None
    if mode == "sweep":
        stem = labels[args.inputs[0]] + (f"_and_{len(args.inputs) - 1}_more" if len(args.inputs) > 1 else "")
        dest = Path(args.output or f"{stem}_{names[0]}_sweep.mp4")
        kind = output_kind(dest)
        check_not_input(dest, reads, folder=kind == "frames")
        dest = check_output_path(dest, kind)
    elif mode == "sheet":
        dest = Path(args.output or "edit_sheet.png")
        if dest.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"{dest}: a sheet is an image; name it .png or .jpg")
        check_not_input(dest, reads)
        check_output_path(dest, kind="image")
    else:
        if mode == "edit":
            plan = [(item, d, f"{labels[item]}_{n}{_strength_text(args.strength)}")
                    for item in args.inputs for d, n in zip(directions, names)]
        elif mode == "mix":
            plan = [(item, None, f"{labels[item]}_mix_{labels[args.mix]}_{_file_safe(args.layers or 'coarse')}")
                    for item in args.inputs]
        else:
            a, b, c = args.arith
            plan = [(a, None, f"{labels[a]}_minus_{labels[b]}_plus_{labels[c]}")]
        suffix = ".npy" if args.output and Path(args.output).suffix.lower() == ".npy" else ".png"
        dests, folder = _plan([n + suffix for _, _, n in plan], args.output, reads)

    cache = None if args.no_cache else CodeCache(default_cache_dir())
    codes = dict(zip(wanted, input_codes(wanted, G, weights, cache=cache, refine=args.refine,
                                         face_index=args.face_index, truncation_psi=args.trunc, device=dev)))

    def render_codes(ws: torch.Tensor):
        return render_images(G, ws, **render.frame_options(), progress=not args.quiet)

    if mode == "sweep":
        seqs = torch.stack([sweep_codes(codes[item], directions[0], args.strength, path, layers)
                            for item in args.inputs])
        frames = render_side_by_side(G, seqs, dest, render, progress=not args.quiet)
        return [f"wrote {dest} ({frames} frames, strength {-abs(args.strength):+g} .. {abs(args.strength):+g})"]

    if mode == "sheet":
        return [f"wrote {_sheet(args, G, codes, labels, directions, layers, render_codes, dest)}"]

    edited = []
    for item, d, _ in plan:
        if mode == "edit":
            edited.append(apply_edit(codes[item], d, args.strength, layers=layers))
        elif mode == "mix":
            edited.append(style_mix(codes[item], codes[args.mix], layers or "coarse"))
        else:
            edited.append(arithmetic(codes[a], codes[b], codes[c], scale=args.scale))
    edited_ws = torch.stack(edited)
    images = None if dests[0].suffix.lower() == ".npy" else render_codes(edited_ws)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    for k, dest in enumerate(dests):
        if images is None:
            save_latent(dest, edited_ws[k])
        else:
            save_image(images[k], dest)
    return [f"wrote {dest}" for dest in dests]


def _sheet(args: argparse.Namespace, G, codes: dict, labels: dict, directions: list, layers, render_codes, dest):
    """Render and write the contact sheet: direction rows, then arithmetic and mixing rows."""
    import torch

    from encoders.edit import labelled_grid
    from stylegan.editing import apply_edit, arithmetic, style_mix
    from stylegan.interpolation import layer_groups
    from stylegan.imageio import save_image

    strengths = _parse_strengths(args.strengths)
    rows: list[tuple[str, list[tuple[str, torch.Tensor]]]] = []
    for item in args.inputs:
        for d in directions:
            ws = apply_edit(codes[item].expand(len(strengths), -1, -1), d, torch.tensor(strengths), layers=layers)
            rows.append((f"{labels[item]}\n{d.name}", [(_strength_text(s), w) for s, w in zip(strengths, ws)]))
    if args.arith:
        a, b, c = args.arith
        result = arithmetic(codes[a], codes[b], codes[c], scale=args.scale)
        rows.append(("arithmetic\nA - B + C", [(f"A: {labels[a]}", codes[a]), (f"B: {labels[b]}", codes[b]),
                                                (f"C: {labels[c]}", codes[c]), ("A - B + C", result)]))
    if args.mix:
        groups = [args.layers] if args.layers else [g for g, r in zip(("coarse", "middle", "fine"),
                                                                     layer_groups(G.num_ws)) if len(r)]
        for item in args.inputs:
            if item == args.mix:
                continue
            cells = [(labels[item], codes[item]), (f"B: {labels[args.mix]}", codes[args.mix])]
            cells += [(f"{g} from B", style_mix(codes[item], codes[args.mix], g)) for g in groups]
            rows.append((f"{labels[item]}\nstyle mixing", cells))
    flat = torch.stack([w for _, cells in rows for _, w in cells])
    images = iter(render_codes(flat))
    grid = labelled_grid([(label, [(cap, next(images)) for cap, _ in cells]) for label, cells in rows])
    return save_image(grid, dest)


def main(argv: list[str] | None = None) -> int:
    """Run the tool; returns the exit code (0 ok, 1 user error, 130 interrupted)."""
    return run_tool(build_parser(), _main, argv)


def _main(args: argparse.Namespace) -> None:
    for line in _run(*_validate(args), args, stderr_logger(args.quiet)):
        if not args.quiet:
            print(line)


if __name__ == "__main__":
    sys.exit(main())
