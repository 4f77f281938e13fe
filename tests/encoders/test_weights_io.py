"""One read per weights file: a morph or an inversion deserialises its e4e/model file once (issue 8).

``torch.load`` is wrapped to count the files it is asked to read; a file holding both the
generator and the encoder (an e4e checkpoint, our model file) must be loaded exactly once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import torch

import encoders
import stylegan
from encoders import Encoder4Editing, EncoderConfig
from encoders.loader import encoder_from, load_e4e, load_models
from encoders.model_file import save_model
from encoders.morph import invert, load_models as morph_load_models
from stylegan.convert import to_rosinality
from stylegan.errors import CheckpointError
from stylegan.config import GeneratorConfig
from stylegan.networks import Generator
from stylegan.weights import generator_from, load_checkpoint

HOPPER = Path(__file__).resolve().parents[2] / "pretrained" / "examples" / "grace_hopper.jpg"


def tiny_generator() -> Generator:
    """32 px, 8 ws of 16 (z_dim = w_dim, so it can also be written in e4e's rosinality layout)."""
    torch.manual_seed(0)
    cfg = GeneratorConfig.from_channel_base(32, channel_base=256, channel_max=32, z_dim=16, w_dim=16)
    return Generator(cfg).eval().requires_grad_(False)


def tiny_encoder() -> Encoder4Editing:
    """An encoder whose codes fit :func:`tiny_generator` (8 ws of 16)."""
    torch.manual_seed(1)
    cfg = EncoderConfig(num_ws=8, w_dim=16, input_size=32, stage_widths=(4, 8, 16, 32), stage_units=(1, 1, 1, 1),
                        se_reduction=4)
    return Encoder4Editing(cfg).eval().requires_grad_(False)


def e4e_file(path: Path, G: Generator, E: Encoder4Editing) -> Path:
    """Write ``G`` and ``E`` laid out as e4e_ffhq_encode.pt: encoder.*, decoder.* (rosinality), latent_avg."""
    g_ema = to_rosinality(G)["g_ema"]
    state = {f"encoder.{k}": v for k, v in E.state_dict().items() if k != "latent_avg"}
    state.update({f"decoder.{k}": v for k, v in g_ema.items()})
    latent_avg = G.mapping.w_avg[None].repeat(E.num_ws, 1)
    torch.save({"state_dict": state, "latent_avg": latent_avg, "opts": {"start_from_latent_avg": True}}, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weights")
    G, E = tiny_generator(), tiny_encoder()
    model = folder / "model.pt"
    save_model(model, G, E)
    return {"e4e": e4e_file(folder / "e4e.pt", G, E), "model": model}


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files ``torch.load`` is asked to read (in-memory buffers, e.g. pickle storages, are not files)."""
    seen: list[str] = []
    real = torch.load

    def counting(f: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(f, (str, os.PathLike)):
            seen.append(Path(f).name)
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    monkeypatch.setenv("STYLEGAN_MORPH_OFFLINE", "1")
    return seen


@pytest.mark.parametrize("kind", ["e4e", "model"])
def test_load_models_reads_the_file_once(files: dict[str, Path], loads: list[str], kind: str) -> None:
    G, E = load_models(files[kind])
    assert loads == [files[kind].name]
    assert isinstance(G, Generator) and isinstance(E, Encoder4Editing)
    assert (E.num_ws, E.w_dim) == (G.num_ws, G.w_dim)
    loads.clear()
    G2, E2 = morph_load_models(files[kind], torch.device("cpu"), need_encoder=True)
    assert loads == [files[kind].name]
    for a, b in ((G, G2), (E, E2)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    loads.clear()
    load_e4e(files[kind])
    assert loads == [files[kind].name]


@pytest.mark.parametrize("kind", ["e4e", "model"])
def test_an_inversion_reads_the_file_once(files: dict[str, Path], loads: list[str], kind: str,
                                          tmp_path: Path) -> None:
    (result,) = invert([HOPPER], tmp_path / "out", weights=files[kind], device="cpu", refine=0)
    assert result.latent.is_file()
    assert loads == [files[kind].name]


def test_one_checkpoint_builds_both_models_like_the_single_loaders(files: dict[str, Path]) -> None:
    ckpt = load_checkpoint(files["e4e"])
    G, E = generator_from(ckpt), encoder_from(ckpt)
    G1, E1 = stylegan.load_generator(files["e4e"]), encoders.load_encoder(files["e4e"])
    for a, b in ((G, G1), (E, E1)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_generator_only_file_still_asks_for_an_encoder(tmp_path: Path, loads: list[str]) -> None:
    path = tmp_path / "g.pt"
    stylegan.save_generator(path, tiny_generator())
    G, E = load_models(path, need_encoder=False)
    assert E is None and isinstance(G, Generator)
    with pytest.raises(CheckpointError, match="photos need a model with an encoder"):
        morph_load_models(path, torch.device("cpu"), need_encoder=True)


def test_old_names_still_work() -> None:
    from stylegan.checkpoint import read_checkpoint

    assert stylegan.load_generator is stylegan.weights.load_generator
    assert callable(encoders.load_encoder) and callable(encoders.load_e4e) and callable(read_checkpoint)
    assert stylegan.UserError is stylegan.errors.UserError
    import pretrained.errors

    assert stylegan.errors.UserError is pretrained.errors.UserError
    assert stylegan.errors.CheckpointError is pretrained.errors.CheckpointError
