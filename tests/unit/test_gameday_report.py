"""Game-day timeline maths and the HTML report (no servers)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from chaosctl.gameday.model import Marker, Objective, ScenarioResult
from chaosctl.gameday.report import scenario_html, scorecard_html, timeline_svg, write_run
from chaosctl.gameday.timeline import (
    FAILED,
    OK,
    SHED,
    RequestRecord,
    phase_stats,
    samples,
    success_rate,
)


def _records() -> list[RequestRecord]:
    recs = []
    for i in range(100):  # 0-10 s: all ok, 20 ms
        recs.append(RequestRecord(t=i * 0.1, latency_ms=20.0, outcome=OK))
    for i in range(100):  # 10-20 s: half fail, 200 ms; a few shed
        recs.append(RequestRecord(t=10 + i * 0.1, latency_ms=200.0,
                                  outcome=FAILED if i % 2 else OK))
    recs.append(RequestRecord(t=15.0, latency_ms=1.0, outcome=SHED))
    return recs


def test_percentile_nearest_rank() -> None:
    from chaosctl.stats import percentile

    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input
    assert percentile([], 95) is None
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 100) == 100.0


def test_phase_stats_count_shed_apart_from_success() -> None:
    recs = _records()
    before = phase_stats(recs, 0, 10)
    during = phase_stats(recs, 10, 20)
    assert before.success_rate == 1.0 and before.p95_ms == 20.0
    assert during.requests == 101
    assert during.success_rate == 0.5  # the shed request is not a failure of an admitted one
    assert during.p99_ms == 200.0
    rate, admitted = success_rate(recs, 10, 20)
    assert rate == 0.5 and admitted == 100


def test_samples_bucket_per_second() -> None:
    out = samples(_records(), end=20.0, breaker_open={12: 1})
    assert len(out) == 20
    assert out[0].sent == 10 and out[0].success_rate == 1.0
    assert out[12].breaker_open == 1 and out[3].breaker_open == -1
    assert out[15].shed == 1


def _result() -> ScenarioResult:
    r = ScenarioResult(scenario="payment-errors", expected_playbook="payment-degradation",
                       outcome="pass", mttd_s=4.2, mttr_s=9.5, fired_playbook="payment-degradation",
                       right_playbook=True, duplicates=0, lost_events=0, started_at=1.0e9)
    r.samples = samples(_records(), end=20.0, breaker_open={12: 1, 13: 1})
    r.markers = [Marker(10.0, "inject", "payment errors 0.5"), Marker(14.2, "detect", "fired"),
                 Marker(19.5, "recover", "steady")]
    r.objectives = [Objective("duplicates", "== 0", "0", True)]
    return r


def test_svg_is_well_formed_and_draws_series_and_markers() -> None:
    r = _result()
    svg = ET.fromstring(timeline_svg(r.samples, r.markers))
    ns = "{http://www.w3.org/2000/svg}"
    lines = {p.get("class"): p for p in svg.iter(f"{ns}polyline")}
    assert set(lines) == {"success-rate", "latency-p95"}
    assert len(lines["success-rate"].get("points").split()) == 20
    kinds = {e.get("class") for e in svg.iter(f"{ns}line") if "marker" in (e.get("class") or "")}
    assert kinds == {"marker marker-inject", "marker marker-detect", "marker marker-recover"}
    assert len([e for e in svg.iter(f"{ns}rect") if e.get("class") == "breaker-open"]) == 2


def test_html_is_self_contained_and_escapes(tmp_path) -> None:
    r = _result()
    r.reason = "<script>alert(1)</script>"
    page = scenario_html(r)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "payment-degradation" in page and "PASS" in page
    path = write_run(r, tmp_path)
    journal = json.loads(path.with_suffix(".json").read_text())
    assert journal["mttd_s"] == 4.2 and len(journal["samples"]) == 20
    assert journal["report_path"] == str(path)
    card = scorecard_html([r])
    assert "1 of 1 scenarios passed" in card


def test_classify_keeps_replays_apart_from_success() -> None:
    from chaosctl.gameday.timeline import CONFLICT, REPLAY
    from chaosctl.gameday.traffic import classify

    now = 1_000_000.0
    fresh = {"status": "completed", "created_at": now + 0.01}
    old_failure = {"status": "payment_failed", "created_at": now - 30}
    assert classify(201, fresh, now) == OK
    assert classify(201, {"status": "payment_failed", "created_at": now}, now) == FAILED
    assert classify(201, old_failure, now) == REPLAY  # the original's outcome, not today's
    assert classify(429, None, now) == SHED
    assert classify(409, {"error": "request_in_progress"}, now) == CONFLICT
    assert classify(None, None, now) == FAILED
    assert classify(503, {"error": "breaker_open"}, now) == FAILED
