"""Listeners cannot break a run: one that raises, or a journal on a full disk (/dev/full), is
logged and skipped while the remediation completes and every other listener gets every event.
The engine runs a real playbook against a real, empty Prometheus (no stack needed)."""

from __future__ import annotations

import errno
import logging
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosctl.config import Settings
from chaosctl.events import Event, EventBus
from chaosctl.gameday.runner import GameDay, GameDayOptions
from chaosctl.gameday.scenarios import SCENARIOS
from chaosctl.playbook import api
from chaosctl.playbook.engine import Engine, RunResult
from chaosctl.playbook.journal import JournalWriter
from chaosctl.playbook.library import load_catalog
from tests.support import free_port, wait_for

# Fires at once (vector(1) > 0); a mutating step (counted by the guard) and a read-only one;
# verify holds at once. Nothing here needs the shop stack.
PLAYBOOK = """\
name: listener-drill
title: Listener drill
severity: info
runbook: "Incident: none (a test)"
detect: {query: 'vector(1)', op: '>', threshold: 0}
remediate:
  - {name: stop any burst, action: stop_load_test}
  - {name: tell a person, action: advise, params: {message: all good}}
verify:
  conditions:
    - {query: 'vector(0)', op: '==', threshold: 0}
  hold_for: 0s
  timeout: 20s
  interval: 0.2s
"""

ENGINE_KINDS = ["run_start", "detect", "step_start", "step_end", "step_start", "step_end",
                "verify_start", "verify_check", "verify_end", "run_end"]


@pytest.fixture(scope="module")
def prometheus() -> Iterator[int]:
    """A real Prometheus with no targets on a free port (vector() queries still answer)."""
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="chaosctl-events-prom-"))
    (root / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={root / 'prometheus.yml'}",
         f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=60, interval=0.2, what="prometheus ready")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        subprocess.run(["rm", "-rf", str(root)], check=False)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)


class Exploding:
    """A listener with a bug: it raises on every event it gets."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, event: Event) -> None:
        self.calls += 1
        raise RuntimeError(f"printer bug on {event.kind}")


def make_engine(prometheus: int, tmp_path: Path, *listeners: Recorder | Exploding,
                journal: JournalWriter | None = None) -> tuple[Engine, Settings]:
    # Every stack port closed: stop_load_test finds no chaosctl worker, nothing is reachable.
    settings = Settings(home=tmp_path / "home", prometheus_port=prometheus,
                        gateway_port=free_port(), redis_port=free_port())
    path = tmp_path / "listener-drill.yaml"
    path.write_text(PLAYBOOK)
    catalog = load_catalog([path], prometheus_url=settings.prometheus_url)
    return Engine(settings, catalog, listeners=listeners, journal=journal), settings


def remediate(engine: Engine) -> RunResult:
    [result] = api.remediate(engine, ["listener-drill"])
    return result


def test_a_raising_listener_is_logged_and_the_run_completes(
        prometheus: int, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    before, after = Recorder(), Recorder()
    bug = Exploding()
    engine, settings = make_engine(prometheus, tmp_path, before, bug, after,
                                   journal=JournalWriter(tmp_path / "home"))
    with caplog.at_level(logging.ERROR, logger="chaosctl.events"):
        result = remediate(engine)
    assert result.status == "recovered", result.error
    assert [(s.action, s.status) for s in result.steps] == [("stop_load_test", "ok"),
                                                            ("advise", "ok")]
    # Listeners on both sides of the broken one got every event, in order.
    for recorder in (before, after):
        assert [e.kind for e in recorder.events] == ENGINE_KINDS
        assert {(e.source, e.subject) for e in recorder.events} == {("engine", "listener-drill")}
    assert bug.calls == len(ENGINE_KINDS)
    # Each failure is recorded and logged once, naming the listener and the event.
    assert [f.kind for f in engine.events.failures] == ENGINE_KINDS
    assert all(f.listener.endswith("Exploding") for f in engine.events.failures)
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == len(ENGINE_KINDS)
    assert "Exploding failed on run_end event for listener-drill" in logged[-1]
    assert "RuntimeError: printer bug on run_end" in logged[-1]
    # The journal, first in line, was written and every listener saw its path in run_end.
    journal = Path(result.journal or "")
    assert journal.parent == settings.home / "journal" and journal.is_file()
    assert after.events[-1].data["result"]["journal"] == str(journal)
    assert '"status": "recovered"' in journal.read_text()


def test_a_journal_on_a_full_disk_does_not_stop_the_remediation(
        prometheus: int, tmp_path: Path) -> None:
    writer = JournalWriter(tmp_path / "home")
    writer.dir.mkdir(parents=True)
    writer.tmp_path.symlink_to("/dev/full")  # every write of the journal hits ENOSPC
    recorder = Recorder()
    engine, settings = make_engine(prometheus, tmp_path, recorder, journal=writer)
    result = remediate(engine)
    assert result.status == "recovered", result.error
    assert [s.status for s in result.steps] == ["ok", "ok"]
    assert [e.kind for e in recorder.events] == ENGINE_KINDS
    # One failure per write the journal tried: run_start, two step_ends, run_end.
    failures = engine.events.failures
    assert [f.kind for f in failures] == ["run_start", "step_end", "step_end", "run_end"]
    assert all(f.listener.endswith("JournalWriter") for f in failures)
    assert all(f"[Errno {errno.ENOSPC}]" in f.error for f in failures), failures
    # No journal exists, so the result does not claim one (nor did run_end's listeners).
    assert result.journal is None and writer.current_path is None
    assert recorder.events[-1].data["result"]["journal"] is None
    assert list(writer.dir.glob("*.json")) == []
    # The action cap counted the mutating step: the guard ran despite the broken journal.
    assert engine.guard.used("listener-drill") == 1


def test_ctrl_c_in_a_listener_still_stops_the_run() -> None:
    def interrupt(event: Event) -> None:
        raise KeyboardInterrupt

    later = Recorder()
    bus = EventBus([interrupt, later])
    with pytest.raises(KeyboardInterrupt):
        bus.publish("run_start", "engine", "x")
    assert later.events == [] and bus.failures == []


def test_game_day_emits_the_same_event_type_to_isolated_listeners(tmp_path: Path) -> None:
    recorder, bug = Recorder(), Exploding()
    settings = Settings(home=tmp_path / "home", gateway_port=free_port())
    scenario = next(iter(SCENARIOS.values()))
    run = GameDay(settings, scenario, GameDayOptions(), listeners=[bug, recorder])
    run.emit("phase", phase="preflight")
    run.mark("inject", "payments error rate 0.5")
    assert [(e.kind, e.source, e.subject) for e in recorder.events] == [
        ("phase", "gameday", scenario.name), ("marker", "gameday", scenario.name)]
    # The data shape the progress printer reads is unchanged.
    assert recorder.events[0].data == {"scenario": scenario.name, "t": 0.0,
                                       "phase": "preflight"}
    assert recorder.events[1].data == {"scenario": scenario.name, "t": 0.0, "kind": "inject",
                                       "label": "payments error rate 0.5"}
    assert bug.calls == 2 and len(run.events.failures) == 2
