"""The CUDA extension: its loader, its kernel arithmetic, and a real nvcc build.

Three layers, so that a machine without a GPU still checks as much as it can:

* the loader (hash-named build dirs, atomic copies, warn-once fallback, strict mode);
* the kernels' per-element arithmetic (``*_kernel.h``, shared with the .cu files),
  compiled for the host with the system C++ compiler and compared with the reference
  ops in float64 -- this is the index math the GPU runs;
* ``test_extension_compiles``: the whole extension built with nvcc via the loader,
  for ``TORCH_CUDA_ARCH_LIST`` (default "9.0" here, to keep the build short). Marked
  ``slow`` but part of the default run; it fails if nvcc exists and the build fails.
  The first build takes a few minutes; later runs reuse the hash-named build dir.

Running the kernels is tested in test_ops_upfirdn2d.py / test_ops_bias_act.py (``gpu``).
"""

from __future__ import annotations

import ctypes
import glob
import os
import random
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import torch

from stylegan.ops import custom_ops, setup_filter, upfirdn2d
from stylegan.ops.bias_act_cuda import _BiasActCuda, _BiasActGradCuda
from stylegan.ops.bias_act_ref import bias_act_ref
from stylegan.ops.upfirdn2d_cuda import _Upfirdn2dCuda
from stylegan.ops.upfirdn2d_ref import upfirdn2d_ref

OPS_DIR = Path(custom_ops.__file__).resolve().parent


def find_nvcc() -> str | None:
    found = shutil.which("nvcc") or sorted(glob.glob("/usr/local/cuda*/bin/nvcc"))
    return found if isinstance(found, str) else (found[-1] if found else None)


# ---- loader ----

def test_sources_exist_and_are_packaged() -> None:
    for name in (*custom_ops.SOURCES, *custom_ops.HEADERS):
        assert (OPS_DIR / name).is_file(), name


def test_build_dir_is_named_after_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEGAN_MORPH_EXTENSIONS_DIR", str(tmp_path / "root"))
    files = []
    for name in custom_ops.SOURCES:
        shutil.copyfile(OPS_DIR / name, tmp_path / name)
        files.append(tmp_path / name)
    first = custom_ops.build_dir_for("ext", files, "9.0")
    assert first.parent == tmp_path / "root" and first.name.startswith("ext-")
    assert custom_ops.build_dir_for("ext", files, "9.0") == first  # deterministic
    assert custom_ops.build_dir_for("ext", files, "8.6") != first  # other architectures
    files[1].write_text(files[1].read_text() + "\n// changed\n")
    assert custom_ops.build_dir_for("ext", files, "9.0") != first  # other sources


def test_sources_are_copied_atomically(tmp_path: Path) -> None:
    files = [OPS_DIR / name for name in (*custom_ops.SOURCES, *custom_ops.HEADERS)]
    target = tmp_path / "root" / "ext-0123"
    custom_ops._copy_sources_atomically(files, target)
    custom_ops._copy_sources_atomically(files, target)  # a second (or concurrent) copy is a no-op
    assert sorted(p.name for p in target.iterdir()) == sorted(f.name for f in files)
    assert [p.name for p in target.parent.iterdir()] == ["ext-0123"]  # no temporary dirs left
    assert (target / "bias_act_kernel.cu").read_bytes() == (OPS_DIR / "bias_act_kernel.cu").read_bytes()


def test_failed_build_warns_once_then_falls_back_or_raises_when_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(custom_ops, "_failures", {})
    monkeypatch.setattr(custom_ops, "_warned", False)
    calls = []

    def broken_build(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("Error building extension 'stylegan_morph_ops'\nnvcc fatal: something")

    monkeypatch.setattr(custom_ops, "get_plugin", broken_build)
    monkeypatch.delenv("STYLEGAN_MORPH_CUDA_STRICT", raising=False)
    with pytest.warns(RuntimeWarning, match="CUDA ops unavailable.*Error building extension"):
        assert custom_ops.get_ops() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise here
        assert custom_ops.get_ops() is None
    assert len(calls) == 1  # the failed build is not retried on every call
    monkeypatch.setenv("STYLEGAN_MORPH_CUDA_STRICT", "1")
    with pytest.raises(RuntimeError, match="STRICT.*Error building extension"):
        custom_ops.get_ops()


def test_verbosity_and_cuda_home(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="verbosity"):
        custom_ops.set_verbosity("loud")
    old = custom_ops.get_verbosity()
    custom_ops.set_verbosity("none")
    assert custom_ops.get_verbosity() == "none"
    custom_ops.set_verbosity(old)
    monkeypatch.setenv("CUDA_HOME", "/opt/my-cuda")
    assert custom_ops.find_cuda_home() == "/opt/my-cuda"  # an explicit choice always wins
    monkeypatch.delenv("CUDA_HOME")
    monkeypatch.delenv("CUDA_PATH", raising=False)
    home = custom_ops.find_cuda_home()
    assert home is None or os.path.isfile(os.path.join(home, "bin", "nvcc"))


# ---- the kernels' arithmetic, compiled for the host ----

HARNESS = r"""
#include "upfirdn2d_kernel.h"
#include "bias_act_kernel.h"
using namespace sgm;
extern "C" {
// shape: N C H W OH OW; in/out strides: 4 each; a: upx upy downx downy padx0 pady0 fh fw flip cl
void upfirdn2d_host(const double* x, const double* f, double* y, const int64_t* shape,
                    const int64_t* in_stride, const int64_t* out_stride, const int64_t* a) {
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
        upfirdn2d_sample<double, double>(x, f, p, n, c, oy, ox);
  }
}
static BiasActParams params(int act, double alpha, double gain, double clamp, int64_t size, int64_t stride) {
  BiasActParams p{};
  p.act = act; p.alpha = alpha; p.gain = gain; p.clamp = clamp; p.bias_size = size; p.bias_stride = stride;
  return p;
}
void bias_act_host(const double* x, const double* b, double* y, int64_t total, int act, double alpha,
                   double gain, double clamp, int64_t size, int64_t stride) {
  const BiasActParams p = params(act, alpha, gain, clamp, size, stride);
  for (int64_t i = 0; i < total; ++i)
    y[i] = bias_act_value<double>(x[i] + (b ? b[bias_index(i, p)] : 0.0), p);
}
void bias_act_grad_host(const double* dy, const double* saved, const double* b, double* dx, int64_t total,
                        int act, double alpha, double gain, double clamp, int64_t size, int64_t stride,
                        int saved_is_output) {
  const BiasActParams p = params(act, alpha, gain, clamp, size, stride);
  for (int64_t i = 0; i < total; ++i) {
    double s = saved[i];
    if (!saved_is_output && b) s += b[bias_index(i, p)];
    dx[i] = bias_act_grad_value<double>(dy[i], s, saved_is_output != 0, p);
  }
}
}
"""

CXX = shutil.which("c++") or shutil.which("g++")


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    if CXX is None:
        pytest.skip("no C++ compiler")
    d = tmp_path_factory.mktemp("harness")
    (d / "harness.cpp").write_text(HARNESS)
    subprocess.run([CXX, "-std=c++17", "-O1", "-Wall", "-Werror", "-shared", "-fPIC", f"-I{OPS_DIR}",
                    str(d / "harness.cpp"), "-o", str(d / "harness.so")], check=True, capture_output=True)
    return ctypes.CDLL(str(d / "harness.so"))


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(None if t is None else t.data_ptr())


def _i64(values: list[int]) -> ctypes.Array:
    return (ctypes.c_int64 * len(values))(*values)


def host_upfirdn2d(lib: ctypes.CDLL, x: torch.Tensor, fk: torch.Tensor, up, down, pad, flip: bool,
                   channels_last: bool) -> torch.Tensor:
    """The kernel math over every output sample; ``fk`` is filter*gain in float64, as the wrapper passes it."""
    n, c, h, w = x.shape
    fh, fw = fk.shape
    oh = (h * up[1] + pad[2] + pad[3] - fh) // down[1] + 1
    ow = (w * up[0] + pad[0] + pad[1] - fw) // down[0] + 1
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    y = torch.full((n, c, oh, ow), float("nan"), dtype=torch.float64).contiguous(memory_format=fmt)
    lib.upfirdn2d_host(_ptr(x), _ptr(fk.contiguous()), _ptr(y), _i64([n, c, h, w, oh, ow]), _i64(list(x.stride())),
                       _i64(list(y.stride())),
                       _i64([up[0], up[1], down[0], down[1], pad[0], pad[2], fh, fw, int(flip), int(channels_last)]))
    return y


def _dense(t: torch.Tensor) -> bool:
    """Stand-in for C++'s is_non_overlapping_and_dense, for the layouts these tests make."""
    return t.is_contiguous() or (t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last))


class HostOps:
    """The extension's three functions (stylegan_ops.cpp), float64 on the CPU through the host-compiled
    kernel math, with the same layout rules. Handing it to the autograd Functions of
    upfirdn2d_cuda.py / bias_act_cuda.py tests their wiring (backward formulas, saved
    tensors, bias gradients, double backward) without a GPU."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib

    def upfirdn2d(self, x, f, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1, flip_filter):
        assert x.dtype == f.dtype == torch.float64
        cl = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        return host_upfirdn2d(self.lib, x, f, (up_x, up_y), (down_x, down_y), (pad_x0, pad_x1, pad_y0, pad_y1),
                              flip_filter, cl)

    def _params(self, like, b, dim, act, alpha, gain, clamp):
        size, stride = (like.shape[dim], like.stride(dim)) if b is not None else (0, 1)
        return (act, ctypes.c_double(alpha), ctypes.c_double(gain), ctypes.c_double(clamp), ctypes.c_int64(size),
                ctypes.c_int64(stride))

    def bias_act(self, x, b, dim, act, alpha, gain, clamp):
        x = x if _dense(x) else x.contiguous()
        b = None if b is None else b.contiguous()
        y = torch.empty_like(x)
        self.lib.bias_act_host(_ptr(x), _ptr(b), _ptr(y), ctypes.c_int64(x.numel()),
                               *self._params(x, b, dim, act, alpha, gain, clamp))
        return y

    def bias_act_grad(self, dy, saved, b, dim, act, alpha, gain, clamp, saved_is_output):
        saved = saved if _dense(saved) else saved.contiguous()
        if dy.stride() != saved.stride():
            dy, saved = dy.contiguous(), saved.contiguous()
        b = None if b is None else b.contiguous()
        dx = torch.empty_like(saved)
        self.lib.bias_act_grad_host(_ptr(dy), _ptr(saved), _ptr(b), _ptr(dx), ctypes.c_int64(dy.numel()),
                                    *self._params(saved, b, dim, act, alpha, gain, clamp), int(saved_is_output))
        return dx


def test_upfirdn2d_kernel_arithmetic_matches_ref(harness: ctypes.CDLL) -> None:
    rng = random.Random(7)
    checked = 0
    while checked < 150:
        up = (rng.choice([1, 2, 3]), rng.choice([1, 2, 3]))
        down = (rng.choice([1, 2, 3]), rng.choice([1, 2, 3]))
        pad = tuple(rng.randint(-3, 4) for _ in range(4))
        fh, fw = rng.randint(1, 5), rng.randint(1, 5)
        n, c, h, w = rng.randint(1, 2), rng.randint(1, 4), rng.randint(1, 7), rng.randint(1, 7)
        if w * up[0] + pad[0] + pad[1] < fw or h * up[1] + pad[2] + pad[3] < fh:
            continue
        flip, gain, cl = rng.random() < 0.5, rng.choice([1.0, 4.0, 0.5]), rng.random() < 0.5
        x = torch.randn(n, c, h, w, dtype=torch.float64)
        if rng.random() < 0.3:  # strided input views, as the backward pass produces
            x = torch.randn(n, c, h, 2 * w, dtype=torch.float64)[..., ::2]
        elif cl:
            x = x.contiguous(memory_format=torch.channels_last)
        f = torch.rand(fh, fw) + 0.1
        y = host_upfirdn2d(harness, x, (f * gain).double(), up, down, pad, flip, cl)
        torch.testing.assert_close(y, upfirdn2d_ref(x, f, up, down, pad, flip, gain), rtol=1e-12, atol=1e-12)
        checked += 1


def test_upfirdn2d_kernel_backward_padding_gives_the_gradient(harness: ctypes.CDLL) -> None:
    """The backward formula in upfirdn2d_cuda.py (swap up/down, flip, re-pad), run through the kernel math."""
    rng = random.Random(8)
    for _ in range(40):
        up, down = (rng.randint(1, 3), rng.randint(1, 3)), (rng.randint(1, 3), rng.randint(1, 3))
        fh, fw = rng.randint(1, 5), rng.randint(1, 5)
        h, w = rng.randint(2, 6), rng.randint(2, 6)
        pad = (rng.randint(-1, 3), rng.randint(-1, 3), rng.randint(-1, 3), rng.randint(-1, 3))
        if w * up[0] + pad[0] + pad[1] < fw or h * up[1] + pad[2] + pad[3] < fh:
            continue
        flip = rng.random() < 0.5
        x = torch.randn(1, 2, h, w, dtype=torch.float64, requires_grad=True)
        f = torch.rand(fh, fw) + 0.1
        y = upfirdn2d_ref(x, f, up, down, pad, flip, 2.0)
        dy = torch.randn_like(y)
        y.backward(dy)
        oh, ow = y.shape[2:]
        bpad = (fw - 1 - pad[0], w * up[0] - ow * down[0] + pad[0] - up[0] + 1,
                fh - 1 - pad[2], h * up[1] - oh * down[1] + pad[2] - up[1] + 1)
        dx = host_upfirdn2d(harness, dy, (f * 2.0).double(), down, up, bpad, not flip, False)
        torch.testing.assert_close(dx, x.grad, rtol=1e-12, atol=1e-12)


def test_bias_act_kernel_arithmetic_matches_ref(harness: ctypes.CDLL) -> None:
    rng = random.Random(9)
    for _ in range(150):
        shape = tuple(rng.randint(1, 5) for _ in range(rng.randint(1, 4)))
        dim = rng.randrange(len(shape))
        act = rng.choice(["linear", "lrelu"])
        alpha, gain = rng.choice([0.2, 0.0, 0.5, -0.3]), rng.choice([1.0, 2 ** 0.5, 0.5, -2.0])
        clamp = rng.choice([None, 0.7, 2.0])
        x = torch.randn(shape, dtype=torch.float64)
        if len(shape) == 4 and rng.random() < 0.5:
            x = x.contiguous(memory_format=torch.channels_last)  # the kernel walks memory order
        b = torch.randn(shape[dim], dtype=torch.float64) if rng.random() < 0.8 else None
        code, cl = {"linear": 0, "lrelu": 1}[act], -1.0 if clamp is None else clamp
        size, stride = (shape[dim], x.stride(dim)) if b is not None else (0, 1)
        y = torch.empty_like(x)
        harness.bias_act_host(_ptr(x), _ptr(b), _ptr(y), ctypes.c_int64(x.numel()), code, ctypes.c_double(alpha),
                              ctypes.c_double(gain), ctypes.c_double(cl), ctypes.c_int64(size), ctypes.c_int64(stride))
        xr = x.clone().requires_grad_(True)
        y_ref = bias_act_ref(xr, b, dim, act, alpha, gain, clamp)
        torch.testing.assert_close(y, y_ref.detach(), rtol=1e-12, atol=1e-12)

        dy = torch.randn_like(x)
        y_ref.backward(dy)
        modes = [False] + ([True] if gain > 0 and (act == "linear" or alpha >= 0) else [])
        for saved_is_output in modes:  # the same choice bias_act_cuda.py makes
            saved = y if saved_is_output else x
            dx = torch.empty_like(x)
            harness.bias_act_grad_host(_ptr(dy), _ptr(saved), _ptr(b), _ptr(dx), ctypes.c_int64(x.numel()), code,
                                       ctypes.c_double(alpha), ctypes.c_double(gain), ctypes.c_double(cl),
                                       ctypes.c_int64(size), ctypes.c_int64(stride), int(saved_is_output))
            torch.testing.assert_close(dx, xr.grad, rtol=1e-12, atol=1e-12)


def test_upfirdn2d_autograd_wiring(harness: ctypes.CDLL) -> None:
    """upfirdn2d_cuda's Function with the kernel math: forward, backward and double backward vs the reference."""
    ops = HostOps(harness)
    rng = random.Random(10)
    done = 0
    while done < 25:
        up, down = (rng.randint(1, 3), rng.randint(1, 3)), (rng.randint(1, 3), rng.randint(1, 3))
        fh, fw = rng.randint(1, 4), rng.randint(1, 4)
        h, w = rng.randint(1, 4), rng.randint(1, 4)
        pad = tuple(rng.randint(-2, 3) for _ in range(4))
        if w * up[0] + pad[0] + pad[1] < fw or h * up[1] + pad[2] + pad[3] < fh:
            continue
        flip, gain = rng.random() < 0.5, rng.choice([1.0, 4.0])
        f = torch.rand(fh, fw) + 0.1
        x = torch.randn(1, 2, h, w, dtype=torch.float64, requires_grad=True)
        fn = lambda x_: _Upfirdn2dCuda.apply(x_, f, up, down, pad, flip, gain, ops)  # noqa: E731
        ref = lambda x_: upfirdn2d_ref(x_, f, up, down, pad, flip, gain)  # noqa: E731
        y, y_ref = fn(x), ref(x)
        torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
        dy = torch.randn_like(y)
        (gx,) = torch.autograd.grad(y, x, dy, create_graph=True)
        (gx_ref,) = torch.autograd.grad(y_ref, x, dy, create_graph=True)
        torch.testing.assert_close(gx, gx_ref, rtol=1e-12, atol=1e-12)
        assert torch.autograd.gradcheck(fn, (x,)) and torch.autograd.gradgradcheck(fn, (x,))
        done += 1


def test_bias_act_autograd_wiring(harness: ctypes.CDLL) -> None:
    """bias_act_cuda's Functions with the kernel math, in all three backward modes (gain / output / input)."""
    ops = HostOps(harness)
    rng = random.Random(11)
    for i in range(40):
        shape = (rng.randint(1, 3), rng.randint(1, 4), rng.randint(1, 3), rng.randint(1, 3))[: rng.randint(2, 4)]
        dim = rng.randrange(len(shape))
        act = ["linear", "lrelu"][i % 2]
        alpha, gain = rng.choice([0.2, 0.0, -0.3]), rng.choice([1.0, 2 ** 0.5, -2.0])
        clamp = rng.choice([None, 0.7, 2.0])
        x = torch.randn(shape, dtype=torch.float64)
        x = torch.where(x.abs() < 0.05, x + 0.1, x).requires_grad_(True)  # no finite differences across a kink
        b = torch.randn(shape[dim], dtype=torch.float64, requires_grad=True)
        params = (dim, {"linear": 0, "lrelu": 1}[act], alpha, gain, -1.0 if clamp is None else clamp)
        fn = lambda x_, b_: _BiasActCuda.apply(x_, b_, params, ops)  # noqa: E731
        y, y_ref = fn(x, b), bias_act_ref(x, b, dim, act, alpha, gain, clamp)
        torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
        dy = torch.randn_like(y).transpose(0, -1).contiguous().transpose(0, -1)  # another layout than y
        grads = torch.autograd.grad(y, (x, b), dy)
        grads_ref = torch.autograd.grad(y_ref, (x, b), dy)
        for g, g_ref in zip(grads, grads_ref):
            torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)
        if i < 12:
            assert torch.autograd.gradcheck(fn, (x, b)) and torch.autograd.gradgradcheck(fn, (x, b))


# ---- the real build ----

@pytest.mark.slow
@pytest.mark.skipif(find_nvcc() is None, reason="no nvcc on this machine")
def test_extension_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """Build the extension with nvcc through the loader (the same call the ops make)."""
    if not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "9.0")  # one arch keeps the build to a few minutes
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", custom_ops.cuda_arch_list())  # restored after the test
    # Without CUDA_HOME the loader must find the toolkit itself (torch alone guesses wrong
    # here); set-then-delete makes monkeypatch restore whatever the loader writes.
    if not (os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")):
        monkeypatch.setenv("CUDA_HOME", "")
        monkeypatch.delenv("CUDA_HOME")
    module = custom_ops.get_plugin()
    for name in ("upfirdn2d", "bias_act", "bias_act_grad"):
        assert callable(getattr(module, name)), name
    files = [OPS_DIR / n for n in (*custom_ops.SOURCES, *custom_ops.HEADERS)]
    build_dir = custom_ops.build_dir_for(custom_ops.EXTENSION_NAME, files, custom_ops.cuda_arch_list())
    assert list(build_dir.glob(f"{custom_ops.EXTENSION_NAME}*.so")), sorted(os.listdir(build_dir))
    assert custom_ops.get_plugin() is module  # cached
    # The wrappers' exact call sites reach the C++ bodies (a signature mismatch would be a
    # pybind TypeError instead), whose first check refuses CPU tensors.
    x, b, f = torch.zeros(1, 2, 4, 4), torch.zeros(2), torch.ones(2, 2)
    with pytest.raises(RuntimeError, match="x must be a CUDA tensor"):
        _Upfirdn2dCuda.apply(x, f, (2, 1), (1, 2), (1, 0, 0, 1), False, 4.0, module)
    for bias in (b, None):
        with pytest.raises(RuntimeError, match="x must be a CUDA tensor"):
            _BiasActCuda.apply(x, bias, (1, 1, 0.2, 2 ** 0.5, 256.0), module)
        with pytest.raises(RuntimeError, match="dy must be a CUDA tensor"):
            _BiasActGradCuda.apply(x, x, bias, (1, 1, 0.2, 2 ** 0.5, 256.0), True, module)
    with pytest.raises(ValueError, match="CUDA"):  # the wrappers still refuse CPU tensors
        upfirdn2d(torch.zeros(1, 1, 4, 4), setup_filter(), impl="cuda")
