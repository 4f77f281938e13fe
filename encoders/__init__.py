"""Encoders that map photos to StyleGAN latents, and the face alignment they need."""

# e4e encoder (IR-SE50) and its weights.
from .e4e import Encoder4Editing, EncoderConfig
from .loader import load_e4e, load_encoder, save_encoder

__all__ = [
    # e4e encoder (IR-SE50) and its weights.
    "Encoder4Editing", "EncoderConfig", "load_encoder", "save_encoder", "load_e4e",
]
