"""Wall time of `chaosctl stack up` (cold: fresh state dir) and `chaosctl stack down`.

Runs the real CLI N times on free loopback ports, each round in a new temporary state dir,
and prints the median (and min/max) of each. Usage:

    python benchmarks/stack_updown.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support import free_ports  # noqa: E402

NAMES = ("gateway", "orders", "payments", "inventory", "notifications", "redis", "prometheus")


def cli(env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "chaosctl.cli.main", *args], env=env,
                            capture_output=True, text=True, timeout=180)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"`chaosctl {' '.join(args)}` failed:\n{result.stderr}")
    return elapsed


def one_round() -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="chaosctl-bench-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSCTL_")}
        env["CHAOSCTL_HOME"] = home
        env.update({f"CHAOSCTL_{n.upper()}_PORT": str(p)
                    for n, p in zip(NAMES, free_ports(len(NAMES)), strict=True)})
        try:
            up = cli(env, "stack", "up")
        finally:
            # Always stop what this round started, even if `up` failed half way.
            down = cli(env, "stack", "down", "--purge")
        return up, down


def describe(label: str, values: list[float]) -> str:
    return (f"{label:<16} median {statistics.median(values):6.2f} s   "
            f"min {min(values):6.2f} s   max {max(values):6.2f} s   (n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="up/down cycles to time")
    args = parser.parse_args()
    ups, downs = [], []
    for i in range(args.rounds):
        up, down = one_round()
        ups.append(up)
        downs.append(down)
        print(f"round {i + 1}: up {up:.2f} s, down {down:.2f} s", file=sys.stderr)
    print(describe("stack up (cold)", ups))
    print(describe("stack down", downs))


if __name__ == "__main__":
    main()
