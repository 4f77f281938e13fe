"""Our own weights format and the one entry point that reads every supported format.

Our format is a plain ``torch.save`` of ``{"format", "config", "state_dict", "meta"}``
holding only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``: no code from the file ever runs.
Readers for foreign layouts (rosinality, e4e, NVIDIA pickles) live in
:mod:`stylegan.convert`, which builds on this module; :mod:`stylegan.weights` sits above
both and is the way in (``load_generator``, ``load_checkpoint``, ``generator_from``).
This module never imports either, so there is no import cycle between them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch

from .config import GeneratorConfig
from .errors import CheckpointError, UserError
from .fileio import atomic_output
from .networks import Generator

__all__ = ["save_generator", "read_checkpoint", "load_checkpoint", "Checkpoint", "check_weights_file",
           "atomic_torch_save", "FORMAT_TAG", "check_state_dict", "build_checked"]

FORMAT_TAG = "stylegan-morph/generator/v1"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temp file next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def save_generator(path: str | os.PathLike, G: Generator, meta: dict[str, Any] | None = None,
                   dtype: torch.dtype | None = None) -> None:
    """Write ``G`` in our format. ``dtype`` (e.g. torch.float16) shrinks the file; loading casts back to fp32."""
    sd = {k: (v.detach().cpu().to(dtype) if dtype is not None and v.is_floating_point() else v.detach().cpu())
          for k, v in G.state_dict().items()}
    atomic_torch_save({"format": FORMAT_TAG, "config": G.config.to_dict(), "state_dict": sd,
                       "meta": dict(meta or {})}, path)


def check_weights_file(path: str | os.PathLike) -> str:
    """Refuse, with one line, what is plainly not a weights file; return its kind.

    Returns:
        ``"torch"`` (a ``torch.save`` file) or ``"pickle"`` (a plain pickle, e.g. NVIDIA's).

    Raises:
        UserError: no such file, or a folder.
        CheckpointError: an empty file, an HTML page (a failed download), or anything else.
    """
    from .convert.safe_unpickle import sniff_file  # deferred: light imports (convert imports this module)

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a weights file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    kind = sniff_file(path)
    if kind == "empty":
        raise CheckpointError(f"{path}: the file is empty (an interrupted download?)")
    if kind == "html":
        raise CheckpointError(f"{path}: an HTML page, not weights (a download that got an error or "
                              f"'quota exceeded' page instead of the file?)")
    if kind == "unknown":
        raise CheckpointError(f"{path}: not a PyTorch checkpoint or pickle (unrecognised first bytes)")
    return kind


@dataclass(frozen=True)
class Checkpoint:
    """A weights file read once: what it holds, where it came from (for messages) and how it was read.

    Pass it to :func:`stylegan.weights.generator_from` and :func:`encoders.loader.encoder_from`
    so that a file holding both models (e4e, our model file) is deserialised only once.
    """

    data: Any
    source: str
    kind: str  # "torch" (a torch.save file) or "pickle" (a network pickle, read without running code)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Sniff ``path`` and deserialise it exactly once, safely, whatever the format.

    ``torch.save`` files load with ``weights_only=True``; plain pickles (NVIDIA ``.pkl``)
    with the restricted unpickler. Nothing from the file runs.

    Raises:
        UserError: no such file, or a folder.
        CheckpointError: an empty, HTML, truncated, unrecognised or refused file (one line).
    """
    from .convert.safe_unpickle import load_network_pickle, load_torch_file  # deferred: light imports

    kind = check_weights_file(path)
    data = load_network_pickle(path) if kind == "pickle" else load_torch_file(path)
    return Checkpoint(data=data, source=str(path), kind=kind)


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Load a ``torch.save`` file safely (``weights_only=True``) with one-line errors.

    Missing, empty, HTML, text, truncated and refused files each get a CheckpointError
    (or UserError) that names the file and says which of these it is.
    """
    from .convert.safe_unpickle import load_torch_file

    if check_weights_file(path) == "pickle":
        raise CheckpointError(f"{path}: a plain pickle (an NVIDIA .pkl?), not a torch.save checkpoint")
    return load_torch_file(path)


def _tensor_problem(value: Any, like: torch.Tensor) -> str | None:
    """Why ``value`` cannot be loaded into a parameter shaped and typed like ``like``, or None."""
    if not isinstance(value, torch.Tensor):
        return f"a {type(value).__name__}, not a tensor"
    if value.layout != torch.strided or value.is_meta or value.is_quantized or value.is_complex():
        return f"an unsupported {value.layout} {value.dtype} tensor"
    if value.is_floating_point() != like.is_floating_point():
        return f"{value.dtype}, expected {'floating point' if like.is_floating_point() else like.dtype}"
    return None


def check_state_dict(model: torch.nn.Module, sd: Mapping[str, Any], source: str) -> None:
    """Raise a CheckpointError naming missing/unexpected keys, shape mismatches and bad values.

    ``model`` may live on the ``meta`` device (see :func:`build_checked`): only its
    state dict's names, shapes and dtypes are read. Besides names and shapes, every
    file tensor must be a plain dense tensor of the right kind (float for float) and,
    if floating, finite: NaN weights would only show up later as black frames.
    """
    if not isinstance(sd, Mapping):
        raise CheckpointError(f"{source}: the weights are a {type(sd).__name__}, not a dict of tensors")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(map(str, set(sd) - set(expected)))
    bad = [f"{k} is {problem}" for k, v in expected.items()
           if k in sd and (problem := _tensor_problem(sd[k], v))]
    if bad:
        raise CheckpointError(f"{source}: weights do not match the model: {'; '.join(bad[:3])}")
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys ({', '.join(unexpected[:5])}"
                         f"{', ...' if len(unexpected) > 5 else ''})")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches ({'; '.join(shapes[:3])})")
        raise CheckpointError(f"{source}: weights do not match the model: {'; '.join(parts)}")
    for k, v in expected.items():
        if v.is_floating_point() and not bool(torch.isfinite(sd[k]).all()):
            raise CheckpointError(f"{source}: the weights hold NaN or infinite values ({k}); the file is damaged")


M = TypeVar("M", bound=torch.nn.Module)


def build_checked(build: Callable[[], M], sd: Mapping[str, Any], source: str) -> M:
    """Check ``sd`` against the model ``build()`` makes, then build it for real and load ``sd`` (fp32).

    The check runs on a skeleton built on the ``meta`` device, which holds shapes but no
    memory, so a file whose tensors do not fit its config is refused before a single
    weight is allocated (configs are bounded too: :data:`stylegan.config.LIMITS`).
    """
    try:
        with torch.device("meta"):
            skeleton = build()
    except (ValueError, RuntimeError) as err:  # a config the model code cannot build, however it got past the checks
        raise CheckpointError(f"{source}: cannot build the model this file describes ({err})") from None
    check_state_dict(skeleton, sd, source)
    del skeleton
    model = build()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    return model


def generator_from_state(config: GeneratorConfig, sd: dict[str, torch.Tensor], source: str) -> Generator:
    """Build a Generator for ``config`` and load ``sd`` exactly (fp32), checking ``sd`` before allocating."""
    return build_checked(lambda: Generator(config), sd, source).eval().requires_grad_(False)
