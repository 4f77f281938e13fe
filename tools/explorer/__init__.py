"""The explorer: a local web page over the library to add faces, morph, edit, mix, map and export.

``tools/explore.py`` (``sgm-explore``) starts it. The package keeps the app apart
from the thin command-line tool: :mod:`.engine` does the work through the library
(no HTTP), :mod:`.app` is the Flask app with its safety checks, :mod:`.sessions`
holds each browser's faces and files, and ``static/`` the page itself.
"""

from __future__ import annotations

from .app import bind, create_app, set_address
from .engine import ALPHA_STEPS, Explorer, ExplorerConfig, View
from .sessions import SessionLimits

__all__ = ["create_app", "bind", "set_address", "Explorer", "ExplorerConfig", "View", "SessionLimits", "ALPHA_STEPS"]
