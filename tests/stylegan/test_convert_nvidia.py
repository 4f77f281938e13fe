"""NVIDIA stylegan2-ada ``.pkl`` reader: faithful tiny pickles, identical renders, and refusing code.

The pickles here are written without NVIDIA's code: stand-in modules named
``torch_utils.persistence`` and ``dnnlib.util`` are put in ``sys.modules`` only while
pickling, so the bytes name exactly the globals a real ``network-snapshot.pkl`` names.
Each ``meta["module_src"]`` holds code that would create a marker file if anyone ran it.
"""

from __future__ import annotations

import builtins
import io
import math
import os
import pickle
import pickletools
import subprocess
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import torch

from stylegan import CheckpointError, Generator, GeneratorConfig
from stylegan.convert import read_any_generator, read_nvidia_pickle, to_rosinality
from stylegan.convert.safe_unpickle import PersistentObject, RestrictedUnpickler, load_network_pickle


def tiny_generator(seed: int = 0, lr_mul: float = 0.01, conv_clamp: float | None = None) -> Generator:
    """A 32 px generator with every tensor randomised."""
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(32, (16, 16, 12, 8), z_dim=16, w_dim=16, mapping_layers=2, mapping_lr_mul=lr_mul,
                                  conv_clamp=conv_clamp))
    with torch.no_grad():
        for t in G.state_dict().values():
            t.add_(torch.randn_like(t) * 0.2)
    return G.eval().requires_grad_(False)


def render(G: Generator) -> torch.Tensor:
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1))
    return G(z, truncation_psi=0.8, noise_mode="const")


# --------------------------------------------------------------------------- writing NVIDIA-style pickles


class _Persistent:
    """Pickles as ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, like NVIDIA's decorator."""

    def __init__(self, meta: dict) -> None:
        self.meta = meta

    def __reduce__(self) -> tuple:
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (self.meta,), None)


class _Payload:
    """Pickles as a call of ``func(*args)``: what a hostile file does."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return (self.func, self.args)


@pytest.fixture
def nvidia_names(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Stand-ins for NVIDIA's modules so that pickle can name their globals (never imported for real)."""
    persistence = types.ModuleType("torch_utils.persistence")

    def _reconstruct_persistent_obj(meta: dict) -> None:
        raise AssertionError("the stand-in is only for writing pickles")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util = types.ModuleType("dnnlib.util")

    class EasyDict(dict):
        def __getattr__(self, name: str) -> Any:
            return self[name]

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    for name, mod in [("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", persistence),
                      ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", util)]:
        monkeypatch.setitem(sys.modules, name, mod)
    return types.SimpleNamespace(EasyDict=EasyDict)


def _marker_src(marker: Path) -> str:
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('module_src ran')\n"


def persistent_tree(module: torch.nn.Module, marker: Path, names: types.SimpleNamespace,
                    init_kwargs: dict | None = None) -> _Persistent:
    """``module`` as NVIDIA pickles it: meta with module_src, class_name and the module's ``__dict__``."""
    attrs = {k: (np.float64(v) if k.endswith("_gain") else v) for k, v in vars(module).items()
             if not k.startswith("_") and k not in ("training", "config", "impl")}
    state = {
        "training": False,
        "_parameters": OrderedDict(module._parameters),
        "_buffers": OrderedDict(module._buffers),  # resample_filter included: NVIDIA's are persistent
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": OrderedDict(), "_forward_hooks": OrderedDict(), "_forward_pre_hooks": OrderedDict(),
        "_state_dict_hooks": OrderedDict(), "_load_state_dict_pre_hooks": OrderedDict(),
        "_modules": OrderedDict((n, persistent_tree(c, marker, names)) for n, c in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": names.EasyDict(init_kwargs or {}),
        **attrs,
    }
    return _Persistent(dict(type="class", version=4, module_src=_marker_src(marker),
                            class_name=f"training.networks.{type(module).__name__}", state=state))


def nvidia_snapshot(G: Generator, marker: Path, names: types.SimpleNamespace, **g_kwargs: Any) -> dict:
    """``{G, D, G_ema, training_set_kwargs, augment_pipe}`` like ``network-snapshot-*.pkl``."""
    c = G.config
    kwargs = dict(z_dim=c.z_dim, c_dim=0, w_dim=c.w_dim, img_resolution=c.img_resolution,
                  img_channels=c.img_channels,
                  mapping_kwargs=names.EasyDict(num_layers=c.mapping_layers, lr_multiplier=c.mapping_lr_mul),
                  synthesis_kwargs=names.EasyDict(channel_base=512, channel_max=16, num_fp16_res=0,
                                                  conv_clamp=c.conv_clamp, architecture="skip"))
    kwargs.update(g_kwargs)
    disc = torch.nn.Module()
    disc.register_parameter("weight", torch.nn.Parameter(torch.randn(4, 3)))
    augment = torch.nn.Module()
    augment.register_buffer("p", torch.zeros([]))
    return {
        "G": persistent_tree(G, marker, names, kwargs),
        "D": persistent_tree(disc, marker, names),
        "G_ema": persistent_tree(G, marker, names, kwargs),
        "training_set_kwargs": names.EasyDict(class_name="training.dataset.ImageFolderDataset", path="ffhq.zip",
                                              resolution=c.img_resolution, use_labels=False),
        "augment_pipe": persistent_tree(augment, marker, names),
    }


def write_pickle(obj: Any, path: Path, protocol: int = 4) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


def pickle_globals(data: bytes) -> set[str]:
    """Every ``module.name`` a pickle refers to (GLOBAL and STACK_GLOBAL opcodes)."""
    found: set[str] = set()
    pushed: list[Any] = []  # recent pushes: the string pushed, or None for anything else
    memo: dict[int, Any] = {}
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            found.add(arg.replace(" ", "."))
        elif op.name == "STACK_GLOBAL":  # module and name are the last two pushes (maybe from the memo)
            found.add(f"{pushed[-2]}.{pushed[-1]}")
        if op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1]
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[int(arg)] = pushed[-1]
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            pushed.append(memo.get(int(arg)))
        else:
            pushed.append(arg if "UNICODE" in op.name else None)
    return found


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "MARKER_code_ran"
    yield path
    assert not path.exists(), "code from the pickle was executed"


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("protocol", [3, 4])
def test_reads_snapshot_without_running_module_src(tmp_path: Path, marker: Path, nvidia_names: Any,
                                                   protocol: int) -> None:
    G = tiny_generator(lr_mul=0.05)
    path = write_pickle(nvidia_snapshot(G, marker, nvidia_names), tmp_path / "snap.pkl", protocol)
    # The fixture is faithful: the same globals as a real stylegan2-ada pickle (numpy scalars
    # come from the *_gain attributes, protocol 3 pickles sets as builtins.set).
    expected = {"torch_utils.persistence._reconstruct_persistent_obj", "dnnlib.util.EasyDict",
                "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "torch.storage._load_from_bytes",
                "collections.OrderedDict", "numpy.dtype", f"{np.float64(1).__reduce__()[0].__module__}.scalar"}
    assert pickle_globals(path.read_bytes()) == expected | ({"builtins.set"} if protocol < 4 else set())
    G2 = read_any_generator(path)
    assert G2.config == G.config  # mapping lr_mul 0.05 from the stored bias_gain
    sd, sd2 = G.state_dict(), G2.state_dict()
    assert sd.keys() == sd2.keys() and all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert torch.equal(render(G2), render(G))


def test_conv_clamp_is_read_from_the_layers(tmp_path: Path, marker: Path, nvidia_names: Any) -> None:
    G = tiny_generator(conv_clamp=256.0)
    G2 = read_nvidia_pickle(write_pickle(nvidia_snapshot(G, marker, nvidia_names), tmp_path / "s.pkl"))
    assert G2.config.conv_clamp == 256.0


def test_same_weights_in_rosinality_and_nvidia_layout_render_identically(tmp_path: Path, marker: Path,
                                                                          nvidia_names: Any) -> None:
    G = tiny_generator()
    torch.save(to_rosinality(G), tmp_path / "r.pt")
    pkl = write_pickle(nvidia_snapshot(G, marker, nvidia_names), tmp_path / "n.pkl")
    a, b = read_any_generator(tmp_path / "r.pt"), read_any_generator(pkl)
    for impl in ("ref", "fast"):
        assert torch.equal(render(a.set_impl(impl)), render(b.set_impl(impl)))


def test_official_1024_state_has_182_entries(nvidia_names: Any, marker: Path) -> None:
    """Counting only (no pickling at full size): our tree flattened the way the reader does."""
    from stylegan.convert.nvidia_pkl import collect_state_dict

    G = Generator(GeneratorConfig.from_channel_base(1024))
    tree = persistent_tree(G, marker, nvidia_names)
    state = collect_state_dict(_as_read(tree))
    assert len(state) == 182
    assert sum(v.numel() for k, v in state.items() if not k.endswith(("resample_filter", "noise_const", "w_avg"))) \
        == 30_370_060


def _as_read(p: _Persistent) -> PersistentObject:
    """What the reader's stub makes of a _Persistent (without pickling)."""
    state = dict(p.meta["state"])
    state["_modules"] = OrderedDict((n, _as_read(c)) for n, c in state["_modules"].items())
    return PersistentObject(p.meta["class_name"], state)


@pytest.mark.parametrize("protocol", [2, 3])
def test_numpy_1_scalar_name_is_accepted(protocol: int) -> None:
    """Old pickles (numpy 1.x) name ``numpy.core.multiarray.scalar``; numpy 2 writes ``numpy._core``.

    Protocol 2 writes the scalar's bytes through ``_codecs.encode(str, "latin1")``.
    """
    data = pickle.dumps(np.float64(0.125), protocol=protocol)
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert RestrictedUnpickler(io.BytesIO(old)).load() == 0.125


# --------------------------------------------------------------------------- refusing code


@pytest.mark.parametrize("make_payload, name", [
    (lambda m: _Payload(os.system, f"touch {m}"), "posix.system"),
    (lambda m: _Payload(builtins.exec, _marker_src(m)), "builtins.exec"),
    (lambda m: _Payload(builtins.open, str(m), "w"), "io.open"),
    (lambda m: _Payload(subprocess.call, ["touch", str(m)]), "subprocess.call"),
    (lambda m: _Payload(torch.load, str(m)), "torch.serialization.load"),
])
def test_code_in_the_pickle_is_refused(tmp_path: Path, marker: Path, nvidia_names: Any, make_payload: Any,
                                       name: str) -> None:
    snap = nvidia_snapshot(tiny_generator(), marker, nvidia_names)
    snap["G_ema"].meta["state"]["_modules"]["mapping"].meta["state"]["evil"] = make_payload(marker)  # deep inside
    path = write_pickle(snap, tmp_path / "evil.pkl")
    with pytest.raises(CheckpointError, match=f"refused to unpickle {name}") as info:
        read_any_generator(path)
    assert "\n" not in str(info.value)


def test_the_payloads_are_live(tmp_path: Path) -> None:
    """Control: the same module_src and payloads do run under exec / a plain unpickler."""
    control = tmp_path / "control"
    exec(_marker_src(control), {})
    assert control.read_text() == "module_src ran"
    control.unlink()
    pickle.loads(pickle.dumps(_Payload(subprocess.call, ["touch", str(control)])))
    assert control.exists()


def test_code_inside_a_tensor_storage_is_refused(tmp_path: Path, marker: Path, nvidia_names: Any) -> None:
    """``_load_from_bytes`` gets a legacy torch.save stream; a hostile one is read weights-only."""
    header = b"".join(pickle.dumps(x, protocol=2) for x in (
        0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True,
                                       "type_sizes": {"short": 2, "int": 4, "long": 4}}))
    evil = header + pickle.dumps(_Payload(os.system, f"touch {marker}"), protocol=2)
    snap = nvidia_snapshot(tiny_generator(), marker, nvidia_names)
    snap["G_ema"].meta["state"]["_buffers"]["bad"] = _Payload(torch.storage._load_from_bytes, evil)
    with pytest.raises(CheckpointError, match="tensor storage could not be read safely.*posix.system"):
        read_any_generator(write_pickle(snap, tmp_path / "evil.pkl"))


def test_plain_pickled_class_is_refused(tmp_path: Path, marker: Path) -> None:
    """A network pickled without NVIDIA's persistence (its class by name) is refused, naming it."""
    data = pickle.dumps({"G_ema": torch.nn.Linear(2, 2)})
    path = tmp_path / "plain.pkl"
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=r"refused to unpickle torch\.nn\.modules\.linear\.Linear"):
        read_any_generator(path)


def test_tensorflow_pickle_gets_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "tf.pkl"
    path.write_bytes(b"\x80\x02cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01.")
    with pytest.raises(CheckpointError, match="TensorFlow-era StyleGAN pickle.*legacy.py"):
        read_any_generator(path)


# --------------------------------------------------------------------------- other errors


def test_truncated_pickle(tmp_path: Path, marker: Path, nvidia_names: Any) -> None:
    path = write_pickle(nvidia_snapshot(tiny_generator(), marker, nvidia_names), tmp_path / "s.pkl")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="not a readable pickle, the file looks truncated") as info:
        read_any_generator(path)
    assert "\n" not in str(info.value)


def test_pickle_without_g_ema(tmp_path: Path, marker: Path, nvidia_names: Any) -> None:
    snap = nvidia_snapshot(tiny_generator(), marker, nvidia_names)
    del snap["G_ema"]
    with pytest.raises(CheckpointError, match="top-level keys: D, G, augment_pipe"):
        read_any_generator(write_pickle(snap, tmp_path / "s.pkl"))


def _edited(tmp_path: Path, marker: Path, names: Any, edit: Any, **g_kwargs: Any) -> Path:
    snap = nvidia_snapshot(tiny_generator(), marker, names, **g_kwargs)
    edit(snap["G_ema"])
    return write_pickle(snap, tmp_path / "s.pkl")


def _module(p: _Persistent, path: str) -> dict:
    for name in path.split("."):
        p = p.meta["state"]["_modules"][name]
    return p.meta["state"]


def test_missing_tensor_is_named(tmp_path: Path, marker: Path, nvidia_names: Any) -> None:
    path = _edited(tmp_path, marker, nvidia_names,
                   lambda g: _module(g, "synthesis.b16.conv1")["_buffers"].pop("noise_const"))
    with pytest.raises(CheckpointError, match=r"missing 1 \(synthesis\.b16\.conv1\.noise_const\)"):
        read_any_generator(path)


def test_wrong_noise_strength_shape_is_named(tmp_path: Path, marker: Path, nvidia_names: Any) -> None:
    path = _edited(tmp_path, marker, nvidia_names, lambda g: _module(g, "synthesis.b8.conv0")["_parameters"].update(
        noise_strength=torch.nn.Parameter(torch.zeros(1))))
    with pytest.raises(CheckpointError, match=r"synthesis\.b8\.conv0\.noise_strength is \[1\], expected \[\]"):
        read_any_generator(path)


def test_foreign_resample_filter_is_refused(tmp_path: Path, marker: Path, nvidia_names: Any) -> None:
    path = _edited(tmp_path, marker, nvidia_names,
                   lambda g: _module(g, "synthesis.b8")["_buffers"].update(resample_filter=torch.ones(4, 4) / 16))
    with pytest.raises(CheckpointError, match=r"synthesis\.b8\.resample_filter is not the \[1,3,3,1\] filter"):
        read_any_generator(path)


def test_conditional_snapshot_loads(tmp_path: Path, marker: Path, nvidia_names: Any) -> None:
    """A c_dim = 10 pickle (like NVIDIA's CIFAR-10 model): mapping.embed read, renders identical."""
    torch.manual_seed(3)
    G = Generator(GeneratorConfig(32, (16, 16, 12, 8), z_dim=16, w_dim=16, mapping_layers=2, c_dim=10))
    with torch.no_grad():
        for t in G.state_dict().values():
            t.add_(torch.randn_like(t) * 0.2)
    G.eval().requires_grad_(False)
    G2 = read_any_generator(write_pickle(nvidia_snapshot(G, marker, nvidia_names, c_dim=10), tmp_path / "c.pkl"))
    assert G2.config == G.config and G2.c_dim == 10 and "mapping.embed.weight" in G2.state_dict()
    z, c = torch.randn(3, 16), torch.eye(10)[[0, 4, 9]]
    assert torch.equal(G2(z, c, truncation_psi=0.8), G(z, c, truncation_psi=0.8))
    with pytest.raises(ValueError, match="c must be given"):
        G2(z)


def test_other_architectures_are_refused(tmp_path: Path, marker: Path, nvidia_names: Any) -> None:
    path = _edited(tmp_path, marker, nvidia_names, lambda g: None)
    snap = load_network_pickle(path)
    snap["G_ema"].state["_init_kwargs"]["synthesis_kwargs"]["architecture"] = "resnet"
    from stylegan.convert import generator_from_nvidia

    with pytest.raises(CheckpointError, match="architecture 'resnet'"):
        generator_from_nvidia(snap, "s.pkl")


def test_stylegan3_keys_get_a_clear_message() -> None:
    from stylegan.convert import generator_from_nvidia_state

    sd = {"mapping.fc0.weight": torch.zeros(4, 4), "synthesis.input.affine.weight": torch.zeros(4, 4)}
    with pytest.raises(CheckpointError, match="StyleGAN3"):
        generator_from_nvidia_state(sd, "sg3.pkl")


def test_bare_nvidia_state_dict_in_a_torch_file(tmp_path: Path) -> None:
    G = tiny_generator()
    torch.save(G.state_dict(), tmp_path / "sd.pt")
    G2 = read_any_generator(tmp_path / "sd.pt")
    assert torch.equal(render(G2), render(G)) and math.isclose(G2.config.mapping_lr_mul, 0.01)
