"""Game-day scorecard: run `chaosctl game-day --all` several times and print, per scenario,
the median time to detect and time to recover, next to the seed study's MTTR figures, and
how many runs kept their integrity (charges per key, reservations per order, nothing left
pending, no charge on a failed order: read from the databases by the game day).

    python benchmarks/gameday_scorecard.py --rounds 3 [--rps 20] [--only payment-errors ...]

Starts its own stack (free loopback ports, a temporary CHAOSCTL_HOME) unless --reuse is
given, in which case it drives the stack that CHAOSCTL_* points at. Every game day is
bounded (rate x duration requests, an abort guard, a fault TTL) and rolls back by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

STUDY = {"breakers_mttr_s": 35.0, "no_breakers_mttr_s": 120.0}
PORTS = ("gateway", "orders", "payments", "inventory", "notifications", "redis", "prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "chaosctl.cli.main", *args], env=env,
                            capture_output=True, text=True, timeout=3600)
    if check and result.returncode not in (0, 1):
        raise SystemExit(f"chaosctl {' '.join(args)} failed ({result.returncode}):\n"
                         f"{result.stderr}")
    return result


INTEGRITY = ("live charges per idempotency key", "live reservations per order",
             "orders left pending after recovery",
             "live charges on orders that did not complete",
             "completed orders without a live charge and reservation")


def integrity_held(result: dict) -> bool:
    """Every integrity objective of one run passed (an unchecked one counts as broken)."""
    passed = {o["name"]: o["passed"] for o in result["objectives"]}
    return all(passed.get(name, False) for name in INTEGRITY)


def median(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f}" if values else "     –"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--only", nargs="*", default=None, help="scenarios (default: all)")
    parser.add_argument("--reuse", action="store_true", help="use the running stack")
    args = parser.parse_args()

    env = dict(os.environ)
    home = None
    if not args.reuse:
        home = tempfile.mkdtemp(prefix="chaosctl-bench-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSCTL_")}
        env["CHAOSCTL_HOME"] = home
        env.update({f"CHAOSCTL_{p.upper()}_PORT": str(free_port()) for p in PORTS})
        cli(env, "stack", "up")
        wait_s = 60
        while cli(env, "health", "--json", check=False).returncode != 0 and wait_s > 0:
            time.sleep(1)  # the first Prometheus scrapes; the game day's preflight checks too
            wait_s -= 1
    per: dict[str, dict[str, list]] = {}
    try:
        for n in range(args.rounds):
            which = args.only or ["--all"]
            result = cli(env, "game-day", *which, "--rps", str(args.rps), "--json")
            data = json.loads(result.stdout)
            for r in data["results"]:
                if r["outcome"] != "pass":
                    print(f"  {r['scenario']}: {r['outcome']}: {r['reason']}", file=sys.stderr)
                slot = per.setdefault(r["scenario"], {"mttd": [], "mttr": [], "outcomes": [],
                                                      "intact": [], "problems": []})
                slot["outcomes"].append(r["outcome"])
                intact = integrity_held(r)
                slot["intact"].append(intact)
                if not intact and r.get("integrity") and r["integrity"]["examples"]:
                    slot["problems"].append(r["integrity"]["examples"][0])
                if r["mttd_s"] is not None:
                    slot["mttd"].append(r["mttd_s"])
                if r["mttr_s"] is not None:
                    slot["mttr"].append(r["mttr_s"])
            print(f"round {n + 1}/{args.rounds}: {data['passed']}/{data['total']} passed",
                  file=sys.stderr)
    finally:
        if home is not None:
            cli(env, "stack", "down", "--purge", check=False)
    print(f"game-day scorecard: {args.rounds} round(s) at {args.rps:g} orders/s "
          f"(medians in seconds)")
    print(f"{'scenario':20} {'detect':>6} {'recover':>7}  passed  integrity")
    all_mttr = []
    for name, slot in per.items():
        all_mttr += slot["mttr"]
        passed = sum(o == "pass" for o in slot["outcomes"])
        runs = len(slot["outcomes"])
        print(f"{name:20} {median(slot['mttd'])} {median(slot['mttr']):>7}  "
              f"{passed}/{runs}     {sum(slot['intact'])}/{runs}"
              + (f"  e.g. {slot['problems'][0]}" if slot["problems"] else ""))
    if all_mttr:
        overall = statistics.median(all_mttr)
        print(f"median time to recover over all scenarios: {overall:.1f} s; seed study: "
              f"{STUDY['breakers_mttr_s']:.0f} s with breakers, "
              f"{STUDY['no_breakers_mttr_s']:.0f} s without "
              f"({STUDY['breakers_mttr_s'] / overall:.1f}x faster than the study's best)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
