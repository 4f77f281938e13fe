"""upfirdn2d test cases and drivers, shared by test_ops_upfirdn2d.py and the CUDA kernel emulation tests."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import torch

from stylegan.ops import setup_filter, upfirdn2d


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


def _last_dy(y: torch.Tensor, seed: int) -> torch.Tensor:
    """A fixed upstream gradient shaped like ``y``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(y.shape, generator=g, dtype=y.dtype)


CUDA_DTYPES = {torch.float32: 1e-5, torch.float64: 1e-12, torch.float16: 1e-2, torch.bfloat16: 4e-2}
