"""The training loop every trainer shares: resume, time budget, logging, best/last checkpoints, autocast.

A trainer (:func:`stylegan.training.gan.train_gan`, :func:`encoders.training.train_encoder`)
describes only what is its own as a :class:`TrainTask`: one optimisation step, one
evaluation, a sample grid, how its model file is written and what its resumable state
holds. :func:`run_training` owns everything around that:

* **resume**: ``<run>/state.pt`` (written atomically every ``ckpt_every`` steps and at
  the end) holds the task's state plus ``step``, ``best``, ``seconds`` and the config;
  running again with ``resume=True`` continues from it. The time budget counts the
  seconds of earlier sessions.
* **logging**: ``<run>/log.csv`` (appended across resumes) gets one row per evaluation:
  the *mean* of every step scalar since the previous row (one batch is too noisy to
  plot), the evaluation metrics and ``sec_per_step``; ``<run>/losses.png`` is redrawn
  and one progress line goes to ``log``.
* **best/last**: after each evaluation ``<run>/best.pt`` is rewritten when the task's
  metric is lower than every earlier one, with ``<run>/best.json`` saying why; the end
  of the run writes ``<run>/last.pt`` (and ``best.pt`` if no evaluation ran).
* **autocast** from the device and precision, see :func:`choose_autocast`.

Example:
    >>> amp = choose_autocast("cpu", "fp32")
    >>> amp.device_type, amp.dtype, amp.enabled
    ('cpu', torch.float32, False)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Mapping, Sequence

import numpy as np
import torch

from ..checkpoint import atomic_torch_save, read_checkpoint
from ..errors import UserError
from ..fileio import atomic_write_text
from ..precision import autocast, resolve_precision
from ..render import resolve_device
from .logging import CsvLog, plot_losses

__all__ = ["TRAIN_PRECISIONS", "Autocast", "choose_autocast", "training_device", "training_device_and_autocast",
           "Schedule", "TrainTask", "run_training"]

#: What a trainer accepts as ``precision``. fp16 is left out on purpose: fp16 training needs
#: loss scaling (a GradScaler) to keep small gradients from flushing to zero, and the GAN's
#: lazy R1 penalty (a double backward) overflows fp16 easily. bf16 has float32's range, needs
#: no scaler, and is what both CPUs with AMX and CUDA GPUs since Ampere do natively.
TRAIN_PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class Autocast:
    """How a trainer's forward passes run: ``torch.autocast(device_type, dtype)``, or plainly for float32.

    Weights, optimiser state and losses stay float32 either way (autocast casts per op).
    """

    device_type: str
    dtype: torch.dtype

    @property
    def enabled(self) -> bool:
        return self.dtype != torch.float32

    def __call__(self) -> ContextManager[None]:
        return autocast(self.dtype, self.device_type)


def choose_autocast(device: str | torch.device, precision: str = "auto",
                    log: Callable[[str], None] | None = None) -> Autocast:
    """The autocast for training on ``device`` in ``precision`` (``auto``, ``fp32`` or ``bf16``).

    The device type of the autocast is the device's own, so bf16 on a GPU really runs in
    bf16 (``torch.autocast("cpu")`` does nothing to CUDA tensors). ``auto`` is bf16 where
    the hardware does it natively, a CUDA GPU since Ampere or a CPU with AMX or
    AVX512-BF16, else float32: emulated bf16 trains many times slower than float32.

    Args:
        device: where the models train (already resolved; this function does not check
            that a GPU is present, :func:`training_device` does).
        precision: see :data:`TRAIN_PRECISIONS`.
        log: receives the warning that bf16 on this CPU is emulated and slow.

    Raises:
        UserError: fp16 or an unknown precision, or bf16 on a visible GPU without bf16.
    """
    device = torch.device(device)
    if precision not in TRAIN_PRECISIONS:
        extra = " (fp16 training would need loss scaling; use bf16)" if precision == "fp16" else ""
        raise UserError(f"training precision must be one of {', '.join(TRAIN_PRECISIONS)}, got {precision!r}"
                        f"{extra}")
    if device.type != "cuda":
        return Autocast(device.type, resolve_precision(precision, device, log=log))
    gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if precision == "bf16" and torch.cuda.is_available() and not gpu_bf16:
        raise UserError("precision bf16 needs a GPU with bf16 (Ampere or newer); use fp32")
    bf16 = precision == "bf16" or (precision == "auto" and gpu_bf16)
    return Autocast("cuda", torch.bfloat16 if bf16 else torch.float32)


def training_device(device: str | torch.device | None, model: torch.nn.Module | None = None) -> torch.device:
    """``device`` resolved by :func:`stylegan.render.resolve_device` (a missing GPU is one UserError).

    None means where ``model`` is, which keeps the behaviour of callers that predate the
    parameter: the models train where they already are. None without a model is ``auto``.
    """
    if device is None and model is not None:
        return next(model.parameters()).device
    return resolve_device(device)


def training_device_and_autocast(device: str | torch.device | None, precision: str,
                                 model: torch.nn.Module | None = None,
                                 log: Callable[[str], None] | None = None) -> tuple[torch.device, Autocast]:
    """:func:`training_device` and :func:`choose_autocast` in one call.

    A tool calls it before reading any data, so that a missing GPU or fp16 fails at once.
    """
    dev = training_device(device, model)
    return dev, choose_autocast(dev, precision, log=log)


@dataclass(frozen=True)
class Schedule:
    """When the loop stops, evaluates, draws samples and writes the resumable state (in steps)."""

    total_steps: int
    max_minutes: float | None = None
    eval_every: int = 500
    sample_every: int = 500
    ckpt_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("total_steps", "eval_every", "sample_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_minutes is not None and not self.max_minutes >= 0:
            raise UserError(f"max_minutes must be >= 0, got {self.max_minutes}")


class TrainTask:
    """What a trainer gives :func:`run_training`. Subclasses set the attributes and the methods.

    Attributes:
        state_format: the ``format`` tag of ``state.pt``; a state with another tag is refused.
        kind: names the trainer in messages ("not a GAN training state").
        metric: the evaluation value whose lowest value picks ``best.pt``.
        log_fields: the CSV columns besides ``step``, ``seconds`` and ``sec_per_step``.
        plot_keys: the columns drawn in ``losses.png``.
        show_keys: the values in each progress line.
        eval_key: identifies the evaluation data; a resumed run whose state names other
            data forgets its best score, which is not comparable. None: no check.
    """

    state_format: str = ""
    kind: str = ""
    metric: str = ""
    log_fields: Sequence[str] = ()
    plot_keys: Sequence[str] = ()
    show_keys: Sequence[str] = ()
    eval_key: str | None = None

    def state_dict(self) -> dict[str, Any]:
        """Models and optimisers (anything ``torch.load(weights_only=True)`` reads back)."""
        raise NotImplementedError

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def train_step(self, rng: np.random.Generator) -> Mapping[str, float | torch.Tensor]:
        """One optimisation step; returns scalars to average into the log (tensors are fine:
        they are read only at the next evaluation, so a GPU is not synchronised every step)."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """Validation values, :attr:`metric` among them."""
        raise NotImplementedError

    def save_sample(self, path: Path) -> None:
        raise NotImplementedError

    def save_model(self, path: Path, meta: dict[str, Any]) -> None:
        """Write the model file that ``best.pt`` and ``last.pt`` hold (atomically)."""
        raise NotImplementedError

    def after_eval(self) -> None:
        """Called after each evaluation's row, checkpoint and samples (e.g. to rebuild a report)."""


class _Means:
    """Running sums of step scalars, read out as means at each evaluation."""

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: Mapping[str, float | torch.Tensor]) -> None:
        for k, v in values.items():
            v = v.detach().float() if isinstance(v, torch.Tensor) else float(v)
            self.sums[k] = self.sums.get(k, 0.0) + v
            self.counts[k] = self.counts.get(k, 0) + 1

    def pop(self) -> dict[str, float]:
        out = {k: float(v) / self.counts[k] for k, v in self.sums.items()}
        self.sums, self.counts = {}, {}
        return out


class _Loop:
    """The state of one :func:`run_training` call; each method is one part of the skeleton."""

    def __init__(self, task: TrainTask, run_dir: Path, schedule: Schedule, config: dict[str, Any],
                 meta: dict[str, Any] | None, log: Callable[[str], None]) -> None:
        self.task, self.run_dir, self.schedule, self.config = task, run_dir, schedule, config
        self.meta, self.log = dict(meta or {}), log
        self.state_path = run_dir / "state.pt"
        self.step, self.best, self.seconds_before = 0, float("inf"), 0.0
        self.rng = np.random.default_rng(schedule.seed)
        self.means = _Means()
        self.t0 = time.time()
        self.t_last, self.steps_since = self.t0, 0

    def elapsed(self) -> float:
        """Training seconds, earlier sessions of a resumed run included."""
        return self.seconds_before + time.time() - self.t0

    def resume(self) -> None:
        st = read_checkpoint(self.state_path)
        if not isinstance(st, dict) or st.get("format") != self.task.state_format:
            raise UserError(f"{self.state_path}: not {_article(self.task.kind)} {self.task.kind} training state")
        self.task.load_state_dict(st)
        self.step, self.best, self.seconds_before = st["step"], st["best"], st["seconds"]
        # A state from before the check has no key: keep its best, there is nothing to compare.
        if self.task.eval_key is not None and st.get("val_key", self.task.eval_key) != self.task.eval_key:
            self.best = float("inf")
        self.rng = np.random.default_rng(self.schedule.seed + self.step)  # not the first session's draws again
        self.log(f"resumed from {self.state_path} at step {self.step} (best {self.task.metric} {self.best:.5g})")

    def out_of_time(self) -> bool:
        budget = self.schedule.max_minutes
        if budget is None or self.elapsed() / 60 < budget:
            return False
        self.log(f"time budget of {budget} min reached at step {self.step}")
        return True

    def model_meta(self) -> dict[str, Any]:
        return {**self.meta, "step": self.step, "train_config": self.config, "seconds": round(self.elapsed())}

    def save_state(self) -> None:
        atomic_torch_save({"format": self.task.state_format, **self.task.state_dict(), "step": self.step,
                           "best": self.best, "seconds": self.elapsed(), "val_key": self.task.eval_key,
                           "config": self.config}, self.state_path)

    def evaluate(self, csv_log: CsvLog) -> None:
        now = time.time()
        row = {"step": self.step, "seconds": round(self.elapsed(), 1), **self.means.pop(),
               "sec_per_step": (now - self.t_last) / max(self.steps_since, 1)}
        self.t_last, self.steps_since = now, 0
        row.update(self.task.evaluate())
        csv_log.write(row)
        plot_losses(self.run_dir / "log.csv", self.run_dir / "losses.png", self.task.plot_keys)
        value = row[self.task.metric]
        improved = value < self.best
        if improved:
            self.save_best(value)
        shown = " ".join(f"{k} {row[k]:.4g}" for k in self.task.show_keys if k in row)
        self.log(f"step {self.step}: {shown} {row['sec_per_step']:.2f} s/step{' *best*' if improved else ''}")

    def save_best(self, value: float) -> None:
        previous, self.best = self.best, value
        self.task.save_model(self.run_dir / "best.pt", self.model_meta())
        metric = self.task.metric
        why = f"lowest {metric} so far ({value:.5g}" + (
            f", previous best {previous:.5g})" if previous < float("inf") else ", first evaluation)")
        atomic_write_text(self.run_dir / "best.json", json.dumps(
            {"step": self.step, "metric": metric, "value": value, "file": "best.pt", "reason": why}))

    def one_step(self, csv_log: CsvLog) -> None:
        self.means.add(self.task.train_step(self.rng))
        self.step += 1
        self.steps_since += 1
        s = self.schedule
        evaluated = self.step % s.eval_every == 0 or self.step == s.total_steps
        if evaluated:
            self.evaluate(csv_log)
        if self.step % s.sample_every == 0:
            self.task.save_sample(self.run_dir / "samples" / f"step_{self.step:06d}.png")
        if evaluated:
            self.task.after_eval()
        if self.step % s.ckpt_every == 0:
            self.save_state()

    def finish(self, evaluated_last: bool) -> Path:
        self.save_state()
        self.task.save_model(self.run_dir / "last.pt", self.model_meta())
        best = self.run_dir / "best.pt"
        if not best.exists():
            self.task.save_model(best, self.model_meta())
        if not evaluated_last:  # bring what after_eval writes up to the final state
            self.task.after_eval()
        return best


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def run_training(task: TrainTask, run_dir: str | os.PathLike, schedule: Schedule, config: dict[str, Any],
                 resume: bool = True, meta: dict[str, Any] | None = None,
                 log: Callable[[str], None] = print) -> Path:
    """Train ``task`` in ``run_dir`` until ``schedule`` says stop; returns the path of ``best.pt``.

    Args:
        task: the trainer's step, evaluation and files (see :class:`TrainTask`).
        run_dir: created if missing; see the module docstring for what it holds.
        schedule: steps, time budget and intervals.
        config: the trainer's options (JSON-able); written to ``train_config.json`` and
            saved in the state and in every model file's metadata.
        resume: continue from ``run_dir/state.pt`` when there is one.
        meta: extra metadata for the model files (e.g. the command line).
        log: receives one line per evaluation and the resume/time-budget notes.

    Raises:
        UserError: ``state.pt`` belongs to another trainer or cannot be read.
    """
    run_dir = Path(run_dir)
    (run_dir / "samples").mkdir(parents=True, exist_ok=True)  # the sample grids go there
    loop = _Loop(task, run_dir, schedule, config, meta, log)
    if resume and loop.state_path.exists():
        loop.resume()
    atomic_write_text(run_dir / "train_config.json", json.dumps(config, indent=2))
    csv_log = CsvLog(run_dir / "log.csv", [*task.log_fields, "sec_per_step"])
    loop.t0 = loop.t_last = time.time()
    evaluated_last = True  # nothing ran: no final state that after_eval has not seen
    try:
        while loop.step < schedule.total_steps and not loop.out_of_time():
            loop.one_step(csv_log)
            evaluated_last = loop.step % schedule.eval_every == 0 or loop.step == schedule.total_steps
    finally:
        csv_log.close()
    return loop.finish(evaluated_last)
