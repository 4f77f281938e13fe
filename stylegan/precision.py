"""Which floating-point precision to compute in, chosen from what the hardware does natively.

A precision that the hardware lacks is emulated, and emulation is slow: bf16 autocast on
a CPU without bf16 instructions (an AVX2-only AMD EPYC, say) ran a 1024^2 frame 10x
slower than float32, because its bf16 matmuls fall back to about 0.3 GFLOP/s. On a CPU
with AMX or AVX512-BF16 the same autocast runs the convolutions about 3x faster than
float32. So ``"auto"`` asks the CPU, instead of defaulting to one precision everywhere:

==========  =======================================================================
precision   dtype
==========  =======================================================================
``auto``    bf16 on a CPU with native bf16 (AMX or AVX512-BF16) for models of
            official width (at least ``AUTO_BF16_MIN_PARAMS`` parameters), else
            float32. Under autocast the fast synthesis path rounds only its 3x3
            convolutions (see :mod:`stylegan.synthesis_fast`), which keeps a
            1024^2 frame at >= 40 dB PSNR against float32 (``BF16_PSNR_DB``).
            Small models gain little from bf16 (their time goes to per-op
            overhead), so they stay exact. On CUDA ``auto`` is float32.
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

__all__ = ["PRECISIONS", "BF16_PSNR_DB", "AUTO_BF16_MIN_PARAMS", "cpu_has_native_bf16", "resolve_precision",
           "check_precision", "autocast", "precision_name"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: PSNR of a bf16-autocast 1024^2 frame against the float32 frame on the fast CPU path (only
#: the 3x3 convs round; see :mod:`stylegan.synthesis_fast`), random official-size weights,
#: measured on a Sapphire Rapids CPU (AMX): 41.3 dB for the latent of ``tools/bench.py`` (the
#: lowest we saw), 44.3-44.6 dB for others. Plain autocast gave 38 dB. ``auto`` picks bf16
#: because this is at least 40 dB; ``tools/bench.py`` re-measures it.
BF16_PSNR_DB = 41.3

#: ``auto`` uses bf16 only for models at least this large: every official StyleGAN2
#: generator (24-30 M parameters) and the IR-SE50 encoder, where the PSNR above was
#: measured and the convolutions dominate the time.
AUTO_BF16_MIN_PARAMS = 10_000_000

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


_warned: set[str] = set()


def _stderr(message: str) -> None:
    """The default ``log``: each message once per process (a tool resolves precision in several places)."""
    if message not in _warned:
        _warned.add(message)
        print(message, file=sys.stderr, flush=True)


def resolve_precision(precision: str | torch.dtype = "auto", device: str | torch.device = "cpu",
                      log: Callable[[str], None] | None = _stderr,
                      model: torch.nn.Module | None = None) -> torch.dtype:
    """The dtype to compute in for ``precision`` on ``device``.

    Args:
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (or a dtype, returned as is).
        device: where the work runs.
        log: receives the one-line warning when bf16 is asked for on a CPU that would
            emulate it; None stays silent. The default prints it to stderr once per process.
        model: what will run; for ``"auto"``, a model under ``AUTO_BF16_MIN_PARAMS``
            parameters stays float32.

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
        if model is not None and sum(p.numel() for p in model.parameters()) < AUTO_BF16_MIN_PARAMS:
            return torch.float32
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else torch.float32
    if precision == "fp16" and device.type != "cuda":
        raise UserError("precision fp16 needs a CUDA device; on a CPU use fp32, or bf16 where the CPU "
                        "supports it natively")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16() and log is not None:
        log("warning: this CPU has no native bf16 (no AMX or AVX512-BF16): bf16 will be emulated and "
            "much slower than fp32")
    return _DTYPES[precision]


def check_precision(precision: str | torch.dtype, device: str | torch.device,
                    log: Callable[[str], None] | None = _stderr) -> str | torch.dtype:
    """Check ``precision`` before any work (errors, and the slow-bf16 warning) and return it unresolved.

    ``"auto"`` stays ``"auto"`` so that each model can be resolved on its own size later.
    """
    resolve_precision(precision, device, log=log)
    return precision


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
