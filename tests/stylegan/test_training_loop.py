"""The shared training loop: resume, time budget, CSV means, best/last files, autocast and device choice.

A scripted task stands in for a trainer, so every count and value below is exact;
a fake clock makes the time budget deterministic.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import stylegan.training.loop as loop
from stylegan.errors import UserError
from stylegan.training.loop import (Autocast, Schedule, TrainTask, choose_autocast, run_training, training_device,
                                    training_device_and_autocast)

HAS_CUDA = torch.cuda.is_available()


class ScriptedTask(TrainTask):
    """Counts its steps in a tensor (its whole state); evaluation returns the next value of ``metrics``."""

    state_format = "test/scripted-state/v1"
    kind = "scripted"
    metric = "score"
    log_fields = ("x", "score")
    plot_keys = ("x", "score")
    show_keys = ("score",)

    def __init__(self, metrics: list[float], clock: list[float] | None = None, eval_key: str | None = None) -> None:
        self.w = torch.zeros(())
        self.metrics, self.clock, self.eval_key = list(metrics), clock, eval_key
        self.saved: list[tuple[str, int]] = []
        self.samples: list[str] = []
        self.after = 0

    def state_dict(self):
        return {"w": self.w.detach().clone()}

    def load_state_dict(self, state):
        self.w.data.copy_(state["w"])

    def train_step(self, rng):
        self.w += 1
        if self.clock is not None:
            self.clock[0] += 30.0  # every step takes half a minute of the fake clock
        return {"x": self.w.detach().clone()}

    def evaluate(self):
        return {"score": self.metrics.pop(0)}

    def save_sample(self, path):
        self.samples.append(path.name)

    def save_model(self, path, meta):
        self.saved.append((path.name, meta["step"]))
        torch.save({"w": float(self.w), "step": meta["step"]}, path)

    def after_eval(self):
        self.after += 1


def _run(task: ScriptedTask, run: Path, total: int, **kw) -> list[str]:
    msgs: list[str] = []
    every = dict(eval_every=2, sample_every=2, ckpt_every=2)
    every.update(kw.pop("every", {}))
    run_training(task, run, Schedule(total, seed=0, **every, **kw), {"total": total}, log=msgs.append)
    return msgs


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_runs_writes_csv_means_and_last(tmp_path: Path) -> None:
    task = ScriptedTask([3.0, 1.0])
    _run(task, tmp_path, 4)
    rows = _rows(tmp_path)
    assert [int(r["step"]) for r in rows] == [2, 4]
    # The CSV holds the mean of each step scalar since the previous row: (1+2)/2, (3+4)/2.
    assert [float(r["x"]) for r in rows] == [1.5, 3.5]
    assert [float(r["score"]) for r in rows] == [3.0, 1.0]
    assert list(rows[0]) == ["step", "seconds", "x", "score", "sec_per_step"]
    assert task.samples == ["step_000002.png", "step_000004.png"] and task.after == 2
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 4
    assert json.loads((tmp_path / "train_config.json").read_text()) == {"total": 4}


def test_best_only_when_the_metric_improves(tmp_path: Path) -> None:
    task = ScriptedTask([3.0, 1.0, 2.0, 0.5, 0.5])
    msgs = _run(task, tmp_path, 10)
    assert [s for name, s in task.saved if name == "best.pt"] == [2, 4, 8]  # not 6 (worse), not 10 (equal)
    assert torch.load(tmp_path / "best.pt", weights_only=True)["step"] == 8
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["step"] == 8 and best["value"] == 0.5 and "previous best 1" in best["reason"]
    assert [m.endswith("*best*") for m in msgs] == [True, True, False, True, False]


def test_resume_continues_step_counter_state_and_best(tmp_path: Path) -> None:
    first = ScriptedTask([2.0, 1.0])
    _run(first, tmp_path, 4)
    assert torch.load(tmp_path / "state.pt", weights_only=True)["step"] == 4

    second = ScriptedTask([5.0, 0.5])  # 5 is worse than the saved best 1: no new best.pt at step 6
    msgs = _run(second, tmp_path, 8)
    assert any("resumed" in m and "at step 4" in m and "best score 1" in m for m in msgs)
    assert float(second.w) == 8  # the state was loaded (4) and four more steps ran
    assert [int(r["step"]) for r in _rows(tmp_path)] == [2, 4, 6, 8]
    assert [s for name, s in second.saved if name == "best.pt"] == [8]
    st = torch.load(tmp_path / "state.pt", weights_only=True)
    assert (st["step"], st["best"]) == (8, 0.5)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 8


def test_no_resume_starts_over(tmp_path: Path) -> None:
    _run(ScriptedTask([1.0, 1.0]), tmp_path, 4)
    task = ScriptedTask([1.0])
    msgs: list[str] = []
    run_training(task, tmp_path, Schedule(2, eval_every=2, sample_every=2, ckpt_every=2), {}, resume=False,
                 log=msgs.append)
    assert float(task.w) == 2 and not any("resumed" in m for m in msgs)


def test_changed_evaluation_data_forgets_the_best(tmp_path: Path) -> None:
    _run(ScriptedTask([0.1, 0.1], eval_key="a"), tmp_path, 4)
    task = ScriptedTask([5.0], eval_key="b")  # much worse, but on other data: not comparable, so it is the best
    _run(task, tmp_path, 6)
    assert [s for name, s in task.saved if name == "best.pt"] == [6]


def test_a_state_of_another_trainer_is_refused(tmp_path: Path) -> None:
    torch.save({"format": "something/else", "step": 3}, tmp_path / "state.pt")
    with pytest.raises(UserError, match="not a scripted training state"):
        _run(ScriptedTask([1.0]), tmp_path, 4)


def test_time_budget_stops_and_counts_across_resumes(tmp_path: Path, monkeypatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(loop.time, "time", lambda: clock[0])
    task = ScriptedTask([1.0] * 10, clock)
    msgs = _run(task, tmp_path, 100, max_minutes=2.0)  # 30 s a step: 4 steps fill 2 minutes
    assert float(task.w) == 4
    assert any("time budget of 2.0 min reached at step 4" in m for m in msgs)
    assert torch.load(tmp_path / "state.pt", weights_only=True)["seconds"] == pytest.approx(120)

    again = ScriptedTask([1.0] * 10, clock)
    _run(again, tmp_path, 100, max_minutes=3.0)  # 2 minutes already spent: one more minute, 2 steps
    assert float(again.w) == 6
    assert torch.load(tmp_path / "state.pt", weights_only=True)["step"] == 6


def test_budget_spent_before_any_step(tmp_path: Path) -> None:
    task = ScriptedTask([])
    msgs = _run(task, tmp_path, 10, max_minutes=0.0)
    assert float(task.w) == 0 and (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()
    assert any("time budget" in m for m in msgs)


def test_schedule_names_the_bad_parameter() -> None:
    with pytest.raises(UserError, match="eval_every must be >= 1"):
        Schedule(10, eval_every=0)


# ----------------------------------------------------------------------------- autocast and device


def test_fp32_is_no_autocast_on_any_device() -> None:
    for dev in ("cpu", "cuda"):
        amp = choose_autocast(dev, "fp32")
        assert (amp.device_type, amp.dtype, amp.enabled) == (dev, torch.float32, False)
    with Autocast("cpu", torch.float32)():
        assert not torch.is_autocast_enabled("cpu")


def test_bf16_autocasts_on_the_devices_own_type(monkeypatch) -> None:
    monkeypatch.setattr("stylegan.precision.cpu_has_native_bf16", lambda: True)
    amp = choose_autocast("cpu", "bf16")
    assert (amp.device_type, amp.dtype, amp.enabled) == ("cpu", torch.bfloat16, True)
    with amp():
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    # On a GPU the autocast is CUDA's: a CPU autocast would leave CUDA ops in float32 (the old bug).
    assert choose_autocast(torch.device("cuda"), "bf16") == Autocast("cuda", torch.bfloat16)


def test_auto_is_bf16_only_where_native(monkeypatch) -> None:
    monkeypatch.setattr("stylegan.precision.cpu_has_native_bf16", lambda: True)
    assert choose_autocast("cpu", "auto").dtype == torch.bfloat16
    monkeypatch.setattr("stylegan.precision.cpu_has_native_bf16", lambda: False)
    assert choose_autocast("cpu", "auto").dtype == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert choose_autocast("cuda", "auto") == Autocast("cuda", torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert choose_autocast("cuda", "auto") == Autocast("cuda", torch.float32)
    with pytest.raises(UserError, match="bf16 needs a GPU with bf16"):
        choose_autocast("cuda", "bf16")


def test_emulated_bf16_on_a_cpu_warns(monkeypatch) -> None:
    monkeypatch.setattr("stylegan.precision.cpu_has_native_bf16", lambda: False)
    msgs: list[str] = []
    assert choose_autocast("cpu", "bf16", log=msgs.append).enabled
    assert len(msgs) == 1 and "emulated" in msgs[0]


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_fp16_and_unknown_precisions_are_refused(precision: str) -> None:
    for dev in ("cpu", "cuda"):
        with pytest.raises(UserError, match="training precision must be one of auto, fp32, bf16"):
            choose_autocast(dev, precision)
    with pytest.raises(UserError, match="loss scaling"):
        choose_autocast("cuda", "fp16")


def test_training_device() -> None:
    model = torch.nn.Linear(2, 2)
    assert training_device(None, model) == torch.device("cpu")  # where the model is
    assert training_device("cpu", model) == torch.device("cpu")
    assert training_device("auto") == torch.device("cuda" if HAS_CUDA else "cpu")
    dev, amp = training_device_and_autocast("cpu", "fp32")
    assert dev == torch.device("cpu") and not amp.enabled


@pytest.mark.skipif(HAS_CUDA, reason="checks the message for a machine without a GPU")
def test_cuda_without_a_gpu_is_one_clear_error() -> None:
    with pytest.raises(UserError, match="no CUDA GPU is visible"):
        training_device("cuda")
    with pytest.raises(UserError, match="no CUDA GPU is visible"):
        training_device_and_autocast("cuda", "auto")


def test_rng_restarts_from_seed_plus_step_on_resume(tmp_path: Path) -> None:
    """A resumed run must not replay the first session's batches."""
    drawn: list[float] = []

    class Drawing(ScriptedTask):
        def train_step(self, rng):
            drawn.append(float(rng.random()))
            return super().train_step(rng)

    _run(Drawing([1.0, 1.0]), tmp_path, 4)
    _run(Drawing([1.0]), tmp_path, 6)
    assert drawn[:4] == list(np.random.default_rng(0).random(4))
    assert drawn[4:] == list(np.random.default_rng(4).random(2))
