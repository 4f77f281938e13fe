"""StyleGAN2 generator with fast CPU ops, lazily-built CUDA ops and safe checkpoint readers."""

from .checkpoint import load_generator, save_generator
from .config import GeneratorConfig
from .errors import CheckpointError, UserError
from .networks import FullyConnectedLayer, Generator, MappingNetwork, SynthesisNetwork

__all__ = [
    "Generator", "GeneratorConfig", "MappingNetwork", "SynthesisNetwork", "FullyConnectedLayer",
    "load_generator", "save_generator", "UserError", "CheckpointError",
]
