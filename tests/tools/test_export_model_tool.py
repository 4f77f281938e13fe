"""sgm-export-model: a model file round-trips (fp32 and fp16), never overwrites its input, and the
deprecated ``train_encoder --export`` still works and says where the command went."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from encoders import load_encoder
from encoders.e4e import EncoderConfig, Encoder4Editing
from encoders.model_file import save_model
from stylegan import Generator, GeneratorConfig, load_generator
from tools import export_model, train_encoder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> tuple[Path, Generator, Encoder4Editing]:
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(32, (32, 32, 16, 16), z_dim=16, w_dim=16, mapping_layers=2)).eval()
    E = Encoder4Editing(EncoderConfig(num_ws=G.num_ws, w_dim=16, input_size=32, stage_widths=(8, 8, 16, 16),
                                      stage_units=(1, 1, 1, 1), se_reduction=4)).eval()
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, G, E)
    return path, G, E


def _same_weights(a: torch.nn.Module, b: torch.nn.Module, atol: float) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sb[k].float(), sa[k].float(), atol=atol, rtol=atol, msg=k)


@pytest.mark.parametrize("fp16", [False, True])
def test_export_round_trip(tiny_model, tmp_path, capsys, fp16):
    src, G, E = tiny_model
    out = tmp_path / "exported.pt"
    assert export_model.main([str(src), str(out)] + (["--fp16"] if fp16 else [])) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    if fp16:
        assert out.stat().st_size < 0.75 * src.stat().st_size
    _same_weights(G, load_generator(out), atol=2e-3 if fp16 else 0)
    _same_weights(E, load_encoder(out), atol=2e-3 if fp16 else 0)


def test_export_never_overwrites_its_input(tiny_model, capsys):
    src = tiny_model[0]
    before = src.read_bytes()
    assert export_model.main([str(src), str(src), "--fp16"]) == 1
    assert "overwrite" in capsys.readouterr().err
    assert src.read_bytes() == before


def test_missing_model_is_one_line(tmp_path, capsys):
    assert export_model.main([str(tmp_path / "nope.pt"), str(tmp_path / "out.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_deprecated_train_encoder_export_still_works(tiny_model, tmp_path, capsys):
    src, G, _ = tiny_model
    out = tmp_path / "old.pt"
    assert train_encoder.main(["--export", str(src), str(out), "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert "deprecated" in captured.err and "sgm-export-model" in captured.err
    _same_weights(G, load_generator(out), atol=0)
