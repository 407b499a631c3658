"""`chaosctl health` next to the runbook's curl|jq health loop, and `chaosctl --help`.

    python benchmarks/health_vs_curl.py [--rounds 15] [--own-stack]

Uses the stack the usual settings point at (CHAOSCTL_* env, config.toml, defaults), or with
--own-stack starts one on free loopback ports in a temporary CHAOSCTL_HOME and stops it
after. Runs alternate (curl loop, `health --json`, `health`, `health --help`, `--help`, a
bare interpreter) so all see the same machine load. `health --help` goes through typer and
renders the JSON shape from the pydantic contract model; `health` and `health --json` take
the typer-free path (chaosctl/cli/health.py). Prints wall-time medians and minimums, the CPU time
(user + sys of the child processes, less sensitive to a busy machine than wall time) and the
ratios to the curl loop; asserts nothing. Children run with bytecode caching on (as an
installed chaosctl does), whatever PYTHONDONTWRITEBYTECODE says here.

Not like for like, on purpose: the loop asks five /health endpoints one after another and
prints five words; `chaosctl health` also reads the breakers, Redis and its chaos keys and
Prometheus' targets, concurrently, and pays for a Python interpreter start.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chaosctl.config import load_settings  # noqa: E402
from chaosctl.domain import SERVICES  # noqa: E402

# The runbook's "Health Checks" loop, on our host and ports instead of localhost:8000-8004.
RUNBOOK_LOOP = """for port in {ports}; do
  echo -n "Port $port: "
  curl -sf http://{host}:$port/health | jq -r .status
done"""
PORT_NAMES = (*SERVICES, "redis", "prometheus")


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of cmd (CPU: user + sys of the children it waited)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu


def own_stack_env(env: dict[str, str]) -> tuple[dict[str, str], Path]:
    sys.path.insert(0, str(ROOT / "tests"))
    from tests.support import free_ports

    home = Path(tempfile.mkdtemp(prefix="chaosctl-bench-health-"))
    env = {k: v for k, v in env.items() if not k.startswith("CHAOSCTL_")}
    env["CHAOSCTL_HOME"] = str(home)
    for name, port in zip(PORT_NAMES, free_ports(len(PORT_NAMES)), strict=True):
        env[f"CHAOSCTL_{name.upper()}_PORT"] = str(port)
    return env, home


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="runs of each (default 15)")
    parser.add_argument("--own-stack", action="store_true",
                        help="start a stack on free ports for the run, stop it after")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 200:
        parser.error("--rounds must be within 1-200")
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (make deps installs it)", file=sys.stderr)
            return 2

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    home = None
    chaosctl = [sys.executable, "-m", "chaosctl.cli.main"]
    if args.own_stack:
        env, home = own_stack_env(env)
        up = subprocess.run([*chaosctl, "stack", "up"], env=env, cwd=ROOT,
                            capture_output=True, text=True)
        if up.returncode != 0:
            print(f"stack up failed:\n{up.stderr}", file=sys.stderr)
            return 1
    try:
        return measure(args.rounds, env, chaosctl)
    finally:
        if home is not None:
            subprocess.run([*chaosctl, "stack", "down", "--purge"], env=env, cwd=ROOT,
                           capture_output=True)
            shutil.rmtree(home, ignore_errors=True)


def measure(rounds: int, env: dict[str, str], chaosctl: list[str]) -> int:
    os.environ.update({k: v for k, v in env.items() if k.startswith("CHAOSCTL_")})
    settings = load_settings()
    ports = " ".join(str(settings.port(s)) for s in SERVICES)
    loop = ["bash", "-c", RUNBOOK_LOOP.format(ports=ports, host=settings.host)]
    first = subprocess.run(loop, capture_output=True, text=True, env=env)
    statuses = [line.rsplit(" ", 1)[-1] for line in first.stdout.splitlines()]
    if statuses != ["ok"] * len(SERVICES):
        print(f"the stack on ports {ports} is not healthy:\n{first.stdout}", file=sys.stderr)
        return 1
    cases = {
        "runbook curl|jq loop (5 x /health, sequential)": loop,
        "chaosctl health --json (all checks)": [*chaosctl, "health", "--json"],
        "chaosctl health (rich tables)": [*chaosctl, "health"],
        "chaosctl health --help (typer, shape from the model)": [*chaosctl, "health", "--help"],
        "chaosctl --help": [*chaosctl, "--help"],
        "python -c pass (interpreter start alone)": [sys.executable, "-c", "pass"],
    }
    for cmd in cases.values():  # warm-up: bytecode caches written, files in the page cache
        run(cmd, env)
    walls: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, cmd in cases.items():
            wall, cpu = run(cmd, env)
            walls[name].append(wall)
            cpus[name].append(cpu)

    def ms(values: list[float]) -> float:
        return statistics.median(values) * 1000

    load = os.getloadavg()[0]
    print(f"{rounds} rounds against ports {ports} (+ redis {settings.redis_port}, prometheus "
          f"{settings.prometheus_port}); load average {load:.1f} on {os.cpu_count()} cores")
    print(f"  {'':52} {'wall median':>11} {'wall min':>9} {'CPU median':>11}")
    for name in cases:
        print(f"  {name:52} {ms(walls[name]):8.0f} ms {min(walls[name]) * 1000:6.0f} ms "
              f"{ms(cpus[name]):8.0f} ms")
    curl = next(iter(cases))
    for name in list(cases)[1:3]:
        print(f"  ratio {name} / curl loop: wall {ms(walls[name]) / ms(walls[curl]):.2f}x, "
              f"CPU {ms(cpus[name]) / ms(cpus[curl]):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
