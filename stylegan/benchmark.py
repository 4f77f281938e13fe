"""Time the generator with each op implementation and precision, side by side.

Every variant renders the same latents in the same process; repeats are interleaved
(variant A, B, C, A, B, C, ...) so that load from other processes hits all variants
alike, and each variant reports the median over the repeats after a warm-up frame.
Image quality is the PSNR of each variant's image against the float32 reference
image (see :func:`psnr`).

Weights are random, with the official FFHQ shapes
(:meth:`stylegan.GeneratorConfig.from_channel_multiplier`); speed does not depend on
the values. Only ``G.synthesis`` is timed: a video renders one synthesis per frame
from interpolated ``w``, the mapping network is negligible.

Example:
    >>> results = run_benchmark([16], ["ref-fp32", "fast-fp32"], repeats=1, warmup=0)
    >>> [r.variant for r in results]
    ['ref-fp32', 'fast-fp32']
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import statistics
import time
from typing import Any, Callable, Iterator, Sequence

import torch

from .config import GeneratorConfig
from .errors import UserError
from .networks import Generator

__all__ = ["Variant", "BenchResult", "parse_variant", "default_variants", "psnr", "run_benchmark",
           "format_table", "PRECISIONS", "synthesis_gflop", "measure_conv_gflops"]

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way to run the generator: ``{impl}-{precision}[-cl]``, e.g. "fast-bf16-cl".

    Attributes:
        impl: op implementation, "ref", "fast" or "cuda".
        precision: "fp32", or "bf16"/"fp16" via ``torch.autocast``.
        channels_last: convert the 4-D weights (and so every activation) to channels_last; the
            fast CPU path does this for its convs anyway, so it matters for "ref".
    """

    impl: str
    precision: str
    channels_last: bool = False

    @property
    def name(self) -> str:
        return f"{self.impl}-{self.precision}" + ("-cl" if self.channels_last else "")


@dataclasses.dataclass
class BenchResult:
    """Timing and quality of one variant at one resolution."""

    resolution: int
    variant: str
    seconds: float                  # median seconds per frame
    times: list[float]              # every timed repeat
    speedup: float | None           # baseline median / this median (same run)
    psnr_db: float | None           # against the baseline's image; inf when identical
    max_abs_diff: float | None      # against the baseline's image
    gflop: float | None = None      # arithmetic of one frame (see synthesis_gflop)
    conv_gflops: float | None = None  # the machine's measured 3x3 conv rate in this precision, same run

    @property
    def efficiency(self) -> float | None:
        """Achieved GFLOP/s over the measured conv rate (1.0 = the frame runs at the conv rate)."""
        if not self.gflop or not self.conv_gflops:
            return None
        return self.gflop / self.seconds / self.conv_gflops

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["psnr_db"] is not None and math.isinf(d["psnr_db"]):
            d["psnr_db"] = "inf"  # JSON has no infinity
        return d


def parse_variant(spec: str) -> Variant:
    """Parse "ref-fp32", "fast-bf16-cl", "cuda-fp16", ...

    Raises:
        UserError: an unknown implementation, precision or suffix.
    """
    parts = spec.strip().lower().split("-")
    cl = parts[-1] == "cl"
    if cl:
        parts = parts[:-1]
    if len(parts) != 2 or parts[0] not in ("ref", "fast", "cuda") or parts[1] not in PRECISIONS:
        raise UserError(f"bad variant {spec!r}: expected IMPL-PRECISION[-cl] with IMPL in ref/fast/cuda "
                        f"and PRECISION in {'/'.join(PRECISIONS)}, e.g. fast-bf16-cl")
    return Variant(parts[0], parts[1], cl)


def default_variants(device: torch.device) -> list[str]:
    """The variants worth comparing on this device (the baseline first)."""
    if device.type == "cuda":
        return ["ref-fp32", "fast-fp32", "cuda-fp32", "cuda-fp16", "cuda-bf16"]
    # The fast CPU path already convolves in channels_last (see stylegan.networks);
    # "ref-fp32-cl" shows how much of its lead is that layout rather than the ops.
    return ["ref-fp32", "fast-fp32", "fast-bf16", "ref-fp32-cl"]


def synthesis_gflop(G: Generator) -> float:
    """GFLOP (2 per multiply-add) of one frame of ``G.synthesis``: the convolutions, which are almost all of it.

    A 3x3 conv costs 2*O*I*9 per output pixel; the 2x up conv is a stride-2 transposed conv
    with the same MACs per *input* pixel, and the [1,3,3,1] filter after it is 2*16 per
    output value. The 1024^2 official generator comes to about 151 GFLOP.
    """
    total = 0.0
    for block in G.synthesis.children():  # one SynthesisBlock per resolution
        r = block.resolution
        for layer in (getattr(block, "conv0", None), block.conv1):
            if layer is None:
                continue
            o, i, kh, kw = layer.weight.shape
            total += 2.0 * o * i * kh * kw * ((r // 2) ** 2 if layer.up else r * r)
            if layer.up:
                total += 2.0 * 16 * o * (r + 1) ** 2
        o, i = block.torgb.weight.shape[:2]
        total += 2.0 * o * i * r * r
    return total / 1e9


def measure_conv_gflops(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                        repeats: int = 3) -> float:
    """The machine's rate for a plain 3x3 convolution (512 -> 512 channels at 64^2, channels_last), GFLOP/s.

    This is the kind of layer that dominates synthesis, so it is the realistic ceiling:
    a frame cannot run faster than its FLOPs at this rate. Median of ``repeats`` after a warm-up.
    """
    device = torch.device(device)
    x = torch.randn(1, 512, 64, 64, device=device).to(memory_format=torch.channels_last)
    w = torch.randn(512, 512, 3, 3, device=device).to(memory_format=torch.channels_last)
    x, w = x.to(dtype), w.to(dtype)
    flop = 2.0 * 512 * 512 * 9 * 64 * 64
    now = _timer(device)
    times = []
    with torch.no_grad():
        torch.nn.functional.conv2d(x, w, padding=1)
        for _ in range(max(1, repeats)):
            t0 = now()
            torch.nn.functional.conv2d(x, w, padding=1)
            times.append(now() - t0)
    return flop / statistics.median(times) / 1e9


def psnr(img: torch.Tensor, ref: torch.Tensor) -> float:
    """PSNR in dB of ``img`` against ``ref`` for the generator's nominal range [-1, 1] (peak-to-peak 2).

    Nothing is clamped: random weights give images with a std of about 1.6, most pixels
    outside [-1, 1], and clamping would hide the errors there. Rounding errors grow with
    the signal, so on such images the PSNR understates the quality, never overstates it.
    Returns inf for identical images.
    """
    mse = float((img.double() - ref.double()).square().mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)


@contextlib.contextmanager
def _precision(variant: Variant, device: torch.device) -> Iterator[None]:
    if variant.precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if variant.precision == "bf16" else torch.float16
    with torch.autocast(device.type, dtype=dtype):
        yield


def _timer(device: torch.device) -> Callable[[], float]:
    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # kernels run asynchronously
        return time.perf_counter()
    return now


def run_benchmark(resolutions: Sequence[int], variants: Sequence[str], repeats: int = 5, warmup: int = 1,
                  device: str | torch.device = "cpu", seed: int = 0,
                  progress: Callable[[str], None] | None = None) -> list[BenchResult]:
    """Seconds per frame (batch 1) of ``G.synthesis`` for each variant, and its PSNR against the first variant.

    Args:
        resolutions: output sizes, e.g. [256, 1024].
        variants: specs for :func:`parse_variant`; the first is the baseline for speed-ups and PSNR
            (use "ref-fp32").
        repeats: timed frames per variant (the median is reported).
        warmup: untimed frames per variant first (oneDNN/cuDNN pick their kernels on the first call).
        device: "cpu" or "cuda".
        seed: seeds the weights and the latent.
        progress: called with a line of text after every measurement, if given.

    Returns:
        One :class:`BenchResult` per (resolution, variant), in order.

    Raises:
        UserError: bad arguments, or a "cuda" variant without a GPU.
    """
    device = torch.device(device)
    specs = [parse_variant(v) for v in variants]
    if not specs:
        raise UserError("no variants to run")
    if repeats < 1 or warmup < 0:
        raise UserError("repeats must be >= 1 and warmup >= 0")
    bad = [r for r in resolutions if r < 4 or r > 1024 or r & (r - 1)]
    if bad:
        raise UserError(f"resolutions must be powers of two from 4 to 1024, got {bad}")
    if any(v.impl == "cuda" for v in specs) and device.type != "cuda":
        raise UserError("device must be cuda (and a GPU visible) for the 'cuda' variants")
    say = progress or (lambda _msg: None)
    now = _timer(device)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    rates: dict[str, float] = {}
    for v in specs:  # the ceiling each precision could reach on this machine, measured now
        if v.precision not in rates and not (v.precision == "fp16" and device.type == "cpu"):
            rates[v.precision] = measure_conv_gflops(dtypes[v.precision], device)
            say(f"3x3 conv rate {v.precision}: {rates[v.precision]:.0f} GFLOP/s")
    results: list[BenchResult] = []
    for res in resolutions:
        torch.manual_seed(seed)
        G = Generator(GeneratorConfig.from_channel_multiplier(res)).eval().requires_grad_(False).to(device)
        # Channels-last variants share one converted copy; everything else uses G as is.
        G_cl = copy.deepcopy(G).to(memory_format=torch.channels_last) if any(v.channels_last for v in specs) else None
        with torch.no_grad():
            ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device))

            def render(v: Variant) -> torch.Tensor:
                model = G_cl if v.channels_last else G
                model.set_impl(v.impl)
                with _precision(v, device):
                    return model.synthesis(ws, noise_mode="const")

            images: dict[str, torch.Tensor] = {}
            for v in specs:  # warm-up, and the image used for PSNR
                for _ in range(max(warmup, 1)):
                    images[v.name] = render(v).float().cpu()
            times: dict[str, list[float]] = {v.name: [] for v in specs}
            for r in range(repeats):
                for v in specs:  # interleaved, so drifting background load hits every variant alike
                    t0 = now()
                    render(v)
                    times[v.name].append(now() - t0)
                    say(f"{res}px {v.name:14s} repeat {r + 1}/{repeats}: {times[v.name][-1]:.3f} s")
        base = specs[0].name
        base_s = statistics.median(times[base])
        gflop = synthesis_gflop(G)
        for v in specs:
            med = statistics.median(times[v.name])
            diff = float((images[v.name] - images[base]).abs().max())
            results.append(BenchResult(res, v.name, med, times[v.name], base_s / med,
                                       psnr(images[v.name], images[base]), diff, gflop, rates.get(v.precision)))
        del G, G_cl
    return results


def format_table(results: Sequence[BenchResult]) -> str:
    """A Markdown table: resolution, variant, s/frame, speed-up and PSNR against the baseline, and efficiency.

    GFLOP/s is the frame's arithmetic over its time; "of conv rate" divides that by the
    machine's 3x3 conv rate in the same precision, measured in the same run.
    """
    lines = ["| resolution | variant | s/frame (median) | speed-up vs first | PSNR vs first (dB) | max abs diff | "
             "GFLOP/s | of conv rate |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        p = "inf (identical)" if r.psnr_db is not None and math.isinf(r.psnr_db) else f"{r.psnr_db:.1f}"
        rate = f"{r.gflop / r.seconds:.0f}" if r.gflop else "-"
        eff = f"{r.efficiency:.0%} of {r.conv_gflops:.0f}" if r.efficiency is not None else "-"
        lines.append(f"| {r.resolution} | {r.variant} | {r.seconds:.3f} | {r.speedup:.2f}x | {p} | "
                     f"{r.max_abs_diff:.2e} | {rate} | {eff} |")
    return "\n".join(lines)
