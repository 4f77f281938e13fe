"""Tests for stylegan.editing: directions, edits, arithmetic, style mixing, SeFa, GANSpace, InterFaceGAN."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from stylegan import Generator, GeneratorConfig
from stylegan.errors import CheckpointError, UserError
from stylegan.editing import (Direction, GaussianMapping, apply_edit, arithmetic, fit_gaussian_mapping,
                              ganspace_edit, learn_direction, load_direction, load_e4e_directions, load_e4e_pca,
                              pca_directions, project_out, resolve_layers, sefa_directions, style_mix)
from stylegan.editing.direction import MAX_FILE_BYTES
from stylegan.editing.sefa import sefa_matrix, style_affines
from stylegan.interpolation import layer_groups

E4E = Path(os.environ.get("STYLEGAN_MORPH_SHARED", Path(__file__).resolve().parents[3] / "shared")) \
    / "data" / "e4e-directions"


def tiny_generator() -> Generator:
    return Generator(GeneratorConfig.from_channel_base(32, channel_base=256, channel_max=32, z_dim=16, w_dim=16))


# ----------------------------------------------------------------------------- Direction


def test_direction_is_unit_norm_and_keeps_its_step() -> None:
    v = torch.randn(6, 16) * 7
    d = Direction(v, name="x")
    assert torch.allclose(d.vector.norm(), torch.tensor(1.0), atol=1e-6)
    assert torch.allclose(d.step, v, atol=1e-5)  # strength 1 adds exactly the given vector
    assert d.is_wplus and d.num_ws == 6 and d.w_dim == 16
    w = Direction(torch.randn(16), scale=0.5)
    assert not w.is_wplus and abs(float(w.vector.norm()) - 1) < 1e-6


@pytest.mark.parametrize("bad", [dict(vector=torch.zeros(4)), dict(vector=torch.tensor([1.0, float("nan")])),
                                 dict(vector=torch.ones(2, 2, 2)), dict(vector=torch.ones(4), scale=-1.0),
                                 dict(vector=torch.ones(3, 4), layers=(3,)), dict(vector=torch.ones(4), name=""),
                                 dict(vector=torch.ones(4), metadata={"x": object()})])
def test_direction_refuses_malformed_fields(bad: dict) -> None:
    with pytest.raises(ValueError):
        Direction(**bad)


def test_save_load_round_trip(tmp_path: Path) -> None:
    d = Direction(torch.randn(8, 16), name="age", layers=(0, 3), source="test", scale=0.25,
                  metadata={"val_accuracy": 0.9, "classes": ["young", "old"]})
    path = d.save(tmp_path / "age.pt")
    raw = torch.load(path, weights_only=True)  # our format is plain data
    assert isinstance(raw, dict) and set(raw) >= {"vector", "name", "scale"}
    e = Direction.load(path)
    assert torch.equal(e.vector, d.vector) and e.scale == d.scale
    assert (e.name, e.layers, e.source, e.metadata) == (d.name, d.layers, d.source, d.metadata)
    assert torch.equal(load_direction(path).vector, d.vector)


def test_load_refuses_malformed_and_oversized_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something else", "vector": torch.ones(3)}, bad)
    with pytest.raises(CheckpointError, match="not a direction file"):
        Direction.load(bad)
    d = Direction(torch.ones(4)).to_dict()
    d["vector"] = torch.ones(3, 3, 3)
    torch.save(d, bad)
    with pytest.raises(CheckpointError, match="malformed"):
        Direction.load(bad)
    d["vector"], d["extra"] = torch.ones(4), 1
    torch.save(d, bad)
    with pytest.raises(CheckpointError, match="unknown fields"):
        Direction.load(bad)
    big = tmp_path / "big.pt"
    big.write_bytes(b"PK" + b"\0" * (MAX_FILE_BYTES + 1))
    with pytest.raises(CheckpointError, match="too large"):
        Direction.load(big)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError):
        Direction.load(text)


# ----------------------------------------------------------------------------- edits


def test_strength_zero_is_the_identity_and_edits_add_the_step() -> None:
    ws = torch.randn(3, 8, 16)
    d = Direction(torch.randn(16), scale=0.3)
    assert torch.equal(apply_edit(ws, d, 0.0), ws)
    assert torch.equal(apply_edit(ws[0], d, 0), ws[0])
    out = apply_edit(ws, d, 2.0)
    assert torch.allclose(out - ws, (2 * d.step).expand(3, 8, 16), atol=1e-6)
    assert torch.allclose(apply_edit(out, d, -2.0), ws, atol=1e-5)  # +s then -s returns


def test_edit_layers_and_per_code_strengths() -> None:
    ws = torch.randn(2, 8, 16)
    d = Direction(torch.randn(8, 16), layers=(1, 2))
    out = apply_edit(ws, d, 1.0)
    changed = (out - ws).abs().sum(2) > 0
    assert changed[:, [1, 2]].all() and not changed[:, [0, 3, 4, 5, 6, 7]].any()
    coarse = apply_edit(ws, d, 1.0, layers="coarse")
    assert ((coarse - ws).abs().sum(2) > 0)[0].tolist() == [i in layer_groups(8)[0] for i in range(8)]
    sweep = apply_edit(ws, d, torch.tensor([0.0, 1.0]))
    assert torch.equal(sweep[0], ws[0]) and torch.allclose(sweep[1], out[1])


def test_edit_errors_name_the_parameter() -> None:
    ws = torch.randn(2, 8, 16)
    with pytest.raises(UserError, match="strength must be finite"):
        apply_edit(ws, Direction(torch.ones(16)), float("inf"))
    with pytest.raises(UserError, match="w_dim"):
        apply_edit(ws, Direction(torch.ones(4)), 1.0)
    with pytest.raises(UserError, match="positions"):
        apply_edit(ws, Direction(torch.ones(6, 16)), 1.0)
    with pytest.raises(UserError, match="ws must be"):
        apply_edit(torch.ones(16), Direction(torch.ones(16)), 1.0)
    with pytest.raises(UserError, match="layers"):
        apply_edit(ws, Direction(torch.ones(16)), 1.0, layers=[9])


def test_arithmetic() -> None:
    a, b, c = torch.randn(3, 2, 8, 16).unbind(0)
    assert torch.allclose(arithmetic(a, b, c), a - b + c, atol=1e-6)
    assert torch.allclose(arithmetic(a, b, c, scale=0.5), a + 0.5 * (c - b), atol=1e-6)
    assert torch.equal(arithmetic(a, b, c, scale=0.0), a)
    assert torch.allclose(arithmetic(a, b[:1], c[:1]), a - b[:1] + c[:1], atol=1e-6)  # one change, many codes
    with pytest.raises(UserError, match="scale must be finite"):
        arithmetic(a, b, c, scale=float("nan"))
    with pytest.raises(UserError, match="b and c"):
        arithmetic(a, b, c[:, :4])


def test_style_mix_uses_the_interpolation_groups() -> None:
    for num_ws in (8, 12, 18):
        a, b = torch.randn(2, num_ws, 4), torch.randn(2, num_ws, 4)
        for name, group in zip(("coarse", "middle", "fine"), layer_groups(num_ws)):
            if not group:
                continue
            assert resolve_layers(name, num_ws) == tuple(group)
            mixed = style_mix(a, b, name)
            from_b = (mixed == b).all(2)[0]
            assert from_b.tolist() == [i in group for i in range(num_ws)]
    a, b = torch.randn(12, 4), torch.randn(12, 4)
    mixed = style_mix(a, b, [0, 5])
    assert torch.equal(mixed[[0, 5]], b[[0, 5]]) and torch.equal(mixed[1:5], a[1:5])
    assert resolve_layers("0,2-4", 12) == (0, 2, 3, 4)
    with pytest.raises(UserError, match="no fine group"):
        resolve_layers("fine", 8)
    with pytest.raises(UserError, match="layers must be"):
        resolve_layers("wobbly", 8)


# ----------------------------------------------------------------------------- SeFa


def test_sefa_directions_are_eigenvectors_of_the_stacked_affines() -> None:
    G = tiny_generator()
    dirs = sefa_directions(G, k=4)
    a = torch.cat([w for _, _, w in style_affines(G)]).double()
    a = a / a.norm(dim=1, keepdim=True)
    ata = a.t() @ a
    assert torch.allclose(sefa_matrix(G), ata)
    values = [d.metadata["eigenvalue"] for d in dirs]
    assert values == sorted(values, reverse=True)
    for d in dirs:
        v = d.vector.double()
        assert abs(float(v.norm()) - 1) < 1e-6
        assert torch.allclose(ata @ v, d.metadata["eigenvalue"] * v, atol=1e-4)
    # the top one maximises |A v| over unit vectors: better than any random unit vector
    r = torch.randn(100, G.w_dim, dtype=torch.float64)
    r = r / r.norm(dim=1, keepdim=True)
    assert float((a @ dirs[0].vector.double()).norm()) >= float((r @ a.t()).norm(dim=1).max())


def test_sefa_on_chosen_layers() -> None:
    G = tiny_generator()
    d = sefa_directions(G, k=2, layers="coarse")
    assert d[0].layers == tuple(layer_groups(G.num_ws)[0])
    positions = {i for i, _, _ in style_affines(G)}
    assert positions == set(range(G.num_ws - 1))  # every position but the last feeds a conv


# ----------------------------------------------------------------------------- GANSpace


def test_pca_directions_follow_the_variance() -> None:
    gen = torch.Generator().manual_seed(1)
    axes = torch.linalg.qr(torch.randn(16, 16, generator=gen))[0]
    coords = torch.randn(4000, 16, generator=gen) * torch.tensor([5.0, 3.0] + [0.5] * 14)
    codes = (coords @ axes.t()).unsqueeze(1).repeat(1, 8, 1)  # mapping-style: every row the same
    dirs = pca_directions(codes, k=2)
    assert dirs[0].vector.shape == (16,)  # treated as W
    assert abs(abs(float(dirs[0].vector @ axes[:, 0])) - 1) < 1e-2
    assert abs(dirs[0].scale - 5.0) < 0.3 and abs(dirs[1].scale - 3.0) < 0.2
    wplus = pca_directions(torch.randn(50, 8, 16), k=3)
    assert wplus[0].vector.shape == (8, 16)


def _e4e_ganspace_reference(latents, pca, edits):
    """e4e's formula written out literally, one code and one edit at a time (see module docstring)."""
    out = []
    for latent in latents:
        for idx, start, end, strength in edits:
            w_centered = latent - pca["mean"]
            w_coord = torch.sum(w_centered[0].reshape(-1) * pca["comp"][idx].reshape(-1)) / pca["std"][idx]
            delta = (strength - w_coord) * pca["comp"][idx] * pca["std"][idx]
            padded = torch.zeros(latent.shape)
            padded[start:end] += delta.repeat(end - start, 1)
            out.append(latent + padded)
    return torch.stack(out)


def test_ganspace_edit_reproduces_e4e_formula() -> None:
    gen = torch.Generator().manual_seed(2)
    comp = torch.randn(10, 1, 32, generator=gen)
    pca = {"mean": torch.randn(1, 32, generator=gen), "comp": comp / comp.norm(dim=2, keepdim=True),
           "std": torch.rand(10, generator=gen) + 0.5}
    latents = torch.randn(3, 18, 32, generator=gen)
    for idx, start, end, strength in [(0, 0, 5, 2.0), (7, 4, 18, -3.5), (3, 17, 18, 0.0)]:
        ref = _e4e_ganspace_reference(latents, pca, [(idx, start, end, strength)])
        ours = ganspace_edit(latents, pca["mean"], pca["comp"], pca["std"], idx, start, end, strength)
        assert torch.allclose(ours, ref, atol=1e-5)
        # the strength is absolute: editing twice to the same target changes nothing more
        again = ganspace_edit(ours, pca["mean"], pca["comp"], pca["std"], idx, start, end, strength)
        if start == 0:
            assert torch.allclose(again, ours, atol=1e-4)


# ----------------------------------------------------------------------------- InterFaceGAN


def _separable(n: int = 600, dim: int = 32, seed: int = 0) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    normal = torch.randn(dim, generator=gen)
    normal /= normal.norm()
    x = torch.randn(n, dim, generator=gen)
    y = (x @ normal > 0).numpy().astype(int)
    x = x + torch.from_numpy(2.0 * y - 1).float().unsqueeze(1) * 0.5 * normal  # a margin
    return x, y, normal


def test_learn_direction_finds_a_separating_normal() -> None:
    x, y, normal = _separable()
    d = learn_direction(x, y, name="attr")
    assert d.metadata["val_accuracy"] >= 0.95
    assert abs(float(d.vector.norm()) - 1) < 1e-6
    assert float(d.vector @ normal) > 0.9  # points from label 0 to label 1
    x3 = x.unsqueeze(1).repeat(1, 4, 1)  # W+ codes give a W+ direction
    assert learn_direction(x3, y).vector.shape == (4, 32)


def _two_cues(n: int = 800, dim: int = 32, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Labels that one high-variance dimension (0) and one low-variance dimension (1) both reveal equally well."""
    gen = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=gen) < 0.5).long()
    side = 2.0 * y.float() - 1
    x = torch.randn(n, dim, generator=gen)
    x[:, 0] = 3.0 * x[:, 0] + 3.0 * side
    x[:, 1] = 0.05 * x[:, 1] + 0.05 * side
    return x, y.numpy()


def test_learned_normal_lies_where_the_codes_vary() -> None:
    # A generator largely ignores code dimensions its encoder barely varies: the normal must
    # weight the high-variance cue, or editing along it hardly changes the image.
    x, y = _two_cues()
    for d in (learn_direction(x, y, pca_k=8), learn_direction(x, y, pca_k=None, C=0.01)):
        assert float(d.vector[0]) > 0.8 and abs(float(d.vector[1])) < 0.3
        assert d.scale > 3.0  # one unit = the class-mean gap, mostly along dimension 0 (6 apart)
    assert learn_direction(x, y, pca_k=8).metadata["pca_k"] == 8
    # the old fit on standardised features puts nearly all its weight on the low-variance cue
    old = learn_direction(x, y, standardize=True, pca_k=None)
    assert abs(float(old.vector[1])) > 0.9 and old.metadata["standardized"]
    with pytest.raises(UserError, match="pca_k"):
        learn_direction(x, y, pca_k=0)


def test_learn_direction_fails_on_random_labels() -> None:
    x, _, _ = _separable()
    y = np.random.default_rng(0).integers(0, 2, len(x))
    d = learn_direction(x, y)
    assert d.metadata["val_accuracy"] < 0.65
    with pytest.raises(UserError, match="below min_accuracy"):
        learn_direction(x, y, min_accuracy=0.8)


def test_conditional_direction_is_orthogonal_to_the_conditions() -> None:
    x, y, _ = _separable(dim=16)
    others = [Direction(torch.randn(16), name="a"), Direction(torch.randn(16), name="b")]
    d = learn_direction(x, y, condition_on=others)
    for o in others:
        assert abs(float(d.vector @ o.vector)) < 1e-5
    assert d.metadata["conditioned_on"] == ["a", "b"]
    # W conditions on W+ codes: orthogonal to the condition repeated on every row
    v = project_out(torch.randn(4, 16), [others[0]])
    assert abs(float((v * others[0].vector).sum())) < 1e-6


def test_learn_direction_validates_inputs() -> None:
    x, y, _ = _separable()
    with pytest.raises(UserError, match="labels"):
        learn_direction(x, y[:-1])
    with pytest.raises(UserError, match="both classes"):
        learn_direction(x, np.zeros(len(x), int))


# ----------------------------------------------------------------------------- e4e files


@pytest.mark.skipif(not E4E.is_dir(), reason="shared e4e-directions not found")
def test_e4e_files_keep_their_semantics() -> None:
    for name in ("age", "smile"):
        raw = torch.load(E4E / f"{name}.pt", weights_only=True, map_location="cpu")
        d = load_e4e_directions(E4E / f"{name}.pt")[name]
        ws = torch.randn(2, 18, 512)
        assert torch.allclose(apply_edit(ws, d, 3.0), ws + 3.0 * raw, atol=1e-5)  # w + factor * direction
    raw = torch.load(E4E / "pose.pt", weights_only=True, map_location="cpu")
    pose = load_e4e_directions(E4E / "pose.pt")["pose"]
    assert pose.vector.shape == (18, 512) and torch.allclose(pose.step, raw[0], atol=1e-6)
    pcs = load_e4e_directions(E4E / "ffhq_pca.pt")
    mean, comp, std = load_e4e_pca(E4E / "ffhq_pca.pt")
    assert len(pcs) == 80 and torch.allclose(pcs["pca3"].step, comp[3] * std[3], atol=1e-5)
    assert mean.shape == (512,)


# ----------------------------------------------------------------------------- sampler


def test_gaussian_mapping_psi_zero_is_the_mean_and_samples_follow_the_codes() -> None:
    gen = torch.Generator().manual_seed(3)
    mean = torch.randn(4, 8, generator=gen)
    codes = mean + 0.1 * torch.randn(2000, 4, 8, generator=gen) * torch.linspace(0.1, 2, 32).reshape(4, 8)
    m = GaussianMapping(z_dim=16, w_dim=8, num_ws=4)
    m.load_state_dict(fit_gaussian_mapping(codes, z_dim=16))
    assert torch.allclose(m.w_avg, codes.mean(0), atol=1e-5)
    z = torch.randn(5000, 16, generator=gen)
    assert torch.allclose(m(z[:3], truncation_psi=0.0), m.w_avg.expand(3, 4, 8), atol=1e-6)
    samples = m(z)
    assert torch.allclose(samples.mean(0), codes.mean(0), atol=0.02)
    # the samples' total variance is that of the codes' top 16 principal components
    top = torch.linalg.eigvalsh(torch.cov(codes.reshape(2000, -1).double().t())).flip(0)[:16].sum()
    total = samples.reshape(5000, -1).double().var(0).sum()
    assert abs(float(total / top) - 1) < 0.06
    half = m(z[:10], truncation_psi=0.5)
    assert torch.allclose(half - m.w_avg, 0.5 * (m(z[:10]) - m.w_avg), atol=1e-5)
    with pytest.raises(ValueError):
        m(torch.randn(2, 15))
