"""StyleGAN2 generator with fast CPU ops, lazily-built CUDA ops and safe checkpoint readers."""

from .checkpoint import load_generator, save_generator
from .config import GeneratorConfig
from .errors import CheckpointError, UserError
from .networks import FullyConnectedLayer, Generator, MappingNetwork, SynthesisNetwork

__all__ = [
    "Generator", "GeneratorConfig", "MappingNetwork", "SynthesisNetwork", "FullyConnectedLayer",
    "load_generator", "save_generator", "UserError", "CheckpointError",
]

# Morph videos: lazy latent paths, batched rendering, streaming atomic writers.
from .interpolation import interpolation_path, lerp, num_frames, slerp
from .render import render_frames, render_video, resolve_device
from .video import open_writer, write_video

__all__ += [
    "interpolation_path", "num_frames", "lerp", "slerp", "render_frames", "render_video", "resolve_device",
    "open_writer", "write_video",
]
