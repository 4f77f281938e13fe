"""What every tool does around its work: one-line errors and a clean Ctrl-C."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from typing import Callable, Mapping

__all__ = ["run_cli", "Terminated", "flag_names", "add_yes_option", "refine_steps", "add_refine_option",
           "add_model_options"]


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that every writer's cleanup runs (nothing half-written)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``{parameter: flag}`` from a parser, e.g. ``{"fps": "--fps", "face_index": "--face-index"}``."""
    names: dict[str, str] = {}
    for action in parser._actions:  # argparse has no public list of its options
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and action.dest != "help":
            names[action.dest] = longs[0]
    return names


def _translate(message: str, flags: Mapping[str, str]) -> str:
    """Name flags where the library named parameters: ``fps must be ...`` -> ``--fps must be ...``.

    Only a parameter at the start of the message (or of a clause after ``; ``) followed by
    a verb, or written ``name=True``, is renamed, so paths and prose stay untouched.
    """
    def start(match: re.Match) -> str:
        return match.group(1) + flags.get(match.group(2), match.group(2)) + match.group(3)

    message = re.sub(r"(^|; )([a-z_]+)( (?:must|is|has|needs|cannot) )", start, message)
    return re.sub(r"\b([a-z_]+)=True\b", lambda m: flags.get(m.group(1), m.group(0)), message)


def run_cli(body: Callable[[], int | None], interrupted: str = "interrupted",
            flags: argparse.ArgumentParser | Mapping[str, str] | None = None) -> int:
    """Run ``body`` and turn the ways it can end into exit codes.

    A :class:`stylegan.errors.UserError` prints ``error: <message>`` on one line and
    returns 1; Ctrl-C prints ``interrupted`` and returns 130 (the shell's code for
    SIGINT). SIGTERM and SIGHUP are handled the same way (raised as :class:`Terminated`,
    a KeyboardInterrupt, so temporaries are removed) and return 128 + the signal number.
    Any other exception is a bug and keeps its traceback.

    Args:
        flags: the tool's parser (or a ``{parameter: flag}`` map): library messages that
            name a parameter (``fps must be ...``) are shown with the flag (``--fps``).
    """
    from stylegan.errors import UserError  # deferred so that --help never needs torch

    names = flag_names(flags) if isinstance(flags, argparse.ArgumentParser) else dict(flags or {})
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                sig = getattr(signal, name)
                previous[sig] = signal.signal(sig, _terminate)
    try:
        code = body()
    except UserError as err:
        print(f"error: {_translate(str(err), names)}", file=sys.stderr)
        return 1
    except Terminated as err:
        print(interrupted, file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if code is None else code


def add_yes_option(parser: argparse.ArgumentParser) -> None:
    """``--yes``: go ahead with a run over the frame or time limits (see :mod:`stylegan.limits`)."""
    parser.add_argument("--yes", action="store_true",
                        help="go ahead with more than 10,000 frames or an estimated hour of rendering")


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
