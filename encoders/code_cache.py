"""A content-addressed cache of W+ codes, so a photo is aligned, encoded and refined once per model.

Encoding one photo on a CPU costs seconds (alignment, the encoder, and the
default 100 refinement steps); tools that look at many photos again and again
(``tools/latent_map.py``, the web explorer) keep every code here, keyed by what
determines it:

* the photo's **bytes** (sha256 of the file content, so a renamed or moved photo
  still hits and an edited one misses),
* the **model identity** (:func:`model_id`: the registry's sha256 of the weights,
  or the sha256 of the weights file itself),
* the **refinement steps** (0, 100, ... change the code),
* the **face index** (which face of a group photo).

Each code is one float32 ``.npy`` file named after its key, written atomically, so
two processes sharing the folder at worst both compute a code; they never read a
half-written one. A photo in which no face was found gets an empty ``<key>.noface``
marker, so the detector does not run on it again. Nothing is ever deleted; the
folder can be removed at any time.

Example:
    >>> import tempfile, torch
    >>> cache = CodeCache(tempfile.mkdtemp())
    >>> key = photo_key(b"jpeg bytes", model_id="default@0123abcd", refine=100)
    >>> cache.get(key) is None
    True
    >>> _ = cache.put(key, torch.zeros(8, 16))
    >>> cache.get(key).shape
    torch.Size([8, 16])
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import torch

from stylegan.errors import UserError
from stylegan.fileio import atomic_output

__all__ = ["CodeCache", "CachedEncoder", "photo_key", "model_id", "file_sha256", "default_cache_dir"]

_KEY_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
# A W+ code is at most 18 x 512 floats (36 KB); anything much larger in the cache is not ours.
_MAX_CODE_BYTES = 4 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """Full lowercase hex sha256 of a file, read in 1 MB chunks (bounded memory for any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """``$STYLEGAN_MORPH_CACHE/codes`` if set, else ``~/.cache/stylegan-morph/codes`` (beside the weights cache)."""
    from pretrained import cache_dir  # the weights cache already honours the environment variable

    return Path(cache_dir()) / "codes"


def model_id(weights: str | os.PathLike | None) -> str:
    """A short identity for a model, stable across machines: ``name@sha256[:16]``.

    A registry name (or None, the default model) uses the sha256 its registry entry
    records, so nothing is hashed; a file is identified by the sha256 of its bytes,
    which costs about a second per GB once per run.

    Raises:
        UserError: a path that is neither a file nor a registered name.
    """
    from pretrained import get_spec, list_pretrained

    text = "default" if weights is None else os.fspath(weights)
    path = Path(text).expanduser()
    if path.is_file():
        return f"file@{file_sha256(path)[:16]}"
    if text in {s.name for s in list_pretrained()}:
        spec = get_spec(text)
        if spec.sha256:
            return f"{spec.name}@{spec.sha256[:16]}"
        return f"{spec.name}@unverified"
    raise UserError(f"{text!r} is not a file and not a known model name")


def photo_key(photo: bytes | str | os.PathLike, model_id: str, refine: int, face_index: int | None = None) -> str:
    """The cache key of one photo's code: sha256 over the photo's bytes and what else shapes the code.

    Args:
        photo: the photo's bytes, or a path to read them from.
        model_id: see :func:`model_id`.
        refine: refinement steps after encoding (a number: resolve ``"auto"`` first).
        face_index: which face (None and 0 both mean the largest).

    Returns:
        64 lowercase hex digits.
    """
    if not isinstance(refine, int) or isinstance(refine, bool) or refine < 0:
        raise ValueError(f"refine must be a number of steps >= 0, got {refine!r}")
    content = hashlib.sha256(photo).hexdigest() if isinstance(photo, (bytes, bytearray, memoryview)) \
        else file_sha256(photo)
    # Separators that cannot appear in the parts keep ("ab", "c") and ("a", "bc") apart.
    recipe = f"v1\n{content}\n{model_id}\nrefine={refine}\nface={face_index or 0}"
    return hashlib.sha256(recipe.encode()).hexdigest()


class CodeCache:
    """A folder of W+ codes keyed by :func:`photo_key`.

    Args:
        folder: where the codes live; created on the first :meth:`put`.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"CodeCache({str(self.folder)!r})"

    def path(self, key: str) -> Path:
        """The file that holds ``key``'s code (two-level fan-out keeps folders small)."""
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise ValueError(f"key must be 64 lowercase hex digits (from photo_key), got {key!r}")
        return self.folder / key[:2] / f"{key}.npy"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> torch.Tensor | None:
        """The cached code (float32 [num_ws, w_dim] on the CPU), or None if absent or unreadable.

        A damaged entry (truncated, wrong type, NaN) counts as a miss, so it is simply recomputed.
        """
        path = self.path(key)
        try:
            if path.stat().st_size > _MAX_CODE_BYTES:
                return None
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if (not isinstance(arr, np.ndarray) or arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating)
                or not np.isfinite(arr).all()):
            return None
        return torch.from_numpy(np.array(arr, dtype=np.float32))

    def mark_no_face(self, key: str) -> None:
        """Remember that the photo of ``key`` has no face, so that a later run skips the detector."""
        path = self.path(key).with_suffix(".noface")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError as err:
            raise UserError(f"{self.folder}: cannot write the code cache ({err.strerror or err})") from None

    def has_no_face(self, key: str) -> bool:
        """True if :meth:`mark_no_face` was called for ``key``."""
        return self.path(key).with_suffix(".noface").is_file()

    def put(self, key: str, ws: torch.Tensor) -> Path:
        """Store a code [num_ws, w_dim] (a batch of one is accepted) atomically; returns its file.

        Raises:
            ValueError: a code of the wrong rank or with non-finite values.
            UserError: the cache folder cannot be created or written.
        """
        path = self.path(key)
        arr = ws.detach().float().cpu().numpy()
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 2 or not np.isfinite(arr).all():
            raise ValueError(f"ws must be a finite [num_ws, w_dim] code, got shape {list(arr.shape)}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"{self.folder}: cannot create the code cache ({err.strerror or err})") from None
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, arr, allow_pickle=False)
        return path


class CachedEncoder:
    """Photos -> W+ codes through a :class:`CodeCache`; the encoder is loaded on the first miss only.

    Alignment, encoding and refinement are those of :mod:`encoders.morph`
    (``prepare_inputs`` then ``encode_inputs``), so a cached code equals the code
    ``tools/invert.py`` writes for the same photo, model and steps.

    Args:
        G: the generator (refinement renders through it; ``"auto"`` steps depend on it).
        weights: the model's registry name or file (None: the default model), for the
            encoder and for :func:`model_id`.
        cache: where codes are kept; None computes every code.
        refine: steps after encoding, or ``"auto"``.
        face_index: which face of each photo (0 = largest).
        device: where the encoder runs.

    Attributes:
        encoded: how many photos were actually encoded (cache misses), e.g. for a summary line.
    """

    def __init__(self, G: torch.nn.Module, weights: str | os.PathLike | None, cache: CodeCache | None,
                 refine: int | str = "auto", face_index: int | None = None,
                 device: str | torch.device = "cpu") -> None:
        from .refine import auto_refine_steps

        self.G, self.weights, self.cache, self.face_index = G, weights, cache, face_index
        self.device = torch.device(device)
        self.steps = auto_refine_steps(G) if refine == "auto" else int(refine)
        self.model_id = model_id(weights) if cache is not None else ""
        self.encoded = 0
        self._E: torch.nn.Module | None = None

    def key(self, photo: str | os.PathLike) -> str:
        """The cache key of ``photo`` (or ``photo.jpg:N``, face N) under this model and these steps."""
        from .morph import split_input

        path, own = split_input(photo)
        return photo_key(path, self.model_id, self.steps, self.face_index if own is None else own)

    def __call__(self, photo: str | os.PathLike) -> torch.Tensor:
        """The code of one photo (``photo.jpg:N`` picks face N): float32 [num_ws, w_dim] on the CPU.

        Raises:
            UserError: unreadable photo, no face (``NoFaceError``), or a model without an encoder.
        """
        from .morph import encode_inputs, load_matching_encoder, prepare_inputs, resolve_model

        from .align import NoFaceError

        key = self.key(photo) if self.cache is not None else None
        if key is not None:
            hit = self.cache.get(key)
            if hit is not None and tuple(hit.shape) == (self.G.num_ws, self.G.w_dim):
                return hit
            if self.cache.has_no_face(key):
                raise NoFaceError(f"{photo}: no face found (remembered from an earlier run)")
        try:
            keyframes = prepare_inputs([photo], self.face_index)
        except NoFaceError:
            if key is not None:
                self.cache.mark_no_face(key)
            raise
        if self._E is None:
            self._E = load_matching_encoder(resolve_model(self.weights), self.G, self.device)
        ws = encode_inputs(keyframes, self.G, self._E, refine=self.steps)[0]
        self.encoded += 1
        if key is not None:
            self.cache.put(key, ws)
        return ws
