"""Errors raised by the resilience patterns; services map them to HTTP answers and metrics."""

from __future__ import annotations


class ResilienceError(Exception):
    """Base for every failure a resilience pattern decides on (not the downstream's own bugs)."""


class BreakerOpenError(ResilienceError):
    """The circuit breaker for `downstream` rejected the call without trying it."""

    def __init__(self, downstream: str) -> None:
        super().__init__(f"circuit breaker for {downstream} is open")
        self.downstream = downstream


class BulkheadFullError(ResilienceError):
    """No concurrency slot for `downstream` freed up within the bulkhead's wait limit."""

    def __init__(self, downstream: str) -> None:
        super().__init__(f"bulkhead for {downstream} is full")
        self.downstream = downstream


class DeadlineExceededError(ResilienceError):
    """The request's end-to-end deadline has passed; doing more work would be wasted."""


class DownstreamError(ResilienceError):
    """A call to another service failed (transport error, timeout or bad status)."""

    def __init__(
        self, downstream: str, reason: str, status: int | None = None, retryable: bool = True
    ) -> None:
        detail = f"{downstream} failed: {reason}" + (f" (HTTP {status})" if status else "")
        super().__init__(detail)
        self.downstream = downstream
        self.reason = reason
        self.status = status
        self.retryable = retryable
