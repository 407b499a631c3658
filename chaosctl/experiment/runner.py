"""The experiment: for each configuration, restart the services with its switches, measure a
baseline, then each scenario (fault on for --duration, then watch recovery), and ALWAYS put
the stack back in its normal configuration at the end, Ctrl-C included (the cells already
measured are kept). Emits `chaosctl.events.Event`s (source "gameday", subject "experiment");
never prints.

A cell's timeline (t=0: its traffic starts): a 1 s lead-in, the fault from t_inject to
t_end (--duration), then recovery is watched for up to --recover-max. Success, latency, shed
and 5xx count the requests SENT during the fault; counters and breaker samples span the
fault; MTTR is judged by send time after t_end, on seconds whose requests all have their
final answer.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chaosctl.config import Settings
from chaosctl.errors import ChaosctlError, ConfigError, ExitCode
from chaosctl.events import EventBus, Listener
from chaosctl.experiment import measure, probe
from chaosctl.experiment.configs import CONFIGS, Config
from chaosctl.experiment.paper import METRICS, TABLE_ROWS, paper_value
from chaosctl.experiment.scenarios import BASELINE, SCENARIOS, Scenario
from chaosctl.experiment.traffic import CellTraffic
from chaosctl.gameday.counters import BreakerSampler
from chaosctl.results.experiment import (
    Cell,
    Comparison,
    ConfigInfo,
    ExperimentResult,
    Metrics,
    Options,
    ScenarioInfo,
)

LEAD_IN_S = 1.0
WARM_UP_S = 3.0  # before a baseline: the first requests after a restart are slow
SETTLE_S = 2.0
SUBJECT = "experiment"


class ExperimentPreflightError(ChaosctlError):
    """Chaos is already active: the experiment would measure someone else's fault."""

    exit_code = ExitCode.UNHEALTHY


@dataclass
class ExperimentOptions:
    configs: list[str] = field(default_factory=lambda: list(CONFIGS))
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    rps: float = 20.0
    duration_s: float = 120.0
    baseline_s: float = 30.0
    hold_s: float = 10.0
    recover_max_s: float = 150.0
    repeat: int = 1
    client_timeout_s: float = 30.0
    quick: bool = False

    def cells(self) -> list[tuple[str, str]]:
        return [(c, s) for c in self.configs for s in (BASELINE, *self.scenarios)]

    def planned_s(self, scenario: str) -> float:
        """A cell's expected length (for the ETA): recovery is guessed at a third of its cap."""
        if scenario == BASELINE:
            return self.repeat * (WARM_UP_S + self.baseline_s + SETTLE_S)
        return self.repeat * (LEAD_IN_S + self.duration_s + self.recover_max_s / 3
                              + SETTLE_S)


def quick_options(**overrides: Any) -> ExperimentOptions:
    """--quick: configurations A and E, two scenarios, short phases (under 5 min on 2 cores)."""
    base = ExperimentOptions(configs=["A", "E"], scenarios=["payment_errors", "payment_slow"],
                             rps=10.0, duration_s=15.0, baseline_s=5.0, hold_s=5.0,
                             recover_max_s=40.0, client_timeout_s=15.0, quick=True)
    for key, value in overrides.items():
        setattr(base, key, value)
    return base


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPUs, load average {load:.1f} at start, {os.uname().sysname}"


def make_cell(config: str, scenario: str, runs: list[dict[str, Any]], reason: str | None,
              fault_s: float, started_at: float, duration_s: float) -> Cell:
    """A cell from its runs' metrics: their median, and the paper's table rows beside it."""
    metrics = Metrics(**measure.median_of(runs)) if runs else None
    table = []
    for key in TABLE_ROWS.get(scenario, ()):
        ours = getattr(metrics, key) if metrics else None
        paper = paper_value(scenario, key, config)
        table.append(Comparison(metric=key, unit=METRICS[key].unit, ours=ours, paper=paper,
                                diff=measure.difference(ours, paper)))
    return Cell(config=config, scenario=scenario,
                status="measured" if metrics else "error", reason=reason, metrics=metrics,
                runs=[Metrics(**run) for run in runs], table=table, fault_s=fault_s,
                started_at=started_at, duration_s=duration_s)


class Experiment:
    def __init__(self, settings: Settings, options: ExperimentOptions,
                 listeners: Iterable[Listener] = ()) -> None:
        if settings.backend != "local":
            raise ConfigError(f"chaosctl experiment needs the local backend, not "
                              f"{settings.backend!r}: it restarts the services with each "
                              "configuration's SHOP_* switches",
                              hint="set CHAOSCTL_BACKEND=local (or unset it)")
        self.settings, self.opts = settings, options
        self.events = EventBus(listeners)
        self.traffic: CellTraffic | None = None
        self.started_stack = False
        self.applied = False  # a configuration was (being) applied: restore() must run
        self.result = ExperimentResult(
            machine=machine(),
            options=Options(quick=options.quick, rps=options.rps,
                            duration_s=options.duration_s, baseline_s=options.baseline_s,
                            hold_s=options.hold_s, recover_max_s=options.recover_max_s,
                            repeat=options.repeat, client_timeout_s=options.client_timeout_s),
            configs=[ConfigInfo(name=c, label=CONFIGS[c].label, env=CONFIGS[c].env,
                                note=CONFIGS[c].note) for c in options.configs],
            scenarios=[ScenarioInfo(name=s, description=SCENARIOS[s].description,
                                    fault=SCENARIOS[s].fault) for s in options.scenarios],
            cells=[], planned=len(options.cells()), completed=0, interrupted=False,
            restored=False, stack="running", started_at=time.time(), duration_s=0.0,
            report_path=None)

    def emit(self, kind: str, **data: Any) -> None:
        self.events.publish(kind, "gameday", SUBJECT, data)

    # -- the stack ----------------------------------------------------------------------------
    def _backend(self, config: Config | None):  # noqa: ANN202 - LocalBackend, imported lazily
        from chaosctl.runtime.local import LocalBackend

        return LocalBackend(self.settings, service_env=config.env if config else None)

    def preflight(self) -> None:
        status = self._backend(None).status()
        running = [p for p in status.processes if p.alive]
        self.started_stack = not running
        self.result.stack = "started" if self.started_stack else "running"
        if running:
            from chaosctl.chaos.status import collect

            chaos = collect(self.settings)
            if not chaos.clean:
                raise ExperimentPreflightError(
                    "faults are active (" + ", ".join(f"{f.fault} {f.target}"
                                                      for f in chaos.faults)
                    + "); the experiment would measure them too",
                    hint="run `chaosctl chaos clear --all` first")

    def apply(self, config: Config) -> None:
        """Restart the five services with the configuration's switches (or start the stack
        with them when it is not running) and wait until the gateway answers."""
        from chaosctl.domain import SERVICES

        self.emit("phase", phase=f"configuration {config.name}: restarting the services",
                  config=config.name)
        backend = self._backend(config)
        if any(p.alive for p in backend.status().processes):
            backend.restart(list(SERVICES))
        else:
            backend.up()
        probe.reset_breakers(self.settings)

    def restore(self) -> None:
        """Back to the normal configuration (the stack we started goes down again). Ctrl-C
        is held off meanwhile: a half-restarted stack is worse than a late exit."""
        previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:
            previous = None  # not the main thread: nothing to hold off
        try:
            self.emit("phase", phase="restoring the normal configuration")
            from chaosctl.chaos.halt import clear

            try:
                clear(self.settings)
            except ChaosctlError:
                pass  # the restart below drops in-process state; keys carry their TTL
            backend = self._backend(None)
            if self.started_stack:
                backend.down()
            else:
                from chaosctl.domain import SERVICES

                backend.restart(list(SERVICES))
                probe.reset_breakers(self.settings)
            self.result.restored = True
        except ChaosctlError as exc:
            self.emit("problem", detail=f"could not restore the normal configuration: {exc}")
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    # -- cells --------------------------------------------------------------------------------
    def run(self) -> ExperimentResult:
        r, opts = self.result, self.opts
        self.preflight()
        n = 0
        try:
            for name in opts.configs:
                config = CONFIGS[name]
                self.applied = True
                try:
                    self.apply(config)
                    problem = None
                except ChaosctlError as exc:  # this configuration's cells say why
                    problem = f"configuration {name} could not be applied: {exc}"
                    self.emit("problem", detail=problem)
                for scenario in (BASELINE, *opts.scenarios):
                    n += 1
                    self.emit("cell_start", n=n, m=r.planned, config=name, scenario=scenario,
                              planned_s=0.0 if problem else opts.planned_s(scenario))
                    cell = (make_cell(name, scenario, [], problem, 0.0, time.time(), 0.0)
                            if problem else self.run_cell(config, scenario))
                    r.cells.append(cell)
                    r.completed = len(r.cells)
                    self.emit("cell_end", n=n, m=r.planned, cell=cell.model_dump(mode="json"))
        except KeyboardInterrupt:
            r.interrupted = True
            if self.traffic is not None:
                self.traffic.stop()
        finally:
            if self.applied:
                self.restore()
            else:
                r.restored = True  # nothing was changed yet
            r.duration_s = round(time.time() - r.started_at, 1)
        self.emit("done", interrupted=r.interrupted, restored=r.restored)
        return r

    def run_cell(self, config: Config, scenario: str) -> Cell:
        started = time.time()
        runs: list[dict[str, Any]] = []
        reason = None
        try:
            for i in range(self.opts.repeat):
                runs.append(self.measure(config, scenario, i))
        except ChaosctlError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        return make_cell(config.name, scenario, runs, reason,
                         fault_s=0.0 if scenario == BASELINE else self.opts.duration_s,
                         started_at=started, duration_s=round(time.time() - started, 1))

    def _sleep(self, seconds: float, traffic: CellTraffic, phase: str) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.5))
            self.emit("tick", phase=phase, t=round(traffic.now(), 1))

    def measure(self, config: Config, scenario: str, run: int) -> dict[str, Any]:
        """One run of one cell: its metrics as a dict of Metrics' fields."""
        from chaosctl.chaos.halt import clear

        opts = self.opts
        spec = SCENARIOS.get(scenario)
        prefix = f"xp-{config.name}-{scenario}-{run}-{uuid.uuid4().hex[:8]}-"
        longest = (WARM_UP_S + opts.baseline_s if spec is None
                   else LEAD_IN_S + opts.duration_s + opts.recover_max_s) + 5.0
        traffic = self.traffic = CellTraffic(
            self.settings.url("gateway"), opts.rps, opts.client_timeout_s, prefix,
            max_duration_s=longest, retries=spec.client_retries if spec else 0)
        sampler = BreakerSampler(self.settings, traffic.now, "experiment-breakers")
        out: dict[str, Any] = {}
        try:
            if spec is None:
                traffic.start()
                sampler.start()
                # Services just restarted: their first requests pay for warm-up, not the
                # configuration.
                self._sleep(WARM_UP_S, traffic, "warm-up")
                before = probe.read_counters(self.settings)
                t_inject = traffic.now()
                self._sleep(opts.baseline_s, traffic, "baseline")
                after = probe.read_counters(self.settings)
                t_end = traffic.now()
                out.update(mttr_s=None, recovered=None)
            else:
                traffic.start()
                sampler.start()
                self._sleep(LEAD_IN_S, traffic, "lead-in")
                before = probe.read_counters(self.settings)
                t_inject = traffic.now()
                self.inject(spec)
                self._sleep(opts.duration_s, traffic, "fault")
                after = probe.read_counters(self.settings)
                clear(self.settings)
                t_end = traffic.now()
                out.update(self.watch_recovery(traffic, t_end))
            traffic.finish(wait_s=opts.client_timeout_s * (1 + traffic.retries) + 5.0)
        finally:
            traffic.stop()
            sampler.stop()
            self.traffic = None
            if spec is not None:
                clear(self.settings)
        requests = traffic.snapshot()
        out.update(measure.request_metrics(requests, t_inject, t_end))
        out.update(measure.counter_metrics(before, after))
        out["breaker_open_pct"] = (measure.breaker_open_pct(sampler.by_second, t_inject, t_end)
                                   if config.breakers else None)
        out["duplicate_pct"] = self.duplicates(prefix)
        probe.reset_breakers(self.settings)
        time.sleep(SETTLE_S)
        return {name: out.get(name) for name in Metrics.model_fields}

    def duplicates(self, prefix: str) -> float | None:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            orders, keys = probe.orders_per_key(self.settings, prefix)
        except SQLAlchemyError as exc:
            self.emit("problem", detail=f"orders database unreadable: {exc}")
            return None
        return measure.duplicate_pct(orders, keys)

    def inject(self, spec: Scenario) -> None:
        from chaosctl.chaos.injector import inject

        options = spec.options(self.opts.rps, self.opts.duration_s)
        inject(self.settings, spec.fault, **options)

    def watch_recovery(self, traffic: CellTraffic, t_end: float) -> dict[str, Any]:
        opts = self.opts
        while True:
            now = traffic.now()
            mttr = measure.mttr(traffic.snapshot(), t_end, traffic.observed_until(),
                                opts.hold_s)
            if mttr is not None:
                return {"mttr_s": mttr, "recovered": True}
            if now - t_end >= opts.recover_max_s:
                return {"mttr_s": None, "recovered": False}
            time.sleep(0.5)
            self.emit("tick", phase="recovery", t=round(traffic.now(), 1))
