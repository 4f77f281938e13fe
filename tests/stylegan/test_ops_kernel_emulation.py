"""The CUDA code path on the CPU, in every dtype the kernels take (issue 14).

:mod:`tests.stylegan.kernel_harness` compiles the kernels' per-element arithmetic for
the host and rounds once at the store, as the GPU does for float16/bfloat16; patched
in with :func:`emulate_cuda`, ``impl="cuda"`` runs the real wrappers, autograd
Functions and backward-mode choice on CPU tensors. That lets a machine without a GPU
run the GPU parity tests of test_ops_bias_act.py / test_ops_upfirdn2d.py, and the
reproductions below of bugs a review found (each failed before its fix).
"""

from __future__ import annotations

import ctypes
import math
import subprocess
import sys

import pytest
import torch

from stylegan.ops import bias_act, custom_ops, setup_filter, upfirdn2d, upfirdn2d_cuda
from tests.stylegan import bias_act_cases as tba
from tests.stylegan import upfirdn2d_cases as tup
from tests.stylegan.kernel_harness import HostOps, _compile, OPS_DIR, emulate_cuda, load_harness

LOWP = (torch.float16, torch.bfloat16)


@pytest.fixture(scope="module")
def lib() -> ctypes.CDLL:
    return load_harness()


@pytest.fixture
def ops(lib: ctypes.CDLL, monkeypatch: pytest.MonkeyPatch) -> HostOps:
    """``impl="cuda"`` on CPU tensors, through the host-compiled kernels."""
    return emulate_cuda(monkeypatch, HostOps(lib))


def grads(x: torch.Tensor, impl: str, dy: torch.Tensor | None = None, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_(True)
    y = bias_act(x, impl=impl, **kw)
    y.backward(torch.ones_like(y) if dy is None else dy)
    return y.detach(), x.grad


# ---- reproductions: each of these failed before its fix ----

@pytest.mark.parametrize("dtype,clamp,value", [(torch.float16, 0.1, 1.0), (torch.bfloat16, 0.7, 1.0),
                                               (torch.bfloat16, 3.3, 4.0)], ids=str)
def test_clamped_gradient_is_zero_when_the_dtype_rounds_the_clamp(ops: HostOps, dtype: torch.dtype, clamp: float,
                                                                   value: float) -> None:
    """fp16 stores clamp 0.1 as 0.09998: compared with (float)0.1 a clamped output read as unclamped."""
    assert float(torch.tensor(clamp, dtype=dtype)) < clamp  # the case: the clamp rounds down
    x = torch.tensor([value, -value, 0.5 * clamp], dtype=dtype)
    y, dx = grads(x, "cuda", act="linear", gain=1.0, clamp=clamp)
    y_ref, dx_ref = grads(x.double(), "ref", act="linear", gain=1.0, clamp=clamp)
    assert ops.calls["bias_act_grad"] == 1
    torch.testing.assert_close(y, y_ref.to(dtype), rtol=0, atol=0)
    assert dx.tolist() == dx_ref.tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("dtype,tiny", [(torch.float16, 2.0 ** -24), (torch.float32, 2.0 ** -149)], ids=str)
def test_slope_survives_an_output_that_underflows_to_zero(ops: HostOps, dtype: torch.dtype, tiny: float) -> None:
    """lrelu with gain 0.4 stores 0.4 * (smallest subnormal) as 0, which read as 'not positive'."""
    x = torch.tensor([tiny, -tiny, 1.0], dtype=dtype)
    y, dx = grads(x, "cuda", act="lrelu", gain=0.4)
    assert y[0] == 0  # the case: the output of a positive input is 0
    _, dx_ref = grads(x.double(), "ref", act="lrelu", gain=0.4)
    torch.testing.assert_close(dx.double(), dx_ref, rtol=1e-3, atol=0)
    assert ops.calls["bias_act_grad"] == 1


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, *LOWP], ids=str)
@pytest.mark.parametrize("act,gain", [("linear", 1.0), ("lrelu", math.sqrt(2)), ("lrelu", 0.5), ("linear", -1.0)])
def test_nan_input_with_a_clamp_gets_zero_gradient_on_every_path(ops: HostOps, dtype: torch.dtype, act: str,
                                                                  gain: float) -> None:
    """The chosen behaviour (README, "Ops, CUDA and speed"): like torch.clamp's backward, a NaN is 'outside'."""
    x = torch.tensor([float("nan"), 0.25, -0.25, 3.0], dtype=dtype)
    b = torch.tensor([0.0, 0.0, 0.0, 0.0], dtype=dtype)
    dy = torch.full((4,), 2.0, dtype=dtype)
    results = {}
    for impl in ("ref", "fast", "cuda"):
        xi, bi = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
        y = bias_act(xi, bi, dim=0, act=act, gain=gain, clamp=1.0, impl=impl)
        y.backward(dy)
        results[impl] = (y.detach(), xi.grad, bi.grad)
    for impl in ("fast", "cuda"):
        for got, want in zip(results[impl], results["ref"]):
            torch.testing.assert_close(got, want, equal_nan=True)
    assert torch.isnan(results["cuda"][0][0]) and results["cuda"][1][0] == 0 and results["cuda"][2][0] == 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, *LOWP], ids=str)
@pytest.mark.parametrize("act,gain", [("linear", -2.0), ("lrelu", 2.0), ("linear", 1.0)])
def test_a_value_exactly_on_the_clamp_gets_zero_gradient_like_torch(ops: HostOps, dtype: torch.dtype, act: str,
                                                                    gain: float) -> None:
    """torch.clamp's backward passes the gradient only strictly inside the bounds; the kernels followed the
    older convention (bounds included), which the bf16 parity test hit with (x + b) * -2 == 2 exactly."""
    x = torch.tensor([-1.0, 1.0, 0.5, -0.25, 2.0, -2.0], dtype=dtype)
    results = {impl: grads(x, impl, act=act, gain=gain, clamp=2.0) for impl in ("ref", "fast", "cuda")}
    for impl in ("fast", "cuda"):
        torch.testing.assert_close(results[impl], results["ref"])
    on_bound = results["ref"][0].abs() == 2.0
    assert on_bound.any() and (results["cuda"][1][on_bound] == 0).all()


def test_bias_index_of_a_size_one_dim_with_stride_zero(lib: ctypes.CDLL) -> None:
    """x.stride(dim) may be 0 when x.size(dim) == 1; the bias index divided by it (SIGFPE, so run apart)."""
    code = f"""
import ctypes
lib = ctypes.CDLL({_compile(str(OPS_DIR))!r})
x = (ctypes.c_double * 3)(1.0, 2.0, 3.0)
b = (ctypes.c_double * 1)(10.0)
y = (ctypes.c_double * 3)()
lib.bias_act_host_f64(x, b, y, ctypes.c_int64(3), 0, ctypes.c_double(0.0), ctypes.c_double(1.0),
                      ctypes.c_double(-1.0), ctypes.c_int64(1), ctypes.c_int64(0))
print(list(y))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"crashed with code {done.returncode}: {done.stderr[-300:]}"
    assert done.stdout.strip() == "[11.0, 12.0, 13.0]"


@pytest.mark.parametrize("impl", ["ref", "fast", "cuda"])
def test_zero_dim_input(ops: HostOps, impl: str) -> None:
    """A 0-dim x used to raise ZeroDivisionError on every path; it is one element now."""
    x = torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
    y = bias_act(x, act="lrelu", alpha=0.1, gain=2.0, clamp=0.5, impl=impl)
    assert y.shape == () and y.item() == -0.5
    y.backward()
    assert float(x.grad) == 0.0  # clamped
    with pytest.raises(ValueError, match="0-dimensional"):
        bias_act(x, torch.zeros(1, dtype=torch.float64), impl=impl)
    with pytest.raises(ValueError, match="dim must be in"):
        bias_act(torch.zeros(2, 3), torch.zeros(3), dim=3, impl=impl)


@pytest.mark.parametrize("filter_grad", [False, True])
def test_fallback_gets_the_filter_on_x_device(monkeypatch: pytest.MonkeyPatch, filter_grad: bool) -> None:
    """With the build unavailable (or a filter that needs a gradient) the fallback got a CPU filter
    next to a CUDA x and raised where the kernel path works. ``meta`` stands in for the GPU here."""
    seen = []

    def spy(x, f, *args):
        seen.append(f.device)
        return torch.empty(0)

    monkeypatch.setattr(upfirdn2d_cuda, "_check_device", lambda x: None)
    monkeypatch.setattr(upfirdn2d_cuda, "upfirdn2d_fast", spy)
    monkeypatch.setattr(custom_ops, "get_ops", lambda: None)
    x = torch.empty(1, 2, 8, 8, device="meta")
    f = setup_filter().requires_grad_(filter_grad)
    upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4, impl="cuda")
    assert seen == [x.device]


def test_backward_mode_keeps_the_output_only_when_it_tells_the_slope() -> None:
    from stylegan.ops.bias_act_cuda import backward_mode

    assert backward_mode("linear", 0.0, 1.0, None, torch.float16) == "gain"
    assert backward_mode("lrelu", 0.2, math.sqrt(2), None, torch.float16) == "output"
    assert backward_mode("lrelu", 0.2, math.sqrt(2), 256.0, torch.float32) == "output"
    assert backward_mode("lrelu", 0.2, math.sqrt(2), 256.0, torch.float16) == "input"  # the store rounds
    assert backward_mode("lrelu", 0.2, 0.4, None, torch.float32) == "input"   # y may underflow to 0
    assert backward_mode("lrelu", -0.3, 2.0, None, torch.float64) == "input"  # the sign flips
    assert backward_mode("linear", 0.0, -1.0, 1.0, torch.float64) == "input"


# ---- the GPU parity tests, emulated: what `pytest -m gpu` will check on a GPU ----

@pytest.mark.parametrize("dtype", list(tba.CUDA_DTYPES), ids=str)
def test_emulated_bias_act_matches_ref(ops: HostOps, dtype: torch.dtype) -> None:
    """test_ops_bias_act.py::test_cuda_matches_ref, same cases and tolerances (bf16 with clamp 0.7 failed)."""
    tol = tba.CUDA_DTYPES[dtype]
    failures = []
    for case in tba.CASES + tba.NAMED:
        torch.manual_seed(0)
        x, b = tba.make_inputs(case, dtype)
        dy = tba.fixed_dy(case.shape, dtype)
        y_ref, dx_ref, db_ref = tba.run_with_grads(x.double(), None if b is None else b.double(), case, "ref",
                                                   dy.double())
        y, dx, db = tba.run_with_grads(x, b, case, "cuda", dy)
        assert y.dtype == dtype and dx.dtype == dtype
        try:
            torch.testing.assert_close(y.double(), y_ref, rtol=tol, atol=tol * max(1.0, float(y_ref.abs().max())))
            torch.testing.assert_close(dx.double(), dx_ref, rtol=tol, atol=tol * 4)
            if b is not None:
                torch.testing.assert_close(db.double(), db_ref, rtol=tol, atol=tol * 4 * dy.numel())
        except AssertionError as err:
            failures.append(f"{case}: {str(err).splitlines()[0]}")
    assert ops.calls["bias_act"] > 0
    assert not failures, f"{len(failures)} cases differ:\n" + "\n".join(failures)


@pytest.mark.parametrize("dtype", [torch.float32, *LOWP], ids=str)
def test_emulated_upfirdn2d_matches_ref(ops: HostOps, dtype: torch.dtype) -> None:
    """test_ops_upfirdn2d.py::test_cuda_matches_ref, same cases and tolerances (float64: test_ops_cuda_build.py)."""
    tol = tup.CUDA_DTYPES[dtype]
    for case in tup.CASES[::2] + tup.NAMED:
        torch.manual_seed(0)
        x, f = tup.make_inputs(case, dtype)
        dy = tup._last_dy(upfirdn2d(x.double(), f, impl="ref", **case.kwargs()), seed=5)
        y_ref, dx_ref, _ = tup.run_with_grads(x.double(), f, case, "ref", dy)
        y, dx, _ = tup.run_with_grads(x, f, case, "cuda", dy.to(dtype))
        assert y.dtype == dtype and dx.dtype == dtype
        scale = max(1.0, float(y_ref.abs().max()))
        torch.testing.assert_close(y.double(), y_ref, rtol=tol, atol=tol * scale, msg=str(case))
        scale = max(1.0, float(dx_ref.abs().max()))
        torch.testing.assert_close(dx.double(), dx_ref, rtol=tol, atol=tol * scale, msg=str(case))
    assert ops.calls["upfirdn2d"] > 0


def test_emulated_layouts_and_double_backward(ops: HostOps) -> None:
    """The non-gradcheck half of test_ops_bias_act.py::test_cuda_double_backward_and_layouts, in fp16 too."""
    for dtype in (torch.float32, torch.float16):
        x = torch.randn(2, 8, 5, 5).to(dtype).to(memory_format=torch.channels_last).requires_grad_(True)
        b = torch.randn(8).to(dtype)
        y = bias_act(x, b, act="lrelu", clamp=1.0, impl="cuda")
        y_ref = bias_act(x.detach().double(), b.double(), act="lrelu", clamp=1.0, impl="ref")
        torch.testing.assert_close(y.double(), y_ref, rtol=2e-3, atol=2e-3)
        dy = torch.randn(2, 5, 5, 8).to(dtype).permute(0, 3, 1, 2).requires_grad_(True)
        (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
        xr = x.detach().double().requires_grad_(True)
        dyr = dy.detach().double().requires_grad_(True)
        (dx_ref,) = torch.autograd.grad(bias_act(xr, b.double(), act="lrelu", clamp=1.0, impl="ref"), xr, dyr,
                                        create_graph=True)
        torch.testing.assert_close(dx.double(), dx_ref, rtol=2e-3, atol=2e-3)
        # The backward's own backward (R1 regularisation): d(dx)/d(dy) is the slope.
        (ddy,) = torch.autograd.grad(dx, dy, torch.ones_like(dx))
        (ddy_ref,) = torch.autograd.grad(dx_ref, dyr, torch.ones_like(dx_ref))
        assert ddy.dtype == dtype
        torch.testing.assert_close(ddy.double(), ddy_ref, rtol=2e-3, atol=2e-3)
