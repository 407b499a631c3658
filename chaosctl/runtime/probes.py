"""Readiness and health probes for the stack's processes (short timeouts, never raise)."""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any


def redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when Redis answers PING (raw protocol: no client library needed for one command)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes] | None:
    """(status, body) or None when nothing answered in time.

    urllib rather than httpx: one short request per probe, and a new connection each time,
    which is what spreads probes over the replicas sharing a port.
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read() if exc.fp else b""
    except (OSError, ValueError):
        return None


def service_health(base_url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """The service's /health JSON, or None when it does not answer with JSON."""
    answer = http_get(f"{base_url}/health", timeout)
    if answer is None:
        return None
    try:
        body = json.loads(answer[1])
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def prometheus_ready(base_url: str, timeout: float = 1.0) -> bool:
    answer = http_get(f"{base_url}/-/ready", timeout)
    return answer is not None and answer[0] == 200
