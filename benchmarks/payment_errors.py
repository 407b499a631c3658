"""20 % payment errors: order success rate and retry amplification, retry policies side by side.

    .venv/bin/python benchmarks/payment_errors.py                 # before vs after, 3 rounds
    .venv/bin/python benchmarks/payment_errors.py --profile ratio=0.4,attempts=4

For each profile (a set of SHOP_* settings) a fresh stack is started (SQLite, free loopback
ports) and benchmarks/orders_throughput.py's rounds run on it: a no-fault phase (the
baseline), then payments failing `--error-rate` of charges. Printed per profile: order
success rate (orders that ended `completed` / orders sent), retry amplification (payments
calls made by orders / orders that reached payments, from orders' own counters), p50/p99,
and p99 as a ratio to the same profile's no-fault p99. Medians over `--repeat` rounds.

Profiles: `before` is the policy until issue 13 (budget 20 % of calls, 3 attempts);
`after` is today's defaults (see stack/README.md). `--profile` adds more: comma-separated
`ratio=` (SHOP_RETRY_BUDGET_RATIO), `attempts=` (SHOP_RETRY_MAX_ATTEMPTS), `floor=`
(SHOP_RETRY_BUDGET_FLOOR, retries/s), `breaker_rate=` (SHOP_BREAKER_FAILURE_RATE),
`breaker_min=` (SHOP_BREAKER_MIN_CALLS).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import orders_throughput  # noqa: E402

KNOBS = {"ratio": "SHOP_RETRY_BUDGET_RATIO", "attempts": "SHOP_RETRY_MAX_ATTEMPTS",
         "floor": "SHOP_RETRY_BUDGET_FLOOR", "breaker_rate": "SHOP_BREAKER_FAILURE_RATE",
         "breaker_min": "SHOP_BREAKER_MIN_CALLS"}
PROFILES = {"before": {"SHOP_RETRY_BUDGET_RATIO": "0.2", "SHOP_RETRY_MAX_ATTEMPTS": "3"},
            "after": {}}


def parse_profile(text: str) -> dict[str, str]:
    env = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in KNOBS:
            raise ValueError(f"bad profile part {part!r}: use {', '.join(KNOBS)} as KEY=VALUE")
        env[KNOBS[key]] = value
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=40.0, help="orders per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--error-rate", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="append", default=[],
                        help="extra profile, e.g. ratio=0.3,attempts=4 (repeatable)")
    parser.add_argument("--only", choices=("before", "after"),
                        help="run just one of the built-in profiles")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not (0 < args.rate <= 500 and 0 < args.duration <= 120 and 0 <= args.error_rate <= 1
            and 1 <= args.repeat <= 10):
        parser.error("need 0 < rate <= 500, 0 < duration <= 120, 0 <= error-rate <= 1, "
                     "1 <= repeat <= 10")
    profiles = {k: v for k, v in PROFILES.items() if args.only in (None, k)}
    try:
        for text in args.profile:
            profiles[text] = parse_profile(text)
    except ValueError as exc:
        parser.error(str(exc))
    results = {}
    for name, env in profiles.items():
        ns = argparse.Namespace(gateway=None, orders=None, payments=None, admin_token=None,
                                rate=args.rate, duration=args.duration,
                                error_rate=args.error_rate, max_inflight=300,
                                repeat=args.repeat, stack_env=env)
        results[name] = orders_throughput.run(ns)
        if not args.json:
            print(f"-- {name} {env or '(defaults)'}", flush=True)
            print(orders_throughput.render(results[name]), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"\nside by side ({args.rate:g} orders/s, {args.duration:g} s per phase, "
          f"{args.error_rate:.0%} payment errors, medians of {args.repeat}):")
    print(f"{'profile':<34}{'success':>9}{'amplif.':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'p99/no-fault':>14}")
    for name, r in results.items():
        base, faulty = r["median"]["baseline"], r["median"]["faulty"]
        ratio = (faulty["p99_ms"] / base["p99_ms"]) if faulty["p99_ms"] and base["p99_ms"] \
            else None
        print(f"{name:<34}{faulty['success_rate']:>9.2%}{faulty['retry_amplification']:>9}"
              f"{faulty['p50_ms']:>9}{faulty['p99_ms']:>9}"
              f"{(f'{ratio:.2f}x' if ratio else '-'):>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
