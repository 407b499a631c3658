"""Overload: does the gateway keep goodput when offered more than the stack can serve?

    .venv/bin/python benchmarks/overload.py                  # adaptive limit (=1; off by default)
    .venv/bin/python benchmarks/overload.py --compare-static # and the static max_inflight

Starts its own stack (redis-server + the five services, SQLite, free loopback ports) per
configuration and, with chaosctl's one load generator (chaosctl/chaos/load.py), measures:

1. capacity: orders/s (201 + 202) of a closed loop at --concurrency workers;
2. unloaded latency: p50/p99 of an open loop at 25 % of capacity;
3. 3x and 10x capacity offered open loop for --hold seconds each (bounded: rate x hold
   requests, at most --max-inflight pending): goodput / capacity, admitted p99 / unloaded
   p99, refusals (429 with Retry-After) and their p99 latency;
4. recovery: 25 % of capacity right after the 10x phase; the recovery time is when the last
   answer slower than 2x the unloaded p99 (or refused) was sent, counted from the spike's end;
5. the seed study's spike shape: steady users, a ramp to 50x, a hold, a ramp down (here as
   open-loop rates: steady = capacity / 10, peak = 5x capacity), printed second by second
   with the gateway's `gateway_concurrency_limit`.

Every figure is printed next to its ratio to the same run's baseline (capacity, unloaded
p99). The load generator runs on the same machine as the stack: at 10x it takes CPU from
the stack too, which this benchmark does not hide (it lowers goodput).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orders_throughput import REPO, _start, _stop  # noqa: E402

sys.path.insert(0, str(REPO))
from chaosctl.chaos.load import Exchange, LoadConfig, LoadGenerator  # noqa: E402
from chaosctl.stats import percentile  # noqa: E402

RECORDED = (201, 202)


def _ms(values: list[float], q: float) -> float | None:
    value = percentile(sorted(values), q)
    return None if value is None else round(value * 1000, 1)


class Recorder:
    """Every answer: (sent at, status, latency, Retry-After present), times from `t0`."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.rows: list[tuple[float, int | None, float, bool]] = []

    def __call__(self, ex: Exchange) -> None:
        done = time.monotonic() - self.t0
        self.rows.append((done - ex.latency_s, ex.status, ex.latency_s,
                          "retry-after" in ex.headers))

    def summary(self, start: float, end: float) -> dict:
        rows = [r for r in self.rows if start <= r[0] < end]
        ok = [r[2] for r in rows if r[1] in RECORDED]
        refused = [r for r in rows if r[1] == 429]
        span = max(end - start, 1e-9)
        return {"sent": len(rows), "recorded": len(ok), "goodput": round(len(ok) / span, 1),
                "refused_429": len(refused),
                "refused_with_retry_after": sum(1 for r in refused if r[3]),
                "other": len(rows) - len(ok) - len(refused),
                "admitted_p50_ms": _ms(ok, 50), "admitted_p99_ms": _ms(ok, 99),
                "refusal_p99_ms": _ms([r[2] for r in refused], 99)}


async def _segment(gateway: str, rps: float, duration: float, max_inflight: int,
                   recorder: Recorder, delay: float = 0.0) -> dict:
    if delay > 0:
        await asyncio.sleep(delay)
    config = LoadConfig(base_url=gateway, rps=rps, duration_s=duration,
                        max_requests=max(1, int(rps * duration) + 1),
                        max_inflight=max_inflight, timeout_s=30, on_response=recorder)
    return await LoadGenerator(config).run()


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


def measure(gateway: str, args: argparse.Namespace) -> dict:
    # 1. capacity, closed loop
    closed = LoadConfig(base_url=gateway, rps=0, duration_s=args.capacity_s,
                        max_requests=100_000, concurrency=args.concurrency, timeout_s=30)
    asyncio.run(LoadGenerator(LoadConfig(base_url=gateway, rps=0, duration_s=2,
                                         max_requests=200, concurrency=args.concurrency,
                                         timeout_s=30)).run())  # warm-up
    cap = asyncio.run(LoadGenerator(closed).run())
    recorded = sum(v for k, v in cap["status_counts"].items() if int(k) in RECORDED)
    capacity = recorded / max(cap["elapsed_s"], 1e-9)
    light = max(1.0, 0.25 * capacity)

    # 2. unloaded latency
    rec = Recorder(time.monotonic())
    asyncio.run(_segment(gateway, light, args.unloaded_s, args.max_inflight, rec))
    unloaded = rec.summary(0, float("inf"))
    base_p99 = unloaded["admitted_p99_ms"] or 1.0

    def judged(summary: dict, offered: float, span: float) -> dict:
        return {**summary, "offered_rps": round(offered, 1),
                "sent_rps": round(summary["sent"] / span, 1),
                "goodput_vs_capacity": round(summary["goodput"] / capacity, 2),
                "admitted_p99_vs_unloaded": None if summary["admitted_p99_ms"] is None
                else round(summary["admitted_p99_ms"] / base_p99, 2)}

    phases = {}
    for factor in (3, 10):
        t0 = time.monotonic()
        rec = Recorder(t0)

        async def overload_then_light(rate: float = factor * capacity,
                                      recorder: Recorder = rec) -> None:
            await _segment(gateway, rate, args.hold, args.max_inflight, recorder)
            await _segment(gateway, light, args.recovery_s, args.max_inflight, recorder)

        asyncio.run(overload_then_light())
        phase = judged(rec.summary(0, args.hold), factor * capacity, args.hold)
        slow = [r[0] for r in rec.rows if r[0] >= args.hold
                and (r[1] not in RECORDED or r[2] * 1000 > 2 * base_p99)]
        phase["recovery_s"] = round(max(slow) - args.hold, 2) if slow else 0.0
        phase["after"] = rec.summary(args.hold, float("inf"))
        phases[f"{factor}x"] = phase
        time.sleep(2)

    # 5. the study's spike shape
    steady, peak = capacity / 10, 5 * capacity
    shape = [(steady, 5)] + [(steady + (peak - steady) * (i + 1) / 5, 1) for i in range(5)] \
        + [(peak, args.spike_hold)] \
        + [(peak - (peak - steady) * (i + 1) / 5, 1) for i in range(5)] + [(steady, 10)]
    t0 = time.monotonic()
    rec = Recorder(t0)
    limits: list = []

    async def spike() -> None:
        offset, tasks = 0.0, []
        for rate, seconds in shape:
            tasks.append(asyncio.create_task(
                _segment(gateway, rate, seconds, args.max_inflight, rec, delay=offset)))
            offset += seconds
        watcher = asyncio.create_task(_watch_limit(gateway, t0, offset + 3, limits))
        await asyncio.gather(*tasks, watcher)

    asyncio.run(spike())
    spike_end = sum(s for _, s in shape[:-1])
    timeline = []
    offsets = [0.0]
    for _, seconds in shape:
        offsets.append(offsets[-1] + seconds)
    for second in range(int(offsets[-1])):
        rate = next(r for (r, _), a, b in zip(shape, offsets, offsets[1:], strict=False)
                    if a <= second < b)
        s = rec.summary(second, second + 1)
        limit = next((v for t, v in limits if t >= second), None)
        timeline.append({"t": second, "offered": round(rate, 1), "goodput": s["goodput"],
                         "refused": s["refused_429"], "admitted_p99_ms": s["admitted_p99_ms"],
                         "limit": limit})
    hold_start = offsets[6]
    slow = [r[0] for r in rec.rows if r[0] >= spike_end
            and (r[1] not in RECORDED or r[2] * 1000 > 2 * base_p99)]
    spike_summary = {
        "steady_rps": round(steady, 1), "peak_rps": round(peak, 1),
        "hold": judged(rec.summary(hold_start, hold_start + args.spike_hold), peak,
                       args.spike_hold),
        "recovery_s": round(max(slow) - spike_end, 2) if slow else 0.0,
        "timeline": timeline}
    return {"capacity_rps": round(capacity, 1), "capacity_run": cap, "unloaded": unloaded,
            "phases": phases, "spike": spike_summary}


def render(name: str, r: dict) -> list[str]:
    u = r["unloaded"]
    lines = [f"== {name}: capacity {r['capacity_rps']} orders/s (closed loop); unloaded at "
             f"25 %: p50 {u['admitted_p50_ms']} ms, p99 {u['admitted_p99_ms']} ms"]
    for label, p in [*r["phases"].items(), ("spike hold", r["spike"]["hold"])]:
        lines.append(
            f"{label:>10}: offered {p['offered_rps']}/s (sent {p['sent_rps']}/s), "
            f"goodput {p['goodput']}/s "
            f"({p['goodput_vs_capacity']}x capacity), admitted p99 {p['admitted_p99_ms']} ms "
            f"({p['admitted_p99_vs_unloaded']}x unloaded), 429 {p['refused_429']} "
            f"(Retry-After on {p['refused_with_retry_after']}, p99 {p['refusal_p99_ms']} ms), "
            f"other {p['other']}"
            + (f", recovery {p['recovery_s']} s" if "recovery_s" in p else ""))
    lines.append(f"spike recovery: {r['spike']['recovery_s']} s after the ramp-down ended")
    lines.append("  t  offered goodput refused p99_ms limit")
    for row in r["spike"]["timeline"]:
        lines.append(f"{row['t']:>3} {row['offered']:>8} {row['goodput']:>7} "
                     f"{row['refused']:>7} {row['admitted_p99_ms']!s:>6} {row['limit']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16,
                        help="closed-loop workers of the capacity run")
    parser.add_argument("--capacity-s", type=float, default=8.0)
    parser.add_argument("--unloaded-s", type=float, default=6.0)
    parser.add_argument("--hold", type=float, default=8.0, help="seconds of 3x and of 10x")
    parser.add_argument("--recovery-s", type=float, default=8.0)
    parser.add_argument("--spike-hold", type=int, default=10)
    parser.add_argument("--max-inflight", type=int, default=2000,
                        help="client-side cap on pending requests per segment")
    parser.add_argument("--compare-static", action="store_true",
                        help="also run a stack with SHOP_ADAPTIVE_LIMIT=0 (static limit)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if any("=" not in item for item in args.env):
        parser.error("--env takes KEY=VALUE")
    if not (1 <= args.concurrency <= 256 and 0 < args.hold <= 60 and 1 <= args.spike_hold <= 60
            and 1 <= args.max_inflight <= 5000):
        parser.error("need 1 <= concurrency <= 256, 0 < hold <= 60, 1 <= spike-hold <= 60, "
                     "1 <= max-inflight <= 5000")
    extra = dict(item.split("=", 1) for item in args.env)
    configs = {"adaptive": {"SHOP_ADAPTIVE_LIMIT": "1", **extra}}
    if args.compare_static:
        configs["static"] = {**configs["adaptive"], "SHOP_ADAPTIVE_LIMIT": "0"}
    results = {}
    for name, env in configs.items():
        ns = argparse.Namespace(gateway=None, stack_env=env)
        stack, gateway = _start(ns)
        try:
            results[name] = measure(gateway, args)
        finally:
            _stop(stack)
        if not args.json:
            print("\n".join(render(f"{name} {env or ''}", results[name])), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
