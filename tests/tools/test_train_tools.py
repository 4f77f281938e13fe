"""The training tools run end to end on a tiny image folder: a few steps, files written, export works."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoders import load_encoder
from stylegan import load_generator
from tools import train_encoder, train_stylegan


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """24 smooth random 'faces' plus a label CSV giving pairs of images one identity."""
    folder = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    rows = ["file,person_id"]
    for i in range(24):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((64, 64), Image.BILINEAR).save(folder / f"{i:03d}.jpg")
        rows.append(f"{i:03d}.jpg,{i // 2}")
    (folder / "labels.csv").write_text("\n".join(rows))
    return folder


def test_train_encoder_joint_then_export(faces, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--data", str(faces), "--new-generator", "32", "--g-channels", "32,32,16,16", "--w-dim", "16",
            "--mapping-layers", "2", "--enc-widths", "8,8,16,16", "--enc-units", "1,1,1,1", "--joint",
            "--batch", "4", "--steps", "4", "--val-every", "2", "--val-fraction", "0.3", "--no-bf16",
            "--device", "cpu", "--run", str(run)]
    assert train_encoder.main(args) == 0
    assert [int(r["step"]) for r in csv.DictReader(open(run / "log.csv"))] == [2, 4]
    assert "validation images (split by identity)" in capsys.readouterr().out
    out = tmp_path / "model.pt"
    assert train_encoder.main(["--export", str(run / "best.pt"), str(out), "--fp16"]) == 0
    assert out.stat().st_size < (run / "best.pt").stat().st_size  # fp16 weights
    G, E = load_generator(out), load_encoder(out)
    assert (G.img_resolution, G.num_ws, E.num_ws) == (32, 8, 8)


def test_train_stylegan_a_few_steps(faces, tmp_path):
    run = tmp_path / "gan"
    args = ["--data", str(faces), "--resolution", "16", "--channel-base", "128", "--channel-max", "16",
            "--w-dim", "8", "--mapping-layers", "2", "--batch", "4", "--steps", "2", "--eval-every", "2",
            "--eval-samples", "8", "--val-fraction", "0.3", "--device", "cpu", "--precision", "fp32",
            "--run", str(run)]
    assert train_stylegan.main(args) == 0
    assert (run / "best.pt").exists() and (run / "samples" / "step_000002.png").exists()
    assert load_generator(run / "best.pt").img_resolution == 16


def test_bad_data_is_one_line(tmp_path, capsys):
    assert train_encoder.main(["--data", str(tmp_path / "nowhere"), "--new-generator", "32",
                               "--run", str(tmp_path / "r")]) == 1
    assert train_stylegan.main(["--data", str(tmp_path), "--run", str(tmp_path / "r2")]) == 1  # empty folder
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


@pytest.mark.parametrize("tool", [train_encoder, train_stylegan])
def test_device_and_training_precision_in_help(tool):
    text = tool.build_parser().format_help()
    assert "--device {auto,cpu,cuda}" in text and "fp16 is refused" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without a GPU")
@pytest.mark.parametrize("tool", [train_encoder, train_stylegan])
def test_cuda_without_a_gpu_is_one_line(tool, faces, tmp_path, capsys):
    assert tool.main(["--data", str(faces), "--device", "cuda", "--run", str(tmp_path / "r")]
                     + (["--new-generator", "32"] if tool is train_encoder else [])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU is visible" in err[0]
    assert not (tmp_path / "r").exists()  # refused before any data was read


@pytest.mark.parametrize("tool", [train_encoder, train_stylegan])
def test_fp16_is_refused_in_one_line(tool, faces, tmp_path, capsys):
    assert tool.main(["--data", str(faces), "--device", "cpu", "--precision", "fp16", "--run", str(tmp_path / "r")]
                     + (["--new-generator", "32"] if tool is train_encoder else [])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "loss scaling" in err[0]
