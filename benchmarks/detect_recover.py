"""Seconds from fault injection to `diagnose` firing, and from remediation start to verified
recovery, per incident (median of --runs), against a RUNNING stack under light traffic.

    chaosctl stack up            # or CHAOSCTL_HOME/CHAOSCTL_*_PORT for another stack
    python benchmarks/detect_recover.py --runs 3 [--rate 8] [--only payment-degradation ...]
    python benchmarks/detect_recover.py --clean 60   # also: 60 s of clean traffic, 0 firings

Detection polls the core diagnose (the same code as `chaosctl diagnose`) every 0.25 s until
the incident's playbook fires; "named" shows what fired then (and anything seen before it).
Recovery is `chaosctl remediate NAME --yes`'s engine run: remediate steps + verify hold.
Faults: payment errors 50 %, inventory lock contention 300 ms, inventory errors 50 %,
notifications paused,
payments killed, payments latency 1.5 s with clients resending after 0.6 s, orders without
retry budget/breakers while payments (100 %) and inventory (50 %) fail.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaosctl.config import load_settings  # noqa: E402
from chaosctl.playbook import api  # noqa: E402
from tests.e2e.playbook_traffic import IncidentTraffic as Traffic  # noqa: E402

os.environ.setdefault("CHAOSCTL_REMEDIATION_CAP", "1000")  # many runs of the same playbook
settings = load_settings()


def cli(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, "-m", "chaosctl.cli.main", *args], check=True,
                   capture_output=True, env=env)


def chaos(service: str, **faults: float) -> None:
    token = settings.admin_token()
    httpx.post(f"{settings.url(service)}/chaos/config", json={**faults, "ttl_s": 300},
               headers={"Authorization": f"Bearer {token}"}, timeout=10).raise_for_status()


def clean() -> None:
    for service in ("payments", "inventory"):
        httpx.delete(f"{settings.url(service)}/chaos/config", timeout=10)


def no_retry_budget() -> None:
    cli("stack", "restart", "orders",
        env={**os.environ, "SHOP_RETRY_BUDGET_RATIO": "100", "SHOP_BREAKERS": "0"})
    chaos("payments", error_rate=1.0)
    chaos("inventory", error_rate=0.5)


# name -> (inject, traffic options, undo after the run)
SCENARIOS: dict[str, tuple[Callable[[], None], dict, Callable[[], None]]] = {
    "payment-degradation": (lambda: chaos("payments", error_rate=0.5), {}, clean),
    "inventory-lock-contention": (lambda: chaos("inventory", lock_contention_ms=300), {}, clean),
    "inventory-errors": (lambda: chaos("inventory", error_rate=0.5), {}, clean),
    "outbox-backlog": (lambda: cli("stack", "pause", "notifications"), {},
                       lambda: subprocess.run([sys.executable, "-m", "chaosctl.cli.main",
                                               "stack", "resume", "notifications"],
                                              capture_output=True)),
    "service-down": (lambda: cli("stack", "kill", "payments"), {},
                     lambda: subprocess.run([sys.executable, "-m", "chaosctl.cli.main", "stack",
                                             "start", "payments"], capture_output=True)),
    "idempotency-conflict-storm": (lambda: chaos("payments", latency_ms=1500),
                                   {"rate": 5.0, "client_timeout": 0.6, "resend": 3}, clean),
    "retry-storm": (no_retry_budget, {}, lambda: (clean(), cli("stack", "restart", "orders"))),
}


def wait_quiet(timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not api.diagnose(settings, evidence=False).firing:
            return
        time.sleep(1)
    raise SystemExit("the stack did not become quiet; is something broken?")


def one_run(name: str, rate: float) -> tuple[float, float, str]:
    inject, options, undo = SCENARIOS[name]
    options = {"rate": rate, **options}
    engine = api.build_engine(settings, [])
    with Traffic(settings.url("gateway"), max_seconds=300, **options):
        time.sleep(3)  # traffic in the windows before the fault
        wait_quiet()
        t0 = time.monotonic()
        inject()
        seen: set[str] = set()
        while True:
            firing = api.diagnose(settings, evidence=False).firing
            seen |= set(firing)
            if name in firing:
                break
            if time.monotonic() - t0 > 120:
                raise SystemExit(f"{name}: never fired")
            time.sleep(0.25)
        detect_s = time.monotonic() - t0
        t1 = time.monotonic()
        result = engine.remediate(engine.catalog.get(name))
        recover_s = time.monotonic() - t1
    undo()
    named = ",".join(firing)
    if seen - {name}:
        named += f" (seen first: {','.join(sorted(seen - {name}))})"
    if result.status != "recovered":
        named += f" ({result.status}: {result.still_failing})"
    return detect_s, recover_s, named


def clean_run(seconds: float, rate: float) -> int:
    firings = 0
    with Traffic(settings.url("gateway"), rate=rate, max_seconds=seconds + 30):
        time.sleep(3)
        wait_quiet()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            firings += bool(api.diagnose(settings, evidence=False).firing)
            time.sleep(0.5)
    return firings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=8.0, help="orders/s of light traffic")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS))
    parser.add_argument("--clean", type=float, default=0.0,
                        help="seconds of clean traffic checked for false positives")
    args = parser.parse_args()
    print(f"{'incident':<28} {'detect s (median)':>18} {'recover s (median)':>19}  runs / named")
    for name in args.only or list(SCENARIOS):
        runs = [one_run(name, args.rate) for _ in range(args.runs)]
        detect = statistics.median(r[0] for r in runs)
        recover = statistics.median(r[1] for r in runs)
        named = sorted({r[2] for r in runs})
        print(f"{name:<28} {detect:>18.1f} {recover:>19.1f}  {len(runs)} / {'; '.join(named)}",
              flush=True)
    if args.clean:
        firings = clean_run(args.clean, args.rate)
        print(f"clean traffic {args.clean:g}s at {args.rate:g}/s: {firings} diagnose rounds fired")


if __name__ == "__main__":
    main()
