"""Re-save a model file compactly (float16) for shipping."""

from __future__ import annotations

import os


from stylegan.checkpoint import atomic_torch_save, read_checkpoint
from stylegan.errors import CheckpointError

from .model_file import MODEL_FORMAT

__all__ = ["export_model"]


def export_model(src: str | os.PathLike, dst: str | os.PathLike, fp16: bool = True) -> int:
    """Copy a model file to ``dst``, casting float tensors to fp16 if asked; returns the new size in bytes.

    Buffers that need full precision for exact renders keep fp32: the stored noise
    and ``w_avg`` / ``latent_avg`` are small, and fp16 would perturb every frame.
    """
    ck = read_checkpoint(src)
    if not isinstance(ck, dict) or ck.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{src}: not a model file ({MODEL_FORMAT})")
    keep32 = ("noise_const", "w_avg", "latent_avg", "running_mean", "running_var")
    for part in ("generator", "encoder"):
        sd = ck[part]["state_dict"]
        for k, v in sd.items():
            if fp16 and v.is_floating_point() and not k.endswith(keep32):
                sd[k] = v.half()
    atomic_torch_save(ck, dst)
    return os.path.getsize(dst)
