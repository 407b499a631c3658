"""Wait until Prometheus has scraped the stack's services after they (re)started.

A service answering /health is not yet a service Prometheus knows is up: right after `up`,
Prometheus has no targets or has not scraped them, and right after a restart its last scrape
may be the failed one from the gap. `chaosctl health`, diagnose and the playbooks all read
Prometheus, so a start is finished only when every expected target has a successful scrape
that began after the services were ready. Talks to Prometheus through chaosctl.clients.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from chaosctl.clients.prometheus import Prometheus
from chaosctl.config import Settings
from chaosctl.errors import ChaosctlError, StackStartError

POLL_S = 0.25


@dataclass
class TargetScrape:
    job: str
    up: float | None = None  # value of `up` in the latest scrape; None: never scraped
    at: float | None = None  # when that scrape began (epoch seconds)

    def fresh_and_up(self, since: float) -> bool:
        return self.up == 1 and self.at is not None and self.at >= since

    def describe(self, since: float) -> str:
        if self.up is None or self.at is None:
            return f"{self.job} (never scraped)"
        if self.at < since:
            return f"{self.job} (no scrape since it started)"
        return f"{self.job} (up={self.up:g}: the scrape failed)"


def scrape_states(settings: Settings, jobs: list[str]) -> dict[str, TargetScrape]:
    """Latest `up` value and its scrape time per job. Raises PrometheusUnavailableError."""
    prom = Prometheus(settings.prometheus_url, timeout=2.0)
    states = {job: TargetScrape(job) for job in jobs}
    # Two instant queries: `up` for the result and `timestamp(up)` for when it was scraped
    # (a sample from before a restart must not count).
    for sample in prom.query("up"):
        job = sample.labels.get("job", "")
        if job in states and not math.isnan(sample.value):
            states[job].up = sample.value
    for sample in prom.query("timestamp(up)"):
        job = sample.labels.get("job", "")
        if job in states and not math.isnan(sample.value):
            states[job].at = sample.value
    return states


def wait_scraped(settings: Settings, jobs: list[str], since: float, timeout: float) -> None:
    """Return once every job in `jobs` had a successful scrape begun at or after `since`.

    StackStartError (exit 1) naming the targets that never came up after `timeout` seconds.
    """
    if not jobs:
        return
    deadline = time.monotonic() + timeout
    states: dict[str, TargetScrape] = {}
    last_error = ""
    while True:
        try:
            states = scrape_states(settings, jobs)
            last_error = ""
            if all(s.fresh_and_up(since) for s in states.values()):
                return
        except ChaosctlError as exc:  # Prometheus still starting: keep polling until the end
            last_error = str(exc)
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    missing = [s.describe(since) for s in states.values() if not s.fresh_and_up(since)]
    what = ", ".join(missing) if missing else f"no answer ({last_error})"
    raise StackStartError(
        f"Prometheus at {settings.prometheus_url} has not scraped every target within "
        f"{timeout:g}s: {what}",
        hint=f"the processes are running; see {settings.prometheus_url}/targets and "
             "`chaosctl health`, or stop them with `chaosctl stack down`")
