"""A 2-D map of many faces' W+ codes: PCA and t-SNE (UMAP when installed), drawn with thumbnails.

The seed projects' "t-SNE of the latent space" picture, made from photos or saved
codes. Steps:

1. **Codes.** ``.npy`` files are read as they are; photos are encoded through a
   :class:`~encoders.code_cache.CodeCache`, so a second run over the same folder
   encodes nothing (the key is the photo's content hash, the model and the steps).
   A photo without a face is listed and left out.
2. **Projection.** Each code is flattened to ``num_ws * w_dim`` numbers.
   PCA is exact and linear: distances along its axes mean something, and it is
   stable from run to run. t-SNE keeps neighbours together (faces that look alike
   cluster) but its distances between clusters mean little; it runs on the first
   50 principal components, the usual denoising step, and costs O(N log N) memory
   and time, so it is bounded by :data:`MAX_TSNE_POINTS`. UMAP is similar to t-SNE
   and faster on large sets; it is an optional extra (``pip install umap-learn``).
   scikit-learn provides PCA and t-SNE: both are standard, tested implementations,
   and writing our own t-SNE would be a project of its own.
3. **Picture.** Every face is drawn as a thumbnail (its code rendered by the
   generator, so the picture shows what the codes are) at its point, framed in the
   colour of its label when a labels CSV is given. A CSV holds the coordinates.

Example:
    >>> result = latent_map("faces/", "faces_map.png", methods=("pca", "tsne"))   # doctest: +SKIP
    >>> result.csv                                                                # doctest: +SKIP
    PosixPath('faces_map.csv')
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from stylegan.errors import CheckpointError, UserError
from stylegan.fileio import atomic_output, check_not_input
from stylegan.render import render_frames, resolve_device
from stylegan.video import check_output_path

from .align import NoFaceError
from .batch_invert import PHOTO_SUFFIXES
from .code_cache import CachedEncoder, CodeCache, default_cache_dir
from .morph import LATENT_SUFFIX, check_model, load_latent, load_models

__all__ = [
    "METHODS", "MAX_POINTS", "MAX_TSNE_POINTS", "MapInput", "MapResult", "list_map_inputs", "read_labels",
    "project", "plot_map", "write_coordinates", "latent_map",
]

METHODS = ("pca", "tsne", "umap")
#: Codes read in one map: 20k W+ codes of 18 x 512 floats are 740 MB, the most we want in memory.
MAX_POINTS = 20_000
#: t-SNE's cost grows as N log N with a large constant; 5000 points take minutes on a CPU.
MAX_TSNE_POINTS = 5_000
#: Label columns with more distinct values than this are not categories (e.g. a free-text column).
MAX_LABEL_VALUES = 20
_NAME_COLUMNS = ("file", "filename", "name", "path", "image", "photo")

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class MapInput:
    """One point of the map: where its code came from, the code, and its label."""

    source: Path
    ws: torch.Tensor
    label: str = ""


@dataclass
class MapResult:
    """What :func:`latent_map` wrote."""

    png: Path
    csv: Path
    points: int
    methods: tuple[str, ...]
    encoded: int = 0
    no_face: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: what was mapped, what was encoded, what was left out."""
        text = (f"mapped {self.points} faces with {', '.join(self.methods)} "
                f"({self.encoded} encoded, {self.points - self.encoded} from cache or .npy)")
        for what, paths in (("without a face", self.no_face), ("unusable", [p for p, _ in self.failed])):
            if paths:
                names = ", ".join(p.name for p in paths[:10])
                text += f", {len(paths)} {what} ({names}{', ...' if len(paths) > 10 else ''})"
        return text + f"; wrote {self.png} and {self.csv} in {self.seconds:.1f} s"


def list_map_inputs(folder: str | os.PathLike, limit: int = MAX_POINTS) -> list[Path]:
    """Photos and ``.npy`` codes directly in ``folder``, sorted by name (hidden files ignored).

    Raises:
        UserError: not a folder, nothing usable in it, or more than ``limit`` files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: " + ("is not a folder" if folder.exists() else "folder not found"))
    found = []
    for entry in sorted(folder.iterdir()):
        suffix = entry.suffix.lower()
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if suffix in PHOTO_SUFFIXES or suffix == LATENT_SUFFIX:
            found.append(entry)
            if len(found) > limit:
                raise UserError(f"{folder}: more than {limit} photos and codes; map a smaller folder")
    if not found:
        raise UserError(f"{folder}: no photos or .npy codes in this folder")
    return found


def _label_keys(path: Path) -> tuple[str, ...]:
    """Names under which a labels CSV may list a file: ``a.jpg``, ``a``, and ``a`` for ``a_latent.npy``."""
    keys = [path.name, path.stem]
    if path.stem.endswith("_latent"):
        keys.append(path.stem[: -len("_latent")])
    return tuple(keys)


def read_labels(csv_path: str | os.PathLike, column: str) -> dict[str, str]:
    """Map file names (and stems) to the value of ``column`` in a CSV with a header row.

    The file column is the first of ``file``, ``filename``, ``name``, ``path``, ``image``,
    ``photo`` present (any case); only its base name counts, so paths in the CSV may
    be relative to anywhere.

    Raises:
        UserError: unreadable CSV, no file column, or no column ``column``.
    """
    path = Path(csv_path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = {h.strip().lower(): h for h in reader.fieldnames or []}
            name_col = next((header[c] for c in _NAME_COLUMNS if c in header), None)
            if name_col is None:
                raise UserError(f"{path}: no file-name column; expected one of {', '.join(_NAME_COLUMNS)}")
            value_col = header.get(column.strip().lower())
            if value_col is None:
                raise UserError(f"{path}: no column {column!r}; columns: {', '.join(reader.fieldnames or [])}")
            labels: dict[str, str] = {}
            for row in reader:
                name = Path((row.get(name_col) or "").strip().replace("\\", "/")).name
                if name:
                    value = (row.get(value_col) or "").strip()
                    labels.setdefault(name, value)
                    labels.setdefault(Path(name).stem, value)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"{path}: not a readable CSV ({str(err).splitlines()[0][:120]})") from None
    return labels


def project(codes: torch.Tensor | np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """2-D coordinates of N codes.

    Args:
        codes: [N, num_ws, w_dim] or [N, D].
        method: ``pca``, ``tsne`` or ``umap`` (needs the ``umap-learn`` package).
        seed: random state of t-SNE/UMAP (PCA is deterministic).

    Returns:
        float64 [N, 2].

    Raises:
        UserError: an unknown method, too few or (for t-SNE) too many points, or UMAP not installed.
    """
    x = np.asarray(codes.detach().cpu() if isinstance(codes, torch.Tensor) else codes, dtype=np.float64)
    x = x.reshape(len(x), -1)
    n = len(x)
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if n < 3:
        raise UserError(f"a map needs at least 3 faces, got {n}")
    from sklearn.decomposition import PCA

    if method == "pca":
        return PCA(n_components=2).fit_transform(x)
    if method == "tsne":
        if n > MAX_TSNE_POINTS:
            raise UserError(f"t-SNE is limited to {MAX_TSNE_POINTS} points, got {n}; use method pca or umap")
        from sklearn.manifold import TSNE

        reduced = PCA(n_components=min(50, n, x.shape[1]), random_state=seed).fit_transform(x)
        # Perplexity is the effective number of neighbours; it must stay below N.
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(reduced)
    try:
        import umap  # optional extra
    except ImportError:
        raise UserError("method umap needs the umap-learn package (pip install umap-learn)") from None
    reduced = PCA(n_components=min(50, n, x.shape[1]), random_state=seed).fit_transform(x)
    return umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed).fit_transform(reduced)


_TITLES = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}


def plot_map(coords: dict[str, np.ndarray], thumbnails: Sequence[np.ndarray | None], labels: Sequence[str],
             path: str | os.PathLike, title: str = "", thumb_zoom: float = 1.0) -> Path:
    """Draw one panel per method with each face's thumbnail at its point; write a PNG atomically.

    Args:
        coords: method -> [N, 2] coordinates (one panel each, in order).
        thumbnails: N uint8 [h, w, 3] images; None draws a dot for that point.
        labels: N labels ("" when none); each distinct label gets a frame colour and a legend entry.
        path: the PNG.
        title: a line above the panels.
        thumb_zoom: thumbnail display scale.

    Returns:
        The path written.
    """
    # The object API with an Agg canvas: no pyplot, no global backend switch, no GUI.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    dest = Path(path)
    values = sorted({lab for lab in labels if lab})
    palette = [f"C{i}" for i in range(10)] + ["#444444", "#bbbbbb", "#8c564b", "#e377c2", "#17becf",
                                               "#bcbd22", "#7f7f7f", "#9467bd", "#d62728", "#2ca02c"]
    color = {v: palette[i % len(palette)] for i, v in enumerate(values)}
    panels = list(coords)
    fig = Figure(figsize=(9 * len(panels), 9), dpi=100)
    FigureCanvasAgg(fig)
    for k, method in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        xy = coords[method]
        point_colors = [color.get(lab, "#555555") for lab in labels]
        ax.scatter(xy[:, 0], xy[:, 1], s=12, c=point_colors, zorder=1)
        for (x, y), thumb, lab in zip(xy, thumbnails, labels):
            if thumb is None:
                continue
            box = AnnotationBbox(OffsetImage(thumb, zoom=thumb_zoom), (x, y), frameon=True, pad=0.1,
                                 bboxprops={"edgecolor": color.get(lab, "white"), "linewidth": 2})
            ax.add_artist(box)
        ax.set_title(_TITLES.get(method, method))
        ax.set_xticks([])
        ax.set_yticks([])
        pad_x = 0.08 * (np.ptp(xy[:, 0]) or 1.0)
        pad_y = 0.08 * (np.ptp(xy[:, 1]) or 1.0)
        ax.set_xlim(xy[:, 0].min() - pad_x, xy[:, 0].max() + pad_x)
        ax.set_ylim(xy[:, 1].min() - pad_y, xy[:, 1].max() + pad_y)
    if values:  # one row under the panels, so it never covers a face or the title
        handles = [Line2D([], [], marker="s", linestyle="", markersize=10, color=color[v], label=v) for v in values]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(values), 10), frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05 if values else 0, 1, 1))
    with atomic_output(dest) as tmp:
        fig.savefig(tmp, format="png")
    return dest


def write_coordinates(path: str | os.PathLike, points: Sequence[MapInput], coords: dict[str, np.ndarray]) -> Path:
    """CSV with a header: ``file,label,<method>_x,<method>_y,...``; written atomically."""
    dest = Path(path)
    with atomic_output(dest) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["file", "label"] + [f"{m}_{a}" for m in coords for a in ("x", "y")])
            for i, p in enumerate(points):
                writer.writerow([p.source.name, p.label] + [f"{coords[m][i, a]:.6g}" for m in coords for a in (0, 1)])
    return dest


def latent_map(folder: str | os.PathLike, output: str | os.PathLike, *, csv_path: str | os.PathLike | None = None,
               methods: Sequence[str] = ("pca", "tsne"), labels_csv: str | os.PathLike | None = None,
               label_column: str | None = None, weights: str | os.PathLike | None = None,
               cache: CodeCache | str | os.PathLike | None | bool = True, refine: int | str = "auto",
               face_index: int | None = None, thumb_size: int = 48, max_thumbnails: int = 400,
               batch_size: int = 8, seed: int = 0, device: str | torch.device = "auto", progress: bool = True,
               log: Log = _quiet) -> MapResult:
    """Map every photo and ``.npy`` code in ``folder``: a PNG with thumbnails and a CSV of coordinates.

    Args:
        folder: photos and/or ``.npy`` W+ codes (see :func:`list_map_inputs`).
        output: the PNG.
        csv_path: the coordinates; default ``output`` with ``.csv``.
        methods: any of :data:`METHODS`, one panel each.
        labels_csv, label_column: colour the faces by this column of this CSV (see :func:`read_labels`).
        weights: model name or file; None for the default model.
        cache: a :class:`CodeCache`, a folder for one, True for :func:`default_cache_dir`, or
            False/None to encode every photo.
        refine: refinement steps per photo, or ``"auto"``.
        face_index: which face of each photo.
        thumb_size: thumbnail side in pixels.
        max_thumbnails: at most this many thumbnails (evenly spread); other faces are dots.
        batch_size: codes rendered together for thumbnails.
        seed: random state of t-SNE/UMAP.
        device, progress, log: as elsewhere.

    Returns:
        A :class:`MapResult`.

    Raises:
        UserError: bad folder, option, labels, model or output (all checked before encoding).
    """
    from tqdm import tqdm

    start = time.perf_counter()
    methods = tuple(dict.fromkeys(methods))
    bad = [m for m in methods if m not in METHODS]
    if not methods or bad:
        raise UserError(f"unknown method {bad[0] if bad else ''!r}; choose from {', '.join(METHODS)}")
    if "umap" in methods:
        try:
            import umap  # noqa: F401
        except ImportError:
            raise UserError("method umap needs the umap-learn package (pip install umap-learn)") from None
    if not 8 <= thumb_size <= 256:
        raise UserError(f"thumb_size must be 8 to 256 pixels, got {thumb_size}")
    if max_thumbnails < 0 or batch_size < 1:
        raise UserError("max_thumbnails must be >= 0 and batch_size >= 1")
    if (labels_csv is None) != (label_column is None):
        raise UserError("labels_csv and label_column go together")
    png = Path(output)
    if png.suffix.lower() != ".png":
        raise UserError(f"{png}: the map is a PNG; name it .png")
    csv_dest = Path(csv_path) if csv_path is not None else png.with_suffix(".csv")
    inputs = list_map_inputs(folder)
    if "tsne" in methods and len(inputs) > MAX_TSNE_POINTS:
        raise UserError(f"t-SNE is limited to {MAX_TSNE_POINTS} points, {folder} has {len(inputs)}; "
                        "use methods pca or umap")
    if png.resolve() == csv_dest.resolve():
        raise UserError(f"{csv_dest}: the CSV and the PNG must be different files")
    read = inputs + ([Path(labels_csv)] if labels_csv is not None else [])
    for dest in (png, csv_dest):
        check_not_input(dest, read)
        check_output_path(dest, kind="image")
    labels = read_labels(labels_csv, label_column) if labels_csv is not None else {}
    dev = resolve_device(device)
    check_model(weights)
    if isinstance(cache, bool):
        cache = CodeCache(default_cache_dir()) if cache else None
    elif cache is not None and not isinstance(cache, CodeCache):
        cache = CodeCache(cache)

    photos = [p for p in inputs if p.suffix.lower() != LATENT_SUFFIX]
    G, _ = load_models(weights, dev, need_encoder=False, log=log)
    encoder = CachedEncoder(G, weights, cache, refine=refine, face_index=face_index, device=dev) if photos else None
    points: list[MapInput] = []
    no_face: list[Path] = []
    failed: list[tuple[Path, str]] = []
    for path in tqdm(inputs, unit="face", desc="codes", disable=not progress, dynamic_ncols=True):
        if path.suffix.lower() == LATENT_SUFFIX:
            ws = load_latent(path, G.num_ws, G.w_dim)
        else:
            try:
                ws = encoder(path)
            except NoFaceError:
                no_face.append(path)
                continue
            except CheckpointError:
                raise  # the model, not the photo: nothing else would work either
            except UserError as err:  # an unreadable or corrupt photo: leave it out, say why at the end
                failed.append((path, str(err)))
                continue
        label = next((labels[k] for k in _label_keys(path) if k in labels), "") if labels else ""
        points.append(MapInput(path, ws, label))
    if len(points) < 3:
        raise UserError(f"{folder}: a map needs at least 3 faces, found {len(points)}")
    n_values = len({p.label for p in points if p.label})
    if n_values > MAX_LABEL_VALUES:
        raise UserError(f"column {label_column!r} has {n_values} distinct values; a colour key needs "
                        f"at most {MAX_LABEL_VALUES} (bin numbers first, e.g. age into decades)")

    codes = torch.stack([p.ws for p in points])  # [N, num_ws, w_dim]
    coords = {}
    for m in methods:
        log(f"projecting {len(points)} codes with {_TITLES[m]}")
        coords[m] = project(codes, m, seed=seed)
    thumbs: list[np.ndarray | None] = [None] * len(points)
    chosen = np.unique(np.linspace(0, len(points) - 1, min(max_thumbnails, len(points))).round().astype(int)) \
        if max_thumbnails else np.array([], dtype=int)
    frames = render_frames(G, codes[chosen], batch_size=batch_size, size=thumb_size, progress=progress,
                           desc="thumbnails")
    for i, frame in zip(chosen, frames):
        thumbs[i] = frame
    title = f"{len(points)} faces from {Path(folder).name or folder}"
    if label_column:
        title += f", coloured by {label_column}"
    plot_map(coords, thumbs, [p.label for p in points], png, title=title)
    write_coordinates(csv_dest, points, coords)
    return MapResult(png, csv_dest, len(points), methods, encoder.encoded if encoder else 0, no_face, failed,
                     time.perf_counter() - start)
