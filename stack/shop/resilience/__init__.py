"""Resilience patterns shared by the shop services: breaker, retries, bulkhead, deadlines, shedding.

Pure code with injected clocks: no I/O, no metrics; services wire the callbacks to metrics.
"""

from .adaptive import AdaptiveLimit, AdaptiveLimitConfig
from .breaker import BreakerConfig, BreakerState, CircuitBreaker, Permit
from .bulkhead import Bulkhead
from .clock import Clock, FakeClock
from .deadline import DEADLINE_HEADER, Deadline
from .errors import (
    BreakerOpenError,
    BulkheadFullError,
    DeadlineExceededError,
    DownstreamError,
    ResilienceError,
)
from .loadshed import LoadShedMiddleware
from .retry import RetryBudget, RetryPolicy, call_with_retry, full_jitter_delay

__all__ = [
    "DEADLINE_HEADER",
    "AdaptiveLimit",
    "AdaptiveLimitConfig",
    "BreakerConfig",
    "BreakerOpenError",
    "BreakerState",
    "Bulkhead",
    "BulkheadFullError",
    "CircuitBreaker",
    "Clock",
    "Deadline",
    "DeadlineExceededError",
    "DownstreamError",
    "FakeClock",
    "LoadShedMiddleware",
    "Permit",
    "ResilienceError",
    "RetryBudget",
    "RetryPolicy",
    "call_with_retry",
    "full_jitter_delay",
]
