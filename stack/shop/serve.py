"""Run one service process: `python -m shop.serve SERVICE --port PORT`.

The socket is bound here with SO_REUSEPORT, so N replicas of a service share one port and the
kernel spreads connections among them: `chaosctl stack scale` needs no load balancer.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import socket
import sys
from pathlib import Path

from shop.settings import SERVICE_NAMES, ConfigError, read_env


def _clean_dead_gauges(directory: str) -> None:
    """Drop live-gauge files of replicas that are gone, so they stop counting."""
    from prometheus_client import multiprocess

    for path in Path(directory).glob("gauge_live*_*.db"):
        match = re.search(r"_(\d+)\.db$", path.name)
        if match:
            pid = int(match.group(1))
            if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
                multiprocess.mark_process_dead(pid, directory)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when their
    # proto says TCP, and accepted sockets copy the listener's. Without it every keep-alive
    # request after the first waited ~40 ms (Nagle vs delayed ACK) on each hop.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shop.serve", description=__doc__)
    parser.add_argument("service", choices=SERVICE_NAMES)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    try:
        env = read_env()  # before anything is bound or written: a bad value stops us here
    except ConfigError as exc:
        print(f"shop.serve {args.service}: bad configuration: {exc}", file=sys.stderr)
        return 2

    # *_created series double the scrape size and nothing here reads them.
    os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "true")
    multiproc = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc:
        Path(multiproc).mkdir(parents=True, exist_ok=True)
        _clean_dead_gauges(multiproc)

    import logging

    import uvicorn

    logging.basicConfig(level=logging.WARNING,
                        format=f"%(asctime)s {args.service} %(levelname)s %(name)s: %(message)s")

    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        print(f"shop.serve: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    app = importlib.import_module(f"shop.{args.service}").build()
    from shop.shed_protocol import http_protocol

    # The gateway sheds load in the HTTP protocol itself (shop/shed_protocol.py).
    http = http_protocol(app, env.http) if env.early_shed else env.http
    config = uvicorn.Config(app, log_level=args.log_level, access_log=False,
                            loop=env.loop, http=http,
                            timeout_graceful_shutdown=5, lifespan="on")
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
