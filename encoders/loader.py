"""Read and write encoder weights: original e4e checkpoints and our own format.

Two layouts are understood, both read with ``torch.load(weights_only=True)``:

- **e4e** (omertov/encoder4editing, e.g. ``e4e_ffhq_encode.pt``):
  ``{"state_dict": {"encoder.*", "decoder.*"}, "latent_avg": [num_ws, 512], "opts": dict}``.
  The architecture is inferred from tensor shapes; ``decoder.*`` (the StyleGAN2
  generator) is left to :func:`stylegan.load_generator`, see :func:`load_e4e`.
- **ours**: ``{"format": FORMAT_TAG, "config": EncoderConfig fields, "state_dict", "meta"}``
  as written by :func:`save_encoder`, or the ``"encoder"`` part of a model file
  (generator + encoder, :mod:`encoders.model_file`).

A file holding both models is read once: :func:`load_models` (or
:func:`stylegan.weights.load_checkpoint` with :func:`stylegan.weights.generator_from`
and :func:`encoder_from`) builds the generator and the encoder from the same read.

Example:
    >>> enc = load_encoder("e4e_ffhq_encode.pt")          # doctest: +SKIP
    >>> ws = enc.encode(images)                           # doctest: +SKIP
    >>> enc, G = load_e4e("e4e_ffhq_encode.pt")           # doctest: +SKIP
    >>> G, enc = load_models("e4e_ffhq_encode.pt")        # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from stylegan.checkpoint import atomic_torch_save, build_checked
from stylegan.convert import MODEL_FORMAT
from stylegan.convert.e4e import DECODER_PREFIX, ENCODER_PREFIX
from stylegan.convert.rosinality import key_indices
from stylegan.errors import CheckpointError, UserError
from stylegan.networks import Generator
from stylegan.weights import Checkpoint, generator_from, load_checkpoint, resolve_weights_path

from .e4e import Encoder4Editing, EncoderConfig
__all__ = ["load_encoder", "save_encoder", "load_e4e", "load_models", "encoder_from", "check_code_sizes",
           "infer_e4e_config", "FORMAT_TAG"]

FORMAT_TAG = "stylegan-morph/e4e-encoder/v1"


def save_encoder(path: str | os.PathLike[str], encoder: Encoder4Editing, meta: dict[str, Any] | None = None) -> None:
    """Write ``encoder`` (config, weights and ``latent_avg``) in our format, atomically.

    Args:
        path: destination file; its folder is created if needed.
        encoder: the model to save.
        meta: optional plain data (strings, numbers, lists, dicts) kept alongside,
            e.g. where the weights came from.
    """
    state = {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()}
    atomic_torch_save(
        {"format": FORMAT_TAG, "config": encoder.config.to_dict(), "state_dict": state, "meta": dict(meta or {})},
        path,
    )


def load_encoder(path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> Encoder4Editing:
    """Load an e4e encoder from an original e4e checkpoint or our own format.

    Args:
        path: the weights file, a weights-registry name, or None for the registry's default model.
        device: where to put the model.

    Returns:
        The encoder in eval mode with gradients disabled; ``latent_avg`` is loaded.

    Raises:
        UserError: an unknown device, no such file, or no default model registered.
        CheckpointError: unreadable or truncated file, or weights that do not fit an e4e encoder
            (the message names the missing/unexpected keys).
    """
    from stylegan.render import resolve_device  # deferred: rendering pulls in video writing

    device = resolve_device(device)  # an unknown device fails before the file is read
    return encoder_from(load_checkpoint(_resolve(path))).to(device)


def encoder_from(ckpt: Checkpoint) -> Encoder4Editing:
    """The encoder held by a loaded checkpoint (e4e, ours, or a model file's encoder part).

    Returns:
        The encoder on the CPU in eval mode with gradients disabled.

    Raises:
        CheckpointError: the checkpoint holds no encoder, or weights that do not fit one.
    """
    return _encoder_from_checkpoint(ckpt.data, ckpt.source).eval().requires_grad_(False)


def check_code_sizes(encoder: Encoder4Editing, G: Any, source: str) -> None:
    """Refuse an encoder whose codes the generator cannot take (``num_ws`` x ``w_dim``)."""
    if (encoder.num_ws, encoder.w_dim) != (G.num_ws, G.w_dim):
        raise CheckpointError(f"{source}: the encoder makes {encoder.num_ws}x{encoder.w_dim} codes but the "
                              f"generator takes {G.num_ws}x{G.w_dim}")


def load_models(name_or_path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu",
                need_encoder: bool = True) -> tuple[Generator, Encoder4Editing | None]:
    """The generator and the encoder of one weights file, which is read (deserialised) once.

    Args:
        name_or_path: a file (e4e checkpoint, model file, or a generator-only file with
            ``need_encoder=False``), a registry name, or None for the default model.
        device: where to put both models.
        need_encoder: False to build the generator only (the encoder is then None).

    Returns:
        ``(G, E)``, both in eval mode with gradients disabled.

    Raises:
        UserError: an unknown device, no such file or registry name.
        CheckpointError: no generator, no encoder when one is needed, or code sizes that differ.
    """
    from stylegan.render import resolve_device  # deferred: rendering pulls in video writing

    device = resolve_device(device)  # an unknown device fails before the file is read
    ckpt = load_checkpoint(resolve_weights_path(name_or_path))
    G = generator_from(ckpt)
    E = encoder_from(ckpt) if need_encoder else None
    if E is not None:
        check_code_sizes(E, G, ckpt.source)
    return G.to(device), (E.to(device) if E is not None else None)


def load_e4e(path: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu") -> tuple[Encoder4Editing, Any]:
    """Load both halves of an e4e checkpoint: the encoder and its StyleGAN2 generator (``decoder.*``).

    Args:
        path: an e4e checkpoint such as ``e4e_ffhq_encode.pt``, or None for the default model.
        device: where to put both models.

    Returns:
        ``(encoder, G)``; ``G`` is what :func:`stylegan.load_generator` returns
        (``G.synthesis(ws, noise_mode="const")`` renders ``encoder.encode(images)``).
        The file is read once (:func:`load_models`).

    Raises:
        CheckpointError: as :func:`load_encoder`, or when the generator's ``num_ws``/``w_dim``
            differ from the encoder's.
    """
    G, encoder = load_models(_resolve(path), device=device)
    return encoder, G


def infer_e4e_config(state: dict[str, torch.Tensor]) -> EncoderConfig:
    """Work out the :class:`EncoderConfig` of an e4e ``encoder.*`` state dict (prefix removed).

    - ``num_ws``: the number of ``styles.{i}`` heads;
    - ``w_dim``: rows of ``styles.0.linear.weight``;
    - ``input_size``: head 0 reads c3 (input / 16) with log2(c3) stride-2 convs;
    - stages: a new stage starts at unit 0 and at every unit that changes width
      (the only ones with a ``shortcut_layer`` conv); widths come from ``res_layer.1``;
    - ``se_reduction``: stage-1 width over the rows of ``res_layer.5.fc1``.

    Stages are told apart by their change of width, so two adjacent stages of
    equal width cannot be inferred (no IR-SE variant has them; our own format
    stores the config instead).

    Args:
        state: encoder weights keyed as in the original (``body.0.res_layer.1.weight``, ...).

    Returns:
        The config; the caller still checks every key and shape against it.

    Raises:
        CheckpointError: when a tensor needed for the inference is absent or the
            shapes describe something that is not an e4e encoder.
    """
    try:
        heads = key_indices(state, r"styles\.(\d{1,6})\.")
        units = key_indices(state, r"body\.(\d{1,6})\.")
        if not heads or not units:
            raise KeyError("styles.* or body.*")
        w_dim = state["styles.0.linear.weight"].shape[0]
        head0_convs = len(key_indices(state, r"styles\.0\.convs\.(\d{1,6})\.weight"))
        widths: list[int] = []
        counts: list[int] = []
        for n in range(max(units) + 1):
            out_ch, in_ch = state[f"body.{n}.res_layer.1.weight"].shape[:2]
            if n == 0 or in_ch != out_ch:
                widths.append(int(out_ch))
                counts.append(0)
            counts[-1] += 1
        se_hidden = state["body.0.res_layer.5.fc1.weight"].shape[0]
    except KeyError as err:
        raise CheckpointError(f"not an e4e encoder: no {err.args[0]} weights to infer its shape from") from None
    except (AttributeError, IndexError, TypeError, ValueError):  # a non-tensor, or a tensor of the wrong rank
        raise CheckpointError("not an e4e encoder: its body/styles weights are not 4-D/2-D tensors") from None
    try:
        return EncoderConfig(
            num_ws=max(heads) + 1,
            w_dim=int(w_dim),
            input_size=16 * 2**head0_convs,
            stage_widths=tuple(widths),
            stage_units=tuple(counts),
            se_reduction=max(1, widths[0] // int(se_hidden)),
        )
    except (ValueError, ZeroDivisionError) as err:
        raise CheckpointError(f"not an e4e encoder this code supports: {err}") from None


# --------------------------------------------------------------------------- helpers


def _resolve(path: str | os.PathLike[str] | None) -> Path:
    """The file to read for a path, a weights-registry name, or None ("default"), as everywhere else.

    Only the message for a missing default model differs: it suggests an encoder checkpoint.
    """
    try:
        return resolve_weights_path(path)
    except UserError as err:
        if path is not None:
            raise  # its message names the known models
        raise UserError(f"no default encoder weights ({err}); pass a checkpoint such as e4e_ffhq_encode.pt") from None


def _encoder_from_checkpoint(ckpt: Any, source: str) -> Encoder4Editing:
    """Dispatch on the layout of a loaded checkpoint."""
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{source}: not an encoder checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    if ckpt.get("format") == FORMAT_TAG:
        return _from_ours(ckpt, source)
    if ckpt.get("format") == MODEL_FORMAT:  # generator + encoder in one file (encoders.model_file)
        if not isinstance(ckpt.get("encoder"), dict):
            raise CheckpointError(f"{source}: model file without an encoder part")
        return _from_ours(ckpt["encoder"], source)
    if "format" in ckpt:
        raise CheckpointError(f"{source}: holds a {ckpt['format']!r} file, not an encoder")
    state = ckpt.get("state_dict")
    if isinstance(state, dict) and any(isinstance(k, str) and k.startswith(ENCODER_PREFIX) for k in state):
        return _from_e4e(ckpt, state, source)
    if "g_ema" in ckpt or "G_ema" in ckpt:
        raise CheckpointError(f"{source}: holds a StyleGAN generator only, no encoder")
    keys = ", ".join(sorted(map(str, ckpt))[:6]) or "nothing"
    raise CheckpointError(f"{source}: not an e4e or encoder checkpoint (top-level keys: {keys})")


def _from_ours(ckpt: dict[str, Any], source: str) -> Encoder4Editing:
    """Rebuild from ``{format, config, state_dict, meta}``."""
    try:
        config = EncoderConfig.from_dict(dict(ckpt["config"]))
        state = dict(ckpt["state_dict"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: broken encoder file ({err})") from None
    return _build(config, state, source)


def _from_e4e(ckpt: dict[str, Any], state: dict[str, Any], source: str) -> Encoder4Editing:
    """Rebuild from an original e4e checkpoint (``encoder.*`` keys, ``latent_avg``, ``opts``)."""
    foreign = sorted(k for k in state if not k.startswith((ENCODER_PREFIX, DECODER_PREFIX)))
    if foreign:
        more = ", ..." if len(foreign) > 5 else ""
        raise CheckpointError(f"{source}: unexpected {len(foreign)} keys outside encoder.*/decoder.* "
                              f"({', '.join(foreign[:5])}{more})")
    enc = {k[len(ENCODER_PREFIX):]: v for k, v in state.items() if k.startswith(ENCODER_PREFIX)}
    try:
        config = infer_e4e_config(enc)
    except CheckpointError as err:
        raise CheckpointError(f"{source}: {err}") from None

    # The original pSp wrapper adds latent_avg only with opts.start_from_latent_avg,
    # and its trainer saves latent_avg only in that case; without it codes are used as is.
    opts = ckpt.get("opts") if isinstance(ckpt.get("opts"), dict) else {}
    avg = ckpt.get("latent_avg")
    if opts.get("start_from_latent_avg") is False:
        avg = None
    elif avg is None and opts.get("start_from_latent_avg"):
        raise CheckpointError(f"{source}: opts.start_from_latent_avg is set but the file has no latent_avg")
    if avg is None:
        avg = torch.zeros(config.num_ws, config.w_dim)
    elif not isinstance(avg, torch.Tensor) or tuple(avg.shape) not in {(config.w_dim,), (config.num_ws, config.w_dim)}:
        shape = tuple(avg.shape) if isinstance(avg, torch.Tensor) else type(avg).__name__
        raise CheckpointError(f"{source}: latent_avg is {shape}, expected [{config.num_ws}, {config.w_dim}]")
    enc["latent_avg"] = avg.expand(config.num_ws, config.w_dim)
    return _build(config, enc, source)


def _build(config: EncoderConfig, state: dict[str, Any], source: str) -> Encoder4Editing:
    """Check keys, shapes and values of ``state`` exactly, then construct the model and load it (fp32).

    The check runs before any weight is allocated (:func:`stylegan.checkpoint.build_checked`).
    """
    bad = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise CheckpointError(f"{source}: non-tensor entries in the weights ({', '.join(bad[:5])})")
    return build_checked(lambda: Encoder4Editing(config), state, source)
