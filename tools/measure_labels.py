"""Measure how much a conditional generator's label matters, with a classifier trained on real images.

Trains a small CNN on the labelled real images (identity-disjoint train/held-out
split, as the GAN trainer splits them), reports its held-out accuracy, then
classifies generated images: the share assigned to their conditioning class, the
classifier's output along label-only paths (z fixed, class a -> b) and how often
noise-only paths (class fixed, z1 -> z2) keep their class.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools._cli import add_compute_options, apply_threads, run_tool
from tools.class_interp import DEMO_MODEL, add_conditional_model_options

CLASSIFIER_FORMAT = "stylegan-morph/label-classifier/v1"

EPILOG = """\
examples:
  python tools/measure_labels.py --data faces/ --labels runs/gender.csv --label-column gender \\
      --weights runs/cond/best.pt --cache runs/cond/cache --json runs/cond/label_effect.json
  python tools/measure_labels.py --model cond-faces32-gender --data faces/ --labels gender.csv \\
      --label-column gender --samples 200 --paths 40

The label CSV is the one the generator was trained with (a 'file' column and the
class column); its class names must be the generator's (saved with our weights).
--cache reuses the decoded images of a training run (same data, resolution and split).
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``sgm-measure-labels``."""
    p = argparse.ArgumentParser(prog="sgm-measure-labels", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_conditional_model_options(p)
    p.add_argument("--data", nargs="+", required=True, help="folders of real images (recursive)")
    p.add_argument("--labels", required=True, help="CSV with a 'file' column and the class column")
    p.add_argument("--label-column", required=True, help="the CSV column holding the class")
    p.add_argument("--resolution", type=int, default=None, help="classifier input size (default: G's resolution)")
    p.add_argument("--classifier-steps", type=int, default=800, help="training steps of the classifier (default: 800)")
    p.add_argument("--classifier-width", type=int, default=16, help="channels of its first stage (default: 16)")
    p.add_argument("--classifier", metavar="PATH",
                   help="reuse the classifier saved at PATH, or train it and save it there (to measure several "
                        "checkpoints with one classifier)")
    p.add_argument("--samples", type=int, default=500, help="generated images per class (default: 500)")
    p.add_argument("--paths", type=int, default=100, help="label-only and noise-only paths (default: 100)")
    p.add_argument("--steps", type=int, default=9, help="points per path, both ends included (default: 9)")
    p.add_argument("--from", dest="class_a", default="0", metavar="CLASS", help="label-path start class (default: 0)")
    p.add_argument("--to", dest="class_b", default="1", metavar="CLASS", help="label-path end class (default: 1)")
    p.add_argument("--trunc", type=float, default=1.0, metavar="PSI", help="truncation psi (default: 1.0)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="held-out share by identity (default: 0.05)")
    p.add_argument("--val-count", type=int, default=512, help="at most this many held-out images (default: 512)")
    p.add_argument("--cache", metavar="DIR", help="folder for decoded images (e.g. the training run's cache)")
    p.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    p.add_argument("--seed", type=int, default=0, help="(default: 0)")
    add_compute_options(p, quiet="print only the summary", device=False, precision=False)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the tool; returns the exit code (0 ok, 1 user error, 130 interrupted)."""
    return run_tool(build_parser(), _run, argv)


def _run(args: argparse.Namespace) -> int:
    import math

    import torch

    from stylegan import load_generator
    from stylegan.conditional import class_index, require_conditional
    from stylegan.errors import UserError
    from stylegan.fileio import atomic_write_text
    from stylegan.training.dataset import load_split, read_class_labels
    from stylegan.checkpoint import atomic_torch_save, read_checkpoint
    from stylegan.training.label_metrics import (SmallClassifier, measure_label_effect, recall_per_class,
                                                 train_classifier)

    for name, lo, hi in (("classifier-steps", 1, 100_000), ("classifier-width", 1, 256), ("samples", 1, 100_000), ("paths", 1, 10_000),
                         ("steps", 2, 100), ("val-count", 1, 100_000)):
        value = getattr(args, name.replace("-", "_"))
        if not lo <= value <= hi:
            raise UserError(f"--{name} must be from {lo} to {hi}, got {value}")
    if not 0 < args.val_fraction < 1:
        raise UserError(f"--val-fraction must be between 0 and 1, got {args.val_fraction}")
    if not math.isfinite(args.trunc):
        raise UserError(f"--trunc must be a finite number, got {args.trunc}")
    apply_threads(args.threads)
    log = (lambda s: None) if args.quiet else print
    labels, csv_names = read_class_labels(args.labels, args.label_column)
    G = load_generator(args.weights or args.model or DEMO_MODEL)
    c_dim = require_conditional(G)
    names = list(G.class_names) or csv_names
    if sorted(names) != sorted(csv_names) or len(names) != c_dim:
        raise UserError(f"the label file's classes ({', '.join(csv_names)}) are not the generator's "
                        f"({', '.join(names) or f'{c_dim} unnamed'})")
    a, b = class_index(G, args.class_a), class_index(G, args.class_b)
    res = args.resolution or G.img_resolution
    train, val, n_train, n_val = load_split(args.data, res, args.val_fraction, args.val_count, args.cache,
                                            labels=labels, class_names=names)
    log(f"classifier: {n_train} training / {n_val} held-out real images at {res} px")
    saved = Path(args.classifier) if args.classifier else None
    if saved is not None and saved.exists():
        st = read_checkpoint(saved)
        if not isinstance(st, dict) or st.get("format") != CLASSIFIER_FORMAT:
            raise UserError(f"{saved}: not a classifier saved by this tool")
        if st["classes"] != names or st["resolution"] != res:
            raise UserError(f"{saved}: a classifier for {', '.join(st['classes'])} at {st['resolution']} px, "
                            f"not for {', '.join(names)} at {res} px")
        clf = SmallClassifier(c_dim, st["width"])
        clf.load_state_dict(st["state_dict"])
        acc = float(st["heldout_accuracy"])
        log(f"classifier loaded from {saved}")
    else:
        clf, acc = train_classifier(train, val, c_dim, steps=args.classifier_steps, seed=args.seed,
                                    width=args.classifier_width, log=log)
        if saved is not None:
            atomic_torch_save({"format": CLASSIFIER_FORMAT, "state_dict": clf.state_dict(), "classes": names,
                               "resolution": res, "width": args.classifier_width, "heldout_accuracy": acc}, saved)
    recall = recall_per_class(clf, val, names)
    effect = measure_label_effect(G, clf, res, names, samples=args.samples, paths=args.paths, steps=args.steps,
                                  a=a, b=b, psi=args.trunc, seed=args.seed)
    result = {"classifier_heldout_accuracy": acc, "classifier_heldout_recall": recall, "classifier_train_images": n_train, "heldout_images": n_val,
              "classes": names, "label_path": [names[a], names[b]], "truncation_psi": args.trunc,
              **effect.to_dict()}
    print(f"classifier held-out accuracy {acc:.1%} ({n_val} real images; " +
          ", ".join(f"{k} {v:.1%}" for k, v in recall.items()) + ")")
    print(f"class agreement {effect.agreement:.1%} of {args.samples * c_dim} samples (" +
          ", ".join(f"{k} {v:.1%}" for k, v in effect.agreement_per_class.items()) + ")")
    print(f"label-only paths {names[a]} -> {names[b]}: mean P({names[b]}) along the path " +
          " ".join(f"{v:.2f}" for v in effect.label_path_prob_b) + f"; decision flips {effect.label_path_flip:.1%}")
    print(f"noise-only paths: class kept on every point of {effect.noise_path_kept:.1%} of paths "
          f"({effect.noise_points_kept:.1%} of points)")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
