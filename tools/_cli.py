"""What every tool does around its work: one-line errors and a clean Ctrl-C."""

from __future__ import annotations

import argparse
import math
import re
import signal
import sys
import threading
from typing import Callable, Mapping

__all__ = [
    "TRAINING_INTERRUPTED", "run_tool", "run_cli", "Terminated", "flag_names", "add_yes_option", "refine_steps",
    "add_refine_option", "add_model_options", "add_precision_option", "add_threads_option", "threads_value",
    "default_threads", "apply_threads", "keep_freed_memory", "DEVICE_CHOICES", "add_device_option",
    "add_batch_size_option", "PRECISION_CHOICES", "NOISE_MODE_CHOICES", "EASING_CHOICES", "KIND_CHOICES",
    "SCHEDULE_CHOICES", "stderr_logger", "report_folder", "add_compute_options", "add_path_options",
    "add_video_options", "add_size_option", "add_noise_option", "path_spec", "render_spec"
]

# What a trainer says on Ctrl-C: its checkpoints are written atomically, so the last one is whole.
TRAINING_INTERRUPTED = "interrupted; the last checkpoint in the run directory is intact"

# What stylegan.render.resolve_device accepts by name (it also takes "cuda:N" from library callers).
DEVICE_CHOICES = ("auto", "cpu", "cuda")

# The library's choices, copied so that --help stays torch-free (importing the modules that define
# them loads torch: 2.4 s against 0.14 s for a tool's --help here); tests/tools/test_cli_options.py
# fails when a copy differs from its source.
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")  # stylegan.precision.PRECISIONS
NOISE_MODE_CHOICES = ("const", "random", "none")  # stylegan.networks.NOISE_MODES
EASING_CHOICES = ("linear", "ease-in-out", "cosine")  # stylegan.interpolation.EASINGS
KIND_CHOICES = ("lerp", "slerp")  # stylegan.interpolation.KINDS
SCHEDULE_CHOICES = ("uniform", "coarse-to-fine", "fine-to-coarse")  # stylegan.interpolation.SCHEDULES


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
    a verb, a parameter written ``name=True``, or one whose name has an underscore
    (``val_fraction``: never an English word) anywhere outside a path, is renamed, so
    paths and prose stay untouched.
    """
    def start(match: re.Match) -> str:
        return match.group(1) + flags.get(match.group(2), match.group(2)) + match.group(3)

    message = re.sub(r"(^|; )([a-z_]+)( (?:must|is|has|needs|cannot|applies) )", start, message)
    message = re.sub(r"\b([a-z_]+)=True\b", lambda m: flags.get(m.group(1), m.group(0)), message)
    return re.sub(r"(?<![\w/.-])([a-z]+_[a-z_]+)(?![\w/.-])", lambda m: flags.get(m.group(1), m.group(0)), message)


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


def run_tool(parser: argparse.ArgumentParser, work: Callable[[argparse.Namespace], int | None],
             argv: list[str] | None = None, interrupted: str = "interrupted") -> int:
    """A tool's ``main``: parse ``argv`` (None reads ``sys.argv``) and run ``work(args)`` through :func:`run_cli`.

    Library messages are shown with the parser's flags (``fps must ...`` -> ``--fps must ...``).
    """
    args = parser.parse_args(argv)
    return run_cli(lambda: work(args), interrupted=interrupted, flags=parser)


def add_yes_option(parser: argparse.ArgumentParser) -> None:
    """``--yes``: go ahead with a run over the frame or time limits (see :mod:`stylegan.limits`)."""
    parser.add_argument("--yes", action="store_true",
                        help="go ahead with more than 10,000 frames or an estimated hour of rendering")


def stderr_logger(quiet: bool) -> Callable[[str], None]:
    """The ``log`` callback the library's long functions take: one line to stderr, or nothing with ``-q``."""
    def log(message: str) -> None:
        if not quiet:
            print(message, file=sys.stderr)
    return log


def report_folder(result, log: Callable[[str], None], quiet: bool, left_out: str = "skipped") -> None:
    """After a tool's folder run: one log line per photo left out (and why), then the summary unless quiet.

    ``result`` has ``failed`` (``(photo, reason)`` pairs) and ``summary()``, as
    ``encoders.batch_invert.invert_folder`` and ``encoders.latent_map.latent_map`` return.
    """
    for photo, reason in result.failed:
        log(f"{left_out} {photo}: {reason}")
    if not quiet:
        print(result.summary())


def _auto_or_count(text: str, what: str, low: int, high: int | None = None) -> int | str:
    """argparse type for ``auto`` or a whole number of ``what`` from ``low`` (to ``high``)."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of {what} or 'auto', got {text!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        raise argparse.ArgumentTypeError(f"{what} must be {bounds}, got {value}")
    return value


def refine_steps(text: str) -> int | str:
    """argparse type for ``--refine``: ``auto`` or a number of steps >= 0."""
    return _auto_or_count(text, "steps", 0)


def _seconds(text: str) -> float:
    """argparse type for a duration in seconds: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text}")
    return value


def add_refine_option(parser: argparse.ArgumentParser, budget: bool = True) -> None:
    """``--refine N|auto`` (and ``--refine-budget SECONDS``), shared by the tools that invert photos.

    See :mod:`encoders.refine`: ``auto`` times the first step and takes as many as fit the budget.
    """
    auto = ("as many as fit --refine-budget (it times the first step and prints its choice; at most 100)"
            if budget else "100 for generators up to 256 px, 0 above")
    parser.add_argument("--refine", type=refine_steps, default="auto", metavar="N|auto",
                        help=f"optimisation steps that refine each photo's code after encoding; auto = {auto} "
                             "(default: auto)")
    if budget:
        parser.add_argument("--refine-budget", type=_seconds, default=20.0, metavar="SECONDS",
                            help="seconds of refinement per photo for --refine auto (default: 20)")


def add_precision_option(parser: argparse.ArgumentParser, training: bool = False) -> None:
    """``--precision auto|fp32|bf16|fp16`` (see :mod:`stylegan.precision`).

    Args:
        training: say what the trainers do instead (:func:`stylegan.training.loop.choose_autocast`):
            their ``auto`` is bf16 on a GPU with bf16 too, and they refuse fp16.
    """
    if training:
        text = ("autocast while training: auto = bf16 where the device has it natively (a CUDA GPU since Ampere, "
                "a CPU with AMX or AVX512-BF16), else fp32; weights stay fp32; fp16 is refused (it would need "
                "loss scaling) (default: auto)")
    else:
        text = ("arithmetic: auto = bf16 on a CPU with native bf16 (AMX or AVX512-BF16; >= 40 dB against fp32), "
                "else fp32; fp16 needs CUDA (default: auto)")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help=text)


def threads_value(text: str) -> int | str:
    """argparse type for ``--threads``: ``auto`` or a count from 1 to 1024."""
    return _auto_or_count(text, "threads", 1, 1024)


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads N|auto``: CPU threads for torch (see :func:`default_threads`)."""
    parser.add_argument("--threads", type=threads_value, default="auto", metavar="N|auto",
                        help="CPU threads; auto = the cores that other processes leave idle (1-minute load "
                             "average), at least 1 (default: auto)")


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """The cores this process may use, less those that other processes keep busy; at least 1.

    On a 2-core Sapphire Rapids at load 12-14, a 256 px frame took 3.96 s with 1 thread and
    7.40 s with 2: OpenMP's threads wait for each other at every op, and a busy machine
    keeps preempting one of them. On an idle machine all cores help. The 1-minute load
    average (read before our own work starts) says how many cores others use.
    """
    import os

    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning big blocks to the system.

    A 1024^2 activation is 128 MiB; glibc serves such blocks with mmap and unmaps them
    on free, so every layer of every frame page-faults its output in again. Serving
    them from the heap and keeping it (``M_MMAP_MAX`` 0, a high ``M_TRIM_THRESHOLD``)
    made a 1024^2 frame 15% faster in fp32 and 30% in bf16 here (Sapphire Rapids, load
    7; the PyTorch tuning guide suggests jemalloc or tcmalloc for the same reason). The
    peak memory is unchanged; it is simply not handed back between frames. A no-op
    (False) where the C library is not glibc.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**30))


def apply_threads(threads: int | str) -> int:
    """Set torch's CPU threads from ``--threads`` (and :func:`keep_freed_memory`); return the thread count."""
    import torch  # deferred so that --help never needs torch

    n = default_threads() if threads == "auto" else int(threads)
    torch.set_num_threads(n)
    keep_freed_memory()
    return n


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device auto|cpu|cuda``, resolved by :func:`stylegan.render.resolve_device` (one help text for all tools)."""
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="where to compute: auto = CUDA when a GPU is visible, else CPU (default: auto)")


def add_batch_size_option(parser: argparse.ArgumentParser, default: int, what: str,
                          old_batch: bool = False) -> None:
    """``--batch-size N``: how many items one step takes; ``what`` says which (e.g. "faces synthesised together").

    Args:
        old_batch: also accept the older spelling ``--batch`` (hidden, same destination)
            so that existing commands keep working.
    """
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=default, metavar="N",
                        help=f"{what} (default: {default})")
    if old_batch:  # deprecated spelling, kept out of --help
        parser.add_argument("--batch", dest="batch_size", type=int, default=default, help=argparse.SUPPRESS)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model NAME | --weights PATH`` for the tools that need an encoder and a generator."""
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", metavar="NAME", help="a registered model, e.g. e4e-ffhq (downloaded once)")
    model.add_argument("--weights", metavar="PATH",
                       help="an e4e checkpoint or model file (default: the embedded default model)")


def add_compute_options(parser: argparse.ArgumentParser, quiet: str, device: bool = True,
                        precision: bool = True) -> None:
    """The options every computing tool ends with: ``--precision``, ``--threads``, ``--device`` and ``-q``.

    Args:
        quiet: what ``-q/--quiet`` leaves out, for its help (e.g. "no progress bar or messages").
        device, precision: offer ``--device`` / ``--precision`` (a CPU-only tool leaves them out).
    """
    if precision:
        add_precision_option(parser)
    add_threads_option(parser)
    if device:
        add_device_option(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet)


def add_path_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, what: str = "face",
                     steps: int = 60, kind: bool = True, schedule: bool = True, loop_help: str | None = None) -> None:
    """``--steps --hold --easing [--kind] [--schedule] --loop``: the fields of a :class:`stylegan.specs.PathSpec`.

    Args:
        what: what the path passes through, for the help texts ("face", "seed").
        steps: the default of ``--steps``.
        kind, schedule: offer ``--kind`` / ``--schedule`` (a seed path is always a slerp in z).
        loop_help: the help of ``--loop`` when "back to the first <what>" does not fit.
    """
    parser.add_argument("--steps", type=int, default=steps,
                        help=f"frames per transition, both ends included (default: {steps})")
    parser.add_argument("--hold", type=int, default=0, metavar="FRAMES",
                        help=f"extra frames that pause on every {what} (default: 0)")
    parser.add_argument("--easing", choices=EASING_CHOICES, default="linear",
                        help="speed profile of each transition (default: linear)")
    if kind:
        parser.add_argument("--kind", choices=KIND_CHOICES, default="lerp",
                            help="straight line or great circle in W+ (default: lerp)")
    if schedule:
        parser.add_argument("--schedule", choices=SCHEDULE_CHOICES, default="uniform",
                            help="when coarse/middle/fine styles change (default: uniform)")
    parser.add_argument("--loop", action="store_true",
                        help=loop_help or f"end with a transition back to the first {what}")


def add_video_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, fps: float = 30) -> None:
    """``--fps`` and ``--crf``: how a video is written (fields of :class:`stylegan.specs.RenderSpec`)."""
    parser.add_argument("--fps", type=float, default=fps, help=f"frames per second (default: {fps:g})")
    parser.add_argument("--crf", type=int, default=18, help="H.264 quality, 0 best .. 51 worst (default: 18)")


def add_size_option(parser: argparse.ArgumentParser, what: str = "frame side") -> None:
    """``--size PX``: resize what is rendered (None keeps the generator's resolution)."""
    parser.add_argument("--size", type=int, default=None, metavar="PX",
                        help=f"{what} in pixels (default: the generator's resolution)")


def add_noise_option(parser: argparse.ArgumentParser) -> None:
    """``--noise-mode const|random|none``."""
    parser.add_argument("--noise-mode", choices=NOISE_MODE_CHOICES, default="const",
                        help="per-layer noise: const = the stored noise, steady across frames (default: const)")


def _spec_fields(spec_type: type, args: argparse.Namespace, fixed: dict) -> dict:
    from dataclasses import fields

    given = {f.name: getattr(args, f.name) for f in fields(spec_type) if hasattr(args, f.name)}
    return {**given, **fixed}


def path_spec(args: argparse.Namespace, **fixed: object):
    """A :class:`stylegan.specs.PathSpec` from the parsed options (those a tool lacks keep their defaults).

    Raises:
        UserError: a bad value; the message names the parameter, which :func:`run_cli` shows as its flag.
    """
    from stylegan.specs import PathSpec  # deferred so that --help never needs torch

    return PathSpec(**_spec_fields(PathSpec, args, fixed))


def render_spec(args: argparse.Namespace, **fixed: object):
    """A :class:`stylegan.specs.RenderSpec` from the parsed options; see :func:`path_spec`."""
    from stylegan.specs import RenderSpec

    return RenderSpec(**_spec_fields(RenderSpec, args, fixed))
