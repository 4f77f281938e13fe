"""How ``nvidia_cond_golden.pt`` was made (kept for the record; tests only read the .pt).

The fixture holds a tiny class-conditional generator in NVIDIA's stylegan2-ada layout
(``G.state_dict()``, ``mapping.embed.*`` included) with the ``ws`` and images that
NVIDIA's own ``training/networks.py`` computed from it, so ``test_conditional.py``
can check our label embedding, mapping and synthesis against the original.

Recipe (nothing from that project is committed here):

1. Fetch https://github.com/NVlabs/stylegan2-ada-pytorch (commit d72cc7d) into a
   throwaway folder outside this repository (``git archive HEAD | tar -x``).
2. Copy this script into that folder and run ``python make_nvidia_cond_golden.py out.pt``
   there, on CPU. Their ops take the reference (pure PyTorch) paths on CPU tensors, and
   ``num_fp16_res = 0`` keeps everything in fp32; no custom op is built.
"""

from __future__ import annotations

import sys

import torch

Z_DIM, C_DIM, W_DIM, RES, LAYERS = 12, 5, 16, 16, 2
CHANNEL_BASE, CHANNEL_MAX = 128, 16  # channels 16, 16, 8 for 4, 8, 16 px: in != out is exercised
PSI = 0.7


def main(out: str) -> None:
    from training.networks import Generator  # their code, from the working directory

    torch.manual_seed(1234)
    G = Generator(z_dim=Z_DIM, c_dim=C_DIM, w_dim=W_DIM, img_resolution=RES, img_channels=3,
                  mapping_kwargs=dict(num_layers=LAYERS),
                  synthesis_kwargs=dict(channel_base=CHANNEL_BASE, channel_max=CHANNEL_MAX, num_fp16_res=0)).eval()
    # Their init leaves biases, noise strengths and w_avg at 0: perturb every tensor
    # except the fixed resample filters so that a mix-up of any of them shows.
    with torch.no_grad():
        for name, t in G.state_dict().items():
            if not name.endswith("resample_filter"):
                t.add_(torch.randn_like(t) * 0.2)
    z = torch.randn(4, Z_DIM)
    c = torch.zeros(4, C_DIM)
    c[0, 0] = c[1, 3] = c[2, 4] = 1  # one-hot rows
    c[3] = torch.softmax(torch.randn(C_DIM), 0)  # and a soft label
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=PSI)
        img = G.synthesis(ws, noise_mode="const")
    torch.save({"state_dict": {k: v.clone() for k, v in G.state_dict().items()}, "z": z, "c": c,
                "truncation_psi": PSI, "ws": ws, "img": img,
                "source": "NVlabs/stylegan2-ada-pytorch d72cc7d training/networks.py, CPU, fp32"}, out)
    print(f"wrote {out}: ws {tuple(ws.shape)}, img {tuple(img.shape)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "nvidia_cond_golden.pt")
