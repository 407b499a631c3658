"""The runbook's own commands, run as written (bash, curl, jq, redis-cli, sqlite3) against a
stack from `chaosctl stack up`; only the port numbers differ, since tests use free ports."""

from __future__ import annotations

import json
import math
import subprocess

import httpx

from chaosctl.domain import SERVICES
from tests.support import wait_for


def sh(command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                          timeout=timeout)


def _orders(stack, n: int) -> None:  # noqa: ANN001
    with httpx.Client(base_url=stack.url("gateway"), timeout=10) as client:
        for i in range(n):
            r = client.post("/orders", json={"customer_id": f"runbook-{i}", "items": [
                {"product_id": "SKU-007", "quantity": 1, "unit_price": 3.5}]})
            assert r.status_code == 201, r.text


def test_health_checks_section(steady) -> None:  # noqa: ANN001
    ports = " ".join(str(steady.settings.port(s)) for s in SERVICES)
    loop = sh(f'for port in {ports}; do\n  echo -n "Port $port: "\n'
              '  curl -sf http://localhost:$port/health | jq -r .status\ndone')
    assert loop.returncode == 0, loop.stderr
    lines = loop.stdout.strip().splitlines()
    assert len(lines) == 5 and all(line.endswith(": ok") for line in lines), loop.stdout
    breakers = sh(f"curl -s http://localhost:{steady.settings.gateway_port}/status/breakers "
                  "| jq .")
    assert breakers.returncode == 0
    assert set(json.loads(breakers.stdout)["breakers"]) >= {"payments", "inventory"}


def test_payment_degradation_steps(steady) -> None:  # noqa: ANN001
    s = steady.settings
    rc = f"redis-cli -p {s.redis_port}"
    assert steady.cli("inject", "payment-errors", "--rate", "0.2", "--ttl", "2m").returncode == 0
    assert sh(f"curl -sf http://localhost:{s.payments_port}/health | jq -r .status").stdout \
        .strip() == "degraded"
    config = json.loads(sh(f"curl -s http://localhost:{s.payments_port}/chaos/config").stdout)
    assert config["faults"]["error_rate"]["value"] == 0.2
    assert sh(f"{rc} get chaos:payments:error_rate").stdout.strip() == "0.2"
    assert 0 < int(sh(f"{rc} ttl chaos:payments:error_rate").stdout) <= 120
    assert sh(f"{rc} get chaos:payments:latency_ms").stdout.strip() == ""
    # "Reset all chaos" loop, as written.
    reset = sh(f"for url in http://localhost:{s.payments_port} "
               f"http://localhost:{s.inventory_port}; do\n"
               '  curl -s -X DELETE "$url/chaos/config"\ndone')
    assert reset.returncode == 0
    assert sh(f"{rc} get chaos:payments:error_rate").stdout.strip() == ""


def test_prometheus_queries_and_outbox_sql(steady) -> None:  # noqa: ANN001
    s = steady.settings
    prom = f"http://localhost:{s.prometheus_port}"
    _orders(steady, 20)

    def order_success_rate() -> float | None:
        _orders(steady, 3)  # "returns a value while orders flow": keep them flowing
        out = sh(f"curl -s '{prom}/api/v1/query?query=order_success_rate' | "
                 "jq -r '.data.result[0].value[1]'").stdout.strip()
        value = float(out) if out not in ("", "null") else None
        return value if value is not None and math.isfinite(value) else None

    rate = wait_for(order_success_rate, timeout=60, interval=1.0,
                    what="order_success_rate from the recording rule")
    assert 0.0 < rate <= 1.0
    states = json.loads(sh(f"curl -s {prom}/api/v1/query?query=breaker_state").stdout)
    assert {r["metric"]["downstream"] for r in states["data"]["result"]} >= {"payments"}
    retries = json.loads(sh(f"curl -s '{prom}/api/v1/query?query=retry_attempts_total'").stdout)
    assert retries["status"] == "success"
    offset = sh(f"curl -s -G {prom}/api/v1/query --data-urlencode "
                "'query=http_requests_total{service=\"gateway\"} - "
                "http_requests_total{service=\"gateway\"} offset 1m' | jq -r .status")
    assert offset.stdout.strip() == "success"
    sql = sh(f"sqlite3 {steady.home / 'data' / 'orders.db'} "
             "\"SELECT COUNT(*), MIN(created_at) FROM outbox_events WHERE NOT published;\"")
    assert sql.returncode == 0, sql.stderr
    assert int(sql.stdout.split("|")[0]) >= 0


def test_outbox_incident_logs_and_recovery(steady) -> None:  # noqa: ANN001
    s = steady.settings
    assert steady.cli("inject", "notifications-down", "--for", "0").returncode == 0
    try:
        assert sh(f"curl -sf http://localhost:{s.notifications_port}/health").returncode != 0
        _orders(steady, 5)  # accepted while notifications is down: events accumulate

        def grep_outbox() -> str:
            logs = steady.cli("stack", "logs", "orders", "--tail", "200")
            return "\n".join(line for line in logs.stdout.splitlines() if "outbox" in line)

        assert "failing" in wait_for(grep_outbox, timeout=60, what="outbox lines in the log")
    finally:
        assert steady.cli("chaos", "clear", "--all").returncode == 0
    sql = f"sqlite3 {steady.home / 'data' / 'orders.db'} " \
          "\"SELECT COUNT(*) FROM outbox_events WHERE NOT published;\""
    wait_for(lambda: sh(sql).stdout.strip() == "0", timeout=90, interval=1.0,
             what="the outbox to drain once notifications is back")
