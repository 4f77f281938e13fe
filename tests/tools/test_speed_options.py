"""tools/_cli.py speed options: --threads (auto from cores and load), --precision, --refine-budget."""

from __future__ import annotations

import argparse

import pytest
import torch

from tools import _cli


def parser(budget: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    _cli.add_threads_option(p)
    _cli.add_precision_option(p)
    _cli.add_refine_option(p, budget=budget)
    return p


@pytest.mark.parametrize("cores, load, expected", [(2, 0.0, 2), (2, 0.4, 2), (2, 1.0, 1), (2, 14.0, 1),
                                                   (16, 3.2, 13), (1, 0.0, 1), (8, 8.6, 1)])
def test_default_threads_leaves_busy_cores_alone(cores: int, load: float, expected: int) -> None:
    assert _cli.default_threads(cores, load) == expected


def test_defaults_and_values() -> None:
    args = parser().parse_args([])
    assert (args.threads, args.precision, args.refine, args.refine_budget) == ("auto", "auto", "auto", 20.0)
    args = parser().parse_args(["--threads", "3", "--precision", "bf16", "--refine", "5", "--refine-budget", "7.5"])
    assert (args.threads, args.precision, args.refine, args.refine_budget) == (3, "bf16", 5, 7.5)


@pytest.mark.parametrize("argv", [["--threads", "0"], ["--threads", "two"], ["--precision", "fp8"],
                                  ["--refine-budget", "-1"], ["--refine-budget", "nan"], ["--refine", "-2"]])
def test_bad_values_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(argv)
    assert "error:" in capsys.readouterr().err


def test_no_budget_flag_where_auto_is_a_fixed_count() -> None:
    p = parser(budget=False)
    assert "--refine-budget" not in p.format_help()
    with pytest.raises(SystemExit):
        p.parse_args(["--refine-budget", "3"])


def test_apply_threads_sets_torch() -> None:
    before = torch.get_num_threads()
    try:
        assert _cli.apply_threads(1) == 1 and torch.get_num_threads() == 1
        n = _cli.apply_threads("auto")
        assert n >= 1 and torch.get_num_threads() == n
    finally:
        torch.set_num_threads(before)


def test_keep_freed_memory_on_glibc() -> None:
    import platform

    result = _cli.keep_freed_memory()
    assert isinstance(result, bool)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert result
