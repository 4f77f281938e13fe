"""List the known pretrained weights and fetch them into the cache.

This tool only parses arguments; the work is done by :mod:`pretrained`.
"""

from __future__ import annotations

import argparse
import sys

from pretrained import cache_dir, cache_status, download, get_spec, list_pretrained
from pretrained.download import ENV_CACHE, ENV_OFFLINE
from stylegan.errors import UserError
from tools._cli import run_tool

__all__ = ["main"]

EPILOG = f"""\
examples:
  sgm-download list                       # every known file, its size and whether it is cached
  sgm-download list 'stylegan2-*'         # only names matching a pattern
  sgm-download get stylegan2-ffhq-config-f
  python tools/download.py get e4e-ffhq --force   # fetch again even if cached

Files are verified by size and full sha256 before they enter the cache.
Cache folder: ${ENV_CACHE} or ~/.cache/stylegan-morph.
Set {ENV_OFFLINE}=1 to forbid downloads; the error then says where to put the file by hand.
"""


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the epilog's layout and show defaults."""


def _human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _cmd_list(args: argparse.Namespace) -> int:
    specs = list_pretrained(args.pattern)
    if not specs:
        raise UserError(f"no pretrained model matches {args.pattern!r}")
    rows = [("name", "kind", "size", "cached", "licence")]
    rows += [(s.name, s.kind, _human_size(s.size), cache_status(s), s.license) for s in specs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths)] + [row[-1]]
        print("  ".join(cells).rstrip())
    print(f"\ncache: {cache_dir()}")
    return 0


def _cmd_get(args: argparse.Namespace) -> int:
    spec = get_spec(args.name)  # unknown name -> one-line UserError listing known names
    path = download(spec, progress=not args.quiet, force=args.force, retries=args.retries)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="sgm-download",
        description="List known pretrained weights and download them into a verified cache.",
        epilog=EPILOG,
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{list,get}")

    p_list = sub.add_parser("list", help="table of known weights", formatter_class=_Formatter,
                            epilog=EPILOG)
    p_list.add_argument("pattern", nargs="?", default="*", help="shell-style pattern on the name")
    p_list.set_defaults(func=_cmd_list)

    p_get = sub.add_parser("get", help="download (or find in the cache) and print the path",
                           formatter_class=_Formatter, epilog=EPILOG)
    p_get.add_argument("name", help="registry name, see 'list'")
    p_get.add_argument("--force", action="store_true", help="download again even if a verified copy is cached")
    p_get.add_argument("--retries", type=_nonneg_int, default=3, help="extra attempts per source for transient errors")
    p_get.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p_get.set_defaults(func=_cmd_get)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``sgm-download``.

    Args:
        argv: Arguments without the program name; None reads ``sys.argv``.

    Returns:
        Exit status: 0 on success, 1 on a user error, 130 when interrupted.
    """
    # On Ctrl-C, download() has already removed its temporary file.
    return run_tool(build_parser(), lambda args: args.func(args), argv)


if __name__ == "__main__":
    sys.exit(main())
