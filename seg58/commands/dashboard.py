"""`seg58 dashboard <sweep dir> [--port 8080] [--host 127.0.0.1] [--write]`: optuna-dashboard on a
search's own study, live while it runs (seg58/sweep/dashboard.py). Local and read-only by default."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

from seg58.sweep.dashboard import dashboard_app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per request is noise here
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seg58 dashboard", description="optuna-dashboard on a search's study")
    parser.add_argument("sweep_dir", type=Path, help="multirun/<date>/<time> of a search")
    parser.add_argument("--host", default="127.0.0.1", help="default: this machine only (an SSH tunnel reaches it)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--write", action="store_true", help="allow changes (notes, renames, deleting the study)")
    args = parser.parse_args(argv)
    app, spec, study_id = dashboard_app(args.sweep_dir, args.write)
    server = make_server(args.host, args.port, app, handler_class=_QuietHandler)
    mode = "read-write" if args.write else "read-only"
    print(f"optuna-dashboard ({mode}) of study {spec.study_name} ({spec.storage}):\n"
          f"  http://{args.host}:{server.server_port}/dashboard/studies/{study_id}\n(Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    return 0
