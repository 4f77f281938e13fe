"""The way in for generator weights: resolve a name or path, read the file once, build from it.

Layers: :mod:`stylegan.checkpoint` (our format, safe reading) ← :mod:`stylegan.convert`
(foreign layouts and the format dispatch) ← this module. Names are resolved by
:func:`pretrained.resolve_weights` only, here in :func:`resolve_weights_path`.

A file that holds more than a generator (an e4e checkpoint, our model file) is read
once with :func:`load_checkpoint`; :func:`generator_from` and
:func:`encoders.loader.encoder_from` then build each model from the same
:class:`Checkpoint`, and :func:`encoders.loader.load_models` does both in one call.

Example:
    >>> ckpt = load_checkpoint(resolve_weights_path("e4e-ffhq"))   # doctest: +SKIP
    >>> G = generator_from(ckpt)                                   # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .checkpoint import Checkpoint, check_weights_file, load_checkpoint, read_checkpoint
from .convert import generator_from_checkpoint
from .networks import Generator

__all__ = ["Checkpoint", "load_checkpoint", "read_checkpoint", "check_weights_file", "resolve_weights_path",
           "generator_from", "load_generator"]


def resolve_weights_path(name_or_path: str | os.PathLike | None) -> Path:
    """The local file for a path, a registry name (downloaded or cached), or None (the default model).

    Raises:
        UserError: neither an existing file nor a known name, or a folder.
        DownloadError: a known name that cannot be had (e.g. offline).
    """
    from pretrained import resolve_weights  # deferred: looked up at call time, so tests can stub it

    return Path(resolve_weights("default" if name_or_path is None else os.fspath(name_or_path)))


def generator_from(ckpt: Checkpoint) -> Generator:
    """The generator held by a loaded checkpoint, in any supported layout (CPU, fp32, eval, no grad).

    Raises:
        CheckpointError: the checkpoint holds no generator, or one whose tensors do not fit.
    """
    return generator_from_checkpoint(ckpt.data, ckpt.source)


def load_generator(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Generator:
    """Load a generator from any supported file, or a registry name.

    Formats: our own (``save_generator``), our model file, rosinality ``.pt`` (``g_ema`` +
    ``latent_avg``, also training checkpoints), e4e ``.pt`` (its ``decoder.*``), and NVIDIA
    stylegan2-ada ``.pkl`` (read without running any pickled code).

    Args:
        path: a file, a registry name, or None for the embedded default model.
        device: where to put the model: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.

    Returns:
        The generator in eval mode with gradients disabled.

    Raises:
        UserError: an unknown device, no such file or registry name.
        CheckpointError: a file that is not a generator, or whose tensors do not fit its config.
    """
    from .render import resolve_device  # deferred: rendering pulls in video writing

    device = resolve_device(device)  # an unknown device fails before the file is read
    return generator_from(load_checkpoint(resolve_weights_path(path))).to(device)
