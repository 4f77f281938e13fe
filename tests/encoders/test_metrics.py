"""MS-SSIM, MSE and the dlib identity distance on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from encoders import align_face, detect_faces
from encoders.metrics import IdentityMetric, ms_ssim, mse

FACES = Path(__file__).resolve().parents[3] / "shared" / "data" / "faces"
pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"{FACES} not present")


@pytest.fixture(scope="module")
def aligned() -> dict[str, Image.Image]:
    names = ["fr_obama.jpg", "df_angelina_jolie.jpg", "df_george_clooney.jpg"]
    return {n: align_face(FACES / n, output_size=256) for n in names}


def test_ms_ssim_is_one_for_identical_and_falls_with_damage(aligned: dict[str, Image.Image]) -> None:
    a = aligned["fr_obama.jpg"]
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    mild, strong = a.filter(ImageFilter.GaussianBlur(1)), a.filter(ImageFilter.GaussianBlur(4))
    assert 1 > ms_ssim(a, mild) > ms_ssim(a, strong) > 0
    assert mse(a, a) == 0 and mse(a, strong) > mse(a, mild) > 0
    with pytest.raises(ValueError):
        ms_ssim(a.resize((100, 100)), a.resize((100, 100)))


def test_identity_distance_separates_people(aligned: dict[str, Image.Image]) -> None:
    ident = IdentityMetric()

    def desc(img: Image.Image) -> np.ndarray:
        return ident.descriptor(img, detect_faces(img)[0].landmarks)

    d = {n: desc(img) for n, img in aligned.items()}
    same = ident.distance(d["fr_obama.jpg"], desc(aligned["fr_obama.jpg"].transpose(Image.FLIP_LEFT_RIGHT)))
    assert same < 0.6, "a mirrored face should still be the same person for dlib"
    for a, b in [("fr_obama.jpg", "df_angelina_jolie.jpg"), ("df_george_clooney.jpg", "df_angelina_jolie.jpg")]:
        assert ident.distance(d[a], d[b]) > 0.6, f"{a} and {b} should be different people"
