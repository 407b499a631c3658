"""Full-jitter backoff, retry budget and call_with_retry (fake sleep, fake clock)."""

from __future__ import annotations

import asyncio
import random
import statistics

import pytest
from shop.resilience import (
    DownstreamError,
    FakeClock,
    RetryBudget,
    RetryPolicy,
    call_with_retry,
    full_jitter_delay,
)


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, DownstreamError) and exc.retryable


class Recorder:
    """An async sleep that records delays instead of waiting (optionally moving a clock)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.delays: list[float] = []
        self.clock = clock

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.clock is not None:
            self.clock.advance(delay)


class Flaky:
    """Fails with the given errors in order, then returns 'ok'."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def err(retryable: bool = True) -> DownstreamError:
    return DownstreamError("payments", "http_503", status=503, retryable=retryable)


# -- full jitter ---------------------------------------------------------------------------

@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 10, 100])
def test_full_jitter_within_zero_and_cap(attempt: int) -> None:
    rng = random.Random(attempt).random
    ceiling = min(1.0, 0.05 * 2 ** (attempt - 1))
    delays = [full_jitter_delay(attempt, 0.05, 1.0, rng) for _ in range(500)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # spread over the interval, not a constant: covers both low and high parts
    assert statistics.pstdev(delays) > ceiling * 0.2
    assert min(delays) < ceiling * 0.1 and max(delays) > ceiling * 0.9


def test_full_jitter_extremes_and_growth() -> None:
    assert full_jitter_delay(1, 0.05, 1.0, rng=lambda: 0.0) == 0.0
    assert full_jitter_delay(1, 0.05, 1.0, rng=lambda: 0.999999) == pytest.approx(0.05, rel=1e-4)
    assert full_jitter_delay(3, 0.05, 1.0, rng=lambda: 0.999999) == pytest.approx(0.2, rel=1e-4)
    assert full_jitter_delay(30, 0.05, 1.0, rng=lambda: 0.999999) <= 1.0
    with pytest.raises(ValueError):
        full_jitter_delay(0)


# -- retry budget --------------------------------------------------------------------------

def test_budget_floor_then_ratio() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, min_retries_per_s=1.0, window_s=10.0, clock=clock)
    granted = sum(budget.try_spend() for _ in range(50))
    assert granted == 10  # floor: 1/s over 10 s, no live calls yet
    for _ in range(100):
        budget.record_call()
    assert sum(budget.try_spend() for _ in range(50)) == 10  # 0.2 * 100 = 20 in total
    snap = budget.snapshot()
    assert snap["retries_in_window"] == 20 and snap["calls_in_window"] == 100
    assert snap["exhausted_total"] == 80
    clock.advance(11)  # window slid past everything
    assert budget.snapshot()["retries_in_window"] == 0
    assert budget.try_spend()


def _run_at_total_failure(budget: RetryBudget | None, live_calls: int) -> int:
    retries = 0
    exhausted = 0

    def on_retry(_n: int, _e: BaseException) -> None:
        nonlocal retries
        retries += 1

    def on_exhausted() -> None:
        nonlocal exhausted
        exhausted += 1

    async def always_fails() -> None:
        raise err()

    async def main() -> None:
        for _ in range(live_calls):
            with pytest.raises(DownstreamError):
                await call_with_retry(
                    always_fails, policy=RetryPolicy(max_attempts=3), budget=budget,
                    is_retryable=retryable, sleep=Recorder(), on_retry=on_retry,
                    on_budget_exhausted=on_exhausted,
                )

    asyncio.run(main())
    if budget is not None:
        assert exhausted > 0
    return retries


def test_budget_holds_at_total_downstream_failure() -> None:
    live_calls = 1000
    ratio, floor = 0.2, 2.0 * 10.0
    unbudgeted = _run_at_total_failure(None, live_calls)
    assert unbudgeted == 2 * live_calls  # what the budget protects against: 3x load
    budget = RetryBudget(ratio=ratio, min_retries_per_s=2.0, window_s=10.0, clock=FakeClock())
    retries = _run_at_total_failure(budget, live_calls)
    assert retries <= ratio * live_calls + floor
    assert retries >= ratio * live_calls * 0.9  # the budget is used, not just refused


def test_budget_holds_for_concurrent_callers_over_time() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_retries_per_s=1.0, window_s=5.0, clock=clock)
    attempts = 0

    async def always_fails() -> None:
        nonlocal attempts
        attempts += 1
        raise err()

    async def one() -> None:
        with pytest.raises(DownstreamError):
            await call_with_retry(
                always_fails, policy=RetryPolicy(max_attempts=4), budget=budget,
                is_retryable=retryable, sleep=Recorder(),
            )

    async def main() -> None:
        for _ in range(4):  # four bursts of 250 concurrent live calls, 1 s apart
            await asyncio.gather(*(one() for _ in range(250)))
            clock.advance(1.0)

    asyncio.run(main())
    retries = attempts - 1000
    assert retries <= 0.1 * 1000 + 1.0 * 5.0


# -- call_with_retry -----------------------------------------------------------------------

def test_retries_retryable_errors_until_success() -> None:
    fn = Flaky(err(), err())
    sleep = Recorder()
    seen: list[int] = []
    result = asyncio.run(call_with_retry(
        fn, policy=RetryPolicy(max_attempts=3), budget=None, is_retryable=retryable,
        sleep=sleep, rng=lambda: 0.5, on_retry=lambda n, e: seen.append(n),
    ))
    assert result == "ok" and fn.calls == 3
    assert seen == [1, 2]
    assert sleep.delays == pytest.approx([0.025, 0.05])


def test_stops_after_max_attempts_and_reraises_last_error() -> None:
    last = err()
    fn = Flaky(err(), err(), last, err())
    with pytest.raises(DownstreamError) as info:
        asyncio.run(call_with_retry(
            fn, policy=RetryPolicy(max_attempts=3), budget=None, is_retryable=retryable,
            sleep=Recorder(),
        ))
    assert info.value is last and fn.calls == 3


def test_non_retryable_errors_propagate_immediately() -> None:
    fn = Flaky(err(retryable=False))
    sleep = Recorder()
    with pytest.raises(DownstreamError):
        asyncio.run(call_with_retry(
            fn, policy=RetryPolicy(), budget=None, is_retryable=retryable, sleep=sleep,
        ))
    assert fn.calls == 1 and sleep.delays == []

    fn = Flaky(KeyError("bug"))
    with pytest.raises(KeyError):
        asyncio.run(call_with_retry(
            fn, policy=RetryPolicy(), budget=None, is_retryable=retryable, sleep=sleep,
        ))
    assert fn.calls == 1


def test_never_sleeps_past_the_deadline() -> None:
    clock = FakeClock()
    deadline_at = clock() + 0.06
    sleep = Recorder(clock)
    fn = Flaky(err(), err(), err(), err())
    budget = RetryBudget(clock=clock)
    with pytest.raises(DownstreamError):
        asyncio.run(call_with_retry(
            fn, policy=RetryPolicy(max_attempts=10, base_delay_s=0.05, max_delay_s=1.0),
            budget=budget, is_retryable=retryable, sleep=sleep, rng=lambda: 0.9,
            deadline_remaining=lambda: deadline_at - clock(),
        ))
    # first delay 0.045 fits in 0.06; the second (0.09) would overrun, so it gives up
    assert sleep.delays == pytest.approx([0.045])
    assert clock() <= deadline_at
    assert fn.calls == 2
    # the refused retry did not consume budget
    assert budget.snapshot()["retries_in_window"] == 1


def test_no_retry_when_deadline_already_passed() -> None:
    fn = Flaky(err())
    sleep = Recorder()
    with pytest.raises(DownstreamError):
        asyncio.run(call_with_retry(
            fn, policy=RetryPolicy(), budget=None, is_retryable=retryable, sleep=sleep,
            deadline_remaining=lambda: -1.0,
        ))
    assert fn.calls == 1 and sleep.delays == []


def test_budget_records_one_live_call_per_invocation() -> None:
    budget = RetryBudget(clock=FakeClock())
    asyncio.run(call_with_retry(
        Flaky(err(), err()), policy=RetryPolicy(), budget=budget, is_retryable=retryable,
        sleep=Recorder(),
    ))
    snap = budget.snapshot()
    assert snap["calls_in_window"] == 1 and snap["retries_in_window"] == 2


def test_cancellation_is_not_retried() -> None:
    fn = Flaky(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(call_with_retry(
            fn, policy=RetryPolicy(), budget=None, is_retryable=lambda e: True,
            sleep=Recorder(),
        ))
    assert fn.calls == 1
