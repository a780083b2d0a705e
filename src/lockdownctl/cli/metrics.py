"""``lockdownctl metrics``: Prometheus metrics for node_exporter's textfile collector or as an exporter.

Without options the exposition goes to standard output; ``--textfile [DIR]``
writes DIR/lockdownctl.prom atomically (Debian's node_exporter reads
/var/lib/prometheus/node-exporter/); ``--listen ADDR`` serves /metrics, read
afresh on every scrape, until SIGTERM or SIGINT.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ..output import Result, Style

ONE_SHOT = False  # --listen runs for long


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..metrics import TEXTFILE_DIR

    where = parser.add_mutually_exclusive_group()
    where.add_argument("--textfile", metavar="DIR", nargs="?", const=TEXTFILE_DIR,
                       help=f"write DIR/lockdownctl.prom atomically for node_exporter's textfile collector "
                       f"(DIR defaults to {TEXTFILE_DIR})")
    where.add_argument("--listen", metavar="ADDR",
                       help="serve the metrics over HTTP at ADDR (HOST:PORT, [IPv6]:PORT; port 0 picks one) "
                       "until SIGTERM or SIGINT")
    parser.add_argument("--check", action="store_true",
                        help="also report readiness findings for the next level (lockdownctl check), by confidence")
    parser.add_argument("--dry-run", action="store_true",
                        help="with --textfile: print what would be written, write nothing")


def _prometheus_client() -> None:
    from ..errors import FeatureMissing

    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise FeatureMissing("metrics needs the prometheus_client package (Debian: python3-prometheus-client)") \
            from None


def run(args: argparse.Namespace) -> Result:
    from .. import metrics
    from ..output import Result
    from ..root import Root

    _prometheus_client()
    root = Root(args.root)
    if args.listen:
        return _listen(root, args.listen, args.check)
    snap = metrics.gather(root, args.check)
    reg = metrics.registry(root, snap)
    data: dict[str, Any] = {"exposition": metrics.exposition(reg), "samples": metrics.samples(reg),
                            "written": None, "dry_run": bool(args.dry_run)}
    if args.textfile and not args.dry_run:
        data["written"] = _write(args.textfile, reg)
    elif args.textfile:
        data["would_write"] = os.path.join(args.textfile, metrics.TEXTFILE_NAME)
    return Result("metrics", data, _render)


def _write(directory: str, reg: Any) -> str:
    from .. import metrics
    from ..errors import OutputError

    if not os.path.isdir(directory):
        raise OutputError(f"{directory}: not a directory (is prometheus-node-exporter installed?)")
    try:
        return metrics.write_textfile(directory, reg)
    except OSError as exc:
        raise OutputError(f"{directory}/{metrics.TEXTFILE_NAME}: cannot write: {exc.strerror or exc}") from None


def _render(data: dict[str, Any], _s: Style) -> str:
    if data["written"]:
        return f"wrote {data['written']}"
    text = str(data["exposition"]).rstrip("\n")
    if data.get("would_write"):
        return f"# would write {data['would_write']} (dry run):\n{text}"
    return text


def parse_listen(addr: str) -> tuple[str, int]:
    from ..errors import InputError

    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InputError(f"--listen {addr}: expected HOST:PORT (e.g. 127.0.0.1:9810)")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)


def _listen(root: Any, addr: str, readiness: bool) -> Result:
    import signal
    import socket
    import sys
    import threading
    from http.server import ThreadingHTTPServer

    from prometheus_client.exposition import MetricsHandler

    from .. import metrics
    from ..errors import InputError, LockdownctlError
    from ..output import Result

    host, port = parse_listen(addr)

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            # One line per failed scrape (the client gets no metrics), never a traceback; keep serving.
            exc = sys.exc_info()[1]
            print(f"lockdownctl: error: scrape from {client_address[0]} failed: "
                  f"{getattr(exc, 'message', None) or f'{type(exc).__name__}: {exc}'}", file=sys.stderr, flush=True)

    class Handler(MetricsHandler):
        registry = metrics.registry(root, readiness=readiness)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per scrape on stderr is noise in the journal

        def do_GET(self) -> None:
            # The metrics are generated before anything is sent: an input error is a clean 500.
            try:
                super().do_GET()
            except LockdownctlError as exc:
                print(f"lockdownctl: error: scrape from {self.client_address[0]} failed: {exc.message}",
                      file=sys.stderr, flush=True)
                self.send_error(500, "lockdownctl could not read the host", exc.message)

    try:
        server = Server((host, port), Handler)
    except OSError as exc:
        raise InputError(f"--listen {addr}: {exc.strerror or exc}") from None
    bound_host, bound_port = server.server_address[:2]
    bound_host = bound_host.decode() if isinstance(bound_host, bytes) else bound_host
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"lockdownctl: serving metrics on http://{shown}:{bound_port}/metrics", file=sys.stderr, flush=True)

    def stop(_signo: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    return Result("metrics", {"listened": f"{shown}:{bound_port}"}, lambda d, _s: "")
