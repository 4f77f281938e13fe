"""Encoders that map photos to StyleGAN latents, and the face alignment they need."""

# Face alignment and image loading.
from .align import FaceAligner, NoFaceError, align_face, detect_faces
from .images import load_image

# e4e encoder (IR-SE50) and its weights.
from .e4e import Encoder4Editing, EncoderConfig
from .loader import load_e4e, load_encoder, save_encoder

__all__ = [
    # Face alignment and image loading.
    "FaceAligner", "NoFaceError", "align_face", "detect_faces", "load_image",
    # e4e encoder (IR-SE50) and its weights.
    "Encoder4Editing", "EncoderConfig", "load_encoder", "save_encoder", "load_e4e",
]

# Morph pipeline: photos or latents -> a rendered interpolation.
from .morph import invert, load_latent, morph, save_latent

__all__ += ["morph", "invert", "load_latent", "save_latent"]

# Many photos: folder inversion, a content-addressed code cache, latent maps.
from .batch_invert import invert_folder
from .code_cache import CachedEncoder, CodeCache, photo_key
from .latent_map import latent_map

__all__ += ["invert_folder", "CodeCache", "CachedEncoder", "photo_key", "latent_map"]
