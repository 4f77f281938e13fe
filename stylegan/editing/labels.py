"""Binary attribute labels from CSV files, for learning directions.

A labelled set is one or more CSVs with a ``file`` column (a path relative to the
CSV's folder) and attribute columns. Datasets code attributes differently --
All-Age-Faces' ``gender_0F_1M`` and UTKFace's ``gender_0M_1F`` are opposite -- so
each CSV gets its own column and rules, and a rule such as ``>50`` or ``=1``
decides which rows are positive and which negative (rows matching neither,
e.g. middle ages for young-vs-old, are left out).
"""

from __future__ import annotations

import csv
import operator
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UserError

__all__ = ["LabelRule", "parse_rule", "parse_where", "LabelledFile", "read_labels"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, ">": operator.gt, "<": operator.lt, "=": operator.eq,
}
_RULE_RE = re.compile(r"\s*(>=|<=|!=|>|<|=)?\s*(-?[0-9]+(?:\.[0-9]+)?)\s*")
MAX_ROWS = 2_000_000


@dataclass(frozen=True)
class LabelRule:
    """``value OP threshold``, e.g. ``> 50``; a bare number means ``=``."""

    op: str
    threshold: float

    def __call__(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.op}{self.threshold:g}"


def parse_rule(text: str, name: str = "rule") -> LabelRule:
    """``"1"``, ``"=1"``, ``">50"``, ``"<=19.5"``... -> :class:`LabelRule`; UserError naming ``name`` otherwise."""
    m = _RULE_RE.fullmatch(str(text))
    if not m:
        raise UserError(f"{name} must be a number or a comparison such as >50 or <20, got {text!r}")
    return LabelRule(m.group(1) or "=", float(m.group(2)))


@dataclass(frozen=True)
class LabelledFile:
    """One labelled image: its path, label (1 positive, 0 negative) and the CSV it came from."""

    path: Path
    label: int
    csv: Path


def parse_where(text: str, name: str = "where") -> tuple[str, LabelRule]:
    """``"age>=15"`` -> ``("age", LabelRule(">=", 15))``: a filter on another column."""
    m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_ .-]*?)\s*(>=|<=|!=|>|<|=)(.*)", str(text))
    if not m:
        raise UserError(f"{name} must look like COLUMN>=VALUE, e.g. age>=15, got {text!r}")
    return m.group(1), parse_rule(m.group(2) + m.group(3), name)


def read_labels(csv_path: str | os.PathLike, column: str | None, positive: LabelRule | None = None,
                negative: LabelRule | None = None, where: Sequence[tuple[str, LabelRule]] = ()
                ) -> list[LabelledFile]:
    """The rows of one CSV that a rule labels, with paths resolved against the CSV's folder.

    Rows with an empty value are skipped (UTKFace has a few); a value matching both
    rules is an error, since the attribute would point nowhere.

    Raises:
        UserError: a missing CSV, no ``file`` or no ``column`` column, a non-numeric value,
            a row matching both rules, or more than :data:`MAX_ROWS` rows.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise UserError(f"{path}: no such CSV file")
    out: list[LabelledFile] = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if "file" not in fields:
            raise UserError(f"{path}: needs a 'file' column (found {', '.join(fields) or 'none'})")
        for col in [*([column] if column is not None else []), *(c for c, _ in where)]:
            if col not in fields:
                raise UserError(f"{path}: no column {col!r} (found {', '.join(fields)})")
        for i, row in enumerate(reader):
            if i >= MAX_ROWS:
                raise UserError(f"{path}: more than {MAX_ROWS} rows")
            if not row.get("file") or not all(_passes(row.get(c), rule) for c, rule in where):
                continue
            if column is None:
                out.append(LabelledFile(path.parent / row["file"], 0, path))
                continue
            text = (row.get(column) or "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError:
                raise UserError(f"{path}, row {i + 2}: {column} is {text!r}, not a number") from None
            if positive is None or negative is None:
                raise ValueError("read_labels needs positive and negative rules with a column")
            pos, neg = positive(value), negative(value)
            if pos and neg:
                raise UserError(f"{path}, row {i + 2}: {column} = {text} matches both the positive rule "
                                f"{positive} and the negative rule {negative}")
            if pos or neg:
                out.append(LabelledFile(path.parent / row["file"], int(pos), path))
    return out


def _passes(text: str | None, rule: LabelRule) -> bool:
    try:
        return rule(float((text or "").strip()))
    except ValueError:
        return False  # blank or non-numeric: the filter cannot vouch for the row
