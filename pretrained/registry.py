"""A registry of known pretrained weights, built from data.

Each file we know how to fetch is one frozen :class:`WeightSpec`: where it
comes from (URL, Google Drive id, mirrors), what it must look like on disk
(size in bytes, full sha256) and under which licence it was published. Code
that needs weights asks for them by name::

    >>> from pretrained import get_spec, list_pretrained
    >>> get_spec("stylegan2-ffhq-config-f").size
    132729083
    >>> [s.name for s in list_pretrained("e4e-*")]
    ['e4e-ffhq']

Downloading and verifying lives in :mod:`pretrained.download`; this module
holds data only and never touches the network or the disk.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from .errors import UserError

__all__ = [
    "KINDS",
    "WeightSpec",
    "list_pretrained",
    "get_spec",
    "register",
    "unregister",
]

#: Checkpoint layouts the loaders understand.
#:  - "e4e": encoder + StyleGAN2 decoder in one ``.pt`` (omertov/encoder4editing)
#:  - "stylegan2-rosinality": ``{g_ema, latent_avg}`` ``.pt`` (rosinality/stylegan2-pytorch)
#:  - "stylegan2-nvidia-pkl": NVIDIA stylegan2-ada-pytorch pickle (read with a restricted unpickler)
#:  - "toolkit": our own ``{config, state_dict, metadata}`` files
KINDS: tuple[str, ...] = ("e4e", "stylegan2-rosinality", "stylegan2-nvidia-pkl", "toolkit")

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True, kw_only=True)
class WeightSpec:
    """Everything needed to fetch, verify and attribute one weights file.

    Args:
        name: Registry key, e.g. ``"e4e-ffhq"`` (letters, digits, ``.``, ``_``, ``-``).
        kind: Checkpoint layout, one of :data:`KINDS`.
        filename: File name in the cache dir (a bare name, no folders).
        size: Exact size in bytes, or None when unknown.
        sha256: Full lowercase hex sha256, or None when unknown. A file without a
            sha256 cannot be verified; :func:`pretrained.download` warns about it.
        url: Primary HTTP(S) URL, if any.
        gdrive_id: Google Drive file id, if any (fetched with ``gdown``).
        mirrors: Further HTTP(S) URLs, tried in order after ``url`` and Drive.
        license: Licence of the weights, short form.
        source: Project that published the weights (a URL).
        description: One line for humans.
        local_path: For weights shipped inside this package: a path relative to
            the ``pretrained`` package folder. Such entries never download.
        reproduce: For weights this project trained: the exact command that made them.
    """

    name: str
    kind: str
    filename: str
    size: int | None
    sha256: str | None
    url: str | None = None
    gdrive_id: str | None = None
    mirrors: tuple[str, ...] = ()
    license: str
    source: str
    description: str = ""
    local_path: str | None = None
    reproduce: str = ""

    def __post_init__(self) -> None:
        # Catch registry typos at import time rather than after a 1 GB download.
        if not _NAME_RE.fullmatch(self.name):
            raise ValueError(f"bad weight name {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")
        # The file name is joined onto the cache dir, so it must not escape it.
        if (not self.filename or PurePosixPath(self.filename).name != self.filename
                or "\\" in self.filename or self.filename in (".", "..")):
            raise ValueError(f"{self.name}: filename must be a bare file name, got {self.filename!r}")
        if self.size is not None and (not isinstance(self.size, int) or self.size <= 0):
            raise ValueError(f"{self.name}: size must be a positive int or None")
        if self.sha256 is not None and not _SHA256_RE.fullmatch(self.sha256):
            raise ValueError(f"{self.name}: sha256 must be 64 lowercase hex digits or None")
        # Accept any iterable of mirrors but store a tuple so the spec stays hashable.
        object.__setattr__(self, "mirrors", tuple(self.mirrors))
        for u in (self.url, *self.mirrors):
            if u is not None and not u.startswith(("http://", "https://")):
                raise ValueError(f"{self.name}: only http(s) URLs are supported, got {u!r}")
        if self.local_path is not None:
            p = PurePosixPath(self.local_path)
            if p.is_absolute() or ".." in p.parts:
                raise ValueError(f"{self.name}: local_path must be relative to the package")
            if self.sha256 is None:
                # We ship these files, so we always know their hash.
                raise ValueError(f"{self.name}: a packaged file needs a sha256")
        elif not self.sources:
            raise ValueError(f"{self.name}: needs a url, gdrive_id, mirrors or local_path")

    @property
    def drive_url(self) -> str | None:
        """The browser link for ``gdrive_id`` (what a user would open by hand)."""
        if self.gdrive_id is None:
            return None
        return f"https://drive.google.com/file/d/{self.gdrive_id}/view"

    @property
    def sources(self) -> tuple[tuple[str, str], ...]:
        """Download sources in the order they are tried.

        Returns:
            ``(kind, locator)`` pairs, kind ``"http"`` (locator is a URL) or
            ``"gdrive"`` (locator is the Drive file id).
        """
        out: list[tuple[str, str]] = []
        if self.url:
            out.append(("http", self.url))
        if self.gdrive_id:
            out.append(("gdrive", self.gdrive_id))
        out.extend(("http", m) for m in self.mirrors)
        return tuple(out)

    @property
    def manual_url(self) -> str | None:
        """The first link a person can open in a browser to get the file."""
        return self.url or self.drive_url or (self.mirrors[0] if self.mirrors else None)


# Sizes and hashes: the team's checkpoint-format notes, section 4. None of the original
# projects publishes a checksum; the two sha256 values below were taken from a
# public mirror and have not been checked against the Drive copies. If Drive
# serves different bytes the download is refused, which is the safe failure.
_BUILTIN: tuple[WeightSpec, ...] = (
    WeightSpec(
        name="e4e-ffhq",
        kind="e4e",
        filename="e4e_ffhq_encode.pt",
        size=1_201_649_680,
        sha256="2ace1d9a8c05c10a399bcd500b8dda118f759ff1aac89dbdab7435f2136a0999",
        gdrive_id="1cUv_reLE6k3604or78EranS7XzuVMWeO",
        license="MIT (e4e); decoder: NVIDIA Source Code License-NC",
        source="https://github.com/omertov/encoder4editing",
        description="e4e IR-SE50 encoder + StyleGAN2 FFHQ 1024 decoder in one file",
    ),
    WeightSpec(
        name="stylegan2-ffhq-config-f",
        kind="stylegan2-rosinality",
        filename="stylegan2-ffhq-config-f.pt",
        size=132_729_083,
        sha256="d0d7c5e71531c816b8cf01037393ee4fb65ed09dcb6434cc0197771e3051199b",
        gdrive_id="1EM87UquaoQmk17Q8d5kYIAHqu0dkYqdT",
        license="NVIDIA Source Code License-NC",
        source="https://github.com/rosinality/stylegan2-pytorch",
        description="StyleGAN2 config-f FFHQ 1024 generator, converted by rosinality",
    ),
    WeightSpec(
        name="stylegan2-ada-ffhq",
        kind="stylegan2-nvidia-pkl",
        filename="ffhq.pkl",
        # About 382 MB, but nobody has recorded the exact size or hash yet: the
        # download is accepted unverified (with a warning that prints both).
        size=None,
        sha256=None,
        url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl",
        license="NVIDIA Source Code License-NC",
        source="https://github.com/NVlabs/stylegan2-ada-pytorch",
        description="NVIDIA StyleGAN2-ADA FFHQ 1024 pickle (G, D, G_ema)",
    ),
    # The embedded default model: trained on this project's CPU machine with its own
    # tools (README, "The default model"); used whenever no model is named.
    WeightSpec(
        name="default",
        kind="toolkit",
        filename="default.pt",
        size=23395957,
        sha256="152786e0e31fce0388bb9c106a91cdc5b486f87c6630e527b0225659d78e4ae0",
        local_path="weights/default.pt",
        license=("weights: this project's; training data All-Age-Faces (no licence stated, research use) and "
                 "UTKFace (non-commercial research only): research and non-commercial use only"),
        source="trained by tools/train_encoder.py (this repository)",
        description=("128 px face autoencoder: e4e-style encoder + StyleGAN2 generator (12 ws of 128), "
                     "with a Gaussian sampler for random faces"),
        # $TRAIN_FACES: the folder of aligned training faces with labels.csv and utk_labels.csv
        # (README, "The default model"); no path outside this repository is named here.
        reproduce=("A='--data $TRAIN_FACES --new-generator 128 --g-channels 256,256,256,128,64,32 "
                   "--w-dim 128 --mapping-layers 4 --enc-input 64 --enc-widths 32,64,128,128 --enc-units 2,2,3,2 "
                   "--joint --batch 16 --threads 1 --run runs/default'; "
                   "python tools/train_encoder.py $A --lr 1e-3 --g-lr 2e-3 --steps 5200 && "
                   "python tools/train_encoder.py $A --lr 4e-4 --g-lr 8e-4 --steps 7000 && "
                   "python tools/train_encoder.py $A --lr 1.5e-4 --g-lr 3e-4 --steps 9122 && "
                   "python tools/train_encoder.py --export runs/default/best.pt runs/default/export.pt --fp16 && "
                   # random faces: its mapping was never trained, so a Gaussian fitted to the encoded faces replaces it
                   "python tools/learn_directions.py --weights runs/default/export.pt --labels "
                   "$TRAIN_FACES/labels.csv $TRAIN_FACES/utk_labels.csv --sampler "
                   "--cache runs/codes.pt -o pretrained/weights/default.pt"),
    ),
    # The class-conditional demo (README, "Conditional generation"): 32 px faces, labels
    # female/male, trained on this project's CPU machine with tools/train_stylegan.py.
    WeightSpec(
        name="cond-faces32-gender",
        kind="toolkit",
        filename="cond_faces32_gender.pt",
        size=1141241,
        sha256="016be3603ad9ddcb89e7dcc2a9e30e1f4e4b84fdf5588dafd865da30fcc91897",
        local_path="weights/cond_faces32_gender.pt",
        license=("weights: this project's; training data All-Age-Faces (no licence stated, research use) and "
                 "UTKFace (non-commercial research only): research and non-commercial use only"),
        source="trained by tools/train_stylegan.py --labels (this repository)",
        description="32 px class-conditional StyleGAN2 (c_dim 2: female, male), 0.28 M parameters; "
                    "report docs/cond_report.html",
        reproduce=("D=$TRAIN_FACES; mkdir -p runs && { echo file,gender; "
                   "awk -F, 'NR>1{print $1\",\"($4==\"1\"?\"male\":\"female\")}' $D/labels.csv; "
                   "awk -F, 'NR>1{print $1\",\"($3==\"1\"?\"female\":\"male\")}' $D/utk_labels.csv; "
                   "} > runs/gender.csv && "
                   "python tools/train_stylegan.py --data $D --labels runs/gender.csv --label-column gender "
                   "--resolution 32 --channel-base 1024 --channel-max 64 --w-dim 64 --mapping-layers 4 --batch 16 "
                   "--r1-gamma 0.02 --minutes 92 --eval-every 250 --threads 1 --seed 0 --run runs/cond && "
                   "cp runs/cond/best.pt pretrained/weights/cond_faces32_gender.pt "
                   "(run as 72 + 20 minutes, resumed; stopped at step 7207, best pixel FD at step 7000)"),
    ),
)

_REGISTRY: dict[str, WeightSpec] = {s.name: s for s in _BUILTIN}


def list_pretrained(pattern: str = "*") -> list[WeightSpec]:
    """Known weights whose name matches a shell-style pattern.

    Args:
        pattern: ``fnmatch`` pattern on the name, e.g. ``"stylegan2-*"``.

    Returns:
        Matching specs, sorted by name.
    """
    return [s for n, s in sorted(_REGISTRY.items()) if fnmatch.fnmatchcase(n, pattern)]


def get_spec(name: str) -> WeightSpec:
    """Look up one weights file by name.

    Args:
        name: Registry key, e.g. ``"e4e-ffhq"``.

    Returns:
        Its :class:`WeightSpec`.

    Raises:
        UserError: The name is unknown; the message lists the known names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UserError(f"unknown pretrained model {name!r}; known: {known}") from None


def register(spec: WeightSpec, *, replace: bool = False) -> WeightSpec:
    """Add a weights file to the registry (e.g. a default model shipped in the package).

    Args:
        spec: The entry to add.
        replace: Allow overwriting an existing entry of the same name.

    Returns:
        ``spec``, so it can be used as ``SPEC = register(WeightSpec(...))``.

    Raises:
        ValueError: The name is taken and ``replace`` is False (a programming error).
    """
    if not isinstance(spec, WeightSpec):
        raise TypeError(f"expected a WeightSpec, got {type(spec).__name__}")
    if spec.name in _REGISTRY and not replace and _REGISTRY[spec.name] != spec:
        raise ValueError(f"pretrained model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove an entry (used by tests that register temporary specs).

    Args:
        name: Registry key; unknown names are ignored.
    """
    _REGISTRY.pop(name, None)
