"""A training report a person opens in a browser: one self-contained HTML page.

Everything comes from the files a run already writes (``log.csv``,
``samples/step_*.png``, ``best.json``, ``run.json``), so the page can be
rebuilt at any time, during or after training, with :func:`write_report`.
Images are embedded as base64 PNG: the page has no external assets and can be
mailed or committed on its own.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from .logging import plot_panels

__all__ = ["write_report", "MAX_GRIDS", "PANELS"]

MAX_GRIDS = 40  # sample grids embedded at most (evenly spaced, always the last); bounds the page size

_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
.grid{display:flex;align-items:stretch;margin:.4em 0}.labels{display:flex;flex-direction:column;margin-right:6px}
.labels div{flex:1;display:flex;align-items:center;justify-content:flex-end;font-size:.8em}
img.px{image-rendering:pixelated}.note{color:#555;font-size:.9em}"""


def _b64_png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _read_log(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


#: The report's curves: (caption, columns of log.csv, log y).
PANELS = [("G and D losses (non-saturating logistic; means since the previous evaluation)",
           ["loss_g", "loss_d"], False),
          ("D accuracy: share of real images with logit > 0 and of fakes with logit < 0",
           ["d_acc_real", "d_acc_fake"], False),
          ("R1 penalty (squared gradient norm of D on real images)", ["r1"], False),
          ("Quality: pixel Fréchet distance at 16x16 to held-out images (lower is better)", ["pixel_fd16"], False)]


def _plots(run_dir: Path, png: Path) -> str | None:
    """The report's curves as one 2x2 figure (one render, cheap enough for every evaluation)."""
    panels = [(keys, log_y, caption.split(" (")[0].split(":")[0]) for caption, keys, log_y in PANELS]
    return _b64_png(png) if plot_panels(run_dir / "log.csv", png, panels, cols=2) else None


def _grids(run_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for p in (run_dir / "samples").glob("step_*.png"):
        m = re.fullmatch(r"step_(\d+)\.png", p.name)
        if m:
            found.append((int(m.group(1)), p))
    found.sort()
    if len(found) > MAX_GRIDS:
        keep = {round(i * (len(found) - 1) / (MAX_GRIDS - 1)) for i in range(MAX_GRIDS)}
        found = [g for i, g in enumerate(found) if i in keep]
    return found


def write_report(run_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> Path:
    """Write (atomically) the HTML report of the run in ``run_dir``; returns its path.

    Args:
        run_dir: a training run folder (see :func:`stylegan.training.gan.train_gan`).
        path: where to write; default ``<run_dir>/report.html``.
    """
    run_dir = Path(run_dir)
    path = Path(path) if path is not None else run_dir / "report.html"
    info = _read_json(run_dir / "run.json")
    cfg = _read_json(run_dir / "train_config.json")
    best = _read_json(run_dir / "best.json")
    rows = _read_log(run_dir / "log.csv")
    class_names = info.get("class_names") or []
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Training report: {e(run_dir.name)}</title>"
             f"<style>{_CSS}</style></head><body><h1>Training report: {e(run_dir.name)}</h1>"]
    last = rows[-1] if rows else {}
    summary = [("last evaluation", f"step {last.get('step', '0')}"), ("training time", f"{float(last.get('seconds', 0)) / 60:.1f} min"),
               ("classes", ", ".join(class_names) or "unconditional")]
    if info.get("meta", {}).get("command"):
        summary.append(("command", info["meta"]["command"]))
    parts.append("<table>" + "".join(f"<tr><th style='text-align:left'>{e(k)}</th><td style='text-align:left'>"
                                     f"{e(str(v))}</td></tr>" for k, v in summary) + "</table>")

    parts.append("<h2>Best checkpoint</h2>")
    if best:
        parts.append(f"<p>Kept <code>{e(str(best.get('file', 'best.pt')))}</code> from step {e(str(best.get('step')))}: "
                     f"{e(str(best.get('reason', '')))}.</p>")
    else:
        parts.append("<p>No evaluation yet.</p>")
    parts.append("<p class='note'>Criterion: the lowest pixel Fréchet distance at 16x16 between generated "
                 "images (the EMA generator, labels drawn with the validation set's class frequencies) and the "
                 "held-out images, an identity-disjoint split. It needs no downloaded network; it ranks colour, "
                 "layout and variety, not fine detail.</p>")

    with tempfile.TemporaryDirectory(prefix=".report-", dir=run_dir) as tmp:
        curves = _plots(run_dir, Path(tmp) / "curves.png")
    parts.append("<h2>Curves</h2>")
    if curves:
        parts.append(f"<img src='{curves}' alt='training curves' style='max-width:100%'>")
        parts.append("<ul class='note'>" + "".join(f"<li>{e(cap)}</li>" for cap, _, _ in PANELS) + "</ul>")
    else:
        parts.append("<p>No curves yet (or matplotlib is not installed).</p>")

    grids = _grids(run_dir)
    parts.append("<h2>Samples over training</h2><p class='note'>Fixed noise: the same z in every column at every "
                 "step" + ("; one row per class, so rows differ only by label" if class_names else "") + ".</p>")
    for step, png in reversed(grids):
        labels = ("<div class='labels'>" + "".join(f"<div>{e(n)}</div>" for n in class_names) + "</div>"
                  if class_names else "")
        parts.append(f"<div><b>step {step}</b><div class='grid'>{labels}<img class='px' src='{_b64_png(png)}' "
                     f"style='zoom:2' alt='samples at step {step}'></div></div>")

    if rows:
        keys = [k for k in rows[0] if k]
        parts.append("<h2>Log</h2><table><tr>" + "".join(f"<th>{e(k)}</th>" for k in keys) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(r.get(k) or '')}</td>" for k in keys) + "</tr>" for r in rows]
        parts.append("</table>")
    if cfg:
        parts.append("<h2>Training configuration</h2><pre>" + e(json.dumps(cfg, indent=1)) + "</pre>")
    parts.append("</body></html>\n")
    return atomic_write_text(path, "".join(parts))
