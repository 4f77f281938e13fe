"""The CUDA kernels' per-element arithmetic, compiled for the host: a GPU stand-in for tests.

The ``*_kernel.h`` headers hold everything the CUDA kernels compute per element; the
``.cu`` files only add the launch (grid-stride loop, dtype dispatch). Here the headers
are compiled with the system C++ compiler into a small shared library, in two
accumulation types, exactly as the kernels instantiate them:

* double for float64 tensors;
* float for float32, float16 and bfloat16 tensors: the kernels read a half/bf16 value
  into float (exact), do all arithmetic in float, and round once when they store the
  result. :class:`HostOps` does the same -- the inputs are widened to float32, the
  library computes in float, and the result is rounded to the tensor's dtype by
  ``Tensor.to`` (round to nearest even, like CUDA's ``__float2half_rn`` /
  ``__float2bfloat16_rn``).

One difference remains: nvcc contracts ``acc += x * f`` into a fused multiply-add;
the host build does not (``-ffp-contract=off``), so float results may differ from a
GPU's in the last bit. The tests' tolerances are far wider than that.

:class:`HostOps` has the extension's three functions (``stylegan_ops.cpp``) with its
argument checks and layout rules; handing it to the autograd Functions (or patching it
in with :func:`emulate_cuda`) runs the CUDA code path end to end on the CPU.
"""

from __future__ import annotations

import ctypes
import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch

from stylegan.ops import bias_act_cuda, custom_ops, upfirdn2d_cuda

OPS_DIR = Path(custom_ops.__file__).resolve().parent
CXX = shutil.which("c++") or shutil.which("g++")

HARNESS = r"""
#include "upfirdn2d_kernel.h"
#include "bias_act_kernel.h"
using namespace sgm;

// shape: N C H W OH OW; in/out strides: 4 each; a: upx upy downx downy padx0 pady0 fh fw flip cl
template <typename Acc>
static void upfirdn2d_run(const Acc* x, const Acc* f, Acc* y, const int64_t* shape, const int64_t* in_stride,
                          const int64_t* out_stride, const int64_t* a) {
  Upfirdn2dParams p{};
  p.batch = shape[0]; p.channels = shape[1]; p.in_h = shape[2]; p.in_w = shape[3];
  p.out_h = shape[4]; p.out_w = shape[5];
  for (int d = 0; d < 4; ++d) { p.in_stride[d] = in_stride[d]; p.out_stride[d] = out_stride[d]; }
  p.up_x = a[0]; p.up_y = a[1]; p.down_x = a[2]; p.down_y = a[3]; p.pad_x0 = a[4]; p.pad_y0 = a[5];
  p.filter_h = a[6]; p.filter_w = a[7]; p.flip_filter = a[8] != 0; p.channels_fastest = a[9] != 0;
  const int64_t total = p.batch * p.channels * p.out_h * p.out_w;
  for (int64_t i = 0; i < total; ++i) {  // the CUDA kernel's grid-stride loop, on one thread
    int64_t n, c, oy, ox;
    upfirdn2d_unravel(i, p, &n, &c, &oy, &ox);
    y[n * p.out_stride[0] + c * p.out_stride[1] + oy * p.out_stride[2] + ox * p.out_stride[3]] =
        upfirdn2d_sample<Acc, Acc>(x, f, p, n, c, oy, ox);
  }
}

static BiasActParams params(int act, double alpha, double gain, double clamp, int64_t size, int64_t stride) {
  BiasActParams p{};
  p.act = act; p.alpha = alpha; p.gain = gain; p.clamp = clamp; p.bias_size = size; p.bias_stride = stride;
  return p;
}

// The bodies of bias_act_forward_kernel / bias_act_grad_kernel in bias_act_kernel.cu.
template <typename Acc>
static void bias_act_run(const Acc* x, const Acc* b, Acc* y, int64_t total, const BiasActParams& p) {
  for (int64_t i = 0; i < total; ++i) {
    Acc v = x[i];
    if (b != nullptr) v += b[bias_index(i, p)];
    y[i] = bias_act_value<Acc>(v, p);
  }
}

template <typename Acc>
static void bias_act_grad_run(const Acc* dy, const Acc* saved, const Acc* b, Acc* dx, int64_t total,
                              const BiasActParams& p, bool saved_is_output) {
  for (int64_t i = 0; i < total; ++i) {
    Acc s = saved[i];
    if (!saved_is_output && b != nullptr) s += b[bias_index(i, p)];
    dx[i] = bias_act_grad_value<Acc>(dy[i], s, saved_is_output, p);
  }
}

#define SGM_HARNESS(Acc, suffix)                                                                              \
  void upfirdn2d_host_##suffix(const Acc* x, const Acc* f, Acc* y, const int64_t* shape,                     \
                               const int64_t* in_stride, const int64_t* out_stride, const int64_t* a) {      \
    upfirdn2d_run<Acc>(x, f, y, shape, in_stride, out_stride, a);                                             \
  }                                                                                                           \
  void bias_act_host_##suffix(const Acc* x, const Acc* b, Acc* y, int64_t total, int act, double alpha,      \
                              double gain, double clamp, int64_t size, int64_t stride) {                     \
    bias_act_run<Acc>(x, b, y, total, params(act, alpha, gain, clamp, size, stride));                        \
  }                                                                                                           \
  void bias_act_grad_host_##suffix(const Acc* dy, const Acc* saved, const Acc* b, Acc* dx, int64_t total,    \
                                   int act, double alpha, double gain, double clamp, int64_t size,           \
                                   int64_t stride, int saved_is_output) {                                    \
    bias_act_grad_run<Acc>(dy, saved, b, dx, total, params(act, alpha, gain, clamp, size, stride),           \
                           saved_is_output != 0);                                                             \
  }

extern "C" {
SGM_HARNESS(double, f64)
SGM_HARNESS(float, f32)
}
"""


@functools.lru_cache(maxsize=None)
def _compile(ops_dir: str) -> str:
    out = Path(tempfile.mkdtemp(prefix="sgm-kernel-harness-"))
    (out / "harness.cpp").write_text(HARNESS)
    subprocess.run([CXX, "-std=c++17", "-O1", "-ffp-contract=off", "-Wall", "-Werror", "-shared", "-fPIC",
                    f"-I{ops_dir}", str(out / "harness.cpp"), "-o", str(out / "harness.so")],
                   check=True, capture_output=True)
    return str(out / "harness.so")


def load_harness() -> ctypes.CDLL:
    """The compiled harness (built once per process), or skip the test when there is no C++ compiler."""
    if CXX is None:
        pytest.skip("no C++ compiler")
    return ctypes.CDLL(_compile(str(OPS_DIR)))


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if t is None else t.data_ptr())


def _i64(values: list[int]) -> ctypes.Array:
    return (ctypes.c_int64 * len(values))(*values)


def _suffix(dtype: torch.dtype) -> str:
    assert dtype in (torch.float64, torch.float32), dtype
    return "f64" if dtype == torch.float64 else "f32"


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The kernels' accumulation type for a storage type (ATen's opmath_type)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def host_upfirdn2d(lib: ctypes.CDLL, x: torch.Tensor, fk: torch.Tensor, up, down, pad, flip: bool,
                   channels_last: bool) -> torch.Tensor:
    """The kernel math over every output sample, in x's dtype (float64 or float32).

    ``fk`` is filter*gain in the same dtype, as the wrapper passes it.
    """
    n, c, h, w = x.shape
    fh, fw = fk.shape
    oh = (h * up[1] + pad[2] + pad[3] - fh) // down[1] + 1
    ow = (w * up[0] + pad[0] + pad[1] - fw) // down[0] + 1
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    y = torch.full((n, c, oh, ow), float("nan"), dtype=x.dtype).contiguous(memory_format=fmt)
    getattr(lib, f"upfirdn2d_host_{_suffix(x.dtype)}")(
        _ptr(x), _ptr(fk.to(x.dtype).contiguous()), _ptr(y), _i64([n, c, h, w, oh, ow]), _i64(list(x.stride())),
        _i64(list(y.stride())),
        _i64([up[0], up[1], down[0], down[1], pad[0], pad[2], fh, fw, int(flip), int(channels_last)]))
    return y


def _params(act: int, alpha: float, gain: float, clamp: float, size: int, stride: int) -> tuple:
    return (act, ctypes.c_double(alpha), ctypes.c_double(gain), ctypes.c_double(clamp), ctypes.c_int64(size),
            ctypes.c_int64(stride))


def host_bias_act(lib: ctypes.CDLL, x: torch.Tensor, b: torch.Tensor | None, act: int, alpha: float, gain: float,
                  clamp: float, size: int, stride: int) -> torch.Tensor:
    """bias_act_forward_kernel over x's memory (x: float64 or float32, dense)."""
    y = torch.empty_like(x)
    getattr(lib, f"bias_act_host_{_suffix(x.dtype)}")(_ptr(x), _ptr(b), _ptr(y), ctypes.c_int64(x.numel()),
                                                       *_params(act, alpha, gain, clamp, size, stride))
    return y


def host_bias_act_grad(lib: ctypes.CDLL, dy: torch.Tensor, saved: torch.Tensor, b: torch.Tensor | None, act: int,
                       alpha: float, gain: float, clamp: float, size: int, stride: int,
                       saved_is_output: bool) -> torch.Tensor:
    """bias_act_grad_kernel over saved's memory (same dtype and strides as dy)."""
    dx = torch.empty_like(saved)
    getattr(lib, f"bias_act_grad_host_{_suffix(saved.dtype)}")(
        _ptr(dy), _ptr(saved), _ptr(b), _ptr(dx), ctypes.c_int64(dy.numel()),
        *_params(act, alpha, gain, clamp, size, stride), int(saved_is_output))
    return dx


def _dense(t: torch.Tensor) -> bool:
    """Stand-in for C++'s is_non_overlapping_and_dense, for the layouts these tests make."""
    return t.is_contiguous() or (t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last))


class HostOps:
    """The extension's three functions (stylegan_ops.cpp) on the CPU, for every dtype the kernels take.

    Same argument checks and layout rules as the C++ bindings; arithmetic through the
    host-compiled kernel headers in the kernels' accumulation type, with one rounding
    to the tensor's dtype at the store.
    """

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        self.calls: dict[str, int] = {"upfirdn2d": 0, "bias_act": 0, "bias_act_grad": 0}

    def upfirdn2d(self, x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter):
        self.calls["upfirdn2d"] += 1
        acc = acc_dtype(x.dtype)
        assert x.ndim == 4 and f.ndim == 2 and f.device == x.device, "f must be a 2-D tensor on x's device"
        assert f.dtype == acc, f"f must be {acc} for {x.dtype} inputs, got {f.dtype}"
        cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        y = host_upfirdn2d(self.lib, x.to(acc), f, (up_x, up_y), (down_x, down_y),
                           (pad_x0, pad_x1, pad_y0, pad_y1), flip_filter, cl)
        return y.to(x.dtype)

    @staticmethod
    def _bias(like: torch.Tensor, b: torch.Tensor | None, dim: int) -> tuple[torch.Tensor | None, int, int]:
        if b is None:
            return None, 0, 1
        assert b.ndim == 1 and b.shape[0] == like.shape[dim], "b must have x.size(dim) elements"
        assert b.dtype == like.dtype and b.device == like.device, "b must have x's dtype and device"
        return b.contiguous().to(acc_dtype(like.dtype)), like.shape[dim], like.stride(dim)

    def bias_act(self, x, b, dim, act, alpha, gain, clamp):
        self.calls["bias_act"] += 1
        x = x if _dense(x) else x.contiguous()
        bc, size, stride = self._bias(x, b, dim)
        y = host_bias_act(self.lib, x.to(acc_dtype(x.dtype)), bc, act, alpha, gain, clamp, size, stride)
        return y.to(x.dtype)  # the one rounding, at the store

    def bias_act_grad(self, dy, saved, b, dim, act, alpha, gain, clamp, saved_is_output):
        self.calls["bias_act_grad"] += 1
        assert dy.shape == saved.shape and dy.dtype == saved.dtype, "dy and the saved tensor must match"
        saved = saved if _dense(saved) else saved.contiguous()
        if dy.stride() != saved.stride():
            dy, saved = dy.contiguous(), saved.contiguous()
        bc, size, stride = self._bias(saved, b, dim)
        acc = acc_dtype(saved.dtype)
        dx = host_bias_act_grad(self.lib, dy.to(acc), saved.to(acc), bc, act, alpha, gain, clamp, size, stride,
                                saved_is_output)
        return dx.to(saved.dtype)


def emulate_cuda(monkeypatch: pytest.MonkeyPatch, ops: HostOps) -> HostOps:
    """Make ``impl="cuda"`` run on CPU tensors through ``ops``: the wrappers' device check is
    lifted and :func:`custom_ops.get_ops` returns ``ops``. Everything else is the real code path."""
    monkeypatch.setattr(bias_act_cuda, "_check_device", lambda x: None)
    monkeypatch.setattr(upfirdn2d_cuda, "_check_device", lambda x: None)
    monkeypatch.setattr(custom_ops, "get_ops", lambda: ops)
    return ops
