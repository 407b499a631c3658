"""What isolating listeners costs: microseconds per event delivered to three listeners by
`chaosctl.events.EventBus` (each call guarded) against a bare loop (the engine before issue
11), median of --runs rounds of --events events each, and the ratio between them. Also the
cost when one of the three listeners raises on every event (logged at ERROR, then skipped).

    python benchmarks/event_dispatch.py [--runs 7] [--events 20000]

No stack needed. A remediation emits a few dozen events, so anything in microseconds is
noise next to its HTTP calls; this shows that the guard stays in that range.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaosctl.events import Event, EventBus, Listener  # noqa: E402


class Count:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, event: Event) -> None:
        self.n += 1


def broken(event: Event) -> None:
    raise RuntimeError("listener bug")


def bare(listeners: list[Listener], events: list[Event]) -> float:
    t0 = time.perf_counter()
    for event in events:
        for listener in listeners:
            listener(event)
    return time.perf_counter() - t0


def bus(listeners: list[Listener], events: list[Event]) -> float:
    b = EventBus(listeners)
    t0 = time.perf_counter()
    for event in events:
        b.emit(event)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    if args.runs < 1 or args.events < 1:
        parser.error("--runs and --events must be at least 1")
    # The failing case logs one line per event: measure the guard, not a terminal.
    logging.getLogger("chaosctl.events").addHandler(logging.NullHandler())
    logging.getLogger("chaosctl.events").propagate = False
    events = [Event.now("step_end", "engine", "payment-degradation", {"step": {"i": i}})
              for i in range(args.events)]
    healthy: list[Listener] = [Count(), Count(), Count()]
    failing: list[Listener] = [Count(), broken, Count()]
    rows = {
        "bare loop, 3 listeners": [bare(healthy, events) for _ in range(args.runs)],
        "EventBus, 3 listeners": [bus(healthy, events) for _ in range(args.runs)],
        "EventBus, 1 of 3 raises": [bus(failing, events) for _ in range(args.runs)],
    }
    base = statistics.median(rows["bare loop, 3 listeners"])
    print(f"{args.events} events x {args.runs} runs (median)")
    for name, times in rows.items():
        median = statistics.median(times)
        print(f"  {name:26} {median / args.events * 1e6:7.2f} us/event   "
              f"{median / base:5.2f}x bare")


if __name__ == "__main__":
    main()
