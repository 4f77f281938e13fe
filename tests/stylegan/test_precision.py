"""stylegan.precision: the native-bf16 check (mocked both ways) and what each precision resolves to."""

from __future__ import annotations

import pytest
import torch

from stylegan import precision
from stylegan.errors import UserError


@pytest.fixture
def cpu_bf16(monkeypatch: pytest.MonkeyPatch):
    """Set what the CPU query answers: ``cpu_bf16(amx=..., avx512=...)``."""
    def set_answer(amx: bool, avx512: bool) -> None:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512)
        precision.cpu_has_native_bf16.cache_clear()
    yield set_answer
    precision.cpu_has_native_bf16.cache_clear()


@pytest.mark.parametrize("amx, avx512, native", [(True, False, True), (False, True, True), (True, True, True),
                                                 (False, False, False)])
def test_native_bf16_from_the_cpu_query(cpu_bf16, amx: bool, avx512: bool, native: bool) -> None:
    cpu_bf16(amx, avx512)
    assert precision.cpu_has_native_bf16() is native


def test_flags_fallback_without_torch_query(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "avx512_bf16"})
    precision.cpu_has_native_bf16.cache_clear()
    try:
        assert precision.cpu_has_native_bf16()
        monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "fma"})
        precision.cpu_has_native_bf16.cache_clear()
        assert not precision.cpu_has_native_bf16()
    finally:
        precision.cpu_has_native_bf16.cache_clear()


def test_auto_follows_the_cpu(cpu_bf16) -> None:
    cpu_bf16(True, True)
    assert precision.resolve_precision("auto", "cpu") == torch.bfloat16
    cpu_bf16(False, False)
    assert precision.resolve_precision("auto", "cpu") == torch.float32


def test_auto_is_fp32_on_cuda(cpu_bf16) -> None:
    cpu_bf16(True, True)
    assert precision.resolve_precision("auto", torch.device("cuda")) == torch.float32


def test_bf16_without_native_support_warns_once_per_call(cpu_bf16) -> None:
    lines: list[str] = []
    cpu_bf16(False, False)
    assert precision.resolve_precision("bf16", "cpu", log=lines.append) == torch.bfloat16
    assert len(lines) == 1 and "slow" in lines[0] and "\n" not in lines[0]
    cpu_bf16(True, False)
    lines.clear()
    assert precision.resolve_precision("bf16", "cpu", log=lines.append) == torch.bfloat16
    assert lines == []


def test_fp32_and_dtypes_pass_through() -> None:
    assert precision.resolve_precision("fp32", "cpu") == torch.float32
    assert precision.resolve_precision(torch.bfloat16, "cpu") == torch.bfloat16
    assert precision.precision_name(torch.bfloat16) == "bf16"


def test_fp16_needs_cuda() -> None:
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        precision.resolve_precision("fp16", "cpu")
    assert precision.resolve_precision("fp16", "cuda") == torch.float16


def test_unknown_precision() -> None:
    with pytest.raises(UserError, match="precision must be one of auto, fp32, bf16, fp16"):
        precision.resolve_precision("fp8", "cpu")


def test_autocast_context() -> None:
    with precision.autocast(torch.float32, "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with precision.autocast(torch.bfloat16, "cpu"):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_auto_keeps_small_models_exact(cpu_bf16) -> None:
    cpu_bf16(True, True)
    small = torch.nn.Linear(10, 10)
    big = torch.nn.Linear(4000, 4000)  # 16 M parameters
    assert precision.resolve_precision("auto", "cpu", model=small) == torch.float32
    assert precision.resolve_precision("auto", "cpu", model=big) == torch.bfloat16
    assert precision.resolve_precision("bf16", "cpu", model=small) == torch.bfloat16  # asked for explicitly


def test_check_precision_validates_but_leaves_auto(cpu_bf16) -> None:
    cpu_bf16(True, True)
    assert precision.check_precision("auto", "cpu") == "auto"
    with pytest.raises(UserError):
        precision.check_precision("fp16", "cpu")


def test_default_warning_is_printed_once(cpu_bf16, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "_warned", set())
    cpu_bf16(False, False)
    precision.resolve_precision("bf16", "cpu")
    precision.resolve_precision("bf16", "cpu")
    assert capsys.readouterr().err.count("warning:") == 1
