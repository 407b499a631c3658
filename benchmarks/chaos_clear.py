"""How long `chaosctl chaos clear --all` takes from call to verified-clean.

Starts one stack on free loopback ports in a temporary state dir, then N rounds of: inject a
mix of faults (payment errors, inventory lock, a hung notifications, a killed payments, a
20 rps overload burst), then time the real CLI `chaos clear --all` (which only returns after
its own verification), and check independently that `chaos status` is clean. Prints the
median, min and max. The stack is stopped at the end. Usage:

    python benchmarks/chaos_clear.py [--rounds 5] [--light]

--light injects only the two Redis faults (the cost of the halt without process restarts).
"""

from __future__ import annotations

import argparse
import json
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
FULL_MIX = (
    ("payment-errors", "--rate", "0.3"),
    ("inventory-lock", "--ms", "200"),
    ("service-hang", "notifications", "--for", "5m"),
    ("service-down", "payments", "--for", "0"),
    ("overload", "--rps", "20", "--for", "60s", "--detach"),
)
LIGHT_MIX = FULL_MIX[:2]


def cli(env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "chaosctl.cli.main", *args], env=env,
                            capture_output=True, text=True, timeout=180)
    elapsed = time.perf_counter() - start
    if result.returncode not in ok:
        raise SystemExit(f"`chaosctl {' '.join(args)}` exited {result.returncode}:\n"
                         f"{result.stdout}\n{result.stderr}")
    return elapsed, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="inject + clear cycles to time")
    parser.add_argument("--light", action="store_true", help="only the two Redis faults")
    args = parser.parse_args()
    mix = LIGHT_MIX if args.light else FULL_MIX
    with tempfile.TemporaryDirectory(prefix="chaosctl-bench-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOSCTL_")}
        env["CHAOSCTL_HOME"] = home
        env.update({f"CHAOSCTL_{n.upper()}_PORT": str(p)
                    for n, p in zip(NAMES, free_ports(len(NAMES)), strict=True)})
        times: list[float] = []
        try:
            cli(env, "stack", "up")
            for i in range(args.rounds):
                for fault in mix:
                    cli(env, "inject", *fault)
                elapsed, out = cli(env, "chaos", "clear", "--all", "--json", ok=(0, 1))
                result = json.loads(out)
                if not result["ok"]:
                    raise SystemExit(f"round {i}: clear left something: {result}")
                _, status = cli(env, "chaos", "status", "--json")
                if not json.loads(status)["clean"]:
                    raise SystemExit(f"round {i}: status not clean after clear: {status}")
                times.append(elapsed)
                print(f"round {i + 1}: {elapsed:.2f} s (core {result['elapsed_s']:.2f} s)",
                      file=sys.stderr)
        finally:
            cli(env, "chaos", "clear", "--all", ok=(0, 1, 2))
            cli(env, "stack", "down", "--purge")
    label = "light mix (2 Redis faults)" if args.light else f"mix of {len(mix)} faults"
    print(f"chaos clear --all, {label}: median {statistics.median(times):.2f} s   "
          f"min {min(times):.2f} s   max {max(times):.2f} s   (n={len(times)}, "
          "call to verified-clean, CLI process start included)")


if __name__ == "__main__":
    main()
