"""End-to-end timing of a morph: where the time goes from two photos to an MP4.

The stages are those of :func:`encoders.morph.morph` (align, encode, refine, then
synthesis and video encoding, which are interleaved frame by frame and timed apart
here), run on official-size random weights built in memory, so the numbers need no
download and match what a user of the official FFHQ model would wait for:
StyleGAN2 config F at the given resolution and the full IR-SE50 e4e encoder.

Example:
    >>> from encoders.speed import run_e2e            # doctest: +SKIP
    >>> r = run_e2e(["a.jpg", "b.jpg"], 256, "out.mp4", steps=60)
    >>> print(format_e2e([r]))
"""

from __future__ import annotations

import dataclasses
import os
import resource
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from stylegan import Generator, GeneratorConfig
from stylegan.imageio import to_tensor
from stylegan.interpolation import interpolation_path
from stylegan.precision import autocast, precision_name, resolve_precision
from stylegan.render import render_frames
from stylegan.video import write_video

from .e4e import Encoder4Editing, EncoderConfig
from .morph import prepare_inputs
from .refine import DEFAULT_REFINE_BUDGET, refine_latent

__all__ = ["E2EResult", "run_e2e", "format_e2e", "peak_rss_mb"]

STAGES = ("build", "align", "encode", "refine", "synthesis", "video")


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@dataclasses.dataclass
class E2EResult:
    """Seconds per stage of one morph, and what was run."""

    resolution: int
    steps: int
    frames: int
    precision: str
    refine: str
    threads: int
    seconds: dict[str, float]
    peak_rss_mb: float

    @property
    def total(self) -> float:
        """Seconds from photos to MP4, without building the random models (a user loads a file instead)."""
        return sum(v for k, v in self.seconds.items() if k != "build")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["total"] = self.total
        return d


class _Timed:
    """Wrap a frame iterator and add up the seconds spent producing frames (synthesis)."""

    def __init__(self, frames: Iterator[np.ndarray], clock: Callable[[], float]) -> None:
        self.frames, self.clock, self.seconds = frames, clock, 0.0

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            t0 = self.clock()
            try:
                frame = next(self.frames)
            except StopIteration:
                self.seconds += self.clock() - t0
                return
            self.seconds += self.clock() - t0
            yield frame


def run_e2e(photos: Sequence[str | os.PathLike], resolution: int, output: str | os.PathLike, *, steps: int = 60,
            refine: int | str = 0, refine_budget: float = DEFAULT_REFINE_BUDGET, precision: str = "auto",
            batch_size: int = 1, seed: int = 0, log: Callable[[str], None] | None = None) -> E2EResult:
    """Morph ``photos`` into ``output`` with official-size random models, timing every stage.

    Args:
        photos: two or more photos with a face.
        resolution: generator size (256 or 1024 for the published comparisons).
        output: the ``.mp4`` to write (replaced).
        steps: frames per transition.
        refine, refine_budget: as for :func:`encoders.morph.morph`.
        precision: see :mod:`stylegan.precision`; "auto" follows the CPU.
        batch_size: frames synthesised together.
        seed: of the random weights.
        log: receives a line per stage.

    Returns:
        An :class:`E2EResult`.
    """
    say = log or (lambda _m: None)
    clock = time.perf_counter
    dev = torch.device("cpu")
    seconds = {k: 0.0 for k in STAGES}

    t0 = clock()
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig.from_channel_multiplier(resolution)).eval().requires_grad_(False)
    E = Encoder4Editing(EncoderConfig(num_ws=G.num_ws, w_dim=G.w_dim)).eval().requires_grad_(False)
    E = E.to(memory_format=torch.channels_last)
    dtype = resolve_precision(precision, dev, log=log, model=G)  # official size: bf16 where the CPU has it
    seconds["build"] = clock() - t0
    say(f"{resolution}px: built official-size G and IR-SE50 E in {seconds['build']:.1f} s")

    t0 = clock()
    keyframes = prepare_inputs(photos)
    seconds["align"] = clock() - t0
    say(f"{resolution}px: aligned {len(keyframes)} photos in {seconds['align']:.1f} s")

    codes = []
    for kf in keyframes:
        image = to_tensor(kf.aligned)
        t0 = clock()
        with torch.no_grad(), autocast(dtype, dev):
            ws = E.encode(image.contiguous(memory_format=torch.channels_last)).float()
        seconds["encode"] += clock() - t0
        t0 = clock()
        ws = refine_latent(G, image, ws, refine, budget=refine_budget, precision=dtype, log=log)
        seconds["refine"] += clock() - t0
        codes.append(ws[0])
    say(f"{resolution}px: encoded in {seconds['encode']:.1f} s, refined in {seconds['refine']:.1f} s")
    del E

    path = interpolation_path(torch.stack(codes), steps)
    frames = _Timed(render_frames(G, path, batch_size=batch_size, progress=False, precision=dtype), clock)
    t0 = clock()
    count = write_video(iter(frames), Path(output), fps=30)
    total = clock() - t0
    seconds["synthesis"] = frames.seconds
    seconds["video"] = total - frames.seconds
    say(f"{resolution}px: {count} frames, synthesis {seconds['synthesis']:.1f} s, video {seconds['video']:.1f} s")
    return E2EResult(resolution, steps, count, precision_name(dtype), str(refine), torch.get_num_threads(), seconds,
                     peak_rss_mb())


def format_e2e(results: Sequence[E2EResult]) -> str:
    """A Markdown table: seconds per stage and in total, with each stage's share."""
    head = "| resolution | precision | frames | refine | " + " | ".join(STAGES[1:]) + " | total (s) | peak RSS |"
    lines = [head, "|" + "---:|" * (len(STAGES) + 5)]
    for r in results:
        cells = [f"{r.seconds[k]:.1f} ({r.seconds[k] / max(r.total, 1e-9):.0%})" for k in STAGES[1:]]
        lines.append(f"| {r.resolution} | {r.precision} | {r.frames} | {r.refine} | " + " | ".join(cells)
                     + f" | {r.total:.1f} | {r.peak_rss_mb:.0f} MiB |")
    return "\n".join(lines)
