"""Build and load the CUDA extension on first use, never at import.

The ops' CUDA kernels live next to their Python wrappers in this folder
(``stylegan_ops.cpp``, ``upfirdn2d_kernel.cu``, ``bias_act_kernel.cu`` and their
headers) and form ONE extension, so it compiles once (a few minutes). The first call
of an op with ``impl="cuda"`` (or ``impl=None`` on a CUDA tensor) calls
:func:`get_ops`, which:

1. names a build directory after a hash of the source files, the torch and CUDA
   versions and the target architectures, so a change to any of them rebuilds and
   an unchanged set reuses the earlier build (also across processes);
2. copies the sources into that directory atomically (a temporary directory renamed
   into place), so concurrent processes never see half-copied files;
3. compiles with ``torch.utils.cpp_extension.load`` (ninja + nvcc) and imports it;
4. caches the loaded module for the rest of the process.

If the build fails, :func:`get_ops` warns once and returns None, and the ops fall
back to their PyTorch implementations (which also run on CUDA tensors). Setting
``STYLEGAN_MORPH_CUDA_STRICT=1`` turns that fallback into an error, so a GPU test run
cannot pass by accident on the fallback.

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

import glob
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import uuid
import warnings
from pathlib import Path
from types import ModuleType
from typing import Sequence

import torch

__all__ = [
    "EXTENSION_NAME", "SOURCES", "HEADERS", "VERBOSITY_LEVELS", "set_verbosity", "get_verbosity",
    "is_strict", "build_root", "cuda_arch_list", "find_cuda_home", "build_dir_for", "get_plugin",
    "get_ops", "loaded_plugins",
]

EXTENSION_NAME = "stylegan_morph_ops"
SOURCES = ("stylegan_ops.cpp", "upfirdn2d_kernel.cu", "bias_act_kernel.cu")
HEADERS = ("kernel_common.h", "upfirdn2d_kernel.h", "bias_act_kernel.h")
VERBOSITY_LEVELS = ("none", "brief", "full")
_SOURCE_DIR = Path(__file__).resolve().parent

_verbosity = os.environ.get("STYLEGAN_MORPH_CUDA_VERBOSE", "brief")
_plugins: dict[str, ModuleType] = {}   # build dir -> loaded module
_failures: dict[str, str] = {}         # extension name -> error message of its failed build
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


def _use_cuda_home() -> None:
    """Point torch's extension builder at :func:`find_cuda_home` when the user did not set CUDA_HOME."""
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    home = find_cuda_home()
    if home is None:
        return
    os.environ["CUDA_HOME"] = home
    # cpp_extension reads CUDA_HOME once, when it is first imported.
    mod = sys.modules.get("torch.utils.cpp_extension")
    if mod is not None:
        mod.CUDA_HOME = home


def build_dir_for(name: str, sources: Sequence[Path], arch_list: str,
                  extra_cuda_cflags: Sequence[str] = ()) -> Path:
    """The build directory for these exact sources and build settings: ``<root>/<name>-<hash>``."""
    h = hashlib.sha256()
    for path in sorted(sources, key=lambda p: p.name):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    settings = [torch.__version__, str(torch.version.cuda), arch_list, str(find_cuda_home()),
                sys.version.split()[0], *extra_cuda_cflags]
    h.update("\0".join(settings).encode())
    return build_root() / f"{name}-{h.hexdigest()[:16]}"


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
        RuntimeError: no toolkit, no architectures, or a compiler/import error.
    """
    files = [Path(source_dir) / s for s in (*sources, *headers)]
    arch_list = cuda_arch_list()
    build_dir = build_dir_for(name, files, arch_list, extra_cuda_cflags)
    key = str(build_dir)
    with _lock:
        if key in _plugins:
            return _plugins[key]
        verbosity = get_verbosity()
        _use_cuda_home()
        os.environ["TORCH_CUDA_ARCH_LIST"] = arch_list  # what cpp_extension compiles for
        if verbosity != "none":
            print(f"Setting up CUDA extension {name} for arch {arch_list} in {build_dir} "
                  f"(the first build takes a few minutes)...", file=sys.stderr, flush=True)
        _copy_sources_atomically(files, build_dir)
        from torch.utils import cpp_extension  # heavy; only once a build is really wanted

        if cpp_extension.CUDA_HOME is None:
            raise RuntimeError("no CUDA toolkit found: set CUDA_HOME to a folder containing bin/nvcc")
        module = cpp_extension.load(
            name=name,
            sources=[str(build_dir / s) for s in sources],
            extra_include_paths=[str(build_dir)],
            extra_cuda_cflags=list(extra_cuda_cflags),
            build_directory=str(build_dir),
            verbose=verbosity == "full",
        )
        _plugins[key] = module
        if verbosity != "none":
            print(f"CUDA extension {name} ready.", file=sys.stderr, flush=True)
        return module


def get_ops() -> ModuleType | None:
    """The compiled ops, or None (after warning once) when they cannot be built.

    Raises:
        RuntimeError: the build failed and ``STYLEGAN_MORPH_CUDA_STRICT=1``.
    """
    global _warned
    message = _failures.get(EXTENSION_NAME)
    if message is not None:  # failed before: never retry a multi-minute build on every call
        if is_strict():
            raise RuntimeError(f"building the CUDA ops failed (STYLEGAN_MORPH_CUDA_STRICT is set): {message}")
        return None
    try:
        return get_plugin()
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


def loaded_plugins() -> dict[str, ModuleType]:
    """The extensions loaded so far in this process, by build directory (empty until a CUDA op runs)."""
    return dict(_plugins)
