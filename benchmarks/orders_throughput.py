"""Orders through the gateway at a fixed rate (open loop): throughput and latency, then the same
at 20 % payment errors with the order success rate and the retry amplification.

    .venv/bin/python benchmarks/orders_throughput.py                 # starts its own stack
    .venv/bin/python benchmarks/orders_throughput.py --rate 100 --duration 20
    .venv/bin/python benchmarks/orders_throughput.py --gateway http://127.0.0.1:8000 \\
        --orders http://127.0.0.1:8001 --payments http://127.0.0.1:8002 --admin-token TOKEN

Open loop: request i is sent at start + i / rate whatever happened to earlier ones, so a slow
stack shows up as latency (not as a politely lower offered rate). Bounded: at most
rate x duration requests per phase, at most --max-inflight in flight (a send that would
exceed it is counted as `client_saturated` instead of queued), loopback addresses only.

Retry amplification = payments calls made by orders (downstream_requests_total{to_service=
"payments"}, read from orders' /metrics before and after) / orders that reached payments
(orders_total completed + payment_failed over the same span).

`--cpu` measures CPU instead of speed (robust on a shared machine, unlike orders/s):
`--cpu-orders` orders (300) through chaosctl's closed-loop LoadGenerator at `--concurrency`
(8), reading utime+stime from /proc/PID/stat of every stack process before and after, and
prints CPU ms per order for each process and the stack, medians over `--repeat`. The same
run first measures GET /health on the gateway (the cheapest request the stack serves) as the
baseline, so the order's cost is also printed as a multiple of that.

    .venv/bin/python benchmarks/orders_throughput.py --cpu --repeat 3

`--compare-stack DIR` runs a second stack from another checkout's stack/ directory in the same
run, rounds alternating between the two, and prints its figures and the ratio per process:

    git archive HEAD | (mkdir -p /tmp/head && tar -x -C /tmp/head)
    .venv/bin/python benchmarks/orders_throughput.py --cpu --repeat 4 \\
        --compare-stack /tmp/head/stack
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from chaosctl.stats import percentile

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# The client contract: 201 completed, 202 recorded but failed; both are orders the stack made.
RECORDED = (201, 202)


@dataclass
class Phase:
    name: str
    offered_rate: float
    sent: int = 0
    elapsed_s: float = 0.0
    http_status: dict[str, int] = field(default_factory=dict)
    order_status: dict[str, int] = field(default_factory=dict)
    client_saturated: int = 0
    orders_per_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    success_rate: float | None = None
    payments_calls: float | None = None
    orders_reaching_payments: float | None = None
    retry_amplification: float | None = None


async def drive(gateway: str, rate: float, duration_s: float, max_inflight: int,
                name: str) -> Phase:
    total = int(rate * duration_s)
    phase = Phase(name=name, offered_rate=rate)
    latencies: list[float] = []
    http_status: Counter[str] = Counter()
    order_status: Counter[str] = Counter()
    inflight = 0
    limits = httpx.Limits(max_connections=max_inflight, max_keepalive_connections=max_inflight)

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(i: int) -> None:
            nonlocal inflight
            body = {"customer_id": f"bench-{name}",
                    "items": [{"product_id": f"SKU-{1 + i % 100:03d}", "quantity": 1,
                               "unit_price": 10.0}]}
            start = time.perf_counter()
            try:
                response = await client.post(f"{gateway}/orders", json=body)
                label = str(response.status_code)
                if response.status_code >= 400:  # e.g. "503 bulkhead_full"
                    try:
                        label += f" {response.json().get('error', '')}"
                    except ValueError:
                        pass
                http_status[label] += 1
                if response.status_code in RECORDED:
                    latencies.append(time.perf_counter() - start)
                    order_status[response.json().get("status", "?")] += 1
            except httpx.HTTPError as exc:
                http_status[type(exc).__name__] += 1
            finally:
                inflight -= 1

        tasks: list[asyncio.Task[None]] = []
        began = time.perf_counter()
        for i in range(total):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if inflight >= max_inflight:
                phase.client_saturated += 1
                continue
            inflight += 1
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        phase.elapsed_s = time.perf_counter() - began

    latencies.sort()
    phase.sent = len(tasks)
    phase.http_status = dict(http_status)
    phase.order_status = dict(order_status)
    recorded = sum(http_status[str(code)] for code in RECORDED)
    phase.orders_per_s = round(recorded / phase.elapsed_s, 1) if phase.elapsed_s \
        else 0.0
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    phase.p50_ms = round(p50 * 1000, 1) if p50 is not None else None
    phase.p99_ms = round(p99 * 1000, 1) if p99 is not None else None
    phase.success_rate = order_status["completed"] / phase.sent if phase.sent else None
    return phase


def _sample(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def _payment_counters(orders_url: str) -> tuple[float, float]:
    text = httpx.get(f"{orders_url}/metrics", timeout=10).text
    calls = _sample(text, "downstream_requests_total", to_service="payments")
    reached = (_sample(text, "orders_total", status="completed")
               + _sample(text, "orders_total", status="payment_failed"))
    return calls, reached


def _check_loopback(*urls: str) -> None:
    for url in urls:
        if urlparse(url).hostname not in LOOPBACK:
            raise SystemExit(f"refusing {url}: this benchmark only talks to loopback addresses")


def _one_round(args: argparse.Namespace, gateway: str, orders: str, payments: str,
               token: str) -> tuple[Phase, Phase]:
    httpx.delete(f"{payments}/chaos/config", timeout=10).raise_for_status()
    baseline = asyncio.run(drive(gateway, args.rate, args.duration, args.max_inflight,
                                 "baseline"))
    response = httpx.post(f"{payments}/chaos/config",
                          headers={"Authorization": f"Bearer {token}"},
                          json={"error_rate": args.error_rate,
                                "ttl_s": int(args.duration) + 120}, timeout=10)
    if response.status_code != 200:
        raise SystemExit(f"could not set payments chaos ({response.status_code}): "
                         f"{response.text}; pass --admin-token or set CHAOSCTL_ADMIN_TOKEN")
    calls0, reached0 = _payment_counters(orders)
    faulty = asyncio.run(drive(gateway, args.rate, args.duration, args.max_inflight,
                               f"payment_errors_{round(args.error_rate * 100)}pct"))
    calls1, reached1 = _payment_counters(orders)
    httpx.delete(f"{payments}/chaos/config", timeout=10).raise_for_status()
    faulty.payments_calls = calls1 - calls0
    faulty.orders_reaching_payments = reached1 - reached0
    if faulty.orders_reaching_payments:
        faulty.retry_amplification = round(
            faulty.payments_calls / faulty.orders_reaching_payments, 3)
    return baseline, faulty


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 4) if present else None


MEDIAN_FIELDS = {"baseline": ("orders_per_s", "p50_ms", "p99_ms"),
                 "faulty": ("orders_per_s", "p50_ms", "p99_ms", "success_rate",
                            "retry_amplification")}


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process (all its threads), from /proc/PID/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def stack_pids(stack: object | None, home: str | None) -> dict[str, int]:
    """PIDs of every stack process: the stack this script started, or chaosctl's pid files."""
    if stack is not None:
        return stack.pids()  # type: ignore[attr-defined]
    from chaosctl.runtime.procs import RunDir

    base = Path(home or os.environ.get("CHAOSCTL_HOME")
                or Path.home() / ".local/state/chaosctl")
    records, _bad = RunDir(base / "run").records()
    return {rec.label: rec.pid for rec in records if rec.is_ours()}


def _cpu_now(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu for name, pid in pids.items() if (cpu := cpu_seconds(pid)) is not None}


def _closed_loop(gateway: str, orders: int, concurrency: int, path: str = "/orders"
                 ) -> dict:
    from chaosctl.chaos.load import LoadConfig, LoadGenerator, order_request

    def health_request(_i: int) -> tuple[str, dict, dict]:
        return "/health", {}, {}

    config = LoadConfig(base_url=gateway, rps=0, duration_s=300, max_requests=orders,
                        concurrency=concurrency, timeout_s=30,
                        make_request=order_request if path == "/orders" else health_request)
    return asyncio.run(LoadGenerator(config).run())


def _health_closed_loop(gateway: str, n: int, concurrency: int) -> dict:
    """GET /health back-to-back (the generator POSTs, so this is a small client of its own)."""
    async def go() -> dict:
        codes: Counter[int] = Counter()
        left = n
        async with httpx.AsyncClient(base_url=gateway, trust_env=False) as client:
            async def worker() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    codes[(await client.get("/health")).status_code] += 1
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return {"status_counts": {str(k): v for k, v in codes.items()}}
    return asyncio.run(go())


def cpu_round(gateway: str, pids: dict[str, int], orders: int, concurrency: int) -> dict:
    """CPU ms per request of every process: GET /health (baseline), then orders."""
    before = _cpu_now(pids)
    health = _health_closed_loop(gateway, orders, concurrency)
    middle = _cpu_now(pids)
    load = _closed_loop(gateway, orders, concurrency)
    after = _cpu_now(pids)

    def per_request(a: dict[str, float], b: dict[str, float], n: int) -> dict[str, float]:
        out = {name: round((b[name] - a[name]) * 1000 / n, 3) for name in b if name in a}
        out["stack"] = round(sum(out.values()), 3)
        return out

    answered = sum(v for k, v in load["status_counts"].items() if k in ("201", "202"))
    return {"health_ms": per_request(before, middle, orders),
            "order_ms": per_request(middle, after, max(1, answered)),
            "orders_answered": answered, "order_status_counts": load["status_counts"],
            "health_status_counts": health["status_counts"],
            "elapsed_s": load["elapsed_s"], "p50_ms": load["p50_ms"], "p99_ms": load["p99_ms"]}


def _cpu_median(rounds: list[dict]) -> dict:
    names = list(rounds[0]["order_ms"])
    return {kind: {n: _median([r[kind].get(n) for r in rounds]) for n in names}
            for kind in ("health_ms", "order_ms")}


def run_cpu(args: argparse.Namespace) -> dict:
    """`--repeat` rounds on this tree's stack; with `--compare-stack DIR` a second stack runs
    from DIR (another checkout's stack/, e.g. `git archive HEAD` unpacked) and the rounds
    alternate between the two (ABBA...), so both see the same machine load."""
    stacks: list[tuple[str, object | None, str, dict[str, int]]] = []
    try:
        for label, stack_dir in [("this", None)] + (
                [("compare", args.compare_stack)] if args.compare_stack else []):
            stack, gateway = _start(args, stack_dir)
            stacks.append((label, stack, gateway, {}))
            pids = stack_pids(stack, args.home)
            if not pids:
                raise SystemExit("no stack processes found: start the stack or pass --home")
            stacks[-1] = (label, stack, gateway, pids)
            _closed_loop(gateway, 50, args.concurrency)  # warm-up, not measured
        rounds: dict[str, list[dict]] = {label: [] for label, *_ in stacks}
        for i in range(args.repeat):
            order = stacks if i % 2 == 0 else stacks[::-1]
            for label, _stack, gateway, pids in order:
                rounds[label].append(cpu_round(gateway, pids, args.cpu_orders,
                                               args.concurrency))
    finally:
        for _label, stack, *_ in stacks:
            _stop(stack)
    result = {"mode": "cpu", "orders": args.cpu_orders, "concurrency": args.concurrency,
              "repeat": args.repeat, "stack_env": args.stack_env,
              "own_stack": stacks[0][1] is not None, "pids": stacks[0][3],
              "rounds": rounds["this"], "median": _cpu_median(rounds["this"])}
    if args.compare_stack:
        result["compare"] = {"stack_dir": str(args.compare_stack), "rounds": rounds["compare"],
                             "median": _cpu_median(rounds["compare"])}
    return result


def _round_lines(rounds: list[dict], tag: str = "") -> list[str]:
    return [f"{tag}round {i}: stack {r['order_ms']['stack']} ms/order "
            f"({r['orders_answered']} answered {r['order_status_counts']}, "
            f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, {r['elapsed_s']} s); "
            f"GET /health {r['health_ms']['stack']} ms" for i, r in enumerate(rounds, 1)]


def render_cpu(result: dict) -> str:
    med = result["median"]
    other = result.get("compare")
    lines = [f"CPU per request: {result['orders']} orders at concurrency "
             f"{result['concurrency']}, {result['repeat']} round(s), "
             f"{'own stack, SQLite' if result['own_stack'] else 'existing stack'}"
             + (f", env {result['stack_env']}" if result["stack_env"] else "")]
    lines += _round_lines(result["rounds"])
    if other:
        lines += _round_lines(other["rounds"], f"compare ({other['stack_dir']}) ")
    header = f"{'process':<16}{'ms/order':>10}{'ms/health':>11}{'order/health':>14}"
    if other:
        header += f"{'compare':>10}{'this/compare':>14}"
    lines.append(header)
    base = med["health_ms"].get("stack") or None
    for name, value in med["order_ms"].items():
        h = med["health_ms"].get(name)
        line = f"{name:<16}{value:>10.3f}{(h or 0):>11.3f}" + (
            f"{value / base:>13.1f}x" if name == "stack" and base else " " * 14)
        if other:
            then = other["median"]["order_ms"].get(name)
            line += f"{(then or 0):>10.3f}" + (f"{value / then:>14.2f}" if then else "")
        lines.append(line.rstrip())
    if other and other["median"]["health_ms"].get("stack"):
        then = other["median"]["order_ms"]["stack"] / other["median"]["health_ms"]["stack"]
        lines.append(f"compare stack: {then:.1f}x its own GET /health")
    return "\n".join(lines)


def _start(args: argparse.Namespace, stack_dir: Path | None = None
           ) -> tuple[object | None, str]:
    """This tree's stack (or the running one of --gateway); `stack_dir`: the services of
    another checkout's stack/ directory instead (the rest of the harness stays this tree's)."""
    if args.gateway is not None:
        _check_loopback(args.gateway)
        return None, args.gateway
    sys.path.insert(0, str(REPO))
    from tests.integration import shopstack

    stack = shopstack.ShopStack(Path(tempfile.mkdtemp(prefix="bench-shop-")),
                                env=args.stack_env)
    default_dir = shopstack.STACK_DIR
    shopstack.STACK_DIR = stack_dir or default_dir  # read when the services are launched
    try:
        stack.start()
    finally:
        shopstack.STACK_DIR = default_dir
    return stack, stack.url("gateway")


def _stop(stack: object | None) -> None:
    if stack is not None:
        stack.stop()  # type: ignore[attr-defined]
        shutil.rmtree(stack.workdir, ignore_errors=True)  # type: ignore[attr-defined]


def run(args: argparse.Namespace) -> dict:
    """Both phases `--repeat` times on one stack; returns every round and the medians."""
    stack = None
    if args.gateway is None:
        sys.path.insert(0, str(REPO))
        from tests.integration.shopstack import ShopStack

        stack = ShopStack(Path(tempfile.mkdtemp(prefix="bench-shop-")), env=args.stack_env)
        stack.start()
        gateway, orders, payments = (stack.url("gateway"), stack.url("orders"),
                                     stack.url("payments"))
        token = stack.admin_token
    else:
        gateway, orders, payments = args.gateway, args.orders, args.payments
        token = args.admin_token or os.environ.get("CHAOSCTL_ADMIN_TOKEN", "")
    _check_loopback(gateway, orders, payments)
    rounds: list[dict] = []
    try:
        # Warm-up: connections, SQLite pages, import-time lazies; not measured.
        asyncio.run(drive(gateway, min(args.rate, 20.0), 1.0, args.max_inflight, "warmup"))
        for _ in range(args.repeat):
            baseline, faulty = _one_round(args, gateway, orders, payments, token)
            rounds.append({"baseline": asdict(baseline), "faulty": asdict(faulty)})
    finally:
        try:
            httpx.delete(f"{payments}/chaos/config", timeout=10)
        finally:
            if stack is not None:
                stack.stop()
                shutil.rmtree(stack.workdir, ignore_errors=True)
    median = {phase: {f: _median([r[phase][f] for r in rounds]) for f in fields}
              for phase, fields in MEDIAN_FIELDS.items()}
    return {"rate": args.rate, "duration_s": args.duration, "error_rate": args.error_rate,
            "repeat": args.repeat, "stack_env": args.stack_env,
            "own_stack": stack is not None, "rounds": rounds, "median": median}


def render(result: dict) -> str:
    lines = [
        f"offered {result['rate']:g} orders/s for {result['duration_s']:g} s per phase, "
        f"{result['repeat']} round(s) "
        f"({'own stack, SQLite' if result['own_stack'] else 'existing stack'}"
        + (f", env {result['stack_env']}" if result["stack_env"] else "") + ")"]
    for i, r in enumerate(result["rounds"], 1):
        base, faulty = r["baseline"], r["faulty"]
        lines += [
            f"round {i} baseline: {base['orders_per_s']} orders/s, p50 {base['p50_ms']} ms, "
            f"p99 {base['p99_ms']} ms, http {base['http_status']}"
            + (f", client_saturated {base['client_saturated']}"
               if base["client_saturated"] else ""),
            f"round {i} payments at {result['error_rate']:.0%} errors: "
            f"{faulty['orders_per_s']} orders/s, p50 {faulty['p50_ms']} ms, "
            f"p99 {faulty['p99_ms']} ms, http {faulty['http_status']}"
            + (f", client_saturated {faulty['client_saturated']}"
               if faulty["client_saturated"] else ""),
            f"    success {faulty['success_rate']:.1%} "
            f"({faulty['order_status'].get('completed', 0)}/{faulty['sent']}, "
            f"orders {faulty['order_status']}), retry amplification "
            f"{faulty['retry_amplification']}x ({faulty['payments_calls']:.0f} payments calls"
            f" / {faulty['orders_reaching_payments']:.0f} orders that reached payments)",
        ]
    base, faulty = result["median"]["baseline"], result["median"]["faulty"]
    lines += [
        f"MEDIAN baseline: {base['orders_per_s']} orders/s, p50 {base['p50_ms']} ms, "
        f"p99 {base['p99_ms']} ms",
        f"MEDIAN at {result['error_rate']:.0%} payment errors: {faulty['orders_per_s']} "
        f"orders/s, p50 {faulty['p50_ms']} ms, p99 {faulty['p99_ms']} ms, order success rate "
        f"{faulty['success_rate']:.1%}, retry amplification {faulty['retry_amplification']}x",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", help="use this running stack instead of starting one")
    parser.add_argument("--orders", default="http://127.0.0.1:8001",
                        help="orders URL for /metrics (with --gateway)")
    parser.add_argument("--payments", default="http://127.0.0.1:8002",
                        help="payments URL for chaos (with --gateway)")
    parser.add_argument("--admin-token", help="admin token (default $CHAOSCTL_ADMIN_TOKEN)")
    parser.add_argument("--rate", type=float, default=50.0, help="orders per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--error-rate", type=float, default=0.2,
                        help="payments error rate of the second phase")
    parser.add_argument("--max-inflight", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of both phases on one stack; medians are printed")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra service env for the stack this script starts, e.g. "
                             "SHOP_RETRY_BUDGET_RATIO=0.1 or SHOP_BREAKERS=0 (repeatable)")
    parser.add_argument("--cpu", action="store_true",
                        help="measure CPU ms per order of every stack process instead")
    parser.add_argument("--cpu-orders", type=int, default=300, help="orders per --cpu round")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="closed-loop workers of a --cpu round")
    parser.add_argument("--home", help="CHAOSCTL_HOME whose pid files name the stack's "
                                       "processes (--cpu with --gateway)")
    parser.add_argument("--compare-stack", type=Path, metavar="DIR",
                        help="--cpu: also run the stack/ directory of another checkout (e.g. "
                             "`git archive HEAD | tar -x -C DIR`, then DIR/stack), rounds "
                             "alternating with this tree's, and print the ratio per process")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.env and args.gateway:
        parser.error("--env applies only to the stack this script starts (not with --gateway)")
    if any("=" not in item for item in args.env):
        parser.error("--env takes KEY=VALUE")
    args.stack_env = dict(item.split("=", 1) for item in args.env)
    if not (0 < args.rate <= 2000 and 0 < args.duration <= 300 and 0 <= args.error_rate <= 1
            and 1 <= args.repeat <= 10):
        parser.error("need 0 < rate <= 2000, 0 < duration <= 300, 0 <= error-rate <= 1, "
                     "1 <= repeat <= 10")
    if args.compare_stack is not None:
        if not args.cpu or args.gateway:
            parser.error("--compare-stack needs --cpu and a stack this script starts")
        if not (args.compare_stack / "shop" / "serve.py").is_file():
            parser.error(f"--compare-stack {args.compare_stack}: no shop/serve.py there "
                         "(give the stack/ directory of a checkout)")
        args.compare_stack = args.compare_stack.resolve()
    if args.cpu:
        if not (1 <= args.cpu_orders <= 100_000 and 1 <= args.concurrency <= 512):
            parser.error("need 1 <= cpu-orders <= 100000 and 1 <= concurrency <= 512")
        result = run_cpu(args)
        print(json.dumps(result, indent=2) if args.json else render_cpu(result))
        return 0
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
