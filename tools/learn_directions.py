"""Learn an attribute direction (InterFaceGAN style) from labelled faces; print and store its held-out accuracy."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tools._cli import add_batch_size_option, add_compute_options, add_model_options, apply_threads, run_tool

EPILOG = """\
examples:
  # gender on the aligned training faces (the two CSVs code gender in opposite ways)
  python tools/learn_directions.py --labels DATA/labels.csv DATA/utk_labels.csv \\
      --column gender_0F_1M gender_0M_1F --positive 1 0 --negative 0 1 \\
      --name gender --cache runs/codes.pt -o gender.pt
  # young (< 20) vs old (> 50), with gender projected out (a conditional direction)
  python tools/learn_directions.py --labels DATA/labels.csv DATA/utk_labels.csv \\
      --column age --positive '>50' --negative '<20' --condition-on gender.pt \\
      --name age --cache runs/codes.pt -o age.pt
  # random faces: fit the model's sampler (z -> W+) to the codes of every listed face
  python tools/learn_directions.py --labels DATA/labels.csv DATA/utk_labels.csv --sampler \
      --cache runs/codes.pt -o model_with_sampler.pt
  # labelled photos that are not aligned yet
  python tools/learn_directions.py --labels photos/smiles.csv --column smiling --align -o smile.pt

Each CSV has a 'file' column (paths relative to the CSV's folder) and the label
columns. --column, --positive and --negative take one value for every CSV or
one per CSV; a rule is a number (=) or a comparison (>50, <=19). Rows matching
neither rule are left out. Identities (a 'person_id' column in any CSV in the
same folder) never appear on both sides of the train/held-out split. Codes are
cached in --cache (keyed by file and model), so a second direction from the same
photos does not encode them again. The output loads with
stylegan.editing.Direction.load and works in tools/edit.py --direction FILE.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``sgm-learn-directions``."""
    p = argparse.ArgumentParser(prog="sgm-learn-directions", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", nargs="+", required=True, metavar="CSV", help="label CSV files (see below)")
    p.add_argument("--column", nargs="+", default=None, metavar="COL",
                   help="label column, one or one per CSV (required unless --sampler)")
    p.add_argument("--positive", nargs="+", default=["1"], metavar="RULE",
                   help="rule for the attribute's side, e.g. 1 or '>50' (default: 1)")
    p.add_argument("--negative", nargs="+", default=["0"], metavar="RULE",
                   help="rule for the other side, e.g. 0 or '<20' (default: 0)")
    p.add_argument("--where", nargs="+", default=[], metavar="COL<OP>VALUE",
                   help="keep only rows passing these filters on other columns, e.g. 'age>=15'")
    p.add_argument("-o", "--output", required=True, metavar="FILE.pt", help="direction file to write")
    p.add_argument("--name", default=None, help="the direction's name (default: the output's stem)")
    p.add_argument("--condition-on", nargs="+", default=[], metavar="DIR",
                   help="direction files (or names) to project out: a conditional direction")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of identities held out to measure accuracy (default: 0.2)")
    p.add_argument("--C", type=float, default=1.0, dest="C",
                   help="inverse L2 regularisation of the logistic regression; smaller = smoother "
                        "direction (default: 1)")
    p.add_argument("--pca-k", type=int, default=128, metavar="K",
                   help="fit in the span of the codes' top K principal components, where the generator "
                        "looks; 0 = every code dimension (default: 128)")
    p.add_argument("--min-accuracy", type=float, default=None, help="fail when held-out accuracy is lower")
    p.add_argument("--cache", default=None, metavar="FILE.pt", help="codes cache, created if missing")
    p.add_argument("--sampler", action="store_true",
                   help="instead of a direction: write a copy of the model whose mapping is a Gaussian fitted to "
                        "the codes of every face in the CSVs, so random z give faces (for a model whose mapping "
                        "network was never trained)")
    p.add_argument("--align", action="store_true", help="FFHQ-align each photo first (slow; for raw photos)")
    add_model_options(p)
    add_batch_size_option(p, 64, "photos encoded together", old_batch=True)
    add_compute_options(p, quiet="no progress bar", precision=False)
    return p


def _per_csv(values: list[str], n: int, flag: str) -> list[str]:
    from stylegan.errors import UserError

    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise UserError(f"{flag} takes one value or one per CSV ({n}), got {len(values)}")
    return values


def _validate(args: argparse.Namespace) -> None:
    from stylegan.errors import UserError

    if args.column is None and not args.sampler:
        raise UserError("--column is required (or --sampler)")
    if not 0 < args.val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
    if not args.C > 0:
        raise UserError(f"--C must be positive, got {args.C}")
    if args.pca_k < 0:
        raise UserError(f"--pca-k must be >= 0, got {args.pca_k}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.min_accuracy is not None and not 0 <= args.min_accuracy <= 1:
        raise UserError(f"--min-accuracy must be between 0 and 1, got {args.min_accuracy}")
    out = Path(args.output)
    if out.suffix != ".pt":
        raise UserError(f"--output must end in .pt, got {out}")
    if out.is_dir():
        raise UserError(f"--output {out} is a folder")
    inputs = {Path(p).resolve() for p in [*args.labels, *args.condition_on]}
    if args.cache and Path(args.cache).resolve() == out.resolve():
        raise UserError("--cache and --output must be different files")
    if out.resolve() in inputs:
        raise UserError(f"--output {out} is one of the inputs")
    if not out.parent.is_dir() and str(out.parent):
        raise UserError(f"--output: folder {out.parent} does not exist")


def _read_cache(path: Path | None, model_key: str) -> dict:
    import torch

    from stylegan.checkpoint import read_checkpoint

    if path is None or not path.is_file():
        return {}
    data = read_checkpoint(path)
    if not isinstance(data, dict) or data.get("format") != "stylegan-morph/codes/v1" \
            or not isinstance(data.get("ws"), torch.Tensor) or len(data.get("files", ())) != len(data["ws"]):
        from stylegan.errors import UserError

        raise UserError(f"{path}: not a codes cache written by this tool")
    if data.get("model") != model_key:
        return {}  # another model's codes: start again (the file is replaced on save)
    return dict(zip(data["files"], data["ws"]))


def _write_cache(path: Path | None, model_key: str, codes: dict) -> None:
    import torch

    from stylegan.checkpoint import atomic_torch_save

    if path is None or not codes:
        return
    names = sorted(codes)
    atomic_torch_save({"format": "stylegan-morph/codes/v1", "model": model_key, "files": names,
                       "ws": torch.stack([codes[n] for n in names]).half()}, path)


def _encode(files: list[Path], G, E, args: argparse.Namespace, model_key: str) -> dict:
    """Codes of every file (float16 [num_ws, w_dim] each), from the cache where possible."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from encoders.images import load_image
    from stylegan.errors import UserError
    from stylegan.imageio import to_tensor

    cache = Path(args.cache) if args.cache else None
    codes = _read_cache(cache, model_key)
    todo = [f for f in files if str(f.resolve()) not in codes]
    skipped: list[str] = []
    bar = tqdm(total=len(todo), desc="encoding", unit="photo", disable=args.quiet or not todo)
    try:
        for i in range(0, len(todo), args.batch_size):
            chunk, images = [], []
            for f in todo[i:i + args.batch_size]:
                if args.align:
                    from encoders.align import NoFaceError, align_face

                    try:
                        img = align_face(f, output_size=256)
                    except NoFaceError:
                        skipped.append(str(f))
                        continue
                else:
                    img = load_image(f)
                chunk.append(f)
                images.append(np.asarray(img, dtype=np.uint8))
            by_size: dict[tuple, list[int]] = {}
            for j, im in enumerate(images):  # the encoder resizes; a batch needs one size
                by_size.setdefault(im.shape, []).append(j)
            for idx in by_size.values():
                x = to_tensor(np.stack([images[j] for j in idx]))  # [B, 3, H, W] in [-1, 1]
                with torch.no_grad():
                    ws = E.encode(x).float().cpu().half()
                for j, w in zip(idx, ws):
                    codes[str(chunk[j].resolve())] = w.clone()
            bar.update(len(todo[i:i + args.batch_size]))
            if (i // args.batch_size) % 50 == 49:
                _write_cache(cache, model_key, codes)  # resumable after an interruption
    finally:
        bar.close()
        if todo:  # only when something new was encoded: the cache can be large
            _write_cache(cache, model_key, codes)
    if skipped:
        print(f"no face found in {len(skipped)} photos (left out): {', '.join(skipped[:5])}"
              f"{', ...' if len(skipped) > 5 else ''}", file=sys.stderr)
    if not codes:
        raise UserError("no codes to learn from")
    return codes


def _fit_sampler(files: list[Path], G, E, args: argparse.Namespace, weights, argv: list[str]) -> int:
    """Write a copy of the model file whose mapping is a Gaussian fitted to the codes of ``files``.

    The file is edited as data: only the generator's config (``mapping_kind``) and its
    ``mapping.*`` tensors change; encoder, synthesis weights and metadata are kept as stored.
    """
    import torch

    from encoders.morph import resolve_model
    from stylegan.checkpoint import atomic_torch_save, read_checkpoint
    from stylegan.editing import fit_gaussian_mapping, model_fingerprint
    from stylegan.errors import UserError

    source = resolve_model(weights)
    if source.resolve() == Path(args.output).resolve():
        raise UserError("--output must not be the model file it starts from")
    ckpt = read_checkpoint(source)
    part = ckpt.get("generator") if isinstance(ckpt, dict) and "generator" in ckpt else ckpt
    if not isinstance(part, dict) or not {"config", "state_dict"} <= set(part):
        raise UserError(f"{source}: --sampler needs one of this toolkit's own model files")
    codes = _encode(files, G, E, args, f"{source.name}:{model_fingerprint(G)}")
    ws = torch.stack([codes[str(f.resolve())] for f in files if str(f.resolve()) in codes]).float()
    state = fit_gaussian_mapping(ws, G.z_dim)
    sd = {k: v for k, v in part["state_dict"].items() if not k.startswith("mapping.")}
    dtype = next(v.dtype for v in sd.values() if v.is_floating_point())
    sd.update({f"mapping.{k}": v.to(dtype) for k, v in state.items()})
    part["state_dict"], part["config"] = sd, {**part["config"], "mapping_kind": "gaussian"}
    meta = ckpt.setdefault("meta", {}) if isinstance(ckpt.get("meta", {}), dict) else {}
    meta["sampler"] = (f"Gaussian in the PCA basis ({G.z_dim} components) of {len(ws)} encoded faces; "
                       "python tools/learn_directions.py " + " ".join(shlex.quote(a) for a in argv))
    atomic_torch_save(ckpt, args.output)
    from stylegan import load_generator

    G2 = load_generator(args.output)  # check: it loads, and psi = 0 gives the mean code
    mean = G2.mapping(torch.zeros(1, G2.z_dim), truncation_psi=0.0)[0]
    assert torch.allclose(mean, G2.mapping.w_avg), "psi = 0 must give the mean code"
    print(f"sampler fitted to {len(ws)} faces; wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_tool(build_parser(), lambda args: _run(args, argv if argv is not None else sys.argv[1:]), argv)


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    apply_threads(args.threads)
    _validate(args)
    import torch

    from encoders.morph import load_models, resolve_model
    from stylegan.editing import learn_direction, load_direction, model_fingerprint
    from stylegan.editing.labels import parse_rule, parse_where, read_labels
    from stylegan.errors import UserError
    from stylegan.render import resolve_device
    from stylegan.training.dataset import read_identity_labels, split_by_identity

    n = len(args.labels)
    columns: list = [None] * n if args.sampler else _per_csv(args.column, n, "--column")  # sampler: every row
    positives = [parse_rule(r, "--positive") for r in _per_csv(args.positive, n, "--positive")]
    negatives = [parse_rule(r, "--negative") for r in _per_csv(args.negative, n, "--negative")]
    where = [parse_where(w, "--where") for w in args.where]
    rows = []
    ids: dict[str, str] = {}
    for csv_path, col, pos, neg in zip(args.labels, columns, positives, negatives):
        found = read_labels(csv_path, col, pos, neg, where)
        if not found:
            raise UserError(f"{csv_path}: no row of {col} matches {pos} or {neg}" if col else f"{csv_path}: no rows")
        rows += found
        ids.update(read_identity_labels(Path(csv_path).parent))
    missing = [str(r.path) for r in rows if not r.path.is_file()]
    if missing:
        raise UserError(f"{len(missing)} labelled files do not exist, e.g. {missing[0]}")
    label_of = {r.path: r.label for r in rows}
    if len(label_of) != len(rows):
        raise UserError("a file is listed more than once in the label CSVs")
    device = resolve_device(args.device)
    weights = args.model or args.weights
    G, E = load_models(weights, device, need_encoder=True)
    if args.sampler:
        return _fit_sampler(sorted(label_of), G, E, args, weights, argv)
    train, val = split_by_identity(sorted(label_of), args.val_fraction, ids)
    conditions = [load_direction(c, model=G) for c in args.condition_on]
    model_key = f"{resolve_model(weights).name}:{model_fingerprint(G)}"
    codes = _encode(sorted(label_of), G, E, args, model_key)

    def stack(files: list[Path]) -> tuple[torch.Tensor, list[int]]:
        kept = [f for f in files if str(f.resolve()) in codes]
        return torch.stack([codes[str(f.resolve())] for f in kept]).float(), [label_of[f] for f in kept]

    x_tr, y_tr = stack(train)
    x_va, y_va = stack(val)
    name = args.name or Path(args.output).stem
    print(f"{name}: {len(y_tr)} training faces ({sum(y_tr)} positive), {len(y_va)} held-out faces of other "
          f"identities ({sum(y_va)} positive)")
    meta = {"model_fingerprint": model_fingerprint(G), "command": "python tools/learn_directions.py "
            + " ".join(shlex.quote(a) for a in argv), "rule": "; ".join(
                f"{Path(c).name}: {col} {p} vs {q}" for c, col, p, q in zip(args.labels, columns, positives, negatives))
            + "".join(f"; where {c}{r}" for c, r in where)}
    d = learn_direction(x_tr, y_tr, condition_on=conditions, name=name, val_codes=x_va, val_labels=y_va, C=args.C,
                        min_accuracy=args.min_accuracy, metadata=meta, pca_k=args.pca_k or None)
    d.save(args.output)
    print(f"{name}: held-out accuracy {d.metadata['val_accuracy']:.1%} (train {d.metadata['train_accuracy']:.1%}), "
          f"one unit of strength = {d.scale:.4g}; wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
