"""StyleGAN2 generator with fast CPU ops, lazily-built CUDA ops and safe checkpoint readers.

The public names below are imported on first use (PEP 562), so that light
modules such as :mod:`stylegan.errors` can be imported without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS = {
    "Generator": "networks", "MappingNetwork": "networks", "SynthesisNetwork": "networks",
    "FullyConnectedLayer": "networks",
    "GeneratorConfig": "config",
    "load_generator": "weights", "save_generator": "checkpoint",
    "load_checkpoint": "weights", "generator_from": "weights",
    "UserError": "errors", "CheckpointError": "errors",
    # Morph videos: lazy latent paths, batched rendering, streaming atomic writers.
    "interpolation_path": "interpolation", "num_frames": "interpolation", "lerp": "interpolation",
    "slerp": "interpolation",
    "render_frames": "render", "render_video": "render", "resolve_device": "render",
    "open_writer": "video", "write_video": "video",
    "PathSpec": "specs", "RenderSpec": "specs",
    "to_uint8": "imageio", "to_tensor": "imageio", "image_grid": "imageio", "save_image": "imageio",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # cache: later lookups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
