"""Train a StyleGAN2 generator on a folder of aligned images (adversarial, non-saturating loss + R1).

Logs losses to <run>/log.csv and <run>/losses.png, saves sample grids, keeps a
resumable state and the best generator by pixel Fréchet distance at 16x16 on
held-out images (<run>/best.pt, our generator format), and writes a
self-contained report (<run>/report.html) as it goes.

With --labels FILE.csv --label-column NAME it trains a class-conditional
generator (NVIDIA stylegan2-ada's label embedding) against a projection
discriminator; the CSV needs a 'file' column (paths relative to a --data folder,
or bare file names) and the label column; unlabelled images are left out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools._cli import (TRAINING_INTERRUPTED, add_batch_size_option, add_device_option, add_precision_option,
                        add_threads_option, apply_threads, run_tool)

EPILOG = """examples:
  python tools/train_stylegan.py --data faces/ --resolution 64 --minutes 120 --run runs/gan64
  python tools/train_stylegan.py --data faces/ --resolution 128 --channel-base 4096 --channel-max 256 \\
      --w-dim 256 --mapping-layers 4 --batch-size 16 --run runs/gan128
  # conditional: one class per value of the CSV column (class names are saved with the weights)
  python tools/train_stylegan.py --data faces/ --labels faces/labels.csv --label-column gender \\
      --resolution 32 --minutes 60 --run runs/cond
  # resume: run the same command again; the state in --run is picked up
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="folders of images (recursive)")
    p.add_argument("--run", default="runs/stylegan", help="run directory")
    p.add_argument("--resolution", type=int, default=64, help="power of two, 4..1024 (default 64)")
    p.add_argument("--channel-base", type=int, default=8192, help="channels = min(base // res, max)")
    p.add_argument("--channel-max", type=int, default=256)
    p.add_argument("--w-dim", type=int, default=256, help="z and w width")
    p.add_argument("--mapping-layers", type=int, default=4)
    add_batch_size_option(p, 16, "training images per step", old_batch=True)
    p.add_argument("--g-lr", type=float, default=2e-3)
    p.add_argument("--d-lr", type=float, default=2e-3)
    p.add_argument("--r1-gamma", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=100000)
    p.add_argument("--minutes", type=float, help="stop after this much training time (resumes count)")
    p.add_argument("--eval-every", type=int, default=500, help="score, sample and checkpoint every N steps")
    p.add_argument("--eval-samples", type=int, default=512)
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--val-count", type=int, default=512)
    add_device_option(p)
    add_precision_option(p, training=True)
    p.add_argument("--no-bf16", action="store_true", help="train in fp32 (the same as --precision fp32)")
    p.add_argument("--labels", help="CSV with a 'file' column and a class column: train a conditional generator")
    p.add_argument("--label-column", help="the CSV column holding the class (needed with --labels)")
    add_threads_option(p)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    return run_tool(build_parser(), _run, argv, interrupted=TRAINING_INTERRUPTED)


def _run(args: argparse.Namespace) -> int:
    import torch

    from stylegan import Generator, GeneratorConfig
    from stylegan.errors import UserError
    from stylegan.training.dataset import load_split, read_class_labels
    from stylegan.training.discriminator import Discriminator
    from stylegan.training.gan import GanTrainConfig, train_gan
    from stylegan.training.loop import training_device_and_autocast

    if (args.labels is None) != (args.label_column is None):
        raise UserError("--labels and --label-column go together")
    apply_threads(args.threads)
    device, amp = training_device_and_autocast(args.device, "fp32" if args.no_bf16 else args.precision)
    bf16 = amp.enabled
    labels, class_names = (None, [])
    if args.labels:
        labels, class_names = read_class_labels(args.labels, args.label_column)
    try:
        gcfg = GeneratorConfig.from_channel_base(args.resolution, args.channel_base, args.channel_max,
                                                 z_dim=args.w_dim, w_dim=args.w_dim,
                                                 mapping_layers=args.mapping_layers, c_dim=len(class_names),
                                                 class_names=tuple(class_names))
    except ValueError as e:
        raise UserError(str(e)) from None
    torch.manual_seed(args.seed)
    G = Generator(gcfg)
    D = Discriminator(args.resolution, args.channel_base, args.channel_max, c_dim=len(class_names),
                      mapping_layers=args.mapping_layers)
    train, val, n_train, n_val = load_split(args.data, args.resolution, args.val_fraction, args.val_count,
                                            Path(args.run) / "cache", labels=labels, class_names=class_names)
    if class_names:
        counts = [int((train.labels == k).sum()) for k in range(len(class_names))]
        print("classes (training images): " + ", ".join(f"{n} ({c})" for n, c in zip(class_names, counts)))
    print(f"{n_train} training / {n_val} validation images; G {sum(p.numel() for p in G.parameters())/1e6:.2f}M "
          f"params, D {sum(p.numel() for p in D.parameters())/1e6:.2f}M")
    cfg = GanTrainConfig(batch_size=args.batch_size, g_lr=args.g_lr, d_lr=args.d_lr, r1_gamma=args.r1_gamma,
                         bf16=bf16, total_steps=args.steps, max_minutes=args.minutes,
                         eval_every=args.eval_every, sample_every=args.eval_every, ckpt_every=args.eval_every,
                         eval_samples=args.eval_samples, seed=args.seed)
    meta = {"command": "python tools/train_stylegan.py " + " ".join(sys.argv[1:] if argv_is_cli() else []),
            "num_train": n_train, "num_val": n_val}
    best = train_gan(G, D, train, val, args.run, cfg, meta=meta, device=device)
    print(f"best generator: {best}")
    return 0


def argv_is_cli() -> bool:
    return Path(sys.argv[0]).name in ("train_stylegan.py", "sgm-train-stylegan")


if __name__ == "__main__":
    sys.exit(main())
