"""Shared test set-up.

* Every test starts from the same random state (``torch.manual_seed(0)``).
* ``device`` / ``dtype`` fixtures: CPU and float32 unless ``STYLEGAN_MORPH_TEST_DEVICE``
  names another device (e.g. ``cuda``), so the same smoke tests can run on a GPU box.
* Tests marked ``@pytest.mark.gpu`` are skipped when no CUDA GPU is visible; the
  ``cuda_device`` fixture does the same for a single test that asks for it.
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest
import torch

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
