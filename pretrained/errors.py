"""Exceptions that carry a message meant for the user; the bottom of the package layers.

They live here, in the lowest package (``pretrained`` → ``stylegan`` → ``encoders`` →
``tools``), so that every layer can raise them without importing a layer above it.
:mod:`stylegan.errors` re-exports the same classes: ``from stylegan.errors import UserError``
and ``from stylegan import UserError`` name this very class.

Tools catch :class:`UserError` and print ``str(err)`` on one line, then exit
with a non-zero code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["UserError", "CheckpointError"]


class UserError(Exception):
    """Bad input from the user: a missing file, a wrong checkpoint, no face, ..."""


class CheckpointError(UserError):
    """A weights file that cannot be read, or whose contents do not match the model."""
