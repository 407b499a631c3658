"""One game-day run: preflight, steady state, inject, detect, remediate, verify, and always
roll back. Emits events (the CLI renders progress); never prints.

Times: t=0 is when traffic starts. Time to detect is from injection to the first playbook
firing; time to recover is from injection to the start of a steady window (success, shed and
latency back to the baseline's level) that then holds for `hold_s`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaosctl.config import Settings
from chaosctl.errors import ChaosctlError, ExitCode
from chaosctl.gameday import integrity
from chaosctl.gameday.model import Marker, Objective, ScenarioResult
from chaosctl.gameday.scenarios import Scenario
from chaosctl.gameday.timeline import FAILED, OK, SHED, phase_stats, samples
from chaosctl.gameday.traffic import Traffic
from chaosctl.stats import percentile

EventSink = Callable[[str, dict[str, Any]], None]


class PreflightError(ChaosctlError):
    """The stack is not healthy or chaos is already on: a game day would measure nonsense."""

    exit_code = ExitCode.UNHEALTHY


class Aborted(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class GameDayOptions:
    rps: float = 50.0
    duration_s: float = 60.0  # longest the fault phase may last before the run is cut
    baseline_s: float = 10.0
    after_s: float = 5.0  # traffic kept after recovery to measure "after"
    hold_s: float = 5.0  # the steady state must hold this long to count as recovered
    window_s: float = 3.0  # trailing window the steady state is judged on
    mode: str = "auto"  # auto | manual
    abort_floor: float = 0.5
    abort_grace_s: float = 20.0
    fault_ttl_s: int = 300  # safety net: even a lost chaosctl cannot leave the fault on
    replay_share: float = 0.1
    poll_s: float = 1.0
    preflight_wait_s: float = 15.0  # how long an unhealthy stack may take to turn healthy


class BreakerSampler(threading.Thread):
    """Once a second, how many breakers are not closed (for the chart's shading)."""

    def __init__(self, settings: Settings, clock: Callable[[], float]) -> None:
        super().__init__(name="gameday-breakers", daemon=True)
        self.url = settings.url("gateway") + "/status/breakers"
        self.clock = clock
        self.by_second: dict[int, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=1.0, trust_env=False) as client:
            while not self._stop_event.is_set():
                try:
                    breakers = client.get(self.url).json()["breakers"]
                    value = sum(1 for b in breakers.values() if b.get("state_code", 0) != 0)
                except (httpx.HTTPError, ValueError, KeyError, AttributeError):
                    value = -1
                self.by_second[int(self.clock())] = value
                self._stop_event.wait(1.0)

    def stop(self) -> None:
        self._stop_event.set()


class GameDay:
    def __init__(self, settings: Settings, scenario: Scenario, options: GameDayOptions,
                 on_event: EventSink | None = None) -> None:
        self.settings, self.scenario, self.opts = settings, scenario, options
        self.on_event = on_event or (lambda kind, data: None)
        self.result = ScenarioResult(scenario=scenario.name, expected_playbook=scenario.playbook,
                                     mode=options.mode)
        self.traffic = Traffic(settings.url("gateway"), options.rps,
                               max_duration_s=options.baseline_s + options.duration_s
                               + options.after_s + 30.0, replay_share=options.replay_share)
        self.sampler = BreakerSampler(settings, self.traffic.now)
        self.baseline_p95: float | None = None
        self.engine: Any = None
        self.remediation_problem: str | None = None
        self.t_inject: float | None = None

    # -- helpers ----------------------------------------------------------------------------
    def emit(self, event: str, **data: Any) -> None:
        self.on_event(event, {"scenario": self.scenario.name, "t": round(self.now(), 2), **data})

    def now(self) -> float:
        return self.traffic.now() if self.traffic.t0 else 0.0

    def mark(self, kind: str, label: str) -> None:
        self.result.markers.append(Marker(round(self.now(), 2), kind, label))
        self.emit("marker", kind=kind, label=label)

    def steady(self, t_end: float) -> bool:
        """Is the trailing window back to the baseline's level?"""
        t0 = t_end - self.opts.window_s
        window = [r for r in self.traffic.records if t0 <= r.t < t_end]
        admitted = [r for r in window if r.outcome in (OK, FAILED)]
        if len(admitted) < max(3, self.opts.rps * self.opts.window_s * 0.3):
            return False  # too little traffic answered to judge (requests hanging)
        ok = sum(r.outcome == OK for r in admitted)
        shed = sum(r.outcome == SHED for r in window)
        p95 = percentile([r.latency_ms for r in admitted], 95) or 0.0
        latency_cap = max(3 * (self.baseline_p95 or 0.0), (self.baseline_p95 or 0.0) + 250.0)
        return ok / len(admitted) >= 0.95 and shed <= 0.01 * len(window) and p95 <= latency_cap

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))
            self.check_abort()

    def check_abort(self) -> None:
        if self.t_inject is None:
            return
        t = self.now()
        if t - self.t_inject > self.opts.duration_s:
            raise Aborted(f"the run exceeded its maximum time ({self.opts.duration_s:.0f} s "
                          "after injection) without recovering"
                          + (f" ({self.remediation_problem})" if self.remediation_problem
                             else ""))
        grace = self.opts.abort_grace_s
        if t - self.t_inject < grace:
            return
        window = [r for r in self.traffic.records
                  if t - grace <= r.t < t and r.outcome in (OK, FAILED)]
        if len(window) >= 5:
            rate = sum(r.outcome == OK for r in window) / len(window)
            if rate < self.opts.abort_floor:
                raise Aborted(f"success rate {rate:.0%} stayed below the abort floor "
                              f"{self.opts.abort_floor:.0%} for {grace:.0f} s")

    # -- phases -----------------------------------------------------------------------------
    def preflight(self) -> None:
        from chaosctl.health import check_health

        # A stack just brought up needs a scrape or two before Prometheus calls its targets up:
        # give a moment to what heals by itself, but never wait on chaos left enabled.
        deadline = time.monotonic() + self.opts.preflight_wait_s
        report = check_health(self.settings)
        while not report.healthy and not report.chaos and time.monotonic() < deadline:
            time.sleep(1.0)
            report = check_health(self.settings)
        if not report.healthy:
            raise PreflightError("preflight failed, the game day did not start: "
                                 + "; ".join(report.problems[:6])
                                 + " (fix these, or `chaosctl chaos clear --all` for chaos)")
        from chaosctl.chaos.status import collect

        status = collect(self.settings)
        if not status.clean:
            raise PreflightError("preflight failed: faults are active ("
                                 + ", ".join(f"{f.fault} {f.target}" for f in status.faults)
                                 + "); run `chaosctl chaos clear --all`")

    def settle(self, engine: Any, limit_s: float = 30.0) -> None:
        """Wait until no playbook fires before injecting: detection after the fault would be
        meaningless otherwise (e.g. a previous incident still inside the 15 s windows)."""
        deadline = time.monotonic() + limit_s
        while True:
            already = [d.playbook for d in engine.detect(engine.catalog.all()) if d.firing]
            if not already:
                return
            if time.monotonic() > deadline:
                raise Aborted("no steady state before injection: "
                              f"{', '.join(already)} still firing after {limit_s:.0f} s")
            self.emit("waiting", detail=f"waiting for a steady state ({', '.join(already)} "
                                        "firing)")
            time.sleep(1.0)

    def inject(self) -> None:
        from chaosctl.chaos.injector import inject

        self.t_inject = self.now()
        inject(self.settings, self.scenario.fault, ttl=self.opts.fault_ttl_s,
               **self.scenario.options)
        self.mark("inject", f"{self.scenario.fault} {self.scenario.options}")

    def detect(self, engine: Any) -> str:
        while True:
            self.check_abort()
            detections = engine.detect(engine.catalog.all())
            firing = [d.playbook for d in detections if d.firing]
            if firing:
                fired = self.scenario.playbook if self.scenario.playbook in firing else firing[0]
                self.result.mttd_s = self.now() - (self.t_inject or 0.0)
                self.result.fired_playbook = fired
                self.result.right_playbook = fired == self.scenario.playbook
                self.mark("detect", f"{fired} fired" + (
                    f" (also: {', '.join(f for f in firing if f != fired)})"
                    if len(firing) > 1 else ""))
                return fired
            self.sleep(self.opts.poll_s)

    def remediate(self, engine: Any, playbook: str) -> None:
        from chaosctl.playbook import api

        if self.opts.mode != "auto":
            self.emit("waiting", detail="manual mode: fix it by hand; chaosctl is timing you")
            return
        self.mark("remediate", f"running {playbook}")
        start = time.monotonic()
        results = api.remediate(engine, [playbook])
        self.result.remediation_s = time.monotonic() - start
        if results[0].status != "recovered":
            # Kept for the abort reason: "did not recover" alone would hide why.
            self.remediation_problem = (f"playbook {playbook} {results[0].status}: "
                                        + (results[0].error or "; ".join(
                                            results[0].still_failing) or "no detail"))
        self.emit("remediated", playbook=playbook, status=results[0].status,
                  still_failing=results[0].still_failing)

    def await_recovery(self) -> None:
        """Wait until the steady window holds for hold_s; t_recover is where it began."""
        held_since: float | None = None
        while True:
            self.check_abort()
            t = self.now()
            if self.steady(t):
                candidate = t - self.opts.window_s
                held_since = candidate if held_since is None else held_since
                if t - held_since >= self.opts.hold_s + self.opts.window_s:
                    start = max(held_since, self.t_inject or 0.0)
                    self.result.mttr_s = start - (self.t_inject or 0.0)
                    self.result.markers.append(Marker(round(start, 2), "recover",
                                                      "steady state back"))
                    self.emit("marker", kind="recover", label="steady state back")
                    return
            else:
                held_since = None
            self.sleep(self.opts.poll_s / 2)

    def rollback(self) -> None:
        from chaosctl.chaos.halt import clear

        try:
            outcome = clear(self.settings)
            self.result.rolled_back = outcome.ok
            if not outcome.ok:
                self.result.reason = (self.result.reason or "") + " rollback left: " + "; ".join(
                    outcome.problems + [f"{r.fault} {r.target}" for r in outcome.remaining])
        except ChaosctlError as exc:
            self.result.rolled_back = False
            self.result.reason = (self.result.reason or "") + f" rollback failed: {exc}"
        if self.engine is not None:
            # Leave the stack as the preflight found it: a breaker the fault opened would sit
            # half-open with no traffic to probe it and fail the next preflight.
            from chaosctl.playbook.registry import StepFailed
            from chaosctl.playbook.steps_remedy import ResetBreakerParams, reset_breaker

            try:
                reset_breaker(self.engine.ctx, ResetBreakerParams(downstream="open"))
            except (StepFailed, ChaosctlError, OSError):
                pass  # reported by the next health check; the faults themselves are gone
        self.mark("rollback", "faults cleared" if self.result.rolled_back else "rollback failed")

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> ScenarioResult:
        from chaosctl.playbook import api

        r, opts = self.result, self.opts
        r.started_at = time.time()
        self.emit("phase", phase="preflight")
        self.preflight()
        engine = self.engine = api.build_engine(self.settings, [])
        from chaosctl.playbook.guard import RemediationGuard

        # Same lock as every remediation, but this run's own action count (see guard.py).
        counts_file = f"gameday-actions-{os.getpid()}-{int(r.started_at)}.json"
        engine.guard = RemediationGuard(self.settings.home, counts_file=counts_file)
        engine.prom.require_up()
        before = integrity.read_counters(self.settings)
        self.traffic.start()
        self.sampler.start()
        interrupted: BaseException | None = None
        t_recovered = None
        try:
            self.emit("phase", phase="steady state")
            time.sleep(opts.baseline_s)
            base = phase_stats(self.traffic.records, 0, self.now())
            self.baseline_p95 = base.p95_ms
            self.emit("baseline", success_rate=base.success_rate, p95_ms=base.p95_ms)
            self.settle(engine)
            self.emit("phase", phase="inject")
            self.inject()
            self.emit("phase", phase="detect")
            fired = self.detect(engine)
            self.emit("phase", phase="remediate")
            self.remediate(engine, fired)
            self.emit("phase", phase="verify")
            self.await_recovery()
            t_recovered = self.now()
            self.emit("phase", phase="after")
            self.sleep(opts.after_s)
        except Aborted as exc:
            r.outcome, r.reason = "aborted", exc.reason
            self.mark("abort", exc.reason)
        except KeyboardInterrupt as exc:
            r.outcome, r.reason = "aborted", "interrupted (Ctrl-C)"
            interrupted = exc
        except ChaosctlError as exc:
            r.outcome, r.reason = "aborted", f"{type(exc).__name__}: {exc}"
            self.mark("abort", str(exc))
        finally:
            # Always roll back, whatever happened above: faults first, then traffic.
            self.emit("phase", phase="rollback")
            self.rollback()
            self.traffic.stop()
            self.sampler.stop()
        t_end = self.now()
        r.duration_s = t_end
        t_inject = self.t_inject if self.t_inject is not None else t_end
        recs = self.traffic.records
        r.before = phase_stats(recs, 0, t_inject)
        r.during = phase_stats(recs, t_inject, t_recovered or t_end)
        r.after = phase_stats(recs, t_recovered, t_end) if t_recovered else r.after
        r.samples = samples(recs, t_end, self.sampler.by_second)
        after = integrity.read_counters(self.settings)
        orders = after.orders - before.orders
        r.retry_amplification = ((after.payment_calls - before.payment_calls) / orders
                                 if orders > 0 else None)
        r.load_shed = int(max(0.0, after.load_shed - before.load_shed))
        (self.settings.home / "run" / counts_file).unlink(missing_ok=True)
        if interrupted is None:
            self.emit("phase", phase="integrity")
            integrity.wait_outbox_drained(self.settings, timeout_s=60.0)
            r.duplicates, r.lost_events = integrity.duplicates_and_lost(self.settings,
                                                                        r.started_at)
        self.score()
        self.emit("done", outcome=r.outcome)
        if interrupted is not None:
            raise interrupted
        return r

    def score(self) -> None:
        r, obj = self.result, self.scenario.objectives
        checks = [
            Objective("right playbook fired", self.scenario.playbook, r.fired_playbook or "none",
                      r.right_playbook),
            Objective("time to detect", f"<= {obj.max_mttd_s:.0f} s", _s(r.mttd_s),
                      r.mttd_s is not None and r.mttd_s <= obj.max_mttd_s),
            Objective("time to recover", f"<= {obj.max_mttr_s:.0f} s", _s(r.mttr_s),
                      r.mttr_s is not None and r.mttr_s <= obj.max_mttr_s),
            Objective("success after recovery", f">= {obj.min_success_after:.0%}",
                      "–" if r.after.success_rate is None else f"{r.after.success_rate:.1%}",
                      r.after.success_rate is not None
                      and r.after.success_rate >= obj.min_success_after),
            Objective("duplicate orders", "== 0", str(r.duplicates), r.duplicates == 0),
            Objective("outbox events lost", "== 0", str(r.lost_events), r.lost_events == 0),
            Objective("rolled back", "nothing left injected", "yes" if r.rolled_back else "no",
                      r.rolled_back),
        ]
        if obj.max_retry_amplification is not None:
            amp = r.retry_amplification
            checks.append(Objective("retry amplification (payments calls per order)",
                                    f"<= {obj.max_retry_amplification:.1f}x",
                                    "–" if amp is None else f"{amp:.2f}x",
                                    amp is not None and amp <= obj.max_retry_amplification))
        r.objectives = checks
        if r.outcome != "aborted":
            r.outcome = "pass" if all(c.passed for c in checks) else "fail"
            if r.outcome == "fail":
                r.reason = "missed: " + ", ".join(c.name for c in checks if not c.passed)


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"
