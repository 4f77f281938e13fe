"""Exceptions that carry a message meant for the user.

Tools catch :class:`UserError` and print ``str(err)`` on one line, then exit
with a non-zero code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["UserError", "CheckpointError"]


class UserError(Exception):
    """Bad input from the user: a missing file, a wrong checkpoint, no face, ..."""


class CheckpointError(UserError):
    """A weights file that cannot be read, or whose contents do not match the model."""
