"""Class-conditional generators: NVIDIA's label semantics, parity with their code, our format, D, report."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan import Generator, GeneratorConfig, load_generator, save_generator
from stylegan.conditional import MODES, class_index, class_interp_latents, class_interp_ws
from stylegan.convert import generator_from_nvidia_state
from stylegan.errors import UserError
from stylegan.training.dataset import ImageSet, read_class_labels
from stylegan.training.discriminator import Discriminator
from stylegan.training.gan import GanTrainConfig, train_gan

GOLDEN = Path(__file__).parent / "data" / "nvidia_cond_golden.pt"


def cond_generator(c_dim: int = 3, names: tuple[str, ...] = ()) -> Generator:
    torch.manual_seed(0)
    G = Generator(GeneratorConfig.from_channel_base(16, 128, 16, z_dim=8, w_dim=8, mapping_layers=2, c_dim=c_dim,
                                                    class_names=names))
    with torch.no_grad():
        for t in G.state_dict().values():
            t.add_(torch.randn_like(t) * 0.2)
    return G.eval().requires_grad_(False)


def test_conditional_mapping_needs_c_of_the_right_shape() -> None:
    G = cond_generator()
    z = torch.randn(2, 8)
    with pytest.raises(ValueError, match=r"conditional: c must be given as \[B, 3\]"):
        G.mapping(z)
    for bad in (torch.zeros(2, 2), torch.zeros(3, 3), torch.zeros(2)):
        with pytest.raises(ValueError, match=r"c must be \[2, 3\]"):
            G.mapping(z, bad)
    a, b = torch.eye(3)[[0, 0]], torch.eye(3)[[1, 1]]
    wa, wb = G.mapping(z, a), G.mapping(z, b)
    assert wa.shape == (2, G.num_ws, 8) and not torch.allclose(wa, wb)  # the label matters
    assert G(z, a).shape == (2, 3, 16, 16)


def test_label_embedding_follows_nvidia_semantics() -> None:
    """embed(c) and z are each scaled to unit mean square, then concatenated before fc0."""
    G = cond_generator()
    m = G.mapping
    z, c = torch.randn(4, 8) * 3, torch.softmax(torch.randn(4, 3), 1)
    norm = lambda x: x / x.square().mean(1, keepdim=True).add(1e-8).sqrt()  # noqa: E731
    x = torch.cat([norm(z), norm(m.embed(c))], 1)
    for i in range(m.num_layers):
        x = getattr(m, f"fc{i}")(x)
    assert m.fc0.in_features == 16 and torch.allclose(m(z, c)[:, 0], x, atol=1e-6)


def test_unconditional_mapping_is_unchanged() -> None:
    torch.manual_seed(0)
    G = Generator(GeneratorConfig.from_channel_base(16, 128, 16, z_dim=8, w_dim=8, mapping_layers=2))
    assert not hasattr(G.mapping, "embed") and G.mapping.fc0.in_features == 8 and G.c_dim == 0
    z = torch.randn(3, 8)
    x = z * (z.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()  # the pre-conditional formula
    for i in range(2):
        x = getattr(G.mapping, f"fc{i}")(x)
    assert torch.equal(G.mapping(z)[:, 0], x) and torch.equal(G.mapping(z, None), G.mapping(z))
    with pytest.raises(ValueError, match="unconditional"):
        G.mapping(z, torch.zeros(3, 2))


@pytest.mark.parametrize("impl", ["ref", None])
def test_parity_with_nvidia_conditional_generator(impl: str | None) -> None:
    """ws and images of NVIDIA's own code on random weights (see data/make_nvidia_cond_golden.py)."""
    g = torch.load(GOLDEN, weights_only=True)
    G = generator_from_nvidia_state(g["state_dict"], "golden").set_impl(impl)
    assert G.c_dim == g["c"].shape[1] == 5
    ws = G.mapping(g["z"], g["c"], truncation_psi=g["truncation_psi"])
    assert (ws - g["ws"]).abs().max() <= 1e-4
    img = G.synthesis(ws, noise_mode="const")
    assert (img - g["img"]).abs().max() <= 1e-4
    assert g["img"].std() > 0.1  # not a trivially flat image


def test_own_format_round_trips_c_dim_and_class_names(tmp_path: Path) -> None:
    G = cond_generator(2, ("female", "male"))
    save_generator(tmp_path / "g.pt", G, dtype=torch.float16)
    G2 = load_generator(tmp_path / "g.pt")
    assert (G2.c_dim, G2.class_names, G2.config) == (2, ("female", "male"), G.config)
    z, c = torch.randn(2, 8), torch.eye(2)
    assert torch.allclose(G2(z, c), G(z, c), atol=0.05)  # fp16 storage


def test_config_checks_class_names() -> None:
    with pytest.raises(ValueError, match="class_names must name all 2 classes"):
        GeneratorConfig.from_channel_base(16, 128, 16, c_dim=2, class_names=("a",))
    cfg = GeneratorConfig.from_channel_base(16, 128, 16, c_dim=2, class_names=["a", "b"])
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg


def test_projection_discriminator() -> None:
    D = Discriminator(16, 128, 16, c_dim=3, mapping_layers=2)
    x, c = torch.randn(4, 3, 16, 16), torch.eye(3)[[0, 1, 2, 0]]
    out = D(x, c)
    assert out.shape == (4, 1) and D.cmap_dim == 16
    assert not torch.allclose(out, D(x, torch.eye(3)[[1, 2, 0, 1]]))  # the label changes the verdict
    with pytest.raises(ValueError, match=r"c must be \[4, 3\]"):
        D(x)
    assert Discriminator(16, 128, 16)(x).shape == (4, 1)  # unconditional as before


def test_class_interp_paths() -> None:
    z = torch.randn(2, 8)
    zl, cl = class_interp_latents(z, 0, 2, 3, 5, "label")
    zn, cn = class_interp_latents(z, 0, 2, 3, 5, "noise")
    zb, cb = class_interp_latents(z, 0, 2, 3, 5, "both")
    assert torch.equal(zl, z[:1].expand(5, -1)) and torch.equal(cl[2], torch.tensor([0.5, 0, 0.5]))
    assert torch.equal(cn, torch.eye(3)[[0] * 5]) and torch.allclose(zn[-1], z[1]) and torch.allclose(zn[0], z[0])
    assert torch.equal(cb, cl) and torch.equal(zb, zn)
    G = cond_generator(3, ("a", "b", "c"))
    ws = class_interp_ws(G, z, 0, 2, 5)
    assert set(ws) == set(MODES) and ws["label"].shape == (5, G.num_ws, 8)
    assert class_index(G, "c") == 2 and class_index(G, 1) == 1
    with pytest.raises(UserError, match="unknown class 'd'"):
        class_index(G, "d")
    with pytest.raises(UserError, match="out of range"):
        class_index(G, 3)


def test_read_class_labels(tmp_path: Path) -> None:
    p = tmp_path / "l.csv"
    p.write_text("file,g\na/1.jpg,female\n2.jpg,male\n3.jpg,\n")
    labels, names = read_class_labels(p, "g")
    assert labels == {"a/1.jpg": "female", "2.jpg": "male"} and names == ["female", "male"]
    with pytest.raises(UserError, match="needs columns 'file' and 'age'"):
        read_class_labels(p, "age")
    p.write_text("file,g\n1.jpg,x\n")
    with pytest.raises(UserError, match="holds 1 classes"):
        read_class_labels(p, "g")


def test_balanced_sampling() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    s = ImageSet(np.zeros((100, 4, 4, 3), np.uint8), labels)
    _, cls = s.sample_balanced(2000, 2, np.random.default_rng(0))
    assert 0.45 < cls.float().mean().item() < 0.55  # balanced although 90% of images are class 0


def _labelled_blobs(n: int, seed: int) -> ImageSet:
    """Class 0: dark images, class 1: bright ones."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    imgs = (rng.random((n, 16, 16, 3)) * 80 + labels[:, None, None, None] * 150).astype(np.uint8)
    return ImageSet(imgs, labels)


def test_conditional_training_writes_a_self_contained_report(tmp_path: Path) -> None:
    G = Generator(GeneratorConfig.from_channel_base(16, 128, 16, z_dim=8, w_dim=8, mapping_layers=2, c_dim=2,
                                                    class_names=("dark", "bright")))
    D = Discriminator(16, 128, 16, c_dim=2, mapping_layers=2)
    cfg = GanTrainConfig(batch_size=4, total_steps=4, eval_every=2, sample_every=2, ckpt_every=2,
                         eval_samples=16, r1_interval=2, bf16=False)
    best = train_gan(G, D, _labelled_blobs(32, 0), _labelled_blobs(16, 1), tmp_path, cfg, log=lambda s: None)
    assert load_generator(best).class_names == ("dark", "bright")
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["step"] for r in rows] == ["2", "4"]
    assert all(0 <= float(r["d_acc_real"]) <= 1 and 0 <= float(r["d_acc_fake"]) <= 1 for r in rows)
    from PIL import Image

    grid = Image.open(tmp_path / "samples" / "step_000004.png")
    assert grid.size == (8 * 16, 2 * 16)  # one row per class, 8 fixed z
    page = (tmp_path / "report.html").read_text()
    assert "step 4" in page and "dark" in page and "bright" in page and "Best checkpoint" in page
    assert "from step 2" in page or "from step 4" in page
    srcs = re.findall(r"""(?:src|href)=['"]([^'"]+)""", page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)  # no external assets
    assert page.count("data:image/png;base64,") == 2 + 1  # two grids and the curves


def test_trainer_refuses_mismatched_d(tmp_path: Path) -> None:
    G = cond_generator(2)
    with pytest.raises(UserError, match="c_dim"):
        train_gan(G, Discriminator(16, 128, 16), _labelled_blobs(8, 0), _labelled_blobs(8, 1), tmp_path,
                  GanTrainConfig(total_steps=1), log=lambda s: None)
