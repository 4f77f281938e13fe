"""Deprecated: the benchmark harness moved to :mod:`stylegan.benchmark` (issue 8).

It times the whole generator, so it does not belong in the ops layer. This alias
re-exports the public names for one release and will then be removed.
"""

from __future__ import annotations

import warnings

from ..benchmark import *  # noqa: F401,F403  (the public names, listed in its __all__)
from ..benchmark import __all__  # noqa: F401

warnings.warn("stylegan.ops.benchmark moved to stylegan.benchmark; the old name goes away in the next release",
              DeprecationWarning, stacklevel=2)
