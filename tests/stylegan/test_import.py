"""Importing the package (and running it on the CPU) must never build or load compiled ops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import stylegan
import stylegan.ops

# Runs in a fresh interpreter, so nothing imported by other tests can hide an import-time build.
SCRIPT = r"""
import json, os, sys
import torch
import stylegan
from stylegan.ops import custom_ops, upfirdn2d_cuda, bias_act_cuda  # the CUDA wrappers too

cfg = stylegan.GeneratorConfig.from_channel_base(16, channel_base=64, channel_max=8, z_dim=8, w_dim=8)
G = stylegan.Generator(cfg)
img = G(torch.randn(2, 8))  # impl=None on CPU tensors: the PyTorch paths
img.square().mean().backward()
root = custom_ops.build_root()
print(json.dumps({
    "shape": list(img.shape),
    "cpp_extension_imported": "torch.utils.cpp_extension" in sys.modules,
    "compiled_modules": [m for m in sys.modules if m.startswith(custom_ops.EXTENSION_NAME)],
    "loaded_plugins": list(custom_ops.loaded_plugins()),
    "build_root_entries": sorted(os.listdir(root)) if root.exists() else [],
}))
"""


def test_import_and_cpu_forward_compile_nothing(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["STYLEGAN_MORPH_EXTENSIONS_DIR"] = str(tmp_path / "extensions")
    env["CUDA_HOME"] = str(tmp_path / "no-cuda-here")  # a broken toolkit must not matter
    env.pop("STYLEGAN_MORPH_CUDA_STRICT", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["shape"] == [2, 3, 16, 16]
    assert report["cpp_extension_imported"] is False
    assert report["compiled_modules"] == []
    assert report["loaded_plugins"] == []
    assert report["build_root_entries"] == []
    assert not (tmp_path / "extensions").exists()


def test_public_api_is_listed() -> None:
    for module in (stylegan, stylegan.ops):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
