"""Build and load the CUDA extension on first use, never at import.

The ops' CUDA kernels live next to their Python wrappers in this folder
(``stylegan_ops.cpp``, ``upfirdn2d_kernel.cu``, ``bias_act_kernel.cu`` and their
headers) and form ONE extension, so it compiles once (a few minutes). The first call
of an op with ``impl="cuda"`` (or ``impl=None`` on a CUDA tensor) calls
:func:`get_ops`, which:

1. names a build directory after a hash of the source files, the torch and CUDA
   versions, the nvcc and host-compiler versions and the target architectures, so a
   change to any of them rebuilds and an unchanged set reuses the earlier build (also
   across processes);
2. takes an exclusive file lock next to that directory (released by the OS if the
   process dies), discards a directory left incomplete by a build that died (no
   completion marker), and copies the sources in atomically (a temporary directory
   renamed into place), so concurrent processes never see half-copied files;
3. compiles with ``torch.utils.cpp_extension.load`` (ninja + nvcc) and imports it,
   with ``TORCH_CUDA_ARCH_LIST`` and ``CUDA_HOME`` set for that call only and restored
   afterwards (the process environment is left as the user set it);
4. caches the loaded module for the rest of the process; :func:`get_ops` returns it
   before any file read, hash or GPU query, since the ops call it on every pass.

If the build fails, :func:`get_ops` warns once and returns None, and the ops fall
back to their PyTorch implementations (which also run on CUDA tensors). The failure
is remembered for the rest of the process: a multi-minute build is not retried on
every call. Setting ``STYLEGAN_MORPH_CUDA_STRICT=1`` turns that fallback into an
error, so a GPU test run cannot pass by accident on the fallback.

Environment:
    STYLEGAN_MORPH_EXTENSIONS_DIR: where build directories go
        (default ``~/.cache/stylegan_morph/torch_extensions``).
    STYLEGAN_MORPH_CUDA_STRICT: "1" to raise instead of falling back.
    STYLEGAN_MORPH_CUDA_VERBOSE: "none", "brief" (default) or "full" (compiler output).
    TORCH_CUDA_ARCH_LIST: target architectures, e.g. "8.6" or "8.0;9.0"; default: the visible GPUs.
    CUDA_HOME: the CUDA toolkit; if unset, a ``/usr/local/cuda*`` folder with ``bin/nvcc``
        is chosen, preferring the version torch was built with.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
import warnings
from pathlib import Path
from types import ModuleType
from typing import Iterator, Sequence

import torch

__all__ = [
    "EXTENSION_NAME", "SOURCES", "HEADERS", "VERBOSITY_LEVELS", "set_verbosity", "get_verbosity",
    "is_strict", "build_root", "cuda_arch_list", "find_cuda_home", "toolchain_versions", "build_dir_for",
    "get_plugin", "get_ops", "loaded_plugins", "COMPLETE_MARKER",
]

EXTENSION_NAME = "stylegan_morph_ops"
SOURCES = ("stylegan_ops.cpp", "upfirdn2d_kernel.cu", "bias_act_kernel.cu")
HEADERS = ("kernel_common.h", "upfirdn2d_kernel.h", "bias_act_kernel.h")
VERBOSITY_LEVELS = ("none", "brief", "full")
COMPLETE_MARKER = ".sgm-build-complete"  # written into a build directory once its module has loaded
_SOURCE_DIR = Path(__file__).resolve().parent

_verbosity = os.environ.get("STYLEGAN_MORPH_CUDA_VERBOSE", "brief")
_plugins: dict[str, ModuleType] = {}         # build dir -> loaded module
_build_failures: dict[str, str] = {}         # build dir -> error message of its failed build
_failures: dict[str, str] = {}               # extension name -> why get_ops() has no module
_ops: ModuleType | None = None               # get_ops()' module, checked before anything else
_warned = False
_lock = threading.Lock()


def set_verbosity(level: str) -> None:
    """Choose how much a build prints: "none", "brief" (one line per build) or "full" (compiler output)."""
    global _verbosity
    if level not in VERBOSITY_LEVELS:
        raise ValueError(f"verbosity must be one of {VERBOSITY_LEVELS}, got {level!r}")
    _verbosity = level


def get_verbosity() -> str:
    """The current verbosity level."""
    return _verbosity if _verbosity in VERBOSITY_LEVELS else "brief"


def is_strict() -> bool:
    """True when ``STYLEGAN_MORPH_CUDA_STRICT`` asks for errors instead of the fallback (read on every call)."""
    return os.environ.get("STYLEGAN_MORPH_CUDA_STRICT", "").strip().lower() not in ("", "0", "false", "no")


def build_root() -> Path:
    """Parent folder of the build directories (``$STYLEGAN_MORPH_EXTENSIONS_DIR`` or ~/.cache/...)."""
    env = os.environ.get("STYLEGAN_MORPH_EXTENSIONS_DIR")
    return Path(env) if env else Path.home() / ".cache" / "stylegan_morph" / "torch_extensions"


def cuda_arch_list() -> str:
    """Target architectures: ``$TORCH_CUDA_ARCH_LIST``, else the compute capabilities of the visible GPUs.

    Raises:
        RuntimeError: no GPU is visible and the variable is not set.
    """
    env = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if env:
        return env
    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA GPU is visible; set TORCH_CUDA_ARCH_LIST (e.g. '8.6') to build anyway")
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    return ";".join(f"{major}.{minor}" for major, minor in caps)


def find_cuda_home() -> str | None:
    """The CUDA toolkit to build with: ``$CUDA_HOME``/``$CUDA_PATH``, else a /usr/local/cuda* folder with nvcc.

    torch guesses the toolkit from the folder above ``which nvcc``, which is wrong when
    ``nvcc`` is a wrapper script (e.g. /usr/local/bin/nvcc); looking for the toolkit
    folders directly avoids that. The version torch was built with comes first.
    """
    env = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if env:
        return env
    candidates = []
    if torch.version.cuda:
        candidates.append(f"/usr/local/cuda-{torch.version.cuda}")
    candidates += ["/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*"), reverse=True)]
    for home in candidates:
        if os.path.isfile(os.path.join(home, "bin", "nvcc")):
            return home
    return None


@functools.lru_cache(maxsize=None)
def _tool_version(command: tuple[str, ...]) -> str:
    """What ``command`` prints (e.g. ``nvcc --version``), or why it could not run; once per process."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        return f"{command[0]}: unavailable ({type(err).__name__})"
    return " ".join((done.stdout + done.stderr).split())[:2000]


def toolchain_versions(cuda_home: str | None = None) -> tuple[str, ...]:
    """Version strings of the compilers a build uses: nvcc, the C++ compiler and, if set, ``$CC``.

    They go into the build hash: an extension built by another nvcc or host compiler
    (same torch, same sources) can fail to load or behave differently, so a toolkit
    upgrade must rebuild. Each command runs once per process.
    """
    home = cuda_home if cuda_home is not None else find_cuda_home()
    nvcc = os.path.join(home, "bin", "nvcc") if home else "nvcc"
    versions = [_tool_version((nvcc, "--version")),
                _tool_version((os.environ.get("CXX") or "c++", "--version"))]
    if os.environ.get("CC"):  # torch passes $CC to nvcc as its host compiler (-ccbin)
        versions.append(_tool_version((os.environ["CC"], "--version")))
    return tuple(versions)


def build_dir_for(name: str, sources: Sequence[Path], arch_list: str,
                  extra_cuda_cflags: Sequence[str] = (), toolchain: Sequence[str] | None = None) -> Path:
    """The build directory for these exact sources and build settings: ``<root>/<name>-<hash>``.

    Args:
        toolchain: compiler version strings; default :func:`toolchain_versions`.
    """
    h = hashlib.sha256()
    for path in sorted(sources, key=lambda p: p.name):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    cuda_home = find_cuda_home()
    tools = toolchain_versions(cuda_home) if toolchain is None else tuple(toolchain)
    settings = [torch.__version__, str(torch.version.cuda), arch_list, str(cuda_home),
                sys.version.split()[0], *extra_cuda_cflags, "toolchain", *tools]
    h.update("\0".join(settings).encode())
    return build_root() / f"{name}-{h.hexdigest()[:16]}"


@contextlib.contextmanager
def _build_environment(arch_list: str, cuda_home: str) -> Iterator[ModuleType]:
    """``TORCH_CUDA_ARCH_LIST`` and ``CUDA_HOME`` for one build, restored afterwards.

    ``cpp_extension.load`` reads the architectures from the environment and the toolkit
    from a module attribute it set at import; both are set for the call and put back,
    so the user's environment (and what child processes inherit) stays as it was.
    """
    from torch.utils import cpp_extension  # heavy; only once a build is really wanted

    names = ("TORCH_CUDA_ARCH_LIST", "CUDA_HOME")
    saved_env = {k: os.environ.get(k) for k in names}
    saved_home = cpp_extension.CUDA_HOME
    os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list
    os.environ["CUDA_HOME"] = cuda_home
    cpp_extension.CUDA_HOME = cuda_home
    try:
        yield cpp_extension
    finally:
        cpp_extension.CUDA_HOME = saved_home
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _build_dir_lock(build_dir: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``<build_dir>.lock``; yields True when the lock is real.

    An ``flock`` dies with its process. Older torch versions lock the build directory
    with a file whose mere existence blocks, so a killed build left it behind and every
    later build waited on it forever (torch 2.14 holds an flock on that file instead).
    Without ``fcntl`` (Windows) it yields False and locks nothing.
    """
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield False
        return
    with open(build_dir.with_name(build_dir.name + ".lock"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _discard_incomplete(build_dir: Path) -> None:
    """Remove what a build that died left behind; the caller holds :func:`_build_dir_lock`.

    A directory without :data:`COMPLETE_MARKER` never loaded: its objects may be
    truncated, which ninja would then call up to date. A complete directory may still
    hold an older torch's lock file from a process killed while re-checking it. No
    other process of ours can be inside the directory while the lock is held, so that
    file is stale and goes.
    """
    if build_dir.is_dir() and not (build_dir / COMPLETE_MARKER).is_file():
        trash = build_dir.with_name(f".trash-{build_dir.name}-{uuid.uuid4().hex[:8]}")
        os.replace(build_dir, trash)  # atomic, so a failed removal leaves no half-deleted build
        shutil.rmtree(trash, ignore_errors=True)
    stale = build_dir / "lock"
    if stale.exists():
        stale.unlink()


def _copy_sources_atomically(files: Sequence[Path], build_dir: Path) -> None:
    """Make ``build_dir`` hold exactly ``files``, appearing all at once or not at all."""
    if build_dir.is_dir() and all((build_dir / f.name).is_file() for f in files):
        return
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{build_dir.name}-{uuid.uuid4().hex[:8]}-", dir=build_dir.parent))
    try:
        for f in files:
            shutil.copyfile(f, tmp / f.name)
        try:
            os.replace(tmp, build_dir)  # atomic; fails if another process got there first
        except OSError:
            if not (build_dir.is_dir() and all((build_dir / f.name).is_file() for f in files)):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def get_plugin(name: str = EXTENSION_NAME, sources: Sequence[str] = SOURCES, headers: Sequence[str] = HEADERS,
               source_dir: Path = _SOURCE_DIR, extra_cuda_cflags: Sequence[str] = ()) -> ModuleType:
    """Build (if needed), import and cache a CUDA extension.

    Args:
        name: module name of the extension.
        sources: .cpp/.cu files in ``source_dir`` to compile.
        headers: files they include; part of the hash, copied along.
        source_dir: folder holding the files.
        extra_cuda_cflags: additional nvcc flags.

    Returns:
        The imported extension module.

    Raises:
        RuntimeError: no toolkit, no architectures, or a compiler/import error -- also when
            the same build already failed earlier in this process (it is not retried).
    """
    files = [Path(source_dir) / s for s in (*sources, *headers)]
    arch_list = cuda_arch_list()
    cuda_home = find_cuda_home()
    if cuda_home is None:
        raise RuntimeError("no CUDA toolkit found: set CUDA_HOME to a folder containing bin/nvcc")
    if shutil.which("nvcc", path=os.path.join(cuda_home, "bin")) is None:  # fail now, not after ninja starts
        raise RuntimeError(f"the CUDA toolkit {cuda_home} has no bin/nvcc: point CUDA_HOME at another one")
    build_dir = build_dir_for(name, files, arch_list, extra_cuda_cflags)
    key = str(build_dir)
    with _lock:
        if key in _plugins:
            return _plugins[key]
        if key in _build_failures:  # a multi-minute build that failed once fails again: say so at once
            raise RuntimeError(f"an earlier build of {name} in this process failed: {_build_failures[key]}")
        try:
            module = _build(name, sources, files, build_dir, arch_list, cuda_home, extra_cuda_cflags)
        except Exception as err:
            _build_failures[key] = str(err).strip() or type(err).__name__
            raise
        _plugins[key] = module
        return module


def _build(name: str, sources: Sequence[str], files: Sequence[Path], build_dir: Path, arch_list: str,
           cuda_home: str, extra_cuda_cflags: Sequence[str]) -> ModuleType:
    """Copy, compile and import one extension; the caller holds ``_lock``."""
    verbosity = get_verbosity()
    if verbosity != "none":
        print(f"Setting up CUDA extension {name} for arch {arch_list} in {build_dir} "
              f"(the first build takes a few minutes)...", file=sys.stderr, flush=True)
    with _build_dir_lock(build_dir) as exclusive:
        if exclusive:
            _discard_incomplete(build_dir)
        _copy_sources_atomically(files, build_dir)
        with _build_environment(arch_list, cuda_home) as cpp_extension:
            module = cpp_extension.load(
                name=name,
                sources=[str(build_dir / s) for s in sources],
                extra_include_paths=[str(build_dir)],
                extra_cuda_cflags=list(extra_cuda_cflags),
                build_directory=str(build_dir),
                verbose=verbosity == "full",
            )
        (build_dir / COMPLETE_MARKER).write_text(f"{name} built for {arch_list} with {cuda_home}\n")
    if verbosity != "none":
        print(f"CUDA extension {name} ready.", file=sys.stderr, flush=True)
    return module


def get_ops() -> ModuleType | None:
    """The compiled ops, or None (after warning once) when they cannot be built.

    The first call builds or loads the extension; every later call returns the cached
    module (or the remembered failure) before touching a file, a hash, the toolkit or
    the GPU, because the ops call this on every forward and backward pass.

    Raises:
        RuntimeError: the build failed and ``STYLEGAN_MORPH_CUDA_STRICT=1``.
    """
    global _warned, _ops
    ops = _ops
    if ops is not None:
        return ops
    message = _failures.get(EXTENSION_NAME)
    if message is not None:  # failed before: never retry a multi-minute build on every call
        if is_strict():
            raise RuntimeError(f"building the CUDA ops failed (STYLEGAN_MORPH_CUDA_STRICT is set): {message}")
        return None
    try:
        ops = get_plugin()
    except Exception as err:  # compiler, toolkit or import errors all mean "use the fallback"
        message = str(err).strip() or type(err).__name__
        _failures[EXTENSION_NAME] = message
        if is_strict():
            raise RuntimeError(f"building the CUDA ops failed (STYLEGAN_MORPH_CUDA_STRICT is set): {message}") from err
        if not _warned:
            _warned = True
            first = message.splitlines()[0]
            detail = f"\n{message}" if get_verbosity() == "full" else ""
            warnings.warn(f"CUDA ops unavailable ({first}); using the PyTorch implementation instead. "
                          f"Set STYLEGAN_MORPH_CUDA_STRICT=1 to make this an error, "
                          f"STYLEGAN_MORPH_CUDA_VERBOSE=full to see the compiler output.{detail}",
                          RuntimeWarning, stacklevel=3)
        return None
    _ops = ops
    return ops


def loaded_plugins() -> dict[str, ModuleType]:
    """The extensions loaded so far in this process, by build directory (empty until a CUDA op runs)."""
    return dict(_plugins)
