"""How much does the label matter? A small real-image classifier judges a conditional generator.

The classifier is trained on real images of the same classes (identity-disjoint
train/held-out split, :func:`stylegan.training.dataset.load_split`), then it labels
generated images:

* class agreement: the share of samples it assigns to their conditioning class;
* label-only paths (z fixed, c from class a to b): its mean probability of class b
  along the path, and how often its decision flips from a to b;
* noise-only paths (c fixed, z from z1 to z2): how often every point on the path
  keeps the conditioning class.

A classifier this small can be fooled by a generator's artefacts and errs on real
images too (its held-out accuracy is reported for that reason): the agreement is an
estimate of how well the label controls the class, bounded by the classifier's
own accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .dataset import ImageSet

__all__ = ["SmallClassifier", "train_classifier", "classify", "recall_per_class", "LabelEffect", "measure_label_effect"]


class SmallClassifier(nn.Module):
    """images [B, 3, R, R] in [-1, 1] -> class logits; four conv stages, global average pool."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, width * 2, width * 4, width * 4]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=[2, 3]))


@torch.no_grad()
def classify(model: nn.Module, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Class probabilities [N, num_classes] of images [N, 3, R, R] in [-1, 1]."""
    model.eval()
    return torch.cat([F.softmax(model(images[i:i + batch].float()), dim=1) for i in range(0, len(images), batch)])


def train_classifier(train: ImageSet, val: ImageSet, num_classes: int, steps: int = 1500, batch: int = 64,
                     lr: float = 2e-3, seed: int = 0, width: int = 32,
                     log: Callable[[str], None] | None = None) -> tuple[SmallClassifier, float]:
    """Train :class:`SmallClassifier` on labelled real images; returns it and its held-out accuracy.

    Batches are class-balanced (as in the GAN's training) and mirrored at random, so the
    classifier neither favours the majority class nor a face's orientation.
    """
    if train.labels is None or val.labels is None:
        raise ValueError("train and val must carry labels")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = SmallClassifier(num_classes, width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for step in range(1, steps + 1):
        model.train()
        x, y = train.sample_balanced(batch, num_classes, rng, mirror=True)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 250 == 0 or step == steps):
            log(f"classifier step {step}/{steps}: loss {loss.item():.3f}")
    probs = classify(model, val.batch(np.arange(len(val))))
    acc = float((probs.argmax(1).numpy() == val.labels).mean())
    return model, acc


def recall_per_class(model: nn.Module, images: ImageSet, class_names: list[str]) -> dict[str, float]:
    """Share of each class's images that ``model`` assigns to it (its per-class recall)."""
    if images.labels is None:
        raise ValueError("images must carry labels")
    pred = classify(model, images.batch(np.arange(len(images)))).argmax(1).numpy()
    return {name: float((pred[images.labels == k] == k).mean()) if (images.labels == k).any() else float("nan")
            for k, name in enumerate(class_names)}


@dataclass
class LabelEffect:
    """Numbers from :func:`measure_label_effect` (shares in [0, 1])."""

    agreement: float  # samples assigned to their conditioning class
    agreement_per_class: dict[str, float]
    label_path_prob_b: list[float]  # mean P(class b) at each step of the label-only paths
    label_path_flip: float  # label-only paths whose decision goes from a at t=0 to b at t=1
    noise_path_kept: float  # noise-only paths whose every point keeps the conditioning class
    noise_points_kept: float  # points on noise-only paths classified as the conditioning class
    samples: int
    paths: int
    steps: int
    extra: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def _generate(G: nn.Module, z: torch.Tensor, c: torch.Tensor, psi: float, batch: int = 128) -> torch.Tensor:
    out = [G.synthesis(G.mapping(z[i:i + batch], c[i:i + batch], truncation_psi=psi), noise_mode="const").float()
           for i in range(0, len(z), batch)]
    return torch.cat(out).clamp(-1, 1)


def _fit(images: torch.Tensor, res: int) -> torch.Tensor:
    """Resize generated images to the classifier's resolution (area filter when shrinking)."""
    if images.shape[-1] == res:
        return images
    mode = "area" if images.shape[-1] > res else "bilinear"
    return F.interpolate(images, size=(res, res), mode=mode, **({} if mode == "area" else {"align_corners": False}))


@torch.no_grad()
def measure_label_effect(G: nn.Module, model: nn.Module, res: int, class_names: list[str], samples: int = 500,
                         paths: int = 100, steps: int = 9, a: int = 0, b: int = 1, psi: float = 1.0,
                         seed: int = 0) -> LabelEffect:
    """Judge ``G``'s labels with ``model`` (trained at ``res`` px on classes in ``G``'s label order).

    Args:
        samples: generated images per class for the agreement.
        paths: label-only and noise-only paths (noise-only: half start at class a, half at b).
        steps: points per path, both ends included.
        a, b: the classes of the label-only paths.
    """
    from ..conditional import class_interp_latents, one_hot

    c_dim = G.c_dim
    gen = torch.Generator().manual_seed(seed)
    per_class = {}
    hits = 0
    for k in range(c_dim):
        z = torch.randn(samples, G.z_dim, generator=gen)
        pred = classify(model, _fit(_generate(G, z, one_hot([k] * samples, c_dim), psi), res)).argmax(1)
        per_class[class_names[k]] = float((pred == k).float().mean())
        hits += int((pred == k).sum())
    label_probs, flips, kept_paths, kept_points = [], 0, 0, 0
    for i in range(paths):
        z2 = torch.randn(2, G.z_dim, generator=gen)
        zs, cs = class_interp_latents(z2, a, b, c_dim, steps, "label")
        p = classify(model, _fit(_generate(G, zs, cs, psi), res))  # [steps, C]
        label_probs.append(p[:, b])
        flips += int(p[0].argmax() == a and p[-1].argmax() == b)
        k = a if i % 2 == 0 else b
        zs, cs = class_interp_latents(z2, k, k, c_dim, steps, "noise")
        pred = classify(model, _fit(_generate(G, zs, cs, psi), res)).argmax(1)
        kept_paths += int(bool((pred == k).all()))
        kept_points += int((pred == k).sum())
    return LabelEffect(agreement=hits / (samples * c_dim), agreement_per_class=per_class,
                       label_path_prob_b=[round(float(v), 4) for v in torch.stack(label_probs).mean(0)],
                       label_path_flip=flips / paths, noise_path_kept=kept_paths / paths,
                       noise_points_kept=kept_points / (paths * steps), samples=samples, paths=paths, steps=steps)
