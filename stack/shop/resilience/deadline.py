"""End-to-end request deadlines propagated between services in the X-Deadline header.

An absolute time (not a remaining budget) survives queueing and hops without each service
resetting the clock; every hop then takes min(its own timeout, what is left).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import DeadlineExceededError

DEADLINE_HEADER = "X-Deadline"  # absolute unix time in milliseconds, integer string
MAX_DEADLINE_DIGITS = 15  # milliseconds until the year 33658: plenty

WallClock = Callable[[], float]


@dataclass(frozen=True)
class Deadline:
    at: float  # unix seconds

    @classmethod
    def from_header(
        cls, value: str | None, default_budget_s: float, now: WallClock = time.time
    ) -> Deadline:
        """The caller's deadline, or now + default when the header is missing or malformed.

        A valid header is used as is (even if already past): a callee never grants itself
        more time than its caller gave it.
        """
        millis = _parse_millis(value)
        if millis is None:
            return cls(now() + default_budget_s)
        return cls(millis / 1000.0)

    @classmethod
    def after(cls, seconds: float, now: WallClock = time.time) -> Deadline:
        return cls(now() + seconds)

    def remaining(self, now: WallClock = time.time) -> float:
        return self.at - now()

    def expired(self, now: WallClock = time.time) -> bool:
        return self.remaining(now) <= 0

    def to_header(self) -> str:
        # Rounded down so passing the deadline on never extends it.
        return str(math.floor(self.at * 1000))

    def hop_timeout(self, per_hop_s: float, now: WallClock = time.time) -> float:
        """Timeout for the next downstream call; raises if no time is left for it."""
        left = self.remaining(now)
        if left <= 0:
            raise DeadlineExceededError(f"deadline passed {-left:.3f} s ago")
        return min(per_hop_s, left)


def _parse_millis(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit():  # rejects signs, floats, junk, "" and "١٢"
        return None
    if len(text) > MAX_DEADLINE_DIGITS:
        # Beyond any real clock, and int() of thousands of digits raises (a 500, not "no
        # deadline"): treat it as malformed like any other junk.
        return None
    millis = int(text)
    return millis if millis > 0 else None
