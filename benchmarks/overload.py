"""Overload: does the gateway keep goodput when offered more than the stack can serve?

    .venv/bin/python benchmarks/overload.py                  # the default (adaptive) limit
    .venv/bin/python benchmarks/overload.py --compare-static # and SHOP_ADAPTIVE_LIMIT=0

Starts its own stack (redis-server + the five services, SQLite, free loopback ports) per
configuration, pins the stack and this client to different CPUs (--stack-cpus,
--client-cpus; every thread of every stack process), and drives it with a lean raw-socket
HTTP/1.1 client (benchmarks/rawload.py: keep-alive, pre-built requests, open loop, bounded),
so the offered load is the client's and the capacity the stack's:

1. capacity: orders/s (201 + 202) of a closed loop at --concurrency connections;
2. unloaded latency: p50/p99 of an open loop at 25 % of capacity;
3. 1.2x, 3x and 10x capacity (--factors) offered open loop for --hold seconds each (rate x
   hold requests, at most --connections in flight; 1.2x is the overload that arrival counts
   cannot tell from a slow dependency): goodput / capacity, admitted p99 / unloaded p99, refusals
   (429 with Retry-After) and their p99; next to the offered rate, the rate the client
   actually sent, its scheduling lag p99 and its own CPU per request;
4. recovery: 25 % of capacity right after each overload; the recovery time is when the last
   answer slower than 2x the unloaded p99 (or refused) was sent, counted from the end;
5. the seed study's spike shape: steady users, a ramp to 50x, a hold, a ramp down (as
   open-loop rates: steady = capacity / 10, peak = 5x capacity), printed second by second
   with the gateway's `gateway_concurrency_limit`.

Every figure is printed next to its ratio to the same run's baseline (capacity, unloaded p99).
Each overload phase is judged whole and again without its first --settle-s seconds (the
limit's reaction time), so the onset and the held state are both visible.

On a machine shared with other work, `--nice -10` (root) runs the stack and this client at a
higher priority, so other processes decide less of the figures; `--gateway-cpus` puts the
gateway on CPUs of its own (e.g. the client's), as on its own host.

    .venv/bin/python benchmarks/overload.py --refusal-cost   # CPU of one 429, two ways
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orders_throughput import REPO, _start, _stop, cpu_seconds  # noqa: E402
from rawload import RawLoad, Result, new_loop  # noqa: E402

sys.path.insert(0, str(REPO))
from chaosctl.stats import percentile  # noqa: E402

RECORDED = (201, 202)


def _ms(values: list[float], q: float) -> float | None:
    value = percentile(sorted(values), q)
    return None if value is None else round(value * 1000, 2)


def summary(rows: list[Result], t0: float, start: float, end: float) -> dict:
    """The requests due in [start, end) s after t0."""
    rows = [r for r in rows if start <= r.due - t0 < end]
    ok = [r.latency_s for r in rows if r.status in RECORDED]
    refused = [r for r in rows if r.status == 429]
    span = max(end - start, 1e-9)
    return {"sent": len(rows), "recorded": len(ok), "goodput": round(len(ok) / span, 1),
            "refused_429": len(refused),
            "refused_with_retry_after": sum(1 for r in refused if r.retry_after),
            "other": len(rows) - len(ok) - len(refused),
            "admitted_p50_ms": _ms(ok, 50), "admitted_p99_ms": _ms(ok, 99),
            "refusal_p99_ms": _ms([r.latency_s for r in refused], 99),
            "client_lag_p99_ms": _ms([r.lag_s for r in rows], 99)}


def sent_rate(rows: list[Result], t0: float, start: float, end: float) -> float:
    """What the client really wrote per second in [start, end) (not what was due)."""
    n = sum(1 for r in rows if start <= r.sent - t0 < end)
    return round(n / max(end - start, 1e-9), 1)


def _limit_of(gateway: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(f"{gateway}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_concurrency_limit":
                return sample.value
    return None


async def _watch_limit(gateway: str, t0: float, until: float, out: list) -> None:
    while time.monotonic() - t0 < until:
        value = await asyncio.to_thread(_limit_of, gateway)
        out.append((round(time.monotonic() - t0, 1), value))
        await asyncio.sleep(1.0)


def recovery_s(rows: list[Result], t0: float, end: float, base_p99_ms: float) -> float:
    slow = [r.due - t0 for r in rows if r.due - t0 >= end
            and (r.status not in RECORDED or r.latency_s * 1000 > 2 * base_p99_ms)]
    return round(max(slow) - end, 2) if slow else 0.0


async def closed_capacity(gateway: str, args: argparse.Namespace) -> tuple[float, list, int]:
    """Orders/s of a closed loop: the median of 3 runs of capacity_s / 3 (a shared machine
    has bad seconds); also every run's figure and the refusals."""
    rates, refused = [], 0
    for _ in range(3):
        cap = RawLoad(gateway)
        t0 = await cap.closed(args.concurrency, args.capacity_s / 3)
        elapsed = max(r.done for r in cap.results) - t0
        rates.append(sum(1 for r in cap.results if r.status in RECORDED) / max(elapsed, 1e-9))
        refused += sum(1 for r in cap.results if r.status == 429)
    return sorted(rates)[1], [round(r, 1) for r in rates], refused


async def measure(gateway: str, args: argparse.Namespace) -> dict:
    warm = RawLoad(gateway)
    await warm.closed(8, 2.0, max_requests=200)  # connections, SQLite pages, lazy imports
    capacity, capacity_runs, capacity_refused = await closed_capacity(gateway, args)
    elapsed = args.capacity_s
    light = max(1.0, 0.25 * capacity)

    base = RawLoad(gateway, args.connections)
    t0 = await base.run([(light, args.unloaded_s)])
    base.close()
    unloaded = summary(base.results, t0, 0, args.unloaded_s)
    base_p99 = unloaded["admitted_p99_ms"] or 1.0

    def judged(rows: list[Result], t0: float, start: float, end: float, offered: float,
               cpu_s: float) -> dict:
        s = summary(rows, t0, start, end)
        # The same phase without its first --settle-s: what the limit holds once it has
        # reacted (the whole phase includes the onset, when it had not yet).
        settled = summary(rows, t0, min(start + args.settle_s, end), end)
        return {**s, "offered_rps": round(offered, 1), "sent_rps": sent_rate(rows, t0, start, end),
                "client_cpu_us_per_request": round(cpu_s / max(len(rows), 1) * 1e6, 1),
                "goodput_vs_capacity": round(s["goodput"] / capacity, 2),
                "admitted_p99_vs_unloaded": None if s["admitted_p99_ms"] is None
                else round(s["admitted_p99_ms"] / base_p99, 2),
                "settled": {"from_s": args.settle_s, "goodput": settled["goodput"],
                            "goodput_vs_capacity": round(settled["goodput"] / capacity, 2),
                            "admitted_p99_ms": settled["admitted_p99_ms"],
                            "admitted_p99_vs_unloaded": None
                            if settled["admitted_p99_ms"] is None
                            else round(settled["admitted_p99_ms"] / base_p99, 2),
                            "refusal_p99_ms": settled["refusal_p99_ms"]}}

    phases = {}
    for factor in args.factors:
        load = RawLoad(gateway, args.connections)
        cpu = time.process_time()
        t0 = await load.run([(factor * capacity, args.hold), (light, args.recovery_s)])
        load.close()
        phase = judged(load.results, t0, 0, args.hold, factor * capacity,
                       time.process_time() - cpu)
        phase["recovery_s"] = recovery_s(load.results, t0, args.hold, base_p99)
        phase["after"] = summary(load.results, t0, args.hold, args.hold + args.recovery_s)
        phases[f"{factor:g}x"] = phase
        await asyncio.sleep(2)

    steady, peak = capacity / 10, 5 * capacity
    shape = [(steady, 5.0)] + [(steady + (peak - steady) * (i + 1) / 5, 1.0) for i in range(5)] \
        + [(peak, float(args.spike_hold))] \
        + [(peak - (peak - steady) * (i + 1) / 5, 1.0) for i in range(5)] + [(steady, 10.0)]
    offsets = [0.0]
    for _, seconds in shape:
        offsets.append(offsets[-1] + seconds)
    load = RawLoad(gateway, args.connections)
    limits: list = []
    start = time.monotonic() + 0.5
    watcher = asyncio.create_task(_watch_limit(gateway, start, offsets[-1] + 1, limits))
    cpu = time.process_time()
    t0 = await load.run(shape, start=start)
    cpu = time.process_time() - cpu
    await watcher
    load.close()
    spike_end = offsets[-2]
    timeline = []
    for second in range(int(offsets[-1])):
        rate = next(r for (r, _), a, b in zip(shape, offsets, offsets[1:], strict=False)
                    if a <= second < b)
        s = summary(load.results, t0, second, second + 1)
        limit = next((v for t, v in limits if t >= second), None)
        timeline.append({"t": second, "offered": round(rate, 1),
                         "sent": sent_rate(load.results, t0, second, second + 1),
                         "goodput": s["goodput"], "refused": s["refused_429"],
                         "admitted_p99_ms": s["admitted_p99_ms"], "limit": limit})
    hold_start = offsets[6]
    spike_summary = {
        "steady_rps": round(steady, 1), "peak_rps": round(peak, 1),
        "hold": judged(load.results, t0, hold_start, hold_start + args.spike_hold, peak, cpu),
        "recovery_s": recovery_s(load.results, t0, spike_end, base_p99),
        "timeline": timeline}
    await asyncio.sleep(2)
    after, after_runs, _ = await closed_capacity(gateway, args)  # did the machine change?
    return {"capacity_rps": round(capacity, 1), "capacity_elapsed_s": round(elapsed, 2),
            "capacity_runs": capacity_runs, "capacity_refused": capacity_refused,
            "capacity_after_rps": round(after, 1), "capacity_after_runs": after_runs,
            "unloaded": unloaded, "phases": phases, "spike": spike_summary}


def refusal_cost(rounds: int = 5, n: int = 20_000) -> dict:
    """CPU of one refusal inside the gateway process (no sockets): the gateway's ASGI app
    with every slot taken, against the same LoadShedMiddleware placed as the FastAPI app's
    outermost middleware (where it was before), in the same run; medians of `rounds`."""
    import statistics

    sys.path.insert(0, str(REPO / "stack"))
    from shop import gateway
    from shop.resilience import LoadShedMiddleware

    shed = gateway.build()
    limiter = shed.limiter
    inner = shed.app  # the FastAPI app: give it the shedding middleware the old way too
    inner.add_middleware(LoadShedMiddleware, limiter=limiter, on_shed=shed.on_shed)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/orders", "raw_path": b"/orders",
             "root_path": "", "query_string": b"", "headers": [],
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000)}
    statuses: list[int] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def timed(app: object) -> float:
        start = time.perf_counter()
        for _ in range(n):
            await app(scope, receive, send)  # type: ignore[operator]
        return (time.perf_counter() - start) / n * 1e6

    async def run() -> dict:
        limiter.inflight = limiter.config.max_limit  # every slot taken, overload evident
        out: dict[str, list[float]] = {"around_the_app": [], "inside_fastapi": []}
        for _ in range(rounds):
            out["around_the_app"].append(await timed(shed))
            out["inside_fastapi"].append(await timed(inner))
        return {k: round(statistics.median(v), 1) for k, v in out.items()}

    result = asyncio.run(run())
    assert set(statuses) == {429}, set(statuses)
    result["ratio"] = round(result["inside_fastapi"] / result["around_the_app"], 2)
    return result


def socket_refusal_cost(rounds: int = 5, rate: float = 3000.0, seconds: float = 2.0,
                        gateway_cpus: set[int] | None = None,
                        client_cpus: set[int] | None = None) -> dict:
    """CPU of one refusal over real sockets, read from /proc: two gateway processes whose
    one slot (SHOP_ADAPTIVE_LIMIT=0, SHOP_MAX_INFLIGHT=1) is held by an order sent to an
    "orders" that accepts and never answers, each offered `rate` x `seconds` orders by the
    raw client; one refuses in its HTTP protocol (SHOP_EARLY_SHED=1, the default), the
    other through uvicorn's request cycle and the ASGI middleware (SHOP_EARLY_SHED=0).
    Rounds alternate between the two; medians of `rounds`, in microseconds per refusal."""
    import socket
    import statistics

    from tests.integration.shopstack import ShopStack

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)  # the kernel completes handshakes; nothing ever reads or answers
    stack = ShopStack(Path(tempfile.mkdtemp(prefix="bench-refusal-")))
    stack.start()
    try:
        gateways = {}
        for early in ("1", "0"):
            env = {"SHOP_ADAPTIVE_LIMIT": "0", "SHOP_MAX_INFLIGHT": "1",
                   "SHOP_EARLY_SHED": early,
                   "SHOP_ORDERS_URL": f"http://127.0.0.1:{hole.getsockname()[1]}"}
            proc, port = stack.spawn("gateway", env=env, tag=f"gateway-early{early}")
            gateways["early" if early == "1" else "through_the_app"] = (proc, port)
        if gateway_cpus and client_cpus:
            for proc, _ in gateways.values():
                pin_pid(proc.pid, gateway_cpus)
            os.sched_setaffinity(0, client_cpus)
        out: dict[str, list[float]] = {name: [] for name in gateways}
        statuses: dict[str, dict[int, int]] = {name: {} for name in gateways}

        async def one(name: str, port: int, pid: int) -> None:
            url = f"http://127.0.0.1:{port}"
            holder = RawLoad(url, connections=1)
            hold = asyncio.ensure_future(holder.run([(1.0, 1.0)]))  # takes the one slot
            await asyncio.sleep(0.3)
            load = RawLoad(url, connections=64)
            before = cpu_seconds(pid) or 0.0
            await load.run([(rate, seconds)])
            used = (cpu_seconds(pid) or 0.0) - before
            load.close()
            hold.cancel()
            try:
                await hold
            except asyncio.CancelledError:
                pass
            holder.close()
            refused = sum(1 for r in load.results if r.status == 429)
            for r in load.results:
                statuses[name][r.status] = statuses[name].get(r.status, 0) + 1
            out[name].append(used / max(refused, 1) * 1e6)

        loop = new_loop()
        try:
            for _ in range(rounds):
                for name, (proc, port) in gateways.items():
                    loop.run_until_complete(one(name, port, proc.pid))
        finally:
            loop.close()
    finally:
        os.sched_setaffinity(0, set(os.sched_getaffinity(0)) | (gateway_cpus or set()))
        stack.stop()
        hole.close()
    result: dict = {name: round(statistics.median(v), 1) for name, v in out.items()}
    result["rounds"] = {name: [round(x, 1) for x in v] for name, v in out.items()}
    result["statuses"] = statuses
    result["ratio"] = round(result["through_the_app"] / result["early"], 2)
    return result


def _cpus(text: str) -> set[int]:
    return {int(c) for c in text.split(",") if c.strip()}


def pin_pid(pid: int, cpus: set[int] | None, nice: int | None = None) -> None:
    """Every thread of process `pid` onto `cpus` (None: unchanged) and to `nice`."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if cpus:
                os.sched_setaffinity(int(task.name), cpus)
            if nice is not None:
                os.setpriority(os.PRIO_PROCESS, int(task.name), nice)
        except (ProcessLookupError, PermissionError):
            pass


def pin(stack: object, cpus: set[int], nice: int | None = None,
        gateway_cpus: set[int] | None = None, gateway_nice: int | None = None) -> list[int]:
    """Every thread of every process of the stack onto `cpus` (the gateway's onto
    `gateway_cpus` when given) and to `nice` (the gateway's to `gateway_nice` when given);
    returns the pids."""
    procs = stack.procs  # type: ignore[attr-defined]
    for name, proc in procs.items():
        gateway = name == "gateway"
        pin_pid(proc.pid, gateway_cpus if gateway and gateway_cpus else cpus,
                gateway_nice if gateway and gateway_nice is not None else nice)
    return [proc.pid for proc in procs.values()]


def check_nice(parser: argparse.ArgumentParser, flag: str, value: int | None) -> None:
    """A --nice-like flag: -20..19, and below this process's priority only as root."""
    if value is None:
        return
    if not -20 <= value <= 19:
        parser.error(f"{flag} takes -20..19")
    if value < os.getpriority(os.PRIO_PROCESS, 0) and os.geteuid() != 0:
        parser.error(f"{flag} below the current priority needs root")


@contextmanager
def placed(stack: object, stack_cpus: set[int], client_cpus: set[int], nice: int | None,
           gateway_cpus: set[int] | None = None, gateway_nice: int | None = None
           ) -> Iterator[list[int]]:
    """The stack's processes pinned (see pin) and this client onto `client_cpus` at `nice`,
    after the stack started (its processes would inherit ours); yields the stack's pids.
    Without both CPU sets only priorities change. This process's CPUs and priority are
    restored on the way out."""
    own_cpus, own_nice = os.sched_getaffinity(0), os.getpriority(os.PRIO_PROCESS, 0)
    try:
        if client_cpus and stack_cpus:
            pids = pin(stack, stack_cpus, nice, gateway_cpus, gateway_nice)
            os.sched_setaffinity(0, client_cpus)
        else:
            pids = pin(stack, set(), nice, None, gateway_nice)
        if nice is not None:
            pin_pid(os.getpid(), None, nice)
        yield pids
    finally:
        os.sched_setaffinity(0, own_cpus)
        if nice is not None:
            pin_pid(os.getpid(), None, own_nice)


def render(name: str, r: dict) -> list[str]:
    u = r["unloaded"]
    lines = [f"== {name}: capacity {r['capacity_rps']} orders/s (closed loop, median of "
             f"{r['capacity_runs']}, {r['capacity_refused']} refused; re-measured at the end: "
             f"{r['capacity_after_rps']} of {r['capacity_after_runs']}); unloaded at "
             f"25 %: p50 {u['admitted_p50_ms']} ms, p99 {u['admitted_p99_ms']} ms; "
             f"machine load {r.get('loadavg')}; CPUs {r.get('cpus')}, nice {r.get('nice')}, "
             f"gateway nice {r.get('gateway_nice')}"]
    for label, p in [*r["phases"].items(), ("spike hold", r["spike"]["hold"])]:
        lines.append(
            f"{label:>10}: offered {p['offered_rps']}/s (sent {p['sent_rps']}/s, client lag "
            f"p99 {p['client_lag_p99_ms']} ms, {p['client_cpu_us_per_request']} us CPU/req), "
            f"goodput {p['goodput']}/s "
            f"({p['goodput_vs_capacity']}x capacity), admitted p99 {p['admitted_p99_ms']} ms "
            f"({p['admitted_p99_vs_unloaded']}x unloaded), 429 {p['refused_429']} "
            f"(Retry-After on {p['refused_with_retry_after']}, p99 {p['refusal_p99_ms']} ms), "
            f"other {p['other']}"
            + (f", recovery {p['recovery_s']} s" if "recovery_s" in p else ""))
        st = p["settled"]
        lines.append(
            f"{'':>10}  after the first {st['from_s']} s: goodput {st['goodput']}/s "
            f"({st['goodput_vs_capacity']}x), admitted p99 {st['admitted_p99_ms']} ms "
            f"({st['admitted_p99_vs_unloaded']}x unloaded), refusal p99 "
            f"{st['refusal_p99_ms']} ms")
    lines.append(f"spike recovery: {r['spike']['recovery_s']} s after the ramp-down ended")
    lines.append("  t  offered    sent goodput refused p99_ms limit")
    for row in r["spike"]["timeline"]:
        lines.append(f"{row['t']:>3} {row['offered']:>8} {row['sent']:>7} {row['goodput']:>7} "
                     f"{row['refused']:>7} {row['admitted_p99_ms']!s:>6} {row['limit']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=8,
                        help="closed-loop workers of the capacity run")
    parser.add_argument("--capacity-s", type=float, default=8.0)
    parser.add_argument("--unloaded-s", type=float, default=10.0)
    parser.add_argument("--hold", type=float, default=8.0, help="seconds of each overload")
    parser.add_argument("--factors", default="1.2,3,10",
                        help="the overloads, as multiples of the measured capacity [1.2,3,10]")
    parser.add_argument("--recovery-s", type=float, default=8.0)
    parser.add_argument("--spike-hold", type=int, default=10)
    parser.add_argument("--settle-s", type=float, default=1.0,
                        help="each overload phase is also judged without its first "
                             "SETTLE_S seconds (the limit's reaction time)")
    parser.add_argument("--connections", type=int, default=256,
                        help="keep-alive connections of the open-loop client (its in-flight cap)")
    cpus = sorted(os.sched_getaffinity(0))
    parser.add_argument("--stack-cpus", default=",".join(map(str, cpus[:-1] or cpus)),
                        help="CPUs for every stack process [all but the last]")
    parser.add_argument("--client-cpus", default=str(cpus[-1]),
                        help="CPUs for this client [the last]; '' = no pinning")
    parser.add_argument("--gateway-cpus", default="",
                        help="CPUs for the gateway alone (e.g. the client's: the gateway off "
                             "the backends' CPU, as on its own host) [with the stack]")
    parser.add_argument("--nice", type=int, default=None,
                        help="scheduling priority of the stack and this client, -20..19 "
                             "(negative needs root): e.g. -10 keeps other work on a shared "
                             "machine from deciding the figures [unchanged]")
    parser.add_argument("--gateway-nice", type=int, default=None,
                        help="the gateway's own priority (e.g. 5 below --nice: the admission "
                             "point ahead of the services it protects) [--nice]")
    parser.add_argument("--compare-static", action="store_true",
                        help="also run a stack with SHOP_ADAPTIVE_LIMIT=0 (static limit)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--refusal-cost", action="store_true",
                        help="only measure the CPU of one refusal (us), in-process and over "
                             "sockets (SHOP_EARLY_SHED=1 vs 0), and exit")
    args = parser.parse_args(argv)
    if args.refusal_cost:
        cost = refusal_cost()
        cpus_now = set(cpus)
        wire = socket_refusal_cost(gateway_cpus=_cpus(args.stack_cpus) or cpus_now,
                                   client_cpus=_cpus(args.client_cpus) or cpus_now)
        print(json.dumps({"in_process": cost, "sockets": wire}) if args.json else
              f"one refusal, in-process: {cost['around_the_app']} us around the app, "
              f"{cost['inside_fastapi']} us as FastAPI's outermost middleware "
              f"({cost['ratio']}x)\n"
              f"one refusal over sockets, gateway CPU from /proc: {wire['early']} us in the "
              f"HTTP protocol (SHOP_EARLY_SHED=1), {wire['through_the_app']} us through "
              f"uvicorn's request cycle and the app (=0), {wire['ratio']}x; rounds "
              f"{wire['rounds']}; statuses {wire['statuses']}")
        return 0
    try:
        args.factors = [float(f) for f in args.factors.split(",") if f.strip()]
    except ValueError:
        parser.error(f"--factors takes numbers like 1.2,3,10, not {args.factors!r}")
    if not args.factors or not all(1 < f <= 20 for f in args.factors):
        parser.error("--factors: each overload must be above 1x and at most 20x capacity")
    if any("=" not in item for item in args.env):
        parser.error("--env takes KEY=VALUE")
    if not (1 <= args.concurrency <= 256 and 0 < args.hold <= 60 and 1 <= args.spike_hold <= 60
            and 1 <= args.connections <= 2000):
        parser.error("need 1 <= concurrency <= 256, 0 < hold <= 60, 1 <= spike-hold <= 60, "
                     "1 <= connections <= 2000")
    try:
        stack_cpus, client_cpus = _cpus(args.stack_cpus), _cpus(args.client_cpus)
        gateway_cpus = _cpus(args.gateway_cpus)
    except ValueError:
        parser.error("--stack-cpus, --client-cpus and --gateway-cpus take CPU numbers like "
                     "0 or 0,1")
    if not (stack_cpus | client_cpus | gateway_cpus) <= set(cpus):
        parser.error(f"CPUs must be among {cpus}")
    check_nice(parser, "--nice", args.nice)
    check_nice(parser, "--gateway-nice", args.gateway_nice)
    extra = dict(item.split("=", 1) for item in args.env)
    configs = {"adaptive": {"SHOP_ADAPTIVE_LIMIT": "1", **extra}}
    if args.compare_static:
        configs["static"] = {**configs["adaptive"], "SHOP_ADAPTIVE_LIMIT": "0"}
    results = {}
    for name, env in configs.items():
        ns = argparse.Namespace(gateway=None, stack_env=env)
        stack, gateway = _start(ns)
        try:
            with placed(stack, stack_cpus, client_cpus, args.nice, gateway_cpus,
                        args.gateway_nice):
                loop = new_loop()
                try:
                    results[name] = loop.run_until_complete(measure(gateway, args))
                finally:
                    loop.close()
            results[name]["loadavg"] = [round(x, 2) for x in os.getloadavg()]
            results[name]["cpus"] = {"stack": sorted(stack_cpus), "client": sorted(client_cpus),
                                     "gateway": sorted(gateway_cpus or stack_cpus)}
            results[name]["nice"] = args.nice
            results[name]["gateway_nice"] = args.gateway_nice
        finally:
            _stop(stack)
        if not args.json:
            print("\n".join(render(f"{name} {env or ''}", results[name])), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
