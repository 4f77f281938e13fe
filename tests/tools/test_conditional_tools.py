"""The conditional tools end to end on tiny models: training with labels, label-vs-noise grids, measuring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylegan import Generator, GeneratorConfig, load_generator, save_generator
from tools import class_interp, measure_labels, train_stylegan


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, Path]:
    """24 images in a sub-folder, dark or bright, and a CSV naming the class by relative path."""
    root = tmp_path_factory.mktemp("labelled")
    (root / "set").mkdir()
    rng = np.random.default_rng(0)
    rows = ["file,tone"]
    for i in range(24):
        tone = i % 2
        img = (rng.random((16, 16, 3)) * 80 + tone * 150).astype(np.uint8)
        Image.fromarray(img).save(root / "set" / f"{i:03d}.png")
        rows.append(f"set/{i:03d}.png,{'bright' if tone else 'dark'}")
    rows.append("set/missing.png,dark")  # rows without an image are ignored
    (root / "tone.csv").write_text("\n".join(rows) + "\n")
    return root, root / "tone.csv"


@pytest.fixture(scope="module")
def cond_weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    G = Generator(GeneratorConfig.from_channel_base(16, 128, 16, z_dim=8, w_dim=8, mapping_layers=2, c_dim=2,
                                                    class_names=("bright", "dark")))
    path = tmp_path_factory.mktemp("w") / "cond.pt"
    save_generator(path, G)
    return path


def test_train_stylegan_with_labels(labelled, tmp_path, capsys):
    root, csv_path = labelled
    run = tmp_path / "run"
    args = ["--data", str(root), "--labels", str(csv_path), "--label-column", "tone", "--resolution", "16",
            "--channel-base", "128", "--channel-max", "16", "--w-dim", "8", "--mapping-layers", "2", "--batch", "4",
            "--steps", "2", "--eval-every", "2", "--eval-samples", "8", "--val-fraction", "0.3", "--no-bf16",
            "--run", str(run)]
    assert train_stylegan.main(args) == 0
    assert "bright (" in capsys.readouterr().out
    G = load_generator(run / "best.pt")
    assert (G.c_dim, G.class_names) == (2, ("bright", "dark"))
    assert "data:image/png;base64," in (run / "report.html").read_text()
    assert train_stylegan.main(args[:4] + ["--label-column", "nope"] + args[6:]) == 1  # unknown column: one line


def test_labels_and_column_go_together(labelled, tmp_path, capsys):
    assert train_stylegan.main(["--data", str(labelled[0]), "--labels", str(labelled[1]), "--run",
                                str(tmp_path / "run")]) == 1
    assert capsys.readouterr().err == "error: --labels and --label-column go together\n"
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_class_interp_grid_and_video(cond_weights, tmp_path):
    out = tmp_path / "lvn.png"
    assert class_interp.main(["--weights", str(cond_weights), "--from", "dark", "--to", "bright", "--steps", "4",
                              "--frames", "3", "--size", "16", "--video", str(tmp_path / "lvn.gif"), "-o", str(out),
                              "-q"]) == 0
    grid = Image.open(out)
    assert grid.size == (4 * 16 + 3 * 2, 3 * 16 + 2 * 2)  # 3 modes x 4 steps, 2 px gaps
    arr = np.asarray(grid.convert("RGB")).astype(int)
    label_row = arr[:16]
    assert np.abs(label_row[:, :16] - label_row[:, -16:]).mean() > 0  # the label path changes the face
    with Image.open(tmp_path / "lvn.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (3 * 16 + 2 * 2, 16)


def test_class_interp_errors_are_one_line(cond_weights, tmp_path, capsys):
    torch.manual_seed(0)
    plain = tmp_path / "plain.pt"
    save_generator(plain, Generator(GeneratorConfig.from_channel_base(16, 128, 16, z_dim=8, w_dim=8,
                                                                      mapping_layers=2)))
    cases = [["--weights", str(plain)], ["--weights", str(cond_weights), "--from", "grey"],
             ["--weights", str(cond_weights), "--steps", "1"], ["--weights", str(cond_weights), "-o", "x.txt"]]
    for extra in cases:
        assert class_interp.main(extra + ["--no-video", "-q"] + ([] if "-o" in extra else
                                                                 ["-o", str(tmp_path / "g.png")])) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(cases) and all(line.startswith("error: ") for line in err)
    assert "unconditional" in err[0] and "grey" in err[1] and "--steps" in err[2]


def test_measure_labels_runs(labelled, cond_weights, tmp_path, capsys):
    root, csv_path = labelled
    js = tmp_path / "m.json"
    assert measure_labels.main(["--weights", str(cond_weights), "--data", str(root), "--labels", str(csv_path),
                                "--label-column", "tone", "--classifier-steps", "10", "--classifier-width", "4",
                                "--samples", "6", "--paths", "2", "--steps", "3", "--val-fraction", "0.3",
                                "--classifier", str(tmp_path / "clf.pt"), "--json", str(js), "-q"]) == 0
    import json

    res = json.loads(js.read_text())
    assert 0 <= res["agreement"] <= 1 and len(res["label_path_prob_b"]) == 3 and res["classes"] == ["bright", "dark"]
    assert "class agreement" in capsys.readouterr().out
    js.unlink()  # again with the saved classifier: same held-out accuracy, no training
    assert measure_labels.main(["--weights", str(cond_weights), "--data", str(root), "--labels", str(csv_path),
                                "--label-column", "tone", "--samples", "6", "--paths", "2", "--steps", "3",
                                "--val-fraction", "0.3", "--classifier", str(tmp_path / "clf.pt"), "--json",
                                str(js)]) == 0
    assert json.loads(js.read_text())["classifier_heldout_accuracy"] == res["classifier_heldout_accuracy"]
    assert "classifier loaded" in capsys.readouterr().out
