"""Exceptions that carry a message meant for the user (re-exported from :mod:`pretrained.errors`).

They are defined in the lowest package so that ``pretrained`` needs nothing from
``stylegan``; this module keeps ``from stylegan.errors import UserError`` working
with the very same class objects.
"""

from __future__ import annotations

from pretrained.errors import CheckpointError, UserError

__all__ = ["UserError", "CheckpointError"]
