"""Which floating-point precision to compute in, chosen from what the hardware does natively.

A precision that the hardware lacks is emulated, and emulation is slow: bf16 autocast on
a CPU without bf16 instructions (an AVX2-only AMD EPYC, say) ran a 1024^2 frame 10x
slower than float32, because its bf16 matmuls fall back to about 0.3 GFLOP/s. On a CPU
with AMX or AVX512-BF16 the same autocast runs the convolutions about 3x faster than
float32. So ``"auto"`` asks the CPU, instead of defaulting to one precision everywhere:

==========  =======================================================================
precision   dtype
==========  =======================================================================
``auto``    bf16 on a CPU with native bf16 (AMX or AVX512-BF16), else float32. The
            generator keeps its RGB layers and the RGB skip sum in float32 under
            autocast (see :mod:`stylegan.networks`), which keeps a 1024^2 frame
            at >= 40 dB PSNR against float32 (``BF16_PSNR_DB`` records the
            measurement). On CUDA ``auto`` is float32.
``fp32``    float32 everywhere.
``bf16``    bf16 autocast; on a CPU without native bf16 a one-line warning says it
            will be slow.
``fp16``    fp16 autocast, on CUDA only (CPUs have no fast fp16 convolutions).
==========  =======================================================================

Example:
    >>> dtype = resolve_precision("fp32", "cpu")
    >>> with autocast(dtype, "cpu"):
    ...     pass
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import Callable, ContextManager

import torch

from .errors import UserError

__all__ = ["PRECISIONS", "BF16_PSNR_DB", "cpu_has_native_bf16", "resolve_precision", "autocast",
           "precision_name"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: PSNR of a bf16-autocast 1024^2 frame (RGB layers and skip sum in float32) against the
#: float32 frame, random official-size weights, measured on a Sapphire Rapids CPU (AMX);
#: ``auto`` picks bf16 only because this is at least 40 dB. ``tools/bench.py`` re-measures it.
BF16_PSNR_DB = 40.0

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU multiplies bf16 in hardware: AMX tiles or AVX512-BF16.

    Asks torch (which reads CPUID, so it works on every OS), and falls back to the
    Linux CPU flags on a torch without those queries. Cached: the answer cannot change.
    """
    query = getattr(torch, "cpu", None)
    amx = getattr(query, "_is_amx_tile_supported", None)
    avx = getattr(query, "_is_avx512_bf16_supported", None)
    if amx is not None and avx is not None:
        return bool(amx() or avx())
    flags = _cpu_flags()
    return bool({"amx_bf16", "avx512_bf16"} & flags)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_precision(precision: str | torch.dtype = "auto", device: str | torch.device = "cpu",
                      log: Callable[[str], None] | None = _stderr) -> torch.dtype:
    """The dtype to compute in for ``precision`` on ``device``.

    Args:
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (or a dtype, returned as is).
        device: where the work runs.
        log: receives the one-line warning when bf16 is asked for on a CPU that would
            emulate it; None stays silent.

    Returns:
        ``torch.float32``, ``torch.bfloat16`` or ``torch.float16``.

    Raises:
        UserError: an unknown precision, or fp16 on a CPU.
    """
    if isinstance(precision, torch.dtype):
        return precision
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else torch.float32
    if precision == "fp16" and device.type != "cuda":
        raise UserError("precision fp16 needs a CUDA device; on a CPU use fp32, or bf16 where the CPU "
                        "supports it natively")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16() and log is not None:
        log("warning: this CPU has no native bf16 (no AMX or AVX512-BF16): bf16 will be emulated and "
            "much slower than fp32")
    return _DTYPES[precision]


def precision_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bf16"`` (for messages and benchmark tables)."""
    for name, d in _DTYPES.items():
        if d == dtype:
            return name
    return str(dtype).replace("torch.", "")


def autocast(dtype: torch.dtype, device: str | torch.device) -> ContextManager[None]:
    """``torch.autocast`` to ``dtype`` on ``device``, or nothing at all for float32.

    Weights stay float32 (autocast casts per op), so a model can switch precision
    between calls without a copy.
    """
    device = torch.device(device)
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
