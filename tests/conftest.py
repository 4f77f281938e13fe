"""Shared test set-up.

* Every test starts from the same random state (``torch.manual_seed(0)``).
* ``device`` / ``dtype`` fixtures: CPU and float32 unless ``STYLEGAN_MORPH_TEST_DEVICE``
  names another device (e.g. ``cuda``), so the same smoke tests can run on a GPU box.
* Tests marked ``@pytest.mark.gpu`` are skipped when no CUDA GPU is visible; the
  ``cuda_device`` fixture does the same for a single test that asks for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import pytest
import torch

if TYPE_CHECKING:
    from stylegan.training.dataset import ImageSet

HAS_CUDA = torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every ``gpu``-marked test when there is no GPU (the marker is declared in pytest.ini)."""
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none is visible")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> Iterator[None]:
    """Make every test reproducible on its own, whatever ran before it."""
    torch.manual_seed(0)
    yield


@pytest.fixture
def device() -> torch.device:
    """The device for smoke tests: ``$STYLEGAN_MORPH_TEST_DEVICE`` or "cpu"."""
    name = os.environ.get("STYLEGAN_MORPH_TEST_DEVICE", "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not HAS_CUDA:
        pytest.skip("STYLEGAN_MORPH_TEST_DEVICE asks for CUDA but none is visible")
    return dev


@pytest.fixture
def dtype() -> torch.dtype:
    """The default floating dtype for smoke tests."""
    return torch.float32


@pytest.fixture
def cuda_device() -> torch.device:
    """A CUDA device, or skip the test."""
    if not HAS_CUDA:
        pytest.skip("needs a CUDA GPU; none is visible")
    return torch.device("cuda")


#: Imported by the child of ``run_memory_limited`` before its address space is capped.
_LIMITED_PRELUDE = """
import resource, sys
sys.path.insert(0, {root!r})
import numpy, torch, PIL.Image
import stylegan, stylegan.convert, encoders, encoders.loader, encoders.morph, encoders.images
torch.set_num_threads(1)
_size = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:'))
_limit = _size + int({headroom_gb} * 2**30)
resource.setrlimit(resource.RLIMIT_AS, (_limit, _limit))
"""


@pytest.fixture
def run_memory_limited() -> Callable[..., subprocess.CompletedProcess]:
    """Run Python code in a child whose address space may grow only ``headroom_gb`` beyond its imports.

    A loader that tries to allocate what a crafted file claims then fails (MemoryError) instead
    of eating the machine; the test checks that it refused the file before that.
    Returns ``f(code, headroom_gb=1.0, timeout=60) -> CompletedProcess`` (text output).
    """
    if not sys.platform.startswith("linux"):
        pytest.skip("memory limits are measured through /proc (Linux)")
    root = str(Path(__file__).resolve().parents[1])

    def run(code: str, headroom_gb: float = 1.0, timeout: float = 60) -> subprocess.CompletedProcess:
        script = _LIMITED_PRELUDE.format(root=root, headroom_gb=headroom_gb) + textwrap.dedent(code)
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                              cwd=root)

    return run


@pytest.fixture
def refused_in_little_memory(run_memory_limited) -> Callable[..., str]:
    """``f(call, headroom_gb=0.5) -> message``: run ``call`` (one Python expression) in a memory-capped
    child, require it to raise :class:`stylegan.errors.UserError` (nothing else, no crash), return the message."""

    def run(call: str, headroom_gb: float = 0.5) -> str:
        result = run_memory_limited(
            f"from stylegan.errors import UserError\ntry:\n    {call}\nexcept UserError as e:\n    print('REFUSED', e)\n",
            headroom_gb=headroom_gb)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.startswith("REFUSED "), result.stdout[-2000:]
        return result.stdout[len("REFUSED "):].strip()

    return run


# ----------------------------------------------------------------------------- tiny model files, offline


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A tiny generator + encoder model file (see ``tests.helpers``), written once per test module."""
    from encoders.model_file import save_model
    from tests.helpers import tiny_encoder, tiny_generator

    path = tmp_path_factory.mktemp("model") / "tiny_model.pt"
    save_model(path, tiny_generator(), tiny_encoder())
    return path


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    """A tiny generator-only file, written once per test module."""
    from stylegan import save_generator
    from tests.helpers import tiny_generator

    path = tmp_path_factory.mktemp("gen") / "tiny_generator.pt"
    save_generator(path, tiny_generator())
    return path


@pytest.fixture
def offline(tmp_path, monkeypatch) -> None:
    """Nothing may touch the network or the user's cache. Modules that need it everywhere say
    ``pytestmark = pytest.mark.usefixtures("offline")``."""
    monkeypatch.setenv("STYLEGAN_MORPH_OFFLINE", "1")
    monkeypatch.setenv("STYLEGAN_MORPH_CACHE", str(tmp_path / "cache"))


# ----------------------------------------------------------------------------- tiny training data


@pytest.fixture
def blob_images() -> Callable[..., ImageSet]:
    """``f(n, res, seed) -> ImageSet``: smooth random colour images (4x4 noise upsampled),
    real structure that a tiny trainer can learn, cheap to make. Shared by the trainers' tests."""
    from stylegan.training.dataset import ImageSet

    def make(n: int, res: int, seed: int) -> ImageSet:
        g = torch.Generator().manual_seed(seed)
        x = torch.nn.functional.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(res, res), mode="bilinear")
        return ImageSet((x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())

    return make


@pytest.fixture
def rgb_image() -> np.ndarray:
    """A small uint8 [H, W, 3] pattern without symmetry that holds all 256 levels (24 x 32 px).

    Every level appears in each channel, so a conversion that is off by one anywhere shows.
    """
    levels = np.arange(24 * 32) % 256
    return np.stack([levels, levels[::-1], (levels * 7) % 256], -1).reshape(24, 32, 3).astype(np.uint8)
