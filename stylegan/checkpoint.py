"""Our own weights format and the one entry point that reads every supported format.

Our format is a plain ``torch.save`` of ``{"format", "config", "state_dict", "meta"}``
holding only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``: no code from the file ever runs.
Readers for foreign layouts (rosinality, e4e, NVIDIA pickles) live in
:mod:`stylegan.convert`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .config import GeneratorConfig
from .errors import CheckpointError, UserError
from .fileio import atomic_output
from .networks import Generator

__all__ = ["save_generator", "load_generator", "read_checkpoint", "check_weights_file", "atomic_torch_save", "FORMAT_TAG",
           "check_state_dict"]

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
    from .convert.safe_unpickle import sniff_file  # deferred: convert imports this module

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


def read_checkpoint(path: str | os.PathLike) -> Any:
    """Load a ``torch.save`` file safely (``weights_only=True``) with one-line errors.

    Missing, empty, HTML, text, truncated and refused files each get a CheckpointError
    (or UserError) that names the file and says which of these it is.
    """
    from .convert.safe_unpickle import load_torch_file

    if check_weights_file(path) == "pickle":
        raise CheckpointError(f"{path}: a plain pickle (an NVIDIA .pkl?), not a torch.save checkpoint")
    return load_torch_file(path)


def check_state_dict(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str) -> None:
    """Raise a CheckpointError naming missing/unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
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


def generator_from_state(config: GeneratorConfig, sd: dict[str, torch.Tensor], source: str) -> Generator:
    """Build a Generator for ``config`` and load ``sd`` exactly (fp32)."""
    G = Generator(config)
    check_state_dict(G, sd, source)
    G.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    return G.eval().requires_grad_(False)


def load_generator(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Generator:
    """Load a generator from any supported file, or a registry name.

    Formats: our own (``save_generator``), rosinality ``.pt`` (``g_ema`` + ``latent_avg``,
    also training checkpoints), e4e ``.pt`` (its ``decoder.*``), and NVIDIA
    stylegan2-ada ``.pkl`` (read without running any pickled code).

    Args:
        path: a file, a registry name, or None for the embedded default model.
        device: where to put the model.

    Returns:
        The generator in eval mode with gradients disabled.
    """
    if path is None or not Path(path).exists():
        from pretrained import resolve_weights  # deferred: pretrained depends on nothing of ours

        path = resolve_weights("default" if path is None else str(path))
    path = Path(path)
    from .convert import read_any_generator

    G = read_any_generator(path)
    return G.to(device)
