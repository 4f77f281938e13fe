"""How ``rosinality_golden.pt`` was made (kept for the record; tests only read the .pt).

The fixture holds a small generator in rosinality's layout together with images that
rosinality's own ``model.py`` rendered from it, so ``test_convert_rosinality.py`` can
check our reader + synthesis against the original implementation.

Recipe (nothing from that project is committed here):

1. Fetch https://github.com/rosinality/stylegan2-pytorch (commit bef283a) and copy
   ``model.py`` and ``op/*.py`` into a throwaway folder outside this repository.
2. In that copy, replace the two ``load(...)`` calls in ``op/fused_act.py`` and
   ``op/upfirdn2d.py`` by ``None``: they compile CUDA at import, and on CPU only the
   pure-torch paths (``upfirdn2d_native``, ``F.leaky_relu``) run anyway.
3. Their channel table is fixed (512 up to 64 px); this script overrides the values of
   ``Generator.channels``' literal in the copy with a small table so the fixture stays
   tiny. Everything else is their code.
4. Copy this script into that folder (so their ``op`` package imports) and run
   ``python make_rosinality_golden.py out.pt`` there, on CPU.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch

SIZE = 64
STYLE_DIM = 32
N_MLP = 3
# Per-resolution channels; they shrink with resolution so in != out is exercised.
CHANNELS = {4: 32, 8: 32, 16: 24, 32: 16, 64: 12, 128: 8, 256: 8, 512: 8, 1024: 8}


def _patched_model_source(folder: Path) -> str:
    """Their model.py with the channel-table literal replaced by CHANNELS."""
    src = (folder / "model.py").read_text()
    new, n = re.subn(r"self\.channels = \{.*?\n        \}", f"self.channels = {CHANNELS!r}", src, count=1, flags=re.S)
    if n != 1:
        raise SystemExit("could not find the channel table in model.py")
    return new


def main(out: str) -> None:
    root = Path(__file__).resolve().parent  # the throwaway folder holding their model.py and op/
    namespace: dict = {"__name__": "rosinality_model"}
    exec(compile(_patched_model_source(root), str(root / "model.py"), "exec"), namespace)
    torch.manual_seed(1234)
    g = namespace["Generator"](SIZE, STYLE_DIM, N_MLP, channel_multiplier=2).eval()
    # Their init leaves noise weights, biases and to-RGB biases at 0 (and modulation
    # biases at 1): perturb every parameter so a mix-up of any tensor shows.
    with torch.no_grad():
        for name, p in g.named_parameters():
            p.add_(torch.randn_like(p) * 0.1)
    with torch.no_grad():
        latent_avg = g.mean_latent(4096)[0]  # [style_dim], what their convert_weight.py stores
        z = torch.randn(2, STYLE_DIM)
        ws = g.style(torch.randn(2 * g.n_latent, STYLE_DIM)).reshape(2, g.n_latent, STYLE_DIM)  # mixed W+
        img_ws, _ = g([ws], input_is_latent=True, randomize_noise=False)
        img_z, _ = g([z], truncation=0.7, truncation_latent=latent_avg, randomize_noise=False)
    torch.save({
        "g_ema": {k: v.clone() for k, v in g.state_dict().items()},
        "latent_avg": latent_avg.clone(),
        "z": z, "ws": ws, "img_ws": img_ws, "img_z_trunc07": img_z,
        "meta": {"source": "rosinality/stylegan2-pytorch@bef283a model.py (CPU paths)",
                 "size": SIZE, "style_dim": STYLE_DIM, "n_mlp": N_MLP,
                 "channels": [CHANNELS[2**i] for i in range(2, SIZE.bit_length())]},
    }, out)


if __name__ == "__main__":
    main(sys.argv[1])
