"""Start the explorer: a local web page to add faces, morph with a slider, edit, mix, map and export video."""

from __future__ import annotations

import argparse
import sys

from tools._cli import add_compute_options, add_model_options, add_refine_option, apply_threads, run_tool

EPILOG = """\
examples:
  python tools/explore.py
      -> serving on http://127.0.0.1:8765/  (open it in a browser; Ctrl-C stops)
  python tools/explore.py --port 9000 --model e4e-ffhq
  python tools/explore.py --bench 50      (median slider latency at the server, then exit)

The page takes photos (several at once) or the bundled examples, shows each
aligned face and its reconstruction, and morphs, edits, mixes, maps and exports
them. It binds to 127.0.0.1, so only this computer can reach it; --host 0.0.0.0
exposes it to the network (a warning is printed: anyone who can reach the port
can use it). Requests whose Host header is not this server's address are refused.
If --port is taken, a free port is chosen and printed. Codes are cached by the
photo's content hash in --cache (default: the weights cache's codes/ folder).
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface of ``sgm-explore``."""
    parser = argparse.ArgumentParser(prog="sgm-explore", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 exposes the page to the network (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765,
                        help="port; a free one is chosen when it is taken (default: 8765)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="another Host header name to accept, e.g. this machine's DNS name (repeatable)")
    add_model_options(parser)
    add_refine_option(parser, budget=False)
    parser.add_argument("--cache", default=None, metavar="DIR",
                        help="folder of cached codes (default: $STYLEGAN_MORPH_CACHE/codes or "
                             "~/.cache/stylegan-morph/codes)")
    parser.add_argument("--no-cache", action="store_true", help="keep codes in memory only")
    parser.add_argument("--max-upload-mb", type=float, default=20, metavar="MB",
                        help="largest upload per request (default: 20)")
    parser.add_argument("--bench", type=int, default=0, metavar="N",
                        help="measure N morph and N edit slider moves at the server with the bundled photos, "
                             "print the medians and exit")
    add_compute_options(parser, quiet="no request log or messages")
    return parser


def _validate(args: argparse.Namespace) -> None:
    from stylegan.errors import UserError

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be in 0..65535, got {args.port}")
    if not 0.01 <= args.max_upload_mb <= 1024:
        raise UserError(f"--max-upload-mb must be in 0.01..1024, got {args.max_upload_mb:g}")
    if args.bench < 0 or args.bench > 10_000:
        raise UserError(f"--bench must be in 0..10000, got {args.bench}")
    if args.cache is not None and args.no_cache:
        raise UserError("--cache and --no-cache exclude each other")


def _serve(app, args: argparse.Namespace, log) -> None:
    """Bind (a free port if the requested one is taken), print the address, serve until Ctrl-C."""
    from tools.explorer import bind

    server = bind(app, args.host, args.port, tuple(args.allow_host), log)
    port = server.port
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    shown = f"[{shown}]" if ":" in shown else shown
    print(f"serving on http://{shown}:{port}/  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


def _bench(app, n: int) -> None:
    """Median time of N morph and N edit slider requests handled in-process (no network, no browser)."""
    import os
    import platform
    import statistics
    import time

    import numpy as np

    from stylegan.errors import UserError

    from tools.explorer import set_address

    explorer = app.extensions["explorer"]
    set_address(app, "127.0.0.1", 80)  # in-process requests: no socket, the default port
    client = app.test_client()
    base = "http://127.0.0.1"
    ids = []
    for ex in explorer.info()["examples"][:2]:
        ids.append(client.post("/api/faces/example", json={"index": ex["index"]}, base_url=base).json["faces"][0]["id"])
    explorer.wait_idle(600)
    faces = {f["id"]: f for f in client.get("/api/faces", base_url=base).json["faces"]}
    bad = [f["error"] for f in faces.values() if f["status"] != "ready"]
    if len(ids) < 2 or bad:
        raise UserError(f"the benchmark needs the two bundled photos encoded: {bad or 'examples missing'}")
    rng = np.random.default_rng(0)
    directions = [d["name"] for d in explorer.info()["directions"]]
    results = {}
    for what in ("morph", "edit"):
        if what == "edit" and not directions:
            continue
        times = []
        for i in range(n):
            view = {"a": ids[0], "b": ids[1], "alpha": round(float(rng.uniform()), 2)}
            if what == "edit":
                view["alpha"] = 0.5
                view["edits"] = {directions[i % len(directions)]: round(float(rng.uniform(-3, 3)), 1)}
            start, cpu_start = time.perf_counter(), time.process_time()
            r = client.post("/api/render", json={"tab": "bench", "seq": i + (n if what == "edit" else 0),
                                                  "view": view}, base_url=base)
            times.append((time.perf_counter() - start, time.process_time() - cpu_start))
            if r.status_code != 200:
                raise UserError(f"render failed: {r.status_code} {r.get_data(as_text=True)[:200]}")
        results[what] = times
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    import torch

    print(f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, load average {load}")
    for what, times in results.items():
        ms = sorted(t * 1000 for t, _ in times)
        cpu_ms = statistics.median(c * 1000 for _, c in times)
        print(f"{what} slider: median {statistics.median(ms):.0f} ms, 90th percentile {ms[int(0.9 * (len(ms) - 1))]:.0f} ms, "
              f"max {ms[-1]:.0f} ms over {len(ms)} moves (CPU time {cpu_ms:.0f} ms per move; "
              f"{explorer.G.img_resolution} px, model {explorer.config.weights or 'default'})")


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the tool; returns the exit code (0 ok, 1 user error, 130 interrupted)."""
    return run_tool(build_parser(), _run, argv, interrupted="stopped")


def _run(args: argparse.Namespace) -> None:
    log = (lambda message: None) if args.quiet else _say

    _validate(args)
    from pathlib import Path

    from stylegan.precision import check_precision
    from stylegan.render import resolve_device
    from tools.explorer import ExplorerConfig, create_app

    apply_threads(args.threads)
    precision = check_precision(args.precision, resolve_device(args.device))

    if args.host in ("0.0.0.0", "::", ""):
        print(f"warning: --host {args.host} exposes the explorer to every network this computer is on; "
              "anyone who can reach the port can upload photos and use the CPU", file=sys.stderr)
    if args.no_cache:
        cache = None
    elif args.cache is not None:
        cache = Path(args.cache)
    else:
        from encoders.code_cache import default_cache_dir

        cache = default_cache_dir()
    config = ExplorerConfig(weights=args.weights or args.model, device=args.device, refine=args.refine,
                            precision=precision,
                            cache_dir=None if args.bench else cache,
                            max_upload_bytes=int(args.max_upload_mb * 2**20))
    import logging

    # No log line per slider move; -q also hides the server's warnings.
    logging.getLogger("werkzeug").setLevel(logging.ERROR if args.quiet else logging.WARNING)
    app = create_app(config, host=args.host, port=args.port, log=log)
    try:
        if args.bench:
            _bench(app, args.bench)
        else:
            _serve(app, args, log)
    finally:
        app.extensions["explorer"].close()


if __name__ == "__main__":
    sys.exit(main())
