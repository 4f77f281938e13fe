"""upfirdn2d: the reference against the definition, and every other path against the reference.

The random cases cover up/down factors 1-3 per axis, positive and negative (cropping)
padding, non-square filters from 1x1 to 5x5, flip_filter and gain.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from stylegan.ops import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d
from tests.stylegan.upfirdn2d_cases import (CASES, CUDA_DTYPES, NAMED, Case, _last_dy, brute_force, make_inputs,
                                            random_cases, run_with_grads)


@pytest.mark.parametrize("case", CASES[:25] + NAMED, ids=str)
def test_ref_matches_definition(case: Case) -> None:
    x, f = make_inputs(case)
    y = upfirdn2d(x, f, impl="ref", **case.kwargs())
    torch.testing.assert_close(y, brute_force(x, f, case), rtol=1e-6, atol=1e-6)


# gradcheck does one backward pass per output element: keep these tiny.
SMALL = [dataclasses.replace(c, shape=(1, 1) + c.shape[2:]) for c in random_cases(8, seed=2, max_hw=3)]
SMALL += [dataclasses.replace(c, shape=(1, 1, 4, 3)) for c in NAMED[:2]]


@pytest.mark.parametrize("case", SMALL, ids=str)
def test_ref_gradcheck(case: Case) -> None:
    x, f = make_inputs(case)
    x.requires_grad_(True)
    f = f.double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x_, f_: upfirdn2d(x_, f_, impl="ref", **case.kwargs()), (x, f))
    # Second order w.r.t. x only: with f too the check takes ~10x longer for no new coverage.
    assert torch.autograd.gradgradcheck(lambda x_: upfirdn2d(x_, f, impl="ref", **case.kwargs()), (x,))


@pytest.mark.parametrize("case", CASES + NAMED, ids=str)
def test_fast_matches_ref_float64(case: Case) -> None:
    x, f = make_inputs(case)
    dy = _last_dy(upfirdn2d(x, f, impl="ref", **case.kwargs()), seed=3)
    y_ref, dx_ref, df_ref = run_with_grads(x, f, case, "ref", dy)
    y, dx, df = run_with_grads(x, f, case, "fast", dy)
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(df, df_ref, rtol=1e-6, atol=1e-6)  # f is float32


@pytest.mark.parametrize("case", CASES[::3] + NAMED, ids=str)
def test_fast_matches_ref_float32(case: Case) -> None:
    x, f = make_inputs(case, torch.float32)
    dy = _last_dy(upfirdn2d(x, f, impl="ref", **case.kwargs()), seed=4)
    y_ref, dx_ref, df_ref = run_with_grads(x, f, case, "ref", dy)
    y, dx, df = run_with_grads(x, f, case, "fast", dy)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx, dx_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(df, df_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", NAMED, ids=str)
def test_fast_double_backward_matches_ref(case: Case) -> None:
    """Second-order gradients (used by path-length and R1 regularisers) agree too."""
    x, f = make_inputs(case)
    out = {}
    for impl in ("ref", "fast"):
        xi = x.clone().requires_grad_(True)
        y = upfirdn2d(xi, f, impl=impl, **case.kwargs())
        (gx,) = torch.autograd.grad(y.square().sum(), xi, create_graph=True)
        (ggx,) = torch.autograd.grad(gx.sin().sum(), xi)
        out[impl] = (gx.detach(), ggx)
    torch.testing.assert_close(out["fast"][0], out["ref"][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out["fast"][1], out["ref"][1], rtol=1e-10, atol=1e-10)


def test_fast_keeps_channels_last_and_bf16() -> None:
    x = torch.randn(2, 8, 16, 16).to(memory_format=torch.channels_last)
    f = setup_filter()
    for fn in (lambda v, i: upsample2d(v, f, impl=i), lambda v, i: downsample2d(v, f, impl=i),
               lambda v, i: filter2d(v, f, impl=i)):
        torch.testing.assert_close(fn(x, "fast"), fn(x.contiguous(), "ref"), rtol=1e-5, atol=1e-5)
        xb = x.bfloat16()
        torch.testing.assert_close(fn(xb, "fast").float(), fn(xb, "ref").float(), rtol=2e-2, atol=2e-2)


def test_public_helpers_shapes_and_values() -> None:
    x = torch.randn(2, 3, 8, 6)
    f = setup_filter()
    assert f.shape == (4, 4) and abs(float(f.sum()) - 1) < 1e-6
    assert upsample2d(x, f).shape == (2, 3, 16, 12)
    assert downsample2d(x, f).shape == (2, 3, 4, 3)
    assert filter2d(x, f).shape == x.shape
    # A constant image stays constant away from the borders (the filter sums to 1, gain 4 after zero insertion).
    ones = torch.ones(1, 1, 8, 8)
    assert torch.allclose(upsample2d(ones, f)[..., 3:-3, 3:-3], torch.ones(1, 1, 10, 10))
    assert torch.allclose(downsample2d(ones, f)[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))
    for impl in ("ref", "fast", None):
        torch.testing.assert_close(upsample2d(x, f, impl=impl), upsample2d(x, f, impl="ref"))


def test_invalid_arguments() -> None:
    x, f = torch.randn(1, 1, 4, 4), setup_filter()
    with pytest.raises(ValueError, match="N, C, H, W"):
        upfirdn2d(x[0], f)
    with pytest.raises(ValueError, match="2-D filter"):
        upfirdn2d(x, f[0])
    with pytest.raises(ValueError, match="impl"):
        upfirdn2d(x, f, impl="fastest")
    with pytest.raises(ValueError, match="padding"):
        upfirdn2d(x, f, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="CUDA"):
        upfirdn2d(x, f, impl="cuda")  # a CPU tensor cannot use the CUDA kernels


# ---- CUDA kernels (need a GPU; the build itself is tested in test_ops_cuda_build.py) ----

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", list(CUDA_DTYPES), ids=str)
@pytest.mark.parametrize("case", CASES[::2] + NAMED, ids=str)
def test_cuda_matches_ref(case: Case, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEGAN_MORPH_CUDA_STRICT", "1")  # a build failure must fail, not fall back
    tol = CUDA_DTYPES[dtype]
    x, f = make_inputs(case, dtype)
    x, f = x.cuda(), f.cuda()
    dy = _last_dy(upfirdn2d(x.double(), f, impl="ref", **case.kwargs()).cpu(), seed=5).cuda()
    y_ref, dx_ref, _ = run_with_grads(x.double(), f, case, "ref", dy)
    y, dx, _ = run_with_grads(x, f, case, "cuda", dy.to(dtype))
    assert y.dtype == dtype and dx.dtype == dtype
    scale = max(1.0, float(y_ref.abs().max()))
    torch.testing.assert_close(y.double(), y_ref, rtol=tol, atol=tol * scale)
    scale = max(1.0, float(dx_ref.abs().max()))
    torch.testing.assert_close(dx.double(), dx_ref, rtol=tol, atol=tol * scale)


@pytest.mark.gpu
def test_cuda_gradgradcheck_and_channels_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEGAN_MORPH_CUDA_STRICT", "1")
    for case in NAMED[:2]:
        x, f = make_inputs(case)
        x = x.cuda().requires_grad_(True)
        fn = lambda x_: upfirdn2d(x_, f.cuda(), impl="cuda", **case.kwargs())  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,))
        assert torch.autograd.gradgradcheck(fn, (x,))
    x = torch.randn(2, 8, 16, 16, device="cuda").to(memory_format=torch.channels_last)
    f = setup_filter().cuda()
    torch.testing.assert_close(upsample2d(x, f, impl="cuda"), upsample2d(x.contiguous(), f, impl="ref"))


@pytest.mark.parametrize("batch", [1, 2])
def test_generator_default_path_matches_ref(batch: int) -> None:
    """End to end: the generator on the default CPU path (fast ops, fused batch-1 modulation,
    channels_last convs) equals the reference path, forward and backward, and images stay NCHW."""
    from stylegan import Generator, GeneratorConfig

    G = Generator(GeneratorConfig.from_channel_base(32, channel_base=256, channel_max=16, z_dim=16, w_dim=16))
    G = G.double()
    ws = G.mapping(torch.randn(batch, 16, dtype=torch.float64)).detach()
    out = {}
    for impl in ("ref", None):
        w = ws.clone().requires_grad_(True)
        img = G.set_impl(impl).synthesis(w, noise_mode="const")
        (grad,) = torch.autograd.grad(img.sin().sum(), w)
        assert img.is_contiguous()
        out[impl] = (img.detach(), grad)
    torch.testing.assert_close(out[None][0], out["ref"][0], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out[None][1], out["ref"][1], rtol=1e-9, atol=1e-9)


@pytest.mark.gpu
def test_cuda_takes_a_cpu_filter_on_every_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback (no build, or a filter that needs a gradient) got the CPU filter unmoved (issue 14)."""
    from stylegan.ops import custom_ops

    monkeypatch.setenv("STYLEGAN_MORPH_CUDA_STRICT", "1")
    x = torch.randn(1, 3, 8, 8, device="cuda")
    f = setup_filter()  # on the CPU
    ref = upsample2d(x.cpu(), f, impl="ref")
    torch.testing.assert_close(upsample2d(x, f, impl="cuda").cpu(), ref)  # the kernel
    fg = f.clone().requires_grad_(True)
    upsample2d(x, fg, impl="cuda").square().sum().backward()  # the filter gradient takes the fallback
    assert fg.grad is not None and fg.grad.device.type == "cpu"
    monkeypatch.setattr(custom_ops, "get_ops", lambda: None)  # the build is unavailable
    torch.testing.assert_close(upsample2d(x, f, impl="cuda").cpu(), ref)
