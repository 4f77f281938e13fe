"""What every tool does around its work: one-line errors and a clean Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from typing import Callable

__all__ = ["run_cli", "refine_steps", "add_refine_option", "add_model_options"]


def run_cli(body: Callable[[], int | None], interrupted: str = "interrupted") -> int:
    """Run ``body`` and turn the ways it can end into exit codes.

    A :class:`stylegan.errors.UserError` prints ``error: <message>`` on one line and
    returns 1; Ctrl-C prints ``interrupted`` and returns 130 (the shell's code for
    SIGINT). Any other exception is a bug and keeps its traceback.
    """
    from stylegan.errors import UserError  # deferred so that --help never needs torch

    try:
        code = body()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    return 0 if code is None else code


def refine_steps(text: str) -> int | str:
    """argparse type for ``--refine``: ``auto`` or a number of steps >= 0."""
    if text == "auto":
        return text
    try:
        steps = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of steps or 'auto', got {text!r}") from None
    if steps < 0:
        raise argparse.ArgumentTypeError(f"steps must be >= 0, got {steps}")
    return steps


def add_refine_option(parser: argparse.ArgumentParser) -> None:
    """``--refine N|auto``, shared by the tools that invert photos (see :mod:`encoders.refine`)."""
    parser.add_argument("--refine", type=refine_steps, default="auto", metavar="N|auto",
                        help="optimisation steps that refine each photo's code after encoding; auto = 100 for "
                             "generators up to 256 px, 0 above (default: auto)")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model NAME | --weights PATH`` for the tools that need an encoder and a generator."""
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", metavar="NAME", help="a registered model, e.g. e4e-ffhq (downloaded once)")
    model.add_argument("--weights", metavar="PATH",
                       help="an e4e checkpoint or model file (default: the embedded default model)")
