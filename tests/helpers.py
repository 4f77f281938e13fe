"""Plain helpers and constants that several test modules call directly.

Fixtures live in ``conftest.py`` (pytest finds them by name); what a test *calls* — a tiny
model builder, a photo path, a subprocess driver — lives here, so that no test module has
to import another test module (``tests/test_layers.py`` checks that).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from encoders import Encoder4Editing, EncoderConfig
from stylegan import Generator, GeneratorConfig

REPO = Path(__file__).resolve().parents[1]
HOPPER = REPO / "pretrained" / "examples" / "grace_hopper.jpg"
ASTRONAUT = REPO / "pretrained" / "examples" / "astronaut.png"


def tiny_generator(seed: int = 0) -> Generator:
    """32 px, 8 ws of 16: renders in about a millisecond per frame on a CPU."""
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig.from_channel_base(32, channel_base=256, channel_max=32, z_dim=16, w_dim=16))
    with torch.no_grad():
        for m in G.modules():  # noise strengths start at zero; make the stored noise visible
            if hasattr(m, "noise_strength"):
                m.noise_strength.fill_(0.5)
    return G.eval().requires_grad_(False)


def tiny_encoder(seed: int = 0) -> Encoder4Editing:
    """e4e with 8 ws of 16 (matches the tiny generator), reading 32 px inputs."""
    torch.manual_seed(seed)
    cfg = EncoderConfig(num_ws=8, w_dim=16, input_size=32, stage_widths=(4, 8, 8, 16), stage_units=(1, 1, 1, 1),
                        se_reduction=4)
    E = Encoder4Editing(cfg)
    with torch.no_grad():
        E.latent_avg.normal_()  # a non-zero average code, as a trained e4e has
    return E.eval().requires_grad_(False)


def count_encodes(monkeypatch) -> list[int]:
    """Count calls to ``Encoder4Editing.encode`` (one entry per call) for the rest of the test."""
    calls: list[int] = []
    original = Encoder4Editing.encode

    def counting(self, images):
        calls.append(1)
        return original(self, images)

    monkeypatch.setattr(Encoder4Editing, "encode", counting)
    return calls


def run_and_interrupt(argv: list[str], cwd: Path, started: Callable[[], bool],
                      sig: int = signal.SIGINT) -> tuple[int, str]:
    """Start a tool, wait until ``started()`` says frames are flowing, send ``sig`` (default SIGINT, Ctrl-C).

    Returns:
        The exit code and stderr.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1")  # one thread: fast start on a busy machine
    proc = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not started():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the render never started"
            time.sleep(0.1)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err
