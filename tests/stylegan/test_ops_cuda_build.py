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
import warnings
from pathlib import Path

import pytest
import torch

from stylegan.ops import custom_ops, setup_filter, upfirdn2d
from stylegan.ops.bias_act_cuda import _BiasActCuda, _BiasActGradCuda
from stylegan.ops.bias_act_ref import bias_act_ref
from stylegan.ops.upfirdn2d_cuda import _Upfirdn2dCuda
from stylegan.ops.upfirdn2d_ref import upfirdn2d_ref
from tests.stylegan.kernel_harness import HostOps, host_bias_act, host_bias_act_grad, host_upfirdn2d, load_harness

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
    monkeypatch.setattr(custom_ops, "_ops", None, raising=False)
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


class _Refuse:
    """Stands in for everything the fast path must not touch; any use fails the test."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __call__(self, *args, **kwargs):
        raise AssertionError(f"get_ops() touched {self.what} although its module was cached")

    def __getattr__(self, name: str):
        raise AssertionError(f"get_ops() touched {self.what}.{name} although its module was cached")


def test_get_ops_returns_the_cached_module_before_any_file_read_or_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ops call get_ops() on every pass; it re-hashed six files and queried the GPU each time (~250 us)."""
    monkeypatch.setattr(custom_ops, "_ops", None, raising=False)
    monkeypatch.setattr(custom_ops, "_failures", {})
    module = object()
    monkeypatch.setattr(custom_ops, "get_plugin", lambda *a, **k: module)
    assert custom_ops.get_ops() is module
    for name in ("get_plugin", "build_dir_for", "cuda_arch_list", "find_cuda_home"):
        monkeypatch.setattr(custom_ops, name, _Refuse(name))
    monkeypatch.setattr(custom_ops, "hashlib", _Refuse("hashlib"))
    monkeypatch.setattr(custom_ops, "glob", _Refuse("glob"))
    monkeypatch.setattr(Path, "read_bytes", _Refuse("Path.read_bytes"))
    monkeypatch.setattr(Path, "open", _Refuse("Path.open"))
    monkeypatch.setattr(torch.cuda, "is_available", _Refuse("torch.cuda.is_available"))
    monkeypatch.setattr(torch.cuda, "get_device_capability", _Refuse("torch.cuda.get_device_capability"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback warning would mean the cache was missed
        for _ in range(3):
            assert custom_ops.get_ops() is module


def _fake_toolkit(root: Path, release: str) -> Path:
    """A CUDA_HOME whose bin/nvcc only prints a version."""
    home = root / f"cuda-{release}"
    (home / "bin").mkdir(parents=True)
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {release}'\n")
    nvcc.chmod(0o755)
    return home


@pytest.fixture
def fake_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """get_plugin with a fake toolkit and cpp_extension.load replaced: the loader without nvcc."""
    from torch.utils import cpp_extension

    monkeypatch.setenv("STYLEGAN_MORPH_EXTENSIONS_DIR", str(tmp_path / "root"))
    monkeypatch.setenv("STYLEGAN_MORPH_CUDA_VERBOSE", "none")
    monkeypatch.setattr(custom_ops, "_verbosity", "none")
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setattr(custom_ops, "_plugins", {})
    monkeypatch.setattr(custom_ops, "_build_failures", {}, raising=False)
    home = _fake_toolkit(tmp_path, "99.1")
    monkeypatch.setattr(custom_ops, "find_cuda_home", lambda: str(home))
    monkeypatch.setattr(custom_ops, "cuda_arch_list", lambda: "8.6")
    state = {"calls": [], "fail": False, "home_before": cpp_extension.CUDA_HOME}

    def load(name, sources, build_directory, **kwargs):
        state["calls"].append({"arch": os.environ.get("TORCH_CUDA_ARCH_LIST"), "env_home": os.environ.get("CUDA_HOME"),
                               "module_home": cpp_extension.CUDA_HOME, "dir": Path(build_directory),
                               "files": sorted(p.name for p in Path(build_directory).iterdir())})
        if state["fail"]:
            raise RuntimeError("Error building extension 'stylegan_morph_ops': nvcc fatal")
        return f"module from {build_directory}"

    monkeypatch.setattr(cpp_extension, "load", load)
    state["home"] = home
    return state


def _expected_dir() -> Path:
    files = [OPS_DIR / n for n in (*custom_ops.SOURCES, *custom_ops.HEADERS)]
    return custom_ops.build_dir_for(custom_ops.EXTENSION_NAME, files, custom_ops.cuda_arch_list())


def test_build_sets_arch_and_toolkit_for_its_call_only(fake_build) -> None:
    from torch.utils import cpp_extension

    module = custom_ops.get_plugin()
    (call,) = fake_build["calls"]
    assert call["arch"] == "8.6" and call["env_home"] == call["module_home"] == str(fake_build["home"])
    assert "TORCH_CUDA_ARCH_LIST" not in os.environ and "CUDA_HOME" not in os.environ  # restored
    assert cpp_extension.CUDA_HOME == fake_build["home_before"]
    assert (call["dir"] / custom_ops.COMPLETE_MARKER).is_file()
    assert custom_ops.get_plugin() is module and len(fake_build["calls"]) == 1  # cached


def test_compiler_versions_are_part_of_the_build_hash(fake_build, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    first = _expected_dir()
    # Another nvcc at the same path (a toolkit upgrade in place) ...
    (fake_build["home"] / "bin" / "nvcc").write_text("#!/bin/sh\necho 'Cuda compilation tools, release 99.2'\n")
    custom_ops._tool_version.cache_clear()
    second = _expected_dir()
    assert second != first
    # ... or another host compiler.
    cxx = tmp_path / "my-c++"
    cxx.write_text("#!/bin/sh\necho 'c++ (fake) 1.0'\n")
    cxx.chmod(0o755)
    monkeypatch.setenv("CXX", str(cxx))
    assert _expected_dir() not in (first, second)
    assert any("release 99.2" in v for v in custom_ops.toolchain_versions(str(fake_build["home"])))


def test_an_incomplete_build_dir_is_rebuilt_not_fatal(fake_build) -> None:
    """A build killed half-way leaves objects (maybe truncated) and torch's lock file, which made
    every later build wait or fail; without the completion marker the folder is rebuilt."""
    build_dir = _expected_dir()
    build_dir.mkdir(parents=True)
    (build_dir / "stylegan_ops.cpp").write_text("// half-copied")
    (build_dir / "stylegan_morph_ops.so").write_bytes(b"\x7fELF truncated")
    (build_dir / "lock").write_text("")
    custom_ops.get_plugin()
    files = fake_build["calls"][0]["files"]
    assert "stylegan_morph_ops.so" not in files and "lock" not in files
    assert (build_dir / "stylegan_ops.cpp").read_bytes() == (OPS_DIR / "stylegan_ops.cpp").read_bytes()
    assert [p.name for p in build_dir.parent.iterdir() if p.name.startswith(".")] == []  # no trash left
    # A complete folder is reused; only a stale torch lock in it is removed.
    custom_ops._plugins.clear()
    (build_dir / "lock").write_text("")
    (build_dir / "kept.o").write_text("object")
    custom_ops.get_plugin()
    assert "kept.o" in fake_build["calls"][1]["files"] and "lock" not in fake_build["calls"][1]["files"]


def test_a_toolkit_without_nvcc_fails_before_building(fake_build, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(custom_ops, "find_cuda_home", lambda: str(tmp_path / "no-cuda"))
    with pytest.raises(RuntimeError, match="no-cuda has no bin/nvcc"):
        custom_ops.get_plugin()
    assert fake_build["calls"] == []


def test_a_failed_build_is_remembered_for_the_process(fake_build) -> None:
    fake_build["fail"] = True
    with pytest.raises(RuntimeError, match="nvcc fatal"):
        custom_ops.get_plugin()
    with pytest.raises(RuntimeError, match="earlier build .* failed.*nvcc fatal"):
        custom_ops.get_plugin()
    assert len(fake_build["calls"]) == 1  # not compiled again


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


# ---- the kernels' arithmetic, compiled for the host (float64; see test_ops_kernel_emulation.py for the rest) ----

@pytest.fixture(scope="module")
def harness() -> ctypes.CDLL:
    return load_harness()


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
        y = host_bias_act(harness, x, b, code, alpha, gain, cl, size, stride)
        xr = x.clone().requires_grad_(True)
        y_ref = bias_act_ref(xr, b, dim, act, alpha, gain, clamp)
        torch.testing.assert_close(y, y_ref.detach(), rtol=1e-12, atol=1e-12)

        dy = torch.randn_like(x)
        y_ref.backward(dy)
        modes = [False] + ([True] if gain >= 1 and (act == "linear" or alpha >= 0) else [])
        for saved_is_output in modes:  # the same choice bias_act_cuda.backward_mode makes for float64
            saved = y if saved_is_output else x
            dx = host_bias_act_grad(harness, dy, saved, b, code, alpha, gain, cl, size, stride, saved_is_output)
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
    from stylegan.ops.bias_act_cuda import bias_act_with_ops

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
        fn = lambda x_, b_: bias_act_with_ops(x_, b_, dim, act, alpha, gain, clamp, ops)  # noqa: E731
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
            _BiasActCuda.apply(x, bias, (1, 1, 0.2, 2 ** 0.5, 256.0), module, "output")
        with pytest.raises(RuntimeError, match="dy must be a CUDA tensor"):
            _BiasActGradCuda.apply(x, x, bias, (1, 1, 0.2, 2 ** 0.5, 256.0), True, module)
    with pytest.raises(ValueError, match="CUDA"):  # the wrappers still refuse CPU tensors
        upfirdn2d(torch.zeros(1, 1, 4, 4), setup_filter(), impl="cuda")
