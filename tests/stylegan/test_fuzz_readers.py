"""Fuzz every reader of user files with random bytes, random ``.npy`` headers and random configs.

Readers: ``stylegan.load_generator``, ``encoders.load_encoder``, ``encoders.load_latent``,
the NVIDIA ``.pkl`` reader (``load_network_pickle``) and ``encoders.images.load_image``.
Each must either succeed or raise :class:`stylegan.errors.UserError` (its subclass
``CheckpointError`` included): never another exception, never a hang, never a runaway
allocation. The cases run in a child process whose address space may grow only 1.5 GB
beyond its imports (issue 9), with a fixed seed, a fixed number of cases and a time cap.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import random
import signal
import struct
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

SEED = 20261202
CASES = 270  # 30 per maker, about 5 s of reading on an idle CPU; the cap below stops a slow machine
TIME_CAP_S = 25.0
CALL_TIMEOUT_S = 10  # a single read taking longer counts as a hang

_POOL: list[Any] = [0, -1, 1, 2, 3, 7, 8, 18, 512, 1025, 10**6, 10**9, 2**63, -(2**31), 10**100, 1.5, 512.0,
                    math.nan, math.inf, -math.inf, "512", "", None, True, False, [], [1] * 20, [512, -1], {"a": 1},
                    (1, 2), b"\x00"]


# ----------------------------------------------------------------------------- case makers


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """Truncate, flip, insert or overwrite bytes of a valid file."""
    data = bytearray(data)
    op = rng.randrange(4)
    if op == 0 or not data:
        return bytes(data[: rng.randrange(len(data) + 1)])
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        if op == 1:
            data[i] ^= 1 << rng.randrange(8)
        elif op == 2:
            data[i:i] = rng.randbytes(rng.randint(1, 16))
        else:
            data[i: i + 8] = struct.pack("<q", rng.choice([-1, 2**62, 2**31, 0, 10**12]))
    return bytes(data)


def _torch_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _nvidia_like_pickle(G: torch.nn.Module) -> bytes:
    """A plain pickle shaped like NVIDIA's ``network-snapshot.pkl`` (persistent objects, module states).

    A stand-in ``torch_utils.persistence`` is put in ``sys.modules`` only while pickling, so the
    bytes name the global a real snapshot names; its ``module_src`` would exit if anyone ran it.
    """
    import sys
    import types
    from collections import OrderedDict

    def _reconstruct_persistent_obj(meta: Any) -> None:  # only its name ends up in the pickle
        raise AssertionError("never called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    module = types.ModuleType("torch_utils.persistence")
    module._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]

    class Persistent:
        def __init__(self, meta: dict) -> None:
            self.meta = meta

        def __reduce__(self) -> tuple:
            return (_reconstruct_persistent_obj, (self.meta,))

    def tree(m: torch.nn.Module) -> Persistent:
        state = {"_parameters": OrderedDict((k, v.detach()) for k, v in m._parameters.items()),
                 "_buffers": OrderedDict((k, v) for k, v in m._buffers.items()
                                         if k not in m._non_persistent_buffers_set),
                 "_modules": OrderedDict((k, tree(c)) for k, c in m._modules.items()),
                 "_init_kwargs": {"c_dim": 0, "synthesis_kwargs": {"architecture": "skip"}}}
        return Persistent({"class_name": f"training.networks.{type(m).__name__}", "state": state,
                           "module_src": "raise SystemExit('module_src ran')"})

    saved = {k: sys.modules.get(k) for k in ("torch_utils", "torch_utils.persistence")}
    sys.modules.update({"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": module})
    try:
        return pickle.dumps({"G_ema": tree(G), "training_set_kwargs": None}, protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class Cases:
    """Valid seed files, and makers that derive hostile ones from them."""

    def __init__(self) -> None:
        from PIL import Image

        from encoders import Encoder4Editing, EncoderConfig
        from encoders.loader import FORMAT_TAG as ENC_TAG
        from stylegan import Generator, GeneratorConfig
        from stylegan.checkpoint import FORMAT_TAG as GEN_TAG
        from stylegan.convert import to_rosinality

        G = Generator(GeneratorConfig(16, (8, 8, 8), z_dim=8, w_dim=8, mapping_layers=2)).eval()
        E = Encoder4Editing(EncoderConfig(num_ws=6, w_dim=8, input_size=32, stage_widths=(4, 4, 8, 8),
                                          stage_units=(1, 1, 1, 1), se_reduction=2)).eval()
        self.gen = {"format": GEN_TAG, "config": G.config.to_dict(), "state_dict": G.state_dict(), "meta": {}}
        self.enc = {"format": ENC_TAG, "config": E.config.to_dict(), "state_dict": E.state_dict(), "meta": {}}
        self.rosinality = to_rosinality(G)
        npy = io.BytesIO()
        np.save(npy, np.zeros((6, 8), np.float32))
        png, jpg = io.BytesIO(), io.BytesIO()
        img = Image.fromarray(np.arange(16 * 12 * 3, dtype=np.uint8).reshape(12, 16, 3))
        img.save(png, format="PNG")
        img.save(jpg, format="JPEG")
        self.nvidia = _nvidia_like_pickle(G)
        self.valid = [self.nvidia, _torch_bytes(self.gen), _torch_bytes(self.enc), _torch_bytes(self.rosinality), npy.getvalue(),
                      png.getvalue(), jpg.getvalue(), pickle.dumps({"G_ema": None, "x": torch.zeros(3)}, protocol=4)]
        self.makers: list[Callable[[random.Random], bytes]] = [
            self.random_bytes, self.mutated, self.npy_header, self.generator_config, self.encoder_config,
            self.foreign_keys, self.plain_pickle, self.image_header, self.nvidia_mutated]

    def random_bytes(self, rng: random.Random) -> bytes:
        prefix = rng.choice([b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x04\x95", b"\x93NUMPY\x01\x00", b"\x89PNG\r\n\x1a\n",
                             b"\xff\xd8\xff", b"GIF89a", b"<html>", b"\0\0\0\x18ftypheic"])
        return prefix + rng.randbytes(rng.choice([0, 1, 7, 64, 500, 4000]))

    def mutated(self, rng: random.Random) -> bytes:
        return _mutate(rng, rng.choice(self.valid))

    def nvidia_mutated(self, rng: random.Random) -> bytes:
        return _mutate(rng, self.nvidia)

    def npy_header(self, rng: random.Random) -> bytes:
        descr = rng.choice(["<f4", "<f8", "<f2", ">f4", "|O", "<i8", "<c16", "V8", "|b1", "S5", "<U3",
                            [("a", "<f4")], "garbage", 5])
        dims = [rng.choice([0, 1, 6, 8, 18, 512, -1, 2**40, 2**62]) for _ in range(rng.randrange(5))]
        header = repr({"descr": descr, "fortran_order": rng.choice([True, False, 1, "x"]), "shape": tuple(dims)})
        if rng.random() < 0.2:
            header = header[: rng.randrange(len(header))] + rng.choice(["(", "[" * 100, "]", "\x00", "'"])
        text = header.encode("latin1", "replace") + b"\n"
        version = rng.choice([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x09\x09"])
        size = struct.pack("<H", len(text)) if version == b"\x01\x00" else struct.pack("<I", len(text))
        if rng.random() < 0.1:
            size = rng.randbytes(len(size))
        return b"\x93NUMPY" + version + size + text + rng.randbytes(rng.choice([0, 12, 192, 1000]))

    def _mutate_config(self, rng: random.Random, config: dict) -> Any:
        config = dict(config)
        if rng.random() < 0.05:
            return rng.choice(_POOL)
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(list(config) + ["unknown_field"])
            config[key] = rng.choice(_POOL)
        return config

    def _mutate_state(self, rng: random.Random, state: dict) -> Any:
        state = dict(state)
        if rng.random() < 0.05:
            return rng.choice(_POOL)
        for _ in range(rng.randint(0, 3)):
            key = rng.choice(list(state))
            op = rng.randrange(6)
            if op in (3, 4) and not (isinstance(state[key], torch.Tensor) and state[key].is_floating_point()):
                op = 2
            if op == 0:
                del state[key]
            elif op == 1:
                state[key] = torch.zeros([rng.choice([0, 1, 3, 8]) for _ in range(rng.randrange(4))])
            elif op == 2:
                state[key] = rng.choice(_POOL)
            elif op == 3:
                state[key] = state[key].clone().fill_(rng.choice([math.nan, math.inf, 1e30]))
            elif op == 4:
                state[key] = state[key].to(rng.choice([torch.int64, torch.bool, torch.complex64, torch.float16]))
            else:
                state[f"{key}.extra{rng.randrange(10**6)}"] = torch.zeros(2)
        return state

    def generator_config(self, rng: random.Random) -> bytes:
        return _torch_bytes({**self.gen, "config": self._mutate_config(rng, self.gen["config"]),
                             "state_dict": self._mutate_state(rng, self.gen["state_dict"])})

    def encoder_config(self, rng: random.Random) -> bytes:
        return _torch_bytes({**self.enc, "config": self._mutate_config(rng, self.enc["config"]),
                             "state_dict": self._mutate_state(rng, self.enc["state_dict"])})

    def foreign_keys(self, rng: random.Random) -> bytes:
        """rosinality, NVIDIA and e4e layouts with hostile indices and shapes."""
        n = lambda: rng.choice([0, 1, 2, 7, 8, 9, 100, 10**6, 10**12])  # noqa: E731
        shape = lambda: [rng.choice([0, 1, 3, 8]) for _ in range(rng.randrange(6))]  # noqa: E731
        kind = rng.randrange(3)
        if kind == 0:
            g = self._mutate_state(rng, self.rosinality["g_ema"])
            if isinstance(g, dict):
                for key in (f"style.{n()}.weight", f"to_rgbs.{n()}.bias", f"convs.{n()}.conv.weight"):
                    if rng.random() < 0.5:
                        g[key] = torch.zeros(shape())
            return _torch_bytes({"g_ema": g, "latent_avg": rng.choice([torch.zeros(8), torch.zeros(shape()), None, 3])})
        if kind == 1:
            sd = {f"mapping.fc{n()}.weight": torch.zeros(shape()), "mapping.fc0.weight": torch.zeros(shape()),
                  f"synthesis.b{rng.choice([4, 8, 16, 1024, 2048, 3, 10**6])}.conv1.weight": torch.zeros(shape()),
                  "synthesis.b4.const": torch.zeros(shape()), "synthesis.b4.torgb.weight": torch.zeros(shape())}
            return _torch_bytes(sd)
        state = {f"encoder.styles.{n()}.linear.weight": torch.zeros(shape()),
                 f"encoder.body.{n()}.res_layer.1.weight": torch.zeros(shape()),
                 "encoder.body.0.res_layer.1.weight": torch.zeros(shape()),
                 "encoder.styles.0.linear.weight": torch.zeros(shape()),
                 f"encoder.styles.0.convs.{n()}.weight": torch.zeros(shape()),
                 "encoder.body.0.res_layer.5.fc1.weight": torch.zeros(shape())}
        return _torch_bytes({"state_dict": state, "latent_avg": torch.zeros(shape()), "opts": rng.choice(_POOL)})

    def plain_pickle(self, rng: random.Random) -> bytes:
        def value(depth: int) -> Any:
            if depth > 3 or rng.random() < 0.4:
                return rng.choice(_POOL)
            if rng.random() < 0.5:
                return {rng.choice(["G_ema", "G", "state", "_modules", "x"]): value(depth + 1) for _ in range(3)}
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        data = pickle.dumps(value(0), protocol=rng.choice([2, 3, 4, 5]))
        return _mutate(rng, data) if rng.random() < 0.3 else data

    def image_header(self, rng: random.Random) -> bytes:
        side = lambda: rng.choice([0, 1, 16, 65535, 2**31 - 1, 200_000])  # noqa: E731
        return _png_header_only(side(), side())


# ----------------------------------------------------------------------------- the child


class _Hang(Exception):
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise _Hang(f"no answer within {CALL_TIMEOUT_S} s")


def run_fuzz(workdir: str, seed: int = SEED, cases: int = CASES, time_cap: float = TIME_CAP_S) -> dict:
    """Throw ``cases`` hostile files at every reader; return counts and the failures (non-UserError outcomes)."""
    import encoders
    from encoders.images import load_image
    from stylegan import load_generator
    from stylegan.convert.safe_unpickle import load_network_pickle
    from stylegan.errors import UserError

    readers: dict[str, Callable[[Path], Any]] = {
        "load_generator": load_generator, "load_encoder": encoders.load_encoder, "load_latent": encoders.load_latent,
        "load_network_pickle": load_network_pickle, "load_image": load_image,
    }
    rng = random.Random(seed)
    maker_set = Cases()
    signal.signal(signal.SIGALRM, _on_alarm)
    outcomes: Counter = Counter()
    failures: list[str] = []
    start = time.monotonic()
    done = 0
    for i in range(cases):
        if time.monotonic() - start > time_cap:
            break
        maker = maker_set.makers[i % len(maker_set.makers)]
        path = Path(workdir) / f"case{i:04d}{rng.choice(['.pt', '.pkl', '.npy', '.png', '.jpg'])}"
        path.write_bytes(maker(rng))
        for name, read in readers.items():
            signal.alarm(CALL_TIMEOUT_S)
            try:
                read(path)
                outcomes["ok"] += 1
            except UserError:
                outcomes["UserError"] += 1
            except BaseException as e:  # noqa: BLE001 - the point: anything else is a finding
                outcomes["other"] += 1
                first = " ".join(str(e).split())[:200]
                failures.append(f"{maker.__name__} -> {name}({path.name}): {type(e).__name__}: {first}")
            finally:
                signal.alarm(0)
        path.unlink()
        done += 1
    return {"cases": done, "outcomes": dict(outcomes), "failures": failures[:20],
            "seconds": round(time.monotonic() - start, 1)}


# ----------------------------------------------------------------------------- the test


@pytest.mark.slow
def test_readers_only_ever_raise_user_errors(tmp_path: Path, run_memory_limited) -> None:
    result = run_memory_limited(f"""
        import importlib.util, json
        spec = importlib.util.spec_from_file_location("fuzz_readers", {__file__!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print("RESULT", json.dumps(module.run_fuzz({str(tmp_path)!r})))
    """, headroom_gb=1.5, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert report["cases"] >= 40, report  # even a very busy machine gets through a fair sample
    assert report["failures"] == [], "\n".join(report["failures"])
    assert report["outcomes"].get("UserError", 0) > report["cases"]  # the files were hostile enough
