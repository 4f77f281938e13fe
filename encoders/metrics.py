"""Inversion-quality metrics: MSE, MS-SSIM and dlib identity distance.

MS-SSIM follows Wang, Simoncelli & Bovik (2003): an 11-tap Gaussian window
(sigma 1.5), K1 = 0.01, K2 = 0.03, and five scales weighted
(0.0448, 0.2856, 0.3001, 0.2363, 0.1333). The identity distance is the
Euclidean distance between dlib's 128-d face descriptors
(``dlib_face_recognition_resnet_model_v1.dat`` from ``face_recognition_models``);
dlib's convention is that below 0.6 means the same person.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylegan.errors import UserError

__all__ = ["mse", "ms_ssim", "IdentityMetric", "MSSSIM_WEIGHTS"]

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    arr = np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img, dtype=np.float64) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None]  # [1, 3, H, W] in [0, 1]


def mse(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    """Mean squared error on the [0, 1] scale."""
    return float(((_to_tensor(a) - _to_tensor(b)) ** 2).mean())


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = x.shape[1]
    k = win.shape[0]
    wx = win.reshape(1, 1, 1, k).repeat(c, 1, 1, 1)
    wy = win.reshape(1, 1, k, 1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # "valid" separable Gaussian, per channel
        return F.conv2d(F.conv2d(t, wx, groups=c), wy, groups=c)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    return (lum * cs).mean(), cs.mean()


def ms_ssim(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    """Multi-scale SSIM of two same-size RGB images (needs a side of at least 161 px for 5 scales)."""
    x, y = _to_tensor(a), _to_tensor(b)
    if x.shape != y.shape:
        raise ValueError(f"image sizes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if min(x.shape[2:]) < 161:
        raise ValueError("MS-SSIM with 5 scales needs images of at least 161 px")
    win = _gaussian_window()
    vals = []
    for i, w in enumerate(MSSSIM_WEIGHTS):
        ssim, cs = _ssim_parts(x, y, win)
        vals.append((ssim if i == len(MSSSIM_WEIGHTS) - 1 else cs).clamp(min=0) ** w)
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return float(torch.stack(vals).prod())


def _model_file(name: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("face_recognition_models is not installed: pip install face_recognition_models")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / name
    if not path.is_file():
        raise UserError(f"{path}: dlib model file missing; reinstall face_recognition_models")
    return path


class IdentityMetric:
    """dlib 128-d face descriptors and their distances; the network is loaded once."""

    def __init__(self) -> None:
        self._net = None
        self._lock = threading.Lock()

    def _model(self):
        with self._lock:
            if self._net is None:
                import dlib

                self._net = dlib.face_recognition_model_v1(str(_model_file("dlib_face_recognition_resnet_model_v1.dat")))
            return self._net

    def descriptor(self, img: Image.Image, landmarks: np.ndarray) -> np.ndarray:
        """128-d descriptor of the face with these 68 landmarks (pixel coords of ``img``)."""
        import dlib

        pts = [dlib.point(int(round(x)), int(round(y))) for x, y in landmarks]
        xs, ys = landmarks[:, 0], landmarks[:, 1]
        rect = dlib.rectangle(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        shape = dlib.full_object_detection(rect, pts)
        return np.array(self._model().compute_face_descriptor(np.asarray(img.convert("RGB")), shape))

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b))
