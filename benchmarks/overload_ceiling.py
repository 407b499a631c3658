"""The ceiling of the overload goal on this machine: what an oracle admission limit gets.

    .venv/bin/python benchmarks/overload_ceiling.py --nice -10
    .venv/bin/python benchmarks/overload_ceiling.py --nice -10 --limits 4,6 --factors 3 --json

benchmarks/overload.py judges the gateway's adaptive limit against issue 13's goal: offered
3x and 10x capacity, goodput >= 0.9x capacity with admitted p99 <= 2x the unloaded p99. This
script asks what *any* limit could get on the same stack, CPUs and capacity baseline. The
gateway's own limit is off (SHOP_ADAPTIVE_LIMIT=0, its static ceiling of 200 never reached)
and the load client is the limit instead: open-loop arrivals at F x capacity, of which at
most L are in flight; an arrival due while L are in flight is dropped by the client, never
sent (benchmarks/rawload.py, `drop_when_busy`). So the limit is fixed at the best value for
the load, known in advance, and its refusals cost the stack nothing: no real gateway can do
better than the best L here, and a real one also pays for every refusal (measure that with
`overload.py --refusal-cost`).

Same set-up as overload.py (its own stack, SQLite, stack and client pinned to different
CPUs, optional --nice): capacity = orders/s of a closed loop at --concurrency (the median of
three runs), unloaded = an open loop at 25 % of capacity; then every (factor, L) for --hold
seconds, --rounds times in alternating order. Printed per (factor, L), medians over rounds:
goodput / capacity and admitted p50 / p99 after the first --settle-s seconds, p99 / unloaded
p99, and the stack's CPU per admitted order from /proc (every stack process) next to the
capacity run's. Last, per factor, the best L whose p99 stays within 2x unloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orders_throughput import _start, _stop, cpu_seconds  # noqa: E402
from overload import RECORDED, _cpus, _ms, check_nice, closed_capacity, placed  # noqa: E402
from rawload import RawLoad, new_loop  # noqa: E402


def _stack_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) or 0.0 for pid in pids)


async def _oracle_phase(gateway: str, pids: list[int], rate: float, limit: int,
                        args: argparse.Namespace) -> dict:
    load = RawLoad(gateway, connections=limit, drop_when_busy=True)
    before = _stack_cpu(pids)
    t0 = await load.run([(rate, args.hold)])
    elapsed = max(time.monotonic() - t0, 1e-9)
    used = _stack_cpu(pids) - before
    load.close()
    admitted = [r for r in load.results if r.status in RECORDED]
    lags = [r.lag_s for r in load.results]
    settled = [r.latency_s for r in admitted if r.due - t0 >= args.settle_s]
    span = max(args.hold - args.settle_s, 1e-9)
    return {"goodput": round(len(settled) / span, 1),
            "p50_ms": _ms(settled, 50), "p99_ms": _ms(settled, 99),
            "other": sum(1 for r in load.results if r.status not in RECORDED),
            "client_lag_p99_ms": _ms(lags, 99),
            "dropped_by_client": load.dropped,
            "stack_cpu_ms_per_order": round(used / max(len(admitted), 1) * 1000, 3),
            "stack_cpu_share": round(used / elapsed, 3)}


async def measure(gateway: str, pids: list[int], args: argparse.Namespace) -> dict:
    warm = RawLoad(gateway)
    await warm.closed(8, 2.0, max_requests=200)  # connections, SQLite pages, lazy imports
    capacity, runs, refused = await closed_capacity(gateway, args)
    # CPU per order at capacity: one more closed-loop run, its answered orders counted
    probe = RawLoad(gateway)
    before = _stack_cpu(pids)
    await probe.closed(args.concurrency, args.capacity_s / 3)
    served = sum(1 for r in probe.results if r.status in RECORDED)
    cap_cpu = (_stack_cpu(pids) - before) / max(served, 1)
    base = RawLoad(gateway, 64)
    await base.run([(max(1.0, 0.25 * capacity), args.unloaded_s)])
    base.close()
    light = [r.latency_s for r in base.results if r.status in RECORDED]
    unloaded = {"p50_ms": _ms(light, 50), "p99_ms": _ms(light, 99)}
    if unloaded["p99_ms"] is None:
        raise SystemExit("overload_ceiling: no order succeeded at 25 % of capacity; is the "
                         "stack healthy?")
    cells: dict[str, dict[str, list[dict]]] = {}
    for round_no in range(args.rounds):
        for factor in args.factors:
            order = args.limits if round_no % 2 == 0 else args.limits[::-1]
            for limit in order:
                await asyncio.sleep(args.pause_s)  # the previous phase's tail drains
                phase = await _oracle_phase(gateway, pids, factor * capacity, limit, args)
                cells.setdefault(f"{factor:g}x", {}).setdefault(str(limit), []).append(phase)
                if args.progress:
                    print(f"  round {round_no + 1} {factor:g}x L={limit}: goodput "
                          f"{phase['goodput']}/s, p99 {phase['p99_ms']} ms, client lag p99 "
                          f"{phase['client_lag_p99_ms']} ms", file=sys.stderr,
                          flush=True)
    base_p99 = unloaded["p99_ms"]
    table: dict[str, dict[str, dict]] = {}
    best: dict[str, dict | None] = {}
    for factor, by_limit in cells.items():
        table[factor] = {}
        for limit, phases in by_limit.items():
            judged = [p for p in phases if p["p99_ms"] is not None]
            if not judged:  # not one admitted order after the settling second, any round
                table[factor][limit] = {"failed": True, "rounds": phases}
                continue
            med = {key: statistics.median(p[key] for p in judged)
                   for key in ("p50_ms", "p99_ms", "stack_cpu_ms_per_order")}
            med["goodput"] = statistics.median(p["goodput"] for p in phases)  # 0 counts too
            table[factor][limit] = {
                **{k: round(v, 3 if k.startswith("stack") else 1) for k, v in med.items()},
                "goodput_vs_capacity": round(med["goodput"] / capacity, 3),
                "p99_vs_unloaded": round(med["p99_ms"] / base_p99, 2),
                "cpu_vs_capacity_run": round(med["stack_cpu_ms_per_order"] / (cap_cpu * 1000), 2),
                "rounds_without_orders": len(phases) - len(judged), "rounds": phases}
        within = [(row["goodput_vs_capacity"], int(limit)) for limit, row in table[factor].items()
                  if not row.get("failed") and row["p99_vs_unloaded"] <= 2.0]
        top = max(within, default=None)
        best[factor] = {"limit": top[1], "goodput_vs_capacity": top[0]} if top else None
    return {"capacity_rps": round(capacity, 1), "capacity_runs": runs,
            "capacity_refused": refused,
            "capacity_stack_cpu_ms_per_order": round(cap_cpu * 1000, 3),
            "unloaded": unloaded, "oracle": table, "best_within_2x_p99": best}


def render(r: dict) -> list[str]:
    u = r["unloaded"]
    lines = [f"capacity {r['capacity_rps']} orders/s (closed loop, runs {r['capacity_runs']}), "
             f"stack CPU {r['capacity_stack_cpu_ms_per_order']} ms/order; unloaded p50 "
             f"{u['p50_ms']} ms, p99 {u['p99_ms']} ms; CPUs {r['cpus']}, nice {r['nice']}, "
             f"load {r['loadavg']}",
             "factor   L  goodput  /capacity   p50 ms   p99 ms  /unloaded  CPU ms/order"
             "  /capacity run"]
    for factor, by_limit in r["oracle"].items():
        for limit, row in sorted(by_limit.items(), key=lambda kv: int(kv[0])):
            if row.get("failed"):
                lines.append(f"{factor:>6} {limit:>3}  no admitted order in any round")
                continue
            lines.append(f"{factor:>6} {limit:>3} {row['goodput']:8.1f} "
                         f"{row['goodput_vs_capacity']:10.2f}x {row['p50_ms']:8.1f} "
                         f"{row['p99_ms']:8.1f} {row['p99_vs_unloaded']:9.2f}x "
                         f"{row['stack_cpu_ms_per_order']:13.3f} "
                         f"{row['cpu_vs_capacity_run']:13.2f}x")
    lags = [p["client_lag_p99_ms"] for by_limit in r["oracle"].values()
            for row in by_limit.values() for p in row["rounds"] if p["client_lag_p99_ms"]]
    if lags:
        lines.append(f"client lag p99, worst phase: {max(lags)} ms (the client kept its "
                     f"schedule if this is a few ms)")
    for factor, best in r["best_within_2x_p99"].items():
        lines.append(f"{factor}: " + (f"best L within 2x unloaded p99 is {best['limit']}: "
                                      f"goodput {best['goodput_vs_capacity']:.2f}x capacity"
                                      if best else "no L kept p99 within 2x unloaded"))
    return lines


def _numbers(text: str, kind: type, flag: str, parser: argparse.ArgumentParser) -> list:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        parser.error(f"{flag} takes a comma-separated list of numbers, not {text!r}")
    if not values:
        parser.error(f"{flag} needs at least one value")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limits", default="3,4,5,6,8",
                        help="the oracle's in-flight limits L to try [3,4,5,6,8]")
    parser.add_argument("--factors", default="3,10",
                        help="offered load, as multiples of the measured capacity [3,10]")
    parser.add_argument("--rounds", type=int, default=2,
                        help="passes over every (factor, L), alternating order [2]")
    parser.add_argument("--hold", type=float, default=6.0, help="seconds of each phase [6]")
    parser.add_argument("--settle-s", type=float, default=1.0,
                        help="each phase is judged without its first SETTLE_S seconds [1]")
    parser.add_argument("--pause-s", type=float, default=1.0, help="idle between phases [1]")
    parser.add_argument("--concurrency", type=int, default=8,
                        help="closed-loop workers of the capacity run [8, as overload.py]")
    parser.add_argument("--capacity-s", type=float, default=9.0)
    parser.add_argument("--unloaded-s", type=float, default=8.0)
    cpus = sorted(os.sched_getaffinity(0))
    parser.add_argument("--stack-cpus", default=",".join(map(str, cpus[:-1] or cpus)),
                        help="CPUs for every stack process [all but the last]")
    parser.add_argument("--client-cpus", default=str(cpus[-1]),
                        help="CPUs for this client [the last]")
    parser.add_argument("--nice", type=int, default=None,
                        help="priority of the stack and this client, -20..19 (negative needs "
                             "root) [unchanged]")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra stack environment")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.limits = _numbers(args.limits, int, "--limits", parser)
    args.factors = _numbers(args.factors, float, "--factors", parser)
    if not all(1 <= n <= 64 for n in args.limits):
        parser.error("--limits: each L must be 1..64")
    if not all(1 < f <= 20 for f in args.factors):
        parser.error("--factors: each must be above 1x and at most 20x capacity")
    if not (1 <= args.rounds <= 20 and 0 < args.settle_s < args.hold <= 60
            and 0 <= args.pause_s <= 30 and 1 <= args.concurrency <= 256
            and 0 < args.capacity_s <= 120 and 0 < args.unloaded_s <= 120):
        parser.error("need 1 <= rounds <= 20, 0 < settle-s < hold <= 60, 0 <= pause-s <= 30, "
                     "1 <= concurrency <= 256, 0 < capacity-s, unloaded-s <= 120")
    if any("=" not in item for item in args.env):
        parser.error("--env takes KEY=VALUE")
    try:
        stack_cpus, client_cpus = _cpus(args.stack_cpus), _cpus(args.client_cpus)
    except ValueError:
        parser.error("--stack-cpus and --client-cpus take CPU numbers like 0 or 0,1")
    if not stack_cpus or not client_cpus or not (stack_cpus | client_cpus) <= set(cpus):
        parser.error(f"--stack-cpus and --client-cpus take CPUs among {cpus}")
    check_nice(parser, "--nice", args.nice)
    args.progress = not args.json
    env = {"SHOP_ADAPTIVE_LIMIT": "0", **dict(item.split("=", 1) for item in args.env)}
    stack, gateway = _start(argparse.Namespace(gateway=None, stack_env=env))
    try:
        with placed(stack, stack_cpus, client_cpus, args.nice) as pids:
            loop = new_loop()
            try:
                result = loop.run_until_complete(measure(gateway, pids, args))
            finally:
                loop.close()
    finally:
        _stop(stack)
    result.update(loadavg=[round(x, 2) for x in os.getloadavg()], env=env, nice=args.nice,
                  cpus={"stack": sorted(stack_cpus), "client": sorted(client_cpus)})
    print(json.dumps(result, indent=2) if args.json else "\n".join(render(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
