"""bias_act: the reference against its definition, and every other path against the reference."""

from __future__ import annotations

import math

import pytest
import torch

from stylegan.ops import bias_act
from tests.stylegan.bias_act_cases import (CASES, CUDA_DTYPES, NAMED, Case, definition, fixed_dy, make_inputs,
                                           run_with_grads)


@pytest.mark.parametrize("case", CASES + NAMED, ids=str)
def test_ref_matches_definition(case: Case) -> None:
    x, b = make_inputs(case)
    torch.testing.assert_close(bias_act(x, b, impl="ref", **case.kwargs()), definition(x, b, case), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES[:15] + NAMED, ids=str)
def test_ref_gradcheck(case: Case) -> None:
    x, b = make_inputs(case)
    # Keep samples away from the kinks at 0 and +-clamp, where finite differences are meaningless.
    x = torch.where(x.abs() < 0.05, x + 0.1, x).requires_grad_(True)
    inputs = (x,) if b is None else (x, b.requires_grad_(True))
    fn = lambda *t: bias_act(t[0], t[1] if len(t) > 1 else None, impl="ref", **case.kwargs())  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-6), (torch.bfloat16, 5e-2)], ids=str)
@pytest.mark.parametrize("case", CASES + NAMED, ids=str)
def test_fast_matches_ref(case: Case, dtype: torch.dtype, tol: float) -> None:
    x, b = make_inputs(case, dtype)
    dy = fixed_dy(case.shape, dtype)
    y_ref, dx_ref, db_ref = run_with_grads(x, b, case, "ref", dy)
    y, dx, db = run_with_grads(x, b, case, "fast", dy)
    assert y.dtype == y_ref.dtype and y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=tol, atol=tol)
    if dtype == torch.bfloat16:
        # A bf16 sample within rounding of a kink (0 or +-clamp) may land on either side of
        # it; the slope there is legitimately either value, so leave those samples out.
        near = y_ref.double().abs() < 0.05
        if case.clamp is not None:
            near |= (y_ref.double().abs() - case.clamp).abs() < 0.05 * case.clamp
        dx, dx_ref = dx[~near], dx_ref[~near]
        b = None
    torch.testing.assert_close(dx, dx_ref, rtol=tol, atol=tol)
    if b is not None:
        torch.testing.assert_close(db, db_ref, rtol=tol, atol=tol * max(1, dy.numel()))


@pytest.mark.parametrize("case", NAMED + CASES[:10], ids=str)
def test_fast_double_backward_matches_ref(case: Case) -> None:
    x, b = make_inputs(case)
    grads = {}
    for impl in ("ref", "fast"):
        xi = x.clone().requires_grad_(True)
        y = bias_act(xi, b, impl=impl, **case.kwargs())
        (gx,) = torch.autograd.grad(y.square().sum(), xi, create_graph=True)
        (ggx,) = torch.autograd.grad(gx.sin().sum(), xi)
        grads[impl] = (gx.detach(), ggx)
    for a, r in zip(grads["fast"], grads["ref"]):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_never_writes_into_its_input(impl: str) -> None:
    for case in CASES + NAMED:
        x, b = make_inputs(case)
        before = x.clone()
        bias_act(x, b, impl=impl, **case.kwargs())
        assert torch.equal(x, before), case


@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_slope_gain_and_clamp_are_honoured(impl: str) -> None:
    """rosinality's CPU fused_leaky_relu ignores its slope; make sure ours does not."""
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 3.0]])
    y = bias_act(x, act="lrelu", alpha=0.1, gain=2.0, clamp=5.0, impl=impl)
    torch.testing.assert_close(y, torch.tensor([[-0.4, -0.1, 0.0, 1.0, 5.0]]))
    y = bias_act(x, torch.tensor([1.0] * 5), dim=1, act="lrelu", impl=impl)  # defaults: alpha 0.2, gain sqrt(2)
    torch.testing.assert_close(y, torch.tensor([[-0.2, 0.5, 1.0, 1.5, 4.0]]) * math.sqrt(2))


def test_invalid_arguments() -> None:
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="act"):
        bias_act(x, act="relu6")
    with pytest.raises(ValueError, match="bias"):
        bias_act(x, torch.zeros(4))
    with pytest.raises(ValueError, match="impl"):
        bias_act(x, impl="fastest")
    with pytest.raises(ValueError, match="CUDA"):
        bias_act(x, impl="cuda")  # a CPU tensor cannot use the CUDA kernels


# ---- CUDA kernels (need a GPU; the build itself is tested in test_ops_cuda_build.py) ----

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(CUDA_DTYPES), ids=str)
@pytest.mark.parametrize("case", CASES + NAMED, ids=str)
def test_cuda_matches_ref(case: Case, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEGAN_MORPH_CUDA_STRICT", "1")  # a build failure must fail, not fall back
    tol = CUDA_DTYPES[dtype]
    x, b = make_inputs(case, dtype)
    x, b = x.cuda(), None if b is None else b.cuda()
    dy = fixed_dy(case.shape, dtype).cuda()
    # The reference runs in float64 on the same (rounded) inputs.
    y_ref, dx_ref, db_ref = run_with_grads(x.double(), None if b is None else b.double(), case, "ref", dy.double())
    y, dx, db = run_with_grads(x, b, case, "cuda", dy)
    assert y.dtype == dtype and dx.dtype == dtype
    torch.testing.assert_close(y.double(), y_ref, rtol=tol, atol=tol * max(1.0, float(y_ref.abs().max())))
    torch.testing.assert_close(dx.double(), dx_ref, rtol=tol, atol=tol * 4)
    if b is not None:
        torch.testing.assert_close(db.double(), db_ref, rtol=tol, atol=tol * 4 * dy.numel())


@pytest.mark.gpu
def test_cuda_double_backward_and_layouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEGAN_MORPH_CUDA_STRICT", "1")
    for case in NAMED + CASES[:10]:
        x, b = make_inputs(case)
        x = torch.where(x.abs() < 0.05, x + 0.1, x).cuda().requires_grad_(True)
        inputs = (x,) if b is None else (x, b.cuda().requires_grad_(True))
        fn = lambda *t: bias_act(t[0], t[1] if len(t) > 1 else None, impl="cuda", **case.kwargs())  # noqa: E731
        assert torch.autograd.gradcheck(fn, inputs)
        assert torch.autograd.gradgradcheck(fn, inputs)
    # channels_last input and a non-contiguous upstream gradient
    x = torch.randn(2, 8, 5, 5, device="cuda").to(memory_format=torch.channels_last).requires_grad_(True)
    b = torch.randn(8, device="cuda")
    y = bias_act(x, b, act="lrelu", clamp=1.0, impl="cuda")
    torch.testing.assert_close(y, bias_act(x.detach().contiguous(), b, act="lrelu", clamp=1.0, impl="ref"))
    dy = torch.randn(2, 5, 5, 8, device="cuda").permute(0, 3, 1, 2)
    (dx,) = torch.autograd.grad(y, x, dy)
    xr = x.detach().clone().requires_grad_(True)
    (dx_ref,) = torch.autograd.grad(bias_act(xr, b, act="lrelu", clamp=1.0, impl="ref"), xr, dy)
    torch.testing.assert_close(dx, dx_ref)


@pytest.mark.gpu
def test_cuda_gradients_where_the_store_loses_information(monkeypatch: pytest.MonkeyPatch) -> None:
    """The review's reproductions (issue 14) on the real kernels; emulated in test_ops_kernel_emulation.py."""
    monkeypatch.setenv("STYLEGAN_MORPH_CUDA_STRICT", "1")
    nan = float("nan")
    checks = [  # dtype, kwargs, inputs
        (torch.float16, dict(act="linear", gain=1.0, clamp=0.1), [1.0, -1.0, 0.05]),  # fp16 rounds 0.1 down
        (torch.bfloat16, dict(act="linear", gain=1.0, clamp=0.7), [1.0, -1.0, 0.35]),
        (torch.bfloat16, dict(act="linear", gain=1.0, clamp=3.3), [4.0, -4.0, 1.0]),
        (torch.float16, dict(act="lrelu", gain=0.4), [2.0 ** -24, -(2.0 ** -24), 1.0]),  # 0.4 * 2^-24 stores 0
        (torch.float32, dict(act="lrelu", gain=0.4), [2.0 ** -149, -(2.0 ** -149), 1.0]),
        (torch.float32, dict(act="linear", gain=-2.0, clamp=2.0), [-1.0, 1.0, 0.5]),  # exactly on the bound
    ] + [(dt, dict(act="lrelu", clamp=1.0), [nan, 0.25, -0.25, 3.0]) for dt in CUDA_DTYPES]  # NaN: zero gradient
    for dtype, kw, values in checks:
        x = torch.tensor(values, dtype=dtype)
        dy = torch.full_like(x, 0.5)
        xc = x.cuda().requires_grad_(True)
        y = bias_act(xc, impl="cuda", **kw)
        y.backward(dy.cuda())
        xr = x.double().requires_grad_(True)
        y_ref = bias_act(xr, impl="ref", **kw)
        y_ref.backward(dy.double())
        torch.testing.assert_close(y.detach().cpu(), y_ref.detach().to(dtype), equal_nan=True, msg=str(kw))
        rtol = {torch.float64: 1e-12, torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}[dtype]
        torch.testing.assert_close(xc.grad.cpu().double(), xr.grad, rtol=rtol, atol=0, msg=f"{dtype} {kw}")
