"""The benchmark harness moved from ``stylegan.ops`` to ``stylegan.benchmark``; the old name warns and still works."""

from __future__ import annotations

import importlib
import sys

import pytest

import stylegan.benchmark as benchmark


def test_old_module_name_warns_and_gives_the_same_functions(monkeypatch) -> None:
    monkeypatch.delitem(sys.modules, "stylegan.ops.benchmark", raising=False)  # re-run its import-time warning
    with pytest.warns(DeprecationWarning, match="stylegan.benchmark"):
        old = importlib.import_module("stylegan.ops.benchmark")
    assert old.__all__ == benchmark.__all__
    assert all(getattr(old, name) is getattr(benchmark, name) for name in benchmark.__all__)

