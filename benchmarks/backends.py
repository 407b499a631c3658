"""The docker backend beside the local one, in one run: `stack up` time (cold: nothing
running; the image already built) and each game-day scenario's MTTD and MTTR.

Starts a private dockerd (tests/docker/private_engine.py: own socket and data root under
/tmp, no iptables, stopped by PID at the end), builds the stack image in it (timed; the
rootfs and wheels come from the cache after the first build on a machine), then for each
backend: `stack up` on free loopback ports in a temporary state dir, `game-day SCENARIO` for
each scenario, `stack down --purge`. Needs root, dockerd and debootstrap (scripts/engines.sh).

    python benchmarks/backends.py [--scenarios payment-errors,service-crash] [--rps 15]

Prints one table; nothing is asserted (figures vary with the machine's load).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from chaosctl.gameday.scenarios import SCENARIOS  # noqa: E402
from tests.docker.private_engine import remove_root, start_private_engine  # noqa: E402
from tests.support import free_ports  # noqa: E402

NAMES = ("gateway", "orders", "payments", "inventory", "notifications", "redis", "prometheus")


def cli(env: dict[str, str], *args: str, timeout: float = 900) -> tuple[float, subprocess.
                                                                         CompletedProcess[str]]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "chaosctl.cli.main", *args], env=env,
                            capture_output=True, text=True, timeout=timeout)
    return time.monotonic() - started, result


def stack_env(backend: str, docker_host: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAOSCTL_", "DOCKER_"))}
    env.update({f"CHAOSCTL_{n.upper()}_PORT": str(p)
                for n, p in zip(NAMES, free_ports(len(NAMES)), strict=True)})
    env.update({"CHAOSCTL_HOME": tempfile.mkdtemp(prefix=f"chaosctl-bench-{backend}-"),
                "CHAOSCTL_BACKEND": backend, "CHAOSCTL_COMPOSE_PROJECT": "chaosctlbench"})
    if os.environ.get("CHAOSCTL_CACHE_DIR"):
        env["CHAOSCTL_CACHE_DIR"] = os.environ["CHAOSCTL_CACHE_DIR"]
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    return env


def run_backend(backend: str, docker_host: str | None, scenarios: list[str],
                game_args: list[str]) -> dict[str, object]:
    env = stack_env(backend, docker_host)
    figures: dict[str, object] = {}
    try:
        took, result = cli(env, "stack", "up")
        if result.returncode != 0:
            raise SystemExit(f"{backend}: stack up failed:\n{result.stderr[-2000:]}")
        figures["up_s"] = took
        print(f"{backend}: stack up {took:.1f}s", file=sys.stderr, flush=True)
        for scenario in scenarios:
            report = Path(env["CHAOSCTL_HOME"]) / "reports"
            _, result = cli(env, "game-day", scenario, *game_args, "--json", "--report",
                            str(report))
            try:
                (res,) = json.loads(result.stdout)["results"]
            except (ValueError, KeyError):
                res = {}
            figures[scenario] = (res.get("mttd_s"), res.get("mttr_s"), result.returncode)
            # Why a run failed is part of the figure: the same failure on both backends is
            # the stack's or the playbook's, not the backend's.
            why = "" if result.returncode == 0 else f" ({res.get('reason') or 'no result'})"
            print(f"{backend}: {scenario} mttd {fmt(res.get('mttd_s'))}s mttr "
                  f"{fmt(res.get('mttr_s'))}s playbook {res.get('fired_playbook')} exit "
                  f"{result.returncode}{why}", file=sys.stderr, flush=True)
    finally:
        cli(env, "stack", "down", "--purge")
        shutil.rmtree(env["CHAOSCTL_HOME"], ignore_errors=True)
    return figures


def fmt(value: object) -> str:
    return "-" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated game-day scenarios (default: all)")
    parser.add_argument("--rps", default="15")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    game_args = ["--rps", args.rps, "--baseline", "3s", "--hold", "3s", "--duration", "60s"]

    engine = start_private_engine()
    try:
        env = stack_env("docker", engine.url)
        build_s, result = cli(env, "stack", "build", timeout=1800)
        shutil.rmtree(env["CHAOSCTL_HOME"], ignore_errors=True)
        if result.returncode != 0:
            raise SystemExit(f"stack build failed:\n{result.stderr[-2000:]}")
        print(f"image build (cache warm for rootfs/wheels when present): {build_s:.1f}s")
        local = run_backend("local", None, scenarios, game_args)
        docker = run_backend("docker", engine.url, scenarios, game_args)
    finally:
        engine.stop()
        remove_root(engine)
        if engine.problems:
            print("engine teardown:", "; ".join(engine.problems))

    print(f"\n{'':<22}{'local':>18}{'docker':>18}")
    print(f"{'stack up (s)':<22}{fmt(local['up_s']):>18}{fmt(docker['up_s']):>18}")
    for scenario in scenarios:
        cells = []
        for figures in (local, docker):
            mttd, mttr, code = figures[scenario]  # type: ignore[misc]
            cells.append(f"{fmt(mttd)} / {fmt(mttr)}" + ("" if code == 0 else f" (exit {code})"))
        print(f"{scenario + ' MTTD/MTTR':<22}{cells[0]:>18}{cells[1]:>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
