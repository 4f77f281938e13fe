"""Pretrained weights: a registry of known files and verified, cached downloads.

Typical use::

    from pretrained import resolve_weights
    path = resolve_weights("e4e-ffhq")        # cached download, sha256-verified
    path = resolve_weights("my_model.pt")     # an existing file is used as is

See :mod:`pretrained.registry` for the entries and :mod:`pretrained.download`
for the cache, retries, mirrors and offline mode.
"""

from .download import (
    DownloadError,
    UnverifiedWeightsWarning,
    cache_dir,
    cache_status,
    cached_path,
    download,
    resolve_weights,
)
from .registry import WeightSpec, get_spec, list_pretrained, register, unregister

__all__ = [
    "WeightSpec",
    "list_pretrained",
    "get_spec",
    "register",
    "unregister",
    "download",
    "resolve_weights",
    "cache_dir",
    "cached_path",
    "cache_status",
    "DownloadError",
    "UnverifiedWeightsWarning",
]
