"""bias_act test cases and drivers, shared by test_ops_bias_act.py and the CUDA kernel emulation tests."""

from __future__ import annotations

import dataclasses
import math
import random

import torch

from stylegan.ops import bias_act


@dataclasses.dataclass(frozen=True)
class Case:
    shape: tuple[int, ...]
    dim: int
    bias: bool
    act: str
    alpha: float | None
    gain: float | None
    clamp: float | None

    def kwargs(self) -> dict:
        return dict(dim=self.dim, act=self.act, alpha=self.alpha, gain=self.gain, clamp=self.clamp)


def random_cases(count: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        ndim = rng.choice([1, 2, 3, 4, 4])
        shape = tuple(rng.randint(1, 6) for _ in range(ndim))
        dim = rng.randrange(-ndim, ndim)
        act = rng.choice(["linear", "lrelu", "lrelu"])
        cases.append(Case(shape, dim, rng.random() < 0.8, act,
                          rng.choice([None, 0.2, 0.0, 0.5, -0.3]) if act == "lrelu" else None,
                          rng.choice([None, 1.0, math.sqrt(2), 0.5, -2.0, 0.0]),
                          rng.choice([None, None, 0.7, 2.0, 256.0])))
    return cases


CASES = random_cases(60, seed=1)
# The calls the networks make: mapping FC (lrelu), synthesis layers (lrelu, clamp with fp16), toRGB (linear).
NAMED = [
    Case((2, 16), 1, True, "lrelu", None, None, None),
    Case((2, 8, 5, 5), 1, True, "lrelu", None, None, 256.0),
    Case((2, 8, 5, 5), 1, True, "lrelu", None, None, 0.5),
    Case((2, 3, 5, 5), 1, True, "linear", None, None, None),
]


def make_inputs(case: Case, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor | None]:
    x = torch.randn(case.shape, dtype=dtype)
    b = torch.randn(case.shape[case.dim], dtype=dtype) if case.bias else None
    return x, b


def definition(x: torch.Tensor, b: torch.Tensor | None, case: Case) -> torch.Tensor:
    """The op written out element by element (no torch.nn.functional)."""
    alpha = 0.2 if case.alpha is None else case.alpha
    gain = (math.sqrt(2) if case.act == "lrelu" else 1.0) if case.gain is None else case.gain
    v = x.clone()
    if b is not None:
        v = v + b.reshape([-1 if d == case.dim % x.ndim else 1 for d in range(x.ndim)])
    if case.act == "lrelu":
        v = torch.where(v > 0, v, v * alpha)
    v = v * gain
    if case.clamp is not None:
        v = torch.minimum(torch.maximum(v, torch.tensor(-case.clamp, dtype=v.dtype)), torch.tensor(case.clamp, dtype=v.dtype))
    return v


def run_with_grads(x: torch.Tensor, b: torch.Tensor | None, case: Case, impl: str, dy: torch.Tensor):
    """Forward and backward of one impl; returns (y, dx, db)."""
    x = x.detach().clone().requires_grad_(True)
    b = None if b is None else b.detach().clone().requires_grad_(True)
    y = bias_act(x, b, impl=impl, **case.kwargs())
    y.backward(dy)
    return y.detach(), x.grad, None if b is None else b.grad


def fixed_dy(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 3) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


CUDA_DTYPES = {torch.float32: 1e-6, torch.float64: 1e-12, torch.float16: 2e-3, torch.bfloat16: 2e-2}
