"""`chaosctl health --json` next to the runbook's curl|jq health loop, against a running stack.

    python benchmarks/health_vs_curl.py [--rounds 10]

Ports come from the usual settings (CHAOSCTL_* env, config.toml, defaults), so point it at a
stack started with `chaosctl stack up`. Runs alternate (curl loop, chaosctl, in-process check)
so both see the same machine load. Prints wall-time medians and the ratio; asserts nothing.

Not like for like, on purpose: the loop asks five /health endpoints one after another and
prints five words; `chaosctl health` also reads the breakers, Redis and its chaos keys and
Prometheus' targets, concurrently, and pays for a Python interpreter start. The in-process
figure (chaosctl.health.check_health) separates the checks from the start-up cost.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from chaosctl.config import SERVICES, load_settings
from chaosctl.health import check_health

# The runbook's "Health Checks" loop, on our host and ports instead of localhost:8000-8004.
RUNBOOK_LOOP = """for port in {ports}; do
  echo -n "Port $port: "
  curl -sf http://{host}:$port/health | jq -r .status
done"""


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="runs of each (default 10)")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 200:
        parser.error("--rounds must be within 1-200")
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (make deps installs it)", file=sys.stderr)
            return 2

    settings = load_settings()
    ports = " ".join(str(settings.port(s)) for s in SERVICES)
    loop = RUNBOOK_LOOP.format(ports=ports, host=settings.host)
    cli = [sys.executable, "-m", "chaosctl.cli.main", "health", "--json"]

    first = subprocess.run(["bash", "-c", loop], capture_output=True, text=True)
    statuses = [line.rsplit(" ", 1)[-1] for line in first.stdout.splitlines()]
    if statuses != ["ok"] * len(SERVICES):
        print(f"the stack on ports {ports} is not healthy:\n{first.stdout}", file=sys.stderr)
        return 1

    curl_s, cli_s, core_s = [], [], []
    for _ in range(args.rounds):
        curl_s.append(timed(lambda: subprocess.run(["bash", "-c", loop], capture_output=True)))
        cli_s.append(timed(lambda: subprocess.run(cli, capture_output=True)))
        core_s.append(timed(lambda: check_health(settings)))

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:7.1f} ms  (min {min(values) * 1000:.1f})"

    print(f"{args.rounds} rounds against ports {ports} (+ redis {settings.redis_port}, "
          f"prometheus {settings.prometheus_port})")
    print(f"  runbook curl|jq loop (5 x /health, sequential)      {ms(curl_s)}")
    print(f"  chaosctl health --json (new process, all checks)    {ms(cli_s)}")
    print(f"  chaosctl.health.check_health() (in-process)         {ms(core_s)}")
    ratio = statistics.median(cli_s) / statistics.median(curl_s)
    print(f"  ratio chaosctl health / curl loop: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
