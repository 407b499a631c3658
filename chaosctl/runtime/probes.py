"""Readiness and health probes for the stack's processes (short timeouts, never raise)."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chaosctl.clients.http import http_get
from chaosctl.config import Settings
from chaosctl.runtime.base import HEALTH_UNREACHABLE


def redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when Redis answers PING (raw protocol: no client library needed for one command)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


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


def health_of(settings: Settings, names: list[str], timeout: float = 1.0) -> dict[str, str]:
    """Health of each named process, probed concurrently (a paused one costs one timeout).

    redis/prometheus: "ok" or "down"; services: their /health status, or "unreachable".
    `timeout` per probe: longer where each connection is set up first (a port-forward).
    """

    def probe(name: str) -> str:
        if name == "redis":
            return "ok" if redis_ping(settings.host, settings.redis_port, timeout) else "down"
        if name == "prometheus":
            return "ok" if prometheus_ready(settings.prometheus_url, timeout) else "down"
        body = service_health(settings.url(name), timeout)
        return str(body.get("status", "down")) if body else HEALTH_UNREACHABLE

    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(probe, names), strict=True))
