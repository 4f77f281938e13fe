"""Train an e4e encoder for a generator, or encoder + generator jointly as an autoencoder.

This is the tool that made the embedded default model (see README, "The default model").
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from tools._cli import (TRAINING_INTERRUPTED, add_batch_size_option, add_device_option, add_precision_option,
                        add_threads_option, apply_threads, run_tool)

EPILOG = """examples:
  # a joint autoencoder like the embedded default model (128 px; README: The default model):
  python tools/train_encoder.py --data train-faces/ --new-generator 128 --g-channels 256,256,256,128,64,32 \\
      --w-dim 128 --mapping-layers 4 --enc-input 64 --enc-widths 32,64,128,128 --enc-units 2,2,3,2 \\
      --joint --batch-size 16 --minutes 120 --run runs/default

  # an encoder for an existing generator, with synthetic pairs:
  python tools/train_encoder.py --data faces/ --generator G.pt --synthetic-fraction 0.5 --run runs/enc

  # resume a run (same command; the state in --run is picked up), then export (see sgm-export-model):
  python tools/train_encoder.py ... --run runs/default
  python tools/export_model.py runs/default/best.pt pretrained/weights/default.pt --fp16
"""


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(v) for v in s.split(","))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", help="folders of aligned face images (recursive)")
    p.add_argument("--run", default="runs/encoder", help="run directory for logs, samples and checkpoints")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--generator", help="a generator file to train the encoder for (any supported format)")
    g.add_argument("--new-generator", type=int, metavar="RES", help="start a new generator at this resolution")
    p.add_argument("--g-channels", type=_ints, help="new generator: channels per resolution 4..RES")
    p.add_argument("--w-dim", type=int, default=512, help="new generator: z and w width (default 512)")
    p.add_argument("--mapping-layers", type=int, default=8, help="new generator: mapping depth (default 8)")
    p.add_argument("--enc-widths", type=_ints, default=(64, 128, 256, 512), help="IR-SE stage widths")
    p.add_argument("--enc-units", type=_ints, default=(3, 4, 14, 3), help="IR-SE units per stage (IR-SE50)")
    p.add_argument("--enc-input", type=int, help="encoder input size (default: the generator resolution, min 32)")
    p.add_argument("--joint", action="store_true", help="train the generator too (autoencoder)")
    add_batch_size_option(p, 16, "training images per step", old_batch=True)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--g-lr", type=float, default=2e-3)
    p.add_argument("--delta-weight", type=float, default=2e-4, help="e4e delta regularisation weight")
    p.add_argument("--lap-weight", type=float, default=1.0, help="Laplacian-pyramid L1 weight")
    p.add_argument("--synthetic-fraction", type=float, default=0.0, help="share of each batch made by G with known w")
    p.add_argument("--steps", type=int, default=100000, help="stop after this many steps")
    p.add_argument("--minutes", type=float, help="stop after this much training time (resumes count)")
    p.add_argument("--val-count", type=int, default=256, help="validation images (held-out identities)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="share of identities held out (default 0.05)")
    p.add_argument("--val-every", type=int, default=200)
    add_device_option(p)
    add_precision_option(p, training=True)
    p.add_argument("--no-bf16", action="store_true", help="train in fp32 (the same as --precision fp32)")
    add_threads_option(p)
    p.add_argument("--seed", type=int, default=0)
    # deprecated: tools/export_model.py does this; kept (out of --help) so that old commands keep working
    p.add_argument("--export", nargs=2, metavar=("MODEL", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--fp16", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    return run_tool(build_parser(), _run, argv, interrupted=TRAINING_INTERRUPTED)


def _run(args: argparse.Namespace) -> int:
    import torch

    from encoders.e4e import EncoderConfig, Encoder4Editing
    from encoders.training import EncoderTrainConfig, train_encoder
    from stylegan import Generator, GeneratorConfig, load_generator
    from stylegan.errors import UserError
    from stylegan.training.dataset import load_split
    from stylegan.training.loop import training_device_and_autocast

    apply_threads(args.threads)
    if args.export:
        from tools.export_model import export

        print("note: --export is deprecated; use sgm-export-model MODEL OUT [--fp16] (tools/export_model.py)",
              file=sys.stderr)
        return export(args.export[0], args.export[1], args.fp16)
    if not args.data:
        raise UserError("--data is required (folders of aligned faces)")
    if args.generator:
        G = load_generator(args.generator).train().requires_grad_(True)
    elif args.new_generator:
        res = args.new_generator
        if args.g_channels:
            gcfg = GeneratorConfig(res, args.g_channels, z_dim=args.w_dim, w_dim=args.w_dim,
                                   mapping_layers=args.mapping_layers)
        else:
            gcfg = GeneratorConfig.from_channel_base(res, z_dim=args.w_dim, w_dim=args.w_dim,
                                                     mapping_layers=args.mapping_layers)
        torch.manual_seed(args.seed)
        G = Generator(gcfg)
    else:
        raise UserError("give --generator PATH or --new-generator RES")
    res = G.img_resolution
    ecfg = EncoderConfig(num_ws=G.num_ws, w_dim=G.w_dim, input_size=args.enc_input or max(32, res),
                         stage_widths=args.enc_widths, stage_units=args.enc_units,
                         se_reduction=min(16, min(args.enc_widths)))
    E = Encoder4Editing(ecfg)
    device, amp = training_device_and_autocast(args.device, "fp32" if args.no_bf16 else args.precision)
    bf16 = amp.enabled
    train, val, n_train, n_val = load_split(args.data, res, args.val_fraction, args.val_count, Path(args.run) / "cache")
    print(f"{n_train} training and {n_val} validation images (split by identity); "
          f"generator {res}px, {G.num_ws} ws of {G.w_dim}")
    known = {f.name for f in fields(EncoderTrainConfig)}
    cfg = EncoderTrainConfig(**{k: v for k, v in dict(
        batch_size=args.batch_size, lr=args.lr, g_lr=args.g_lr, joint=args.joint, delta_weight=args.delta_weight,
        lap_weight=args.lap_weight, synthetic_fraction=args.synthetic_fraction, bf16=bf16,
        total_steps=args.steps, max_minutes=args.minutes, val_every=args.val_every,
        sample_every=args.val_every, ckpt_every=args.val_every, seed=args.seed).items() if k in known})
    meta = {"command": "python tools/train_encoder.py " + " ".join(sys.argv[1:]),
            "data": [str(d) for d in args.data], "num_train": n_train, "num_val": n_val}
    best = train_encoder(G, E, train, val, args.run, cfg, meta=meta, device=device)
    print(f"best model: {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
