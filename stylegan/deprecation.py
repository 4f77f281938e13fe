"""Old names kept for one release after a move: they warn once per call site and forward.

Example:
    >>> import warnings
    >>> def new(x): return x + 1
    >>> old = moved(new, "pkg.old", "pkg.new")
    >>> with warnings.catch_warnings(record=True) as seen:
    ...     warnings.simplefilter("always")
    ...     old(1), seen[0].category.__name__
    (2, 'DeprecationWarning')
"""

from __future__ import annotations

import functools
import warnings
from typing import Callable, TypeVar

__all__ = ["moved"]

F = TypeVar("F", bound=Callable)


def moved(new: F, old_name: str, new_name: str) -> F:
    """A function named ``old_name`` that warns (DeprecationWarning) and then calls ``new``.

    Args:
        new: the function's new home.
        old_name, new_name: dotted names for the message, e.g. ``"stylegan.render.to_uint8"``.
    """
    message = f"{old_name} moved to {new_name}; the old name goes away in the next release"

    @functools.wraps(new)
    def alias(*args, **kwargs):
        warnings.warn(message, DeprecationWarning, stacklevel=2)  # points at the caller, not at us
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name.rsplit(".", 1)[-1]
    alias.__doc__ = f"Deprecated: {message}."
    return alias  # type: ignore[return-value]
