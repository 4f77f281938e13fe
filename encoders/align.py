"""FFHQ face alignment: find faces with dlib and crop them the way FFHQ was cropped.

StyleGAN2 trained on FFHQ, and the e4e encoder expects its input cropped by
the same recipe (NVlabs/ffhq-dataset, ``recreate_aligned_images``; the steps
are summarised in CHECKPOINTS.md section 5). A face cropped differently
inverts badly, so the geometry here follows that recipe step for step; the
code is our own and uses only numpy and Pillow.

Two differences from the reference, both deliberate:

* the reference keeps the *last* face dlib reports; we sort faces by box area
  and default to the largest, and let the caller pick another by index;
* coordinates are tracked exactly through the shrink step (per-axis scale of
  pixel *edges*, where the reference divides pixel centres by the integer
  shrink factor). The difference is below one pixel of the shrunk image, and
  it makes :func:`map_to_aligned` exact, which the tests rely on.

Example:
    >>> aligned = align_face("photo.jpg", output_size=256)   # doctest: +SKIP
    >>> faces = detect_faces("group.jpg")                    # doctest: +SKIP
    >>> [f.box for f in faces]                               # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from stylegan.errors import UserError

from .images import ImageSource, describe_source, load_image

__all__ = [
    "Face", "FaceAligner", "NoFaceError",
    "align_face", "detect_faces", "align_from_landmarks",
    "eye_mouth_positions", "ffhq_quad", "map_to_aligned",
    "find_predictor", "default_aligner",
]

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"

# Upsampling levels for dlib's HOG detector. Its smallest face is about
# 80x80 px; each upsample halves that. FFHQ uses 1; 2 rescues small faces in
# low-resolution photos, and costs 4x the time, so it only runs if 1 found none.
UPSAMPLE_LEVELS = (1, 2)

# Photos larger than this (long side, px) are searched for faces on a
# downscaled copy: dlib's time grows with pixels, and faces in such photos are
# big enough. Landmarks are still fitted on the full-resolution photo.
DETECT_MAX_SIDE = 2048


class NoFaceError(UserError):
    """The detector found no face in the photo."""


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face.

    Attributes:
        box: ``(left, top, right, bottom)`` in pixels of the (EXIF-upright)
            photo, right/bottom exclusive as in ``PIL.Image.crop``. A face cut
            by the border may have a box that reaches outside the photo.
        landmarks: ``[68, 2]`` float array of (x, y) pixel centres, in dlib's
            68-point (iBUG 300-W) order.
        score: the detector's confidence (higher is surer; 0 is its threshold).
    """

    box: tuple[int, int, int, int]
    landmarks: np.ndarray
    score: float = 0.0

    @property
    def area(self) -> int:
        """Box area in pixels; faces are ranked by it (largest first)."""
        left, top, right, bottom = self.box
        return max(right - left, 0) * max(bottom - top, 0)


def find_predictor() -> Path:
    """Locate dlib's 68-point landmark model inside ``face_recognition_models``.

    The package is located without importing it: its ``__init__`` imports
    ``pkg_resources``, which setuptools 81+ no longer ships.

    Returns:
        Path to ``shape_predictor_68_face_landmarks.dat``.

    Raises:
        UserError: the package or the file is missing.
    """
    hint = "install it with `pip install face_recognition_models`"
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"dlib's face landmark model is missing: {hint}")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "models" / PREDICTOR_FILE
        if candidate.is_file():
            return candidate
    raise UserError(f"{PREDICTOR_FILE} not found in the face_recognition_models package: re-{hint}")


# ---------------------------------------------------------------------------
# Recipe geometry (pure numpy; no dlib needed)
# ---------------------------------------------------------------------------

def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 (x, y) landmarks, got shape {lm.shape}")
    return lm


def eye_mouth_positions(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three points FFHQ aligns on.

    Args:
        landmarks: ``[68, 2]`` (x, y) in dlib's 68-point order.

    Returns:
        ``(eye_left, eye_right, mouth)``, each a ``[2]`` array: the means of
        points 36-41 and 42-47 (left and right *in the image*), and the
        midpoint of the mouth corners 48 and 54.
    """
    lm = _check_landmarks(landmarks)
    eye_left = lm[36:42].mean(axis=0)
    eye_right = lm[42:48].mean(axis=0)
    mouth = (lm[48] + lm[54]) * 0.5
    return eye_left, eye_right, mouth


def _rot90(v: np.ndarray) -> np.ndarray:
    """Rotate a 2-vector by +90 degrees in image coordinates: (x, y) -> (-y, x)."""
    return np.array([-v[1], v[0]])


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """The oriented square FFHQ crops, in the photo's pixel-centre coordinates.

    Args:
        landmarks: ``[68, 2]`` (x, y) in dlib's 68-point order.

    Returns:
        ``(quad, qsize)``: ``quad`` is ``[4, 2]`` with the corners in the
        order top-left, bottom-left, bottom-right, top-right of the output
        (Pillow's ``QUAD`` order); ``qsize`` is the side length in pixels.
    """
    eye_left, eye_right, mouth = eye_mouth_positions(landmarks)
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth - eye_avg
    # The x axis blends the eye line with the (rotated) eye-to-mouth line so
    # that a tilted head and a turned head both come out upright.
    x = eye_to_eye - _rot90(eye_to_mouth)
    x /= max(np.hypot(*x), 1e-12)
    # The crop is 2x the eye distance or 1.8x the eye-to-mouth distance,
    # whichever is larger, so profile faces (short eye line) are not cut.
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = _rot90(x)
    # Centre slightly below the eyes: FFHQ puts the face a bit above the middle.
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    qsize = float(np.hypot(*x) * 2.0)
    return quad, qsize


def map_to_aligned(landmarks: np.ndarray, points: np.ndarray, output_size: int) -> np.ndarray:
    """Where photo points land in the aligned image.

    The recipe maps the oriented square affinely onto the output square, so
    any photo point has a fixed place in the output: with ``u, v`` solving
    ``p - tl = u * (tr - tl) + v * (bl - tl)`` (pixel *edge* coordinates),
    the output pixel centre is ``(u * S - 0.5, v * S - 0.5)``.

    Args:
        landmarks: ``[68, 2]`` landmarks the crop was computed from.
        points: ``[N, 2]`` or ``[2]`` photo pixel-centre coordinates.
        output_size: side ``S`` of the aligned image.

    Returns:
        The points in aligned-image pixel-centre coordinates, same shape as ``points``.
    """
    quad, _ = ffhq_quad(landmarks)
    pts = np.asarray(points, dtype=np.float64)
    flat = pts.reshape(-1, 2)
    top_left, bottom_left, _, top_right = quad
    basis = np.stack([top_right - top_left, bottom_left - top_left], axis=1)  # [2, 2]
    # Centre coordinates on both sides: the +0.5 edge offsets cancel in p - tl.
    uv = np.linalg.solve(basis, (flat - top_left).T).T  # [N, 2]
    return (uv * output_size - 0.5).reshape(pts.shape)


def _soft_pad(img: Image.Image, pad: tuple[int, int, int, int], qsize: float) -> Image.Image:
    """Reflect-pad and fade the padding to blur, then to the median colour.

    Mirrored image content looks like a second face at the border; fading it
    toward a blurred copy and then toward the photo's median colour hides the
    seam, as FFHQ does.

    Args:
        img: RGB image.
        pad: ``(left, top, right, bottom)`` widths, all >= 1.
        qsize: quad side in pixels; sets the blur radius (2% of it).
    """
    left, top, right, bottom = pad
    arr = np.pad(np.asarray(img, dtype=np.float32),
                 ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w, _ = arr.shape
    ys = np.arange(h, dtype=np.float32)[:, None]
    xs = np.arange(w, dtype=np.float32)[None, :]
    # 0 inside the original photo, rising linearly to 1 at the outer edge of
    # the padding (whichever side is nearer).
    mask_x = 1.0 - np.minimum(xs / left, (w - 1 - xs) / right)
    mask_y = 1.0 - np.minimum(ys / top, (h - 1 - ys) / bottom)
    mask = np.maximum(mask_x, mask_y)[:, :, None]  # [H, W, 1]
    # Pillow's Gaussian blur (box-filter approximation, 8-bit) replaces
    # scipy.ndimage.gaussian_filter; the half-level rounding is invisible.
    padded = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
    blurred = np.asarray(padded.filter(ImageFilter.GaussianBlur(qsize * 0.02)), dtype=np.float32)
    arr += (blurred - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
    return Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")


def align_from_landmarks(image: Image.Image, landmarks: np.ndarray, output_size: int = 1024,
                         transform_size: int | None = None) -> Image.Image:
    """Crop one face by the FFHQ recipe, given its 68 landmarks.

    Args:
        image: the RGB photo the landmarks were found in.
        landmarks: ``[68, 2]`` (x, y) pixel centres.
        output_size: side of the returned square image (FFHQ: 1024; e4e: 256).
        transform_size: side of the intermediate warp, which is then
            downscaled with LANCZOS to ``output_size``; warping large and
            downscaling avoids the aliasing of a direct bilinear warp.
            Default: ``4 * output_size``, FFHQ's 4096 for 1024.

    Returns:
        An ``output_size`` x ``output_size`` RGB image.

    Raises:
        UserError: sizes that are not positive, or ``transform_size < output_size``.
    """
    if output_size < 1:
        raise UserError(f"output size must be a positive number of pixels, got {output_size}")
    if transform_size is None:
        transform_size = 4 * output_size
    if transform_size < output_size:
        raise UserError(f"transform size {transform_size} must be at least the output size {output_size}")
    img = image if image.mode == "RGB" else image.convert("RGB")
    quad, qsize = ffhq_quad(landmarks)
    # From here on quad holds pixel *edge* coordinates (a pixel centre i sits at
    # i + 0.5): they scale exactly under resizing, and Pillow's QUAD expects them.
    quad = quad + 0.5

    # Shrink: a face much larger than the output is first downscaled with a
    # proper filter, so the bilinear warp below never skips pixels.
    shrink = int(np.floor(qsize / output_size * 0.5))
    if shrink > 1:
        new_size = (max(int(np.rint(img.width / shrink)), 1), max(int(np.rint(img.height / shrink)), 1))
        scale = np.array([new_size[0] / img.width, new_size[1] / img.height])
        img = img.resize(new_size, Image.Resampling.LANCZOS)
        quad = quad * scale
        qsize = qsize * float(scale.mean())

    # Crop to the quad plus a border, to keep the padding and warp small.
    border = max(int(np.rint(qsize * 0.1)), 3)
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    crop = (max(lo[0] - border, 0), max(lo[1] - border, 0),
            min(hi[0] + border, img.width), min(hi[1] + border, img.height))
    if crop[2] - crop[0] < img.width or crop[3] - crop[1] < img.height:
        if crop[2] <= crop[0] or crop[3] <= crop[1]:
            raise UserError("the face lies entirely outside the image")
        img = img.crop(crop)
        quad = quad - np.array(crop[:2])

    # Pad: where the quad leaves the photo, invent plausible surroundings
    # instead of the black fill Pillow's transform would give.
    lo = np.floor(quad.min(axis=0)).astype(int)
    hi = np.ceil(quad.max(axis=0)).astype(int)
    pad = np.array([max(border - lo[0], 0), max(border - lo[1], 0),
                    max(hi[0] - img.width + border, 0), max(hi[1] - img.height + border, 0)])
    if pad.max() > border - 4:
        pad = np.maximum(pad, max(int(np.rint(qsize * 0.3)), 1))
        img = _soft_pad(img, tuple(int(p) for p in pad), qsize)
        quad = quad + pad[:2]

    # Warp the oriented square onto an upright one, then downscale.
    warped = img.transform((transform_size, transform_size), Image.Transform.QUAD,
                           tuple(float(v) for v in quad.flatten()), Image.Resampling.BILINEAR)
    if transform_size != output_size:
        warped = warped.resize((output_size, output_size), Image.Resampling.LANCZOS)
    return warped


# ---------------------------------------------------------------------------
# Detection (dlib)
# ---------------------------------------------------------------------------

class FaceAligner:
    """Detects faces with dlib and crops them by the FFHQ recipe.

    dlib's detector and the 100 MB landmark model are loaded once, on first
    use, and reused; create one aligner per process (or use
    :func:`default_aligner`) rather than one per photo.

    Args:
        predictor_path: the 68-point shape predictor; default: the copy in
            the ``face_recognition_models`` package (:func:`find_predictor`).
        upsample_levels: detector upsampling levels tried in order until one
            finds a face.
        detect_max_side: photos with a longer side are searched on a
            downscaled copy (landmarks still use full resolution).

    Example:
        >>> aligner = FaceAligner()                                 # doctest: +SKIP
        >>> img = aligner.align("photo.jpg", output_size=256)       # doctest: +SKIP
    """

    def __init__(self, predictor_path: str | Path | None = None,
                 upsample_levels: tuple[int, ...] = UPSAMPLE_LEVELS,
                 detect_max_side: int = DETECT_MAX_SIDE) -> None:
        if not upsample_levels:
            raise ValueError("upsample_levels must name at least one level")
        self.predictor_path = Path(predictor_path) if predictor_path is not None else None
        self.upsample_levels = tuple(int(u) for u in upsample_levels)
        self.detect_max_side = int(detect_max_side)
        self._detector = None
        self._predictor = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        loaded = self._predictor is not None
        return (f"FaceAligner(predictor_path={self.predictor_path}, upsample_levels={self.upsample_levels}, "
                f"detect_max_side={self.detect_max_side}, loaded={loaded})")

    def _models(self):
        """Load (once) and return dlib's detector and shape predictor."""
        with self._lock:
            if self._predictor is None:
                try:
                    import dlib
                except ImportError as err:
                    raise UserError("dlib is not installed: `pip install dlib-bin` (or dlib)") from err
                path = self.predictor_path or find_predictor()
                if not path.is_file():
                    raise UserError(f"{path}: landmark model not found")
                try:
                    predictor = dlib.shape_predictor(str(path))
                except RuntimeError as err:
                    raise UserError(f"{path}: cannot load dlib landmark model ({err})") from err
                self._detector = dlib.get_frontal_face_detector()
                self.predictor_path = path
                self._predictor = predictor
            return self._detector, self._predictor

    def detect(self, image: ImageSource) -> list[Face]:
        """Find every face and its 68 landmarks.

        Args:
            image: a path or a ``PIL.Image`` (loaded with :func:`load_image`).

        Returns:
            Faces sorted by box area, largest first (ties: top, then left);
            empty when there is none.

        Raises:
            UserError: the image cannot be read.
        """
        return self._detect_rgb(load_image(image))

    def _detect_rgb(self, img: Image.Image) -> list[Face]:
        import dlib

        detector, predictor = self._models()
        pixels = np.asarray(img)  # [H, W, 3] uint8, what dlib expects
        scale = 1.0
        search = pixels
        if max(img.size) > self.detect_max_side:
            scale = self.detect_max_side / max(img.size)
            small = img.resize((max(round(img.width * scale), 1), max(round(img.height * scale), 1)),
                               Image.Resampling.LANCZOS)
            search = np.asarray(small)
        rects, scores = [], []
        for level in self.upsample_levels:
            rects, scores, _ = detector.run(search, level, 0.0)
            if len(rects):
                break
        faces = []
        for rect, score in zip(rects, scores):
            # dlib boxes are inclusive; make right/bottom exclusive, in full-res pixels.
            box = tuple(int(round(v / scale)) for v in
                        (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1))
            full = dlib.rectangle(box[0], box[1], box[2] - 1, box[3] - 1)
            shape = predictor(pixels, full)
            landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            faces.append(Face(box=box, landmarks=landmarks, score=float(score)))
        faces.sort(key=lambda f: (-f.area, f.box[1], f.box[0]))
        return faces

    def align(self, image: ImageSource, output_size: int = 1024, face_index: int | None = None,
              transform_size: int | None = None) -> Image.Image:
        """Detect faces and return one of them FFHQ-aligned.

        Args:
            image: a path or a ``PIL.Image``.
            output_size: side of the result (FFHQ: 1024; the e4e encoder reads 256).
            face_index: which face, in :meth:`detect` order; default 0, the largest.
            transform_size: see :func:`align_from_landmarks`.

        Returns:
            An ``output_size`` square RGB image.

        Raises:
            NoFaceError: no face was found.
            UserError: unreadable image, or ``face_index`` out of range.
        """
        name = describe_source(image)
        img = load_image(image)
        faces = self._detect_rgb(img)
        face = _pick_face(faces, face_index, name, tried=self.upsample_levels)
        return align_from_landmarks(img, face.landmarks, output_size, transform_size)


def _pick_face(faces: list[Face], face_index: int | None, name: str, tried: tuple[int, ...]) -> Face:
    """Select a face by index, with messages that say what was found."""
    if not faces:
        levels = " and ".join(str(u) for u in tried)
        raise NoFaceError(f"{name}: no face found (dlib frontal detector, upsample {levels}); "
                          "use a photo with a clearly visible, roughly frontal face")
    index = 0 if face_index is None else face_index
    if not 0 <= index < len(faces):
        count = f"{len(faces)} face" + ("s" if len(faces) != 1 else "")
        raise UserError(f"{name}: face index {index} is out of range: found {count} "
                        f"(valid indices 0 to {len(faces) - 1}, largest first)")
    return faces[index]


_default: FaceAligner | None = None
_default_lock = threading.Lock()


def default_aligner() -> FaceAligner:
    """The shared :class:`FaceAligner` used by the module-level functions."""
    global _default
    with _default_lock:
        if _default is None:
            _default = FaceAligner()
        return _default


def detect_faces(image: ImageSource) -> list[Face]:
    """Find faces with the shared aligner; see :meth:`FaceAligner.detect`."""
    return default_aligner().detect(image)


def align_face(image: ImageSource, output_size: int = 1024, face_index: int | None = None,
               transform_size: int | None = None) -> Image.Image:
    """FFHQ-align a face with the shared aligner; see :meth:`FaceAligner.align`.

    Example:
        >>> align_face("photo.jpg", output_size=256).size           # doctest: +SKIP
        (256, 256)
    """
    return default_aligner().align(image, output_size, face_index, transform_size)
