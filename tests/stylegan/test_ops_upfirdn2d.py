"""upfirdn2d: the reference against the definition, and every other path against the reference.

The random cases cover up/down factors 1-3 per axis, positive and negative (cropping)
padding, non-square filters from 1x1 to 5x5, flip_filter and gain.
"""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
import torch

from stylegan.ops import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d


@dataclasses.dataclass(frozen=True)
class Case:
    shape: tuple[int, int, int, int]  # N, C, H, W
    fshape: tuple[int, int]           # fh, fw
    up: tuple[int, int]
    down: tuple[int, int]
    padding: tuple[int, int, int, int]
    flip_filter: bool
    gain: float

    def kwargs(self) -> dict:
        return dict(up=self.up, down=self.down, padding=self.padding, flip_filter=self.flip_filter, gain=self.gain)


def random_cases(count: int, seed: int, max_hw: int = 8) -> list[Case]:
    """Random valid parameter sets (the padded, upsampled image is at least as large as the filter)."""
    rng = random.Random(seed)
    cases: list[Case] = []
    while len(cases) < count:
        n, c, h, w = rng.randint(1, 2), rng.randint(1, 3), rng.randint(1, max_hw), rng.randint(1, max_hw)
        fh, fw = rng.randint(1, 5), rng.randint(1, 5)
        up = (rng.choice([1, 1, 2, 3]), rng.choice([1, 1, 2, 3]))
        down = (rng.choice([1, 1, 2, 3]), rng.choice([1, 1, 2, 3]))
        pad = tuple(rng.randint(-3, 4) for _ in range(4))
        if w * up[0] + pad[0] + pad[1] < fw or h * up[1] + pad[2] + pad[3] < fh:
            continue
        cases.append(Case((n, c, h, w), (fh, fw), up, down, pad, rng.random() < 0.5, rng.choice([1.0, 0.5, 4.0])))
    return cases


CASES = random_cases(60, seed=1)
# The configurations the generator, encoder and discriminator actually use.
NAMED = [
    Case((1, 3, 5, 7), (4, 4), (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0),   # upsample2d
    Case((1, 3, 8, 6), (4, 4), (1, 1), (2, 2), (1, 1, 1, 1), False, 1.0),   # downsample2d
    Case((2, 4, 9, 9), (4, 4), (1, 1), (1, 1), (1, 1, 1, 1), False, 4.0),   # after the up-conv
    Case((1, 2, 6, 6), (4, 4), (1, 1), (1, 1), (2, 1, 2, 1), True, 1.0),    # filter2d
]


def brute_force(x: torch.Tensor, f: torch.Tensor, case: Case) -> torch.Tensor:
    """upfirdn2d from its definition, independent of conv2d: scatter every input sample
    through the filter (a full 2-D convolution of the zero-inserted image), then read
    the full result at offset (f - 1 - pad0) with stride ``down``."""
    xn, fn = x.double().numpy(), f.double().numpy() * case.gain
    if case.flip_filter:
        fn = fn[::-1, ::-1]
    n, c, h, w = xn.shape
    fh, fw = fn.shape
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = case.up, case.down, case.padding
    full = np.zeros((n, c, (h - 1) * upy + fh, (w - 1) * upx + fw))
    for iy in range(h):
        for ix in range(w):
            full[:, :, iy * upy: iy * upy + fh, ix * upx: ix * upx + fw] += xn[:, :, iy, ix, None, None] * fn
    oh = (h * upy + py0 + py1 - fh) // downy + 1
    ow = (w * upx + px0 + px1 - fw) // downx + 1
    out = np.zeros((n, c, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            fy, fx = oy * downy + fh - 1 - py0, ox * downx + fw - 1 - px0
            if 0 <= fy < full.shape[2] and 0 <= fx < full.shape[3]:
                out[:, :, oy, ox] = full[:, :, fy, fx]
    return torch.from_numpy(out)


def make_inputs(case: Case, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(case.shape, dtype=dtype)
    f = torch.rand(case.fshape, dtype=torch.float32) + 0.1  # filters are float32, as setup_filter makes them
    return x, f


def run_with_grads(x: torch.Tensor, f: torch.Tensor, case: Case, impl: str,
                   dy: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Forward and backward of one impl; returns (y, dx, df)."""
    x = x.detach().clone().requires_grad_(True)
    f = f.detach().clone().requires_grad_(impl != "cuda")  # the CUDA kernel has no filter gradient
    y = upfirdn2d(x, f, impl=impl, **case.kwargs())
    if dy is None:
        dy = torch.randn_like(y)
    y.backward(dy)
    return y.detach(), x.grad, f.grad


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


def _last_dy(y: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed upstream gradient shaped like ``y``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(y.shape, generator=g, dtype=y.dtype)


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

CUDA_DTYPES = {torch.float32: 1e-5, torch.float64: 1e-12, torch.float16: 1e-2, torch.bfloat16: 4e-2}


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
