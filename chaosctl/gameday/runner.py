"""One game-day run: preflight, steady state, the scenario's steps (inject), detect,
remediate, verify, replay keys, and always roll back; then the integrity checks read from the
databases. Emits `chaosctl.events.Event`s (source "gameday", subject the scenario; its
engine's events reach the same listeners with source "engine"); never prints.

Times: t=0 is when traffic starts. Time to detect is from injection (the step that starts the
clock) to the first playbook firing; time to recover is from injection to the start of a
steady window (success, shed and latency back to the baseline's level) that then holds for
`hold_s`. A scenario that expects no playbook is watched instead: any playbook that fires is
recorded (and scored as wrong), nothing is remediated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chaosctl.config import Settings
from chaosctl.errors import ChaosctlError, ExitCode
from chaosctl.events import EventBus, Listener
from chaosctl.gameday import integrity
from chaosctl.gameday.counters import BreakerSampler, read_counters
from chaosctl.gameday.model import Marker, ScenarioResult
from chaosctl.gameday.replay import DEADLINE_S
from chaosctl.gameday.scenarios import Scenario
from chaosctl.gameday.scoring import score
from chaosctl.gameday.timeline import FAILED, OK, SHED, phase_stats, samples
from chaosctl.gameday.traffic import GameDayTraffic as Traffic
from chaosctl.playbook import api
from chaosctl.playbook.engine import Engine
from chaosctl.playbook.guard import RemediationGuard
from chaosctl.stats import percentile


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


class GameDay:
    def __init__(self, settings: Settings, scenario: Scenario, options: GameDayOptions,
                 listeners: Iterable[Listener] = ()) -> None:
        self.settings, self.scenario, self.opts = settings, scenario, options
        self.events = EventBus(listeners)
        self.result = ScenarioResult(scenario=scenario.name, expected_playbook=scenario.playbook,
                                     mode=options.mode)
        # Traffic must outlast every phase: steady state, settle, the fault, the replays.
        waits = sum(float(st.options.get("s", 0)) for st in scenario.actions)
        self.traffic = Traffic(settings.url("gateway"), options.rps,
                               max_duration_s=options.baseline_s + 30.0 + waits
                               + options.duration_s + options.after_s + 30.0
                               + (DEADLINE_S if scenario.replay else 0.0),
                               replay_share=options.replay_share)
        self.sampler = BreakerSampler(settings, self.traffic.now, "gameday-breakers")
        self.baseline_p95: float | None = None
        self.engine: Engine | None = None
        self.remediation_problem: str | None = None
        self.t_inject: float | None = None
        self.t_steps_done: float | None = None
        self.t_recovered: float | None = None
        self.t_remediated: float | None = None
        self.restarted: list[str] = []  # processes a step restarted (rollback checks them)

    # -- helpers ----------------------------------------------------------------------------
    def emit(self, event: str, **data: Any) -> None:
        # `event`, not `kind`: a marker's data has a `kind` of its own.
        self.events.publish(event, "gameday", self.scenario.name,
                            {"scenario": self.scenario.name, "t": round(self.now(), 2), **data})

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
        # The time limit is on recovering; replays and the "after" window come later.
        if self.t_recovered is None and t - self.t_inject > self.opts.duration_s:
            raise Aborted(f"the run exceeded its maximum time ({self.opts.duration_s:.0f} s "
                          "after injection) without recovering"
                          + (f" ({self.remediation_problem})" if self.remediation_problem
                             else ""))
        grace = self.opts.abort_grace_s
        # A playbook that just finished (restarting a killed service can take a while) gets
        # the whole grace to show recovery: the window must not judge it on the outage.
        if t - max(self.t_inject, self.t_remediated or 0.0) < grace:
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
        problem = integrity.unreadable(self.settings)
        if problem:
            raise PreflightError(f"preflight failed: {problem}")
        from chaosctl.chaos.status import collect

        status = collect(self.settings)
        if not status.clean:
            raise PreflightError("preflight failed: faults are active ("
                                 + ", ".join(f"{f.fault} {f.target}" for f in status.faults)
                                 + "); run `chaosctl chaos clear --all`")

    def settle(self, engine: Engine, limit_s: float = 30.0) -> None:
        """Wait until no playbook fires before injecting: detection after the fault would be
        meaningless otherwise (e.g. a previous incident still inside the 15 s windows)."""
        deadline = time.monotonic() + limit_s
        while True:
            already = api.firing(engine)
            if not already:
                return
            if time.monotonic() > deadline:
                raise Aborted("no steady state before injection: "
                              f"{', '.join(already)} still firing after {limit_s:.0f} s")
            self.emit("waiting", detail=f"waiting for a steady state ({', '.join(already)} "
                                        "firing)")
            time.sleep(1.0)

    def inject(self) -> None:
        """Run the scenario's steps in order; the clock starts at the step marked for it (or
        the first). Faults carry the run's TTL as a safety net."""
        from chaosctl.gameday.steps import check_step, run_step

        steps = self.scenario.actions
        for step in steps:
            check_step(step)  # a bad scenario fails before anything is touched
        clock = next((i for i, step in enumerate(steps) if step.starts_clock), 0)
        for i, step in enumerate(steps):
            if i == clock:
                self.t_inject = self.now()
            if step.kind == "wait":
                self.sleep(float(step.options["s"]))
                continue
            if step.kind == "restart":
                self.restarted.append(step.target)
            run_step(self.settings, step, self.opts.fault_ttl_s)
            self.mark("inject" if i == clock else "step", step.describe())
        self.t_steps_done = self.now()

    def detect(self, engine: Engine) -> str:
        while True:
            self.check_abort()
            firing = api.firing(engine)
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

    def remediate(self, engine: Engine, playbook: str) -> None:
        if self.opts.mode != "auto":
            self.emit("waiting", detail="manual mode: fix it by hand; chaosctl is timing you")
            return
        self.mark("remediate", f"running {playbook}")
        start = time.monotonic()
        results = api.remediate(engine, [playbook])
        self.result.remediation_s = time.monotonic() - start
        self.t_remediated = self.now()
        if results[0].status != "recovered":
            # Kept for the abort reason: "did not recover" alone would hide why.
            self.remediation_problem = (f"playbook {playbook} {results[0].status}: "
                                        + (results[0].error or "; ".join(
                                            results[0].still_failing) or "no detail"))
        self.emit("remediated", playbook=playbook, status=results[0].status,
                  still_failing=results[0].still_failing)

    def watch(self, engine: Engine) -> None:
        """For a scenario that expects no playbook: note the first one that fires."""
        if self.result.fired_playbook is not None:
            return
        firing = api.firing(engine)
        if firing:
            self.result.fired_playbook = firing[0]
            self.result.mttd_s = self.now() - (self.t_inject or 0.0)
            self.mark("detect", f"{', '.join(firing)} fired (none expected)")

    def await_recovery(self, watch: Engine | None = None) -> None:
        """Wait until the steady window holds for hold_s; t_recover is where it began.
        `watch`: an engine whose playbooks are checked (not run) once per poll meanwhile."""
        held_since: float | None = None
        watched_at = -1.0
        while True:
            self.check_abort()
            t = self.now()
            if watch is not None and t - watched_at >= self.opts.poll_s:
                watched_at = t
                self.watch(watch)
            if self.steady(t):
                candidate = t - self.opts.window_s
                held_since = candidate if held_since is None else held_since
                if t - held_since >= self.opts.hold_s + self.opts.window_s:
                    start = max(held_since, self.t_inject or 0.0)
                    self.result.mttr_s = start - (self.t_inject or 0.0)
                    self.result.markers.append(Marker(round(start, 2), "recover",
                                                      "steady state back"))
                    self.emit("marker", kind="recover", label="steady state back")
                    self.t_recovered = self.now()
                    return
            else:
                held_since = None
            self.sleep(self.opts.poll_s / 2)

    def replay(self) -> None:
        """Re-send the keys the scenario names, as their clients would."""
        from chaosctl.gameday.replay import MAX_KEYS, replay_keys

        mode, t0 = self.scenario.replay, self.t_inject or 0.0
        uses = (self.traffic.cut_off(t0, self.t_steps_done or t0) if mode == "cut-off"
                else self.traffic.settled_before(t0)[-MAX_KEYS:])
        self.mark("replay", f"replaying {min(len(uses), MAX_KEYS)} {mode} keys")
        self.result.replay = replay_keys(self.settings.url("gateway"), uses, str(mode))
        self.emit("replayed", **self.result.replay.to_json())

    def rollback(self) -> None:
        from chaosctl.chaos.halt import clear
        from chaosctl.gameday.steps import ensure_running

        try:
            outcome = clear(self.settings)
            self.result.rolled_back = outcome.ok
            if not outcome.ok:
                self.result.reason = (self.result.reason or "") + " rollback left: " + "; ".join(
                    outcome.problems + [f"{r.fault} {r.target}" for r in outcome.remaining])
            # A restart cut short (an error, Ctrl-C) is not a fault `clear` knows about.
            ensure_running(self.settings, self.restarted)
        except ChaosctlError as exc:
            self.result.rolled_back = False
            self.result.reason = (self.result.reason or "") + f" rollback failed: {exc}"
        if self.engine is not None:
            # Leave the stack as the preflight found it: a breaker the fault opened would sit
            # half-open with no traffic to probe it and fail the next preflight. A failure is
            # reported by the next health check; the faults themselves are gone.
            api.reset_breakers(self.engine)
        self.mark("rollback", "faults cleared" if self.result.rolled_back else "rollback failed")

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> ScenarioResult:
        r, opts = self.result, self.opts
        r.started_at = time.time()
        self.emit("phase", phase="preflight")
        self.preflight()
        # Same lock as every remediation, but this run's own action count (see guard.py).
        counts_file = f"gameday-actions-{os.getpid()}-{int(r.started_at)}.json"
        guard = RemediationGuard(self.settings.home, counts_file=counts_file)
        engine = self.engine = api.build_engine(self.settings, self.events.listeners,
                                                guard=guard)
        engine.prom.require_up()
        before = read_counters(self.settings)
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
            if self.scenario.playbook is None:
                self.emit("phase", phase="verify")
                self.await_recovery(watch=engine)
            else:
                self.emit("phase", phase="detect")
                fired = self.detect(engine)
                self.emit("phase", phase="remediate")
                self.remediate(engine, fired)
                self.emit("phase", phase="verify")
                self.await_recovery()
            t_recovered = self.now()
            if self.scenario.replay:
                self.emit("phase", phase="replay")
                self.replay()
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
        after = read_counters(self.settings)
        orders = after.orders - before.orders
        r.retry_amplification = ((after.payment_calls - before.payment_calls) / orders
                                 if orders > 0 else None)
        r.load_shed = int(max(0.0, after.load_shed - before.load_shed))
        (self.settings.home / "run" / counts_file).unlink(missing_ok=True)
        if interrupted is None:
            self.emit("phase", phase="integrity")
            self.check_integrity()
        score(self.result, self.scenario)
        self.emit("done", outcome=r.outcome)
        if interrupted is not None:
            raise interrupted
        return r

    def check_integrity(self) -> None:
        """Read the databases once the outbox drained and crash recovery had its grace."""
        from sqlalchemy.exc import SQLAlchemyError

        r = self.result
        try:
            integrity.wait_outbox_drained(self.settings, timeout_s=60.0)
            integrity.wait_no_pending(self.settings, r.started_at,
                                      self.scenario.pending_grace_s)
            r.integrity = integrity.check(self.settings, r.started_at)
            r.duplicates, r.lost_events = integrity.duplicates_and_lost(self.settings,
                                                                        r.started_at)
        except SQLAlchemyError as exc:
            # Unchecked is not clean: the integrity objectives then fail, saying why.
            r.reason = (r.reason or "") + f" integrity check failed: {exc}"
