"""Loading files that were written with pickle, without running anything they name.

Two loaders:

- :func:`load_torch_file`: ``torch.load(weights_only=True)`` for ``torch.save`` files
  (zip or legacy), also allowing ``argparse.Namespace`` (the ``args`` of rosinality
  training checkpoints), with one-line errors that name a refused Python object.
- :func:`load_network_pickle`: a restricted :class:`pickle.Unpickler` for NVIDIA's
  stylegan2-ada ``.pkl`` files. Their modules pickle as
  ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, where ``meta`` carries
  the network's Python source (``module_src``), and the normal unpickler *executes*
  that source. Here the call is mapped to a stub that keeps only the object's state;
  ``module_src`` is never compiled. Tensors are rebuilt by our own functions: their
  storages arrive as ``torch.storage._load_from_bytes(bytes)`` (a nested legacy
  ``torch.save``), which torch itself reads with ``weights_only=False``; we read those
  bytes with ``weights_only=True``. Every other global is refused.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..errors import CheckpointError, UserError

__all__ = ["PersistentObject", "RestrictedUnpickler", "load_network_pickle", "load_torch_file", "sniff_file"]


@dataclass
class PersistentObject:
    """What is left of a pickled NVIDIA ``persistent_class`` instance: its class name and state.

    Attributes:
        class_name: e.g. ``"training.networks.Generator"`` (``meta["module_name"]`` is not kept).
        state: the object's ``__dict__`` (for modules: ``_parameters``, ``_buffers``,
            ``_modules``, ``_init_kwargs`` and plain attributes).
    """

    class_name: str
    state: dict[str, Any] = field(repr=False)


def _reconstruct_persistent_obj(meta: Any) -> PersistentObject:
    """Stand-in for ``torch_utils.persistence._reconstruct_persistent_obj``: keep the state only.

    The original compiles ``meta["module_src"]`` into a module and instantiates a class from
    it; here that source is never looked at.
    """
    if not isinstance(meta, dict) or not isinstance(meta.get("state"), dict):
        raise CheckpointError("persistent object without a state dict in the pickle")
    return PersistentObject(str(meta.get("class_name", "?")), meta["state"])


def _load_from_bytes(data: Any) -> torch.storage.TypedStorage | torch.UntypedStorage:
    """Safe stand-in for ``torch.storage._load_from_bytes``: a storage from a nested legacy save."""
    if not isinstance(data, (bytes, bytearray)):
        raise CheckpointError(f"tensor storage given as {type(data).__name__}, expected bytes")
    try:
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means an unreadable or hostile tensor
        raise CheckpointError(f"a tensor storage could not be read safely ({_reason(e)})") from None
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise CheckpointError(f"tensor storage bytes hold a {type(storage).__name__}, not a storage")
    return storage


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                    backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    """Safe stand-in for ``torch._utils._rebuild_tensor_v2``: hooks and metadata are ignored."""
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise CheckpointError(f"tensor built from a {type(storage).__name__}, not a storage")
    if not (isinstance(storage_offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
            and all(isinstance(v, int) for v in size + stride)):
        raise CheckpointError("tensor with a malformed size/stride in the pickle")
    if isinstance(storage, torch.UntypedStorage):
        raise CheckpointError("tensor built from an untyped storage without a dtype")
    try:
        t = torch.empty((0,), dtype=storage.dtype)
        # set_ checks that size/stride/offset stay inside the storage.
        return t.set_(storage._untyped_storage, storage_offset, size, stride)
    except RuntimeError as e:
        raise CheckpointError(f"tensor does not fit its storage ({_first_line(e)})") from None


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                       state: Any = None) -> torch.Tensor:
    """Safe stand-in for ``torch._utils._rebuild_parameter[_with_state]``: the plain tensor."""
    if not isinstance(data, torch.Tensor):
        raise CheckpointError(f"parameter built from a {type(data).__name__}, not a tensor")
    return data


def _numpy_dtype(obj: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` restricted to plain numeric types (NVIDIA pickles hold numpy float scalars)."""
    if not isinstance(obj, str) or not re.fullmatch(r"[<>=|]?[biufc]\d{1,2}", obj):
        raise CheckpointError(f"numpy dtype {obj!r} refused: only numeric dtypes are read")
    return np.dtype(obj, bool(align), bool(copy))


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """``numpy.core.multiarray.scalar`` for numeric dtypes: the value from its raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc" or not isinstance(data, bytes) \
            or len(data) != dtype.itemsize:
        raise CheckpointError("numpy scalar refused: only numeric scalars are read")
    return np.frombuffer(data, dtype=dtype)[0]


def _codecs_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    """``_codecs.encode`` for latin-1 only: how protocol-2 pickles store ``bytes``."""
    if not isinstance(text, str) or encoding != "latin1":
        raise CheckpointError(f"_codecs.encode with {encoding!r} refused: only latin1 byte strings are read")
    return text.encode("latin1")


#: (module, name) -> what the file gets instead. Anything not listed is refused.
_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): dict,  # a dict with attribute access; plain data
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,  # protocol <= 3 pickles sets by calling set(list)
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,  # numpy 1.x name
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,  # numpy 2.x name
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of NVIDIA network pickles (see module docs)."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if module.startswith("dnnlib.tflib"):
            raise CheckpointError(f"this is a TensorFlow-era StyleGAN pickle ({module}.{name}); convert it to a "
                                  f"PyTorch pickle with NVIDIA's stylegan2-ada-pytorch legacy.py first")
        raise CheckpointError(f"refused to unpickle {module}.{name}: only NVIDIA network pickles (module "
                              f"states and tensors) are read, and nothing in the file is run")

    def persistent_load(self, pid: Any) -> Any:
        raise CheckpointError("refused a persistent id in a plain pickle (not an NVIDIA network pickle)")


def _first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's text, cut at a sentence end (never mid-sentence) to fit ``limit``."""
    text = str(e).strip()
    line = text.splitlines()[0].strip() if text else type(e).__name__
    if len(line) <= limit:
        return line
    end = line.rfind(". ", 0, limit)
    if end > 0:
        return line[:end + 1]
    cut = line.rfind(" ", 0, limit - 3)
    return line[:cut if cut > 0 else limit - 3] + "..."


def _reason(e: BaseException) -> str:
    """One line about a failed weights-only load: the refused global if torch names one."""
    m = re.search(r"GLOBAL (\S+)", str(e))
    return f"needs the Python object {m.group(1)}, which safe loading does not allow" if m else _first_line(e)


def load_network_pickle(path: str | os.PathLike) -> Any:
    """Unpickle an NVIDIA ``.pkl`` with :class:`RestrictedUnpickler`.

    Args:
        path: the file.

    Returns:
        Its top-level object, usually ``{"G", "D", "G_ema", "training_set_kwargs",
        "augment_pipe"}`` with each network a :class:`PersistentObject` tree.

    Raises:
        CheckpointError: a refused global (named), or a truncated or corrupt pickle.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f).load()
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    except Exception as e:  # noqa: BLE001 - EOFError, UnpicklingError, ValueError... from a damaged file
        what = "truncated" if isinstance(e, EOFError) or "truncated" in str(e) else "corrupt"
        raise CheckpointError(f"{path}: not a readable pickle, the file looks {what} ({_first_line(e)})") from None


_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickle of torch's MAGIC_NUMBER


def sniff_file(path: Path) -> str:
    """What a file looks like from its first bytes.

    Returns:
        ``"torch"`` (a ``torch.save`` zip or legacy file), ``"pickle"`` (a plain pickle),
        ``"empty"``, ``"html"`` (e.g. a Google Drive error page) or ``"unknown"``.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if not head:
        return "empty"
    if head.startswith(b"PK\x03\x04") or head.startswith(_LEGACY_TORCH_MAGIC):
        return "torch"
    if head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO opcode of pickle protocols 2-5
        return "pickle"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "html"
    return "unknown"


def load_torch_file(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` that also accepts ``argparse.Namespace`` objects.

    Namespaces hold the training options of rosinality checkpoints; restoring one only
    sets attributes, so it runs no code.

    Raises:
        CheckpointError: one line, naming the Python object the file needs when that is why it
            was refused, or saying the file is truncated or not a checkpoint.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused to load ({_reason(e)})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        # torch reports a cut-off zip as OSError(EINVAL) or RuntimeError, depending on where it ends.
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint; truncated download? "
                              f"({_first_line(e)})") from None
    except Exception as e:  # noqa: BLE001 - anything else torch raises on a damaged file
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_first_line(e)})") from None
