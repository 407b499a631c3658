"""The audit log: one JSON line per action, readable back, never interleaved."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from chaosctl.chaos import audit


def test_append_and_read(tmp_path: Path) -> None:
    audit.append(tmp_path, action="inject", fault="payment-errors", outcome=audit.OK,
                 value=0.2, ttl_s=600, target="chaos:payments:error_rate", command="c1")
    audit.append(tmp_path, action="clear", fault=None, outcome=audit.FAILED, target="all",
                 command="c2", detail="Redis down")
    lines = (tmp_path / "audit.log").read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    for field in ("time", "user", "command", "fault", "value", "ttl_s", "outcome"):
        assert field in first
    assert (first["fault"], first["value"], first["ttl_s"], first["outcome"]) == \
        ("payment-errors", 0.2, 600, "ok")
    assert [e["command"] for e in audit.read(tmp_path)] == ["c1", "c2"]
    assert [e["command"] for e in audit.read(tmp_path, tail=1)] == ["c2"]
    assert (tmp_path / "audit.log").stat().st_mode & 0o777 == 0o600


def test_missing_log_and_bad_lines(tmp_path: Path) -> None:
    assert audit.read(tmp_path) == []
    (tmp_path / "audit.log").write_text('not json\n{"action": "inject"}\n[1]\n')
    assert audit.read(tmp_path) == [{"action": "inject"}]


def test_concurrent_appends_stay_whole_lines(tmp_path: Path) -> None:
    def write(i: int) -> None:
        audit.append(tmp_path, action="inject", fault="overload", outcome=audit.OK,
                     detail="x" * 2000, command=f"c{i}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(200)))
    entries = audit.read(tmp_path)
    assert len(entries) == 200
    assert {e["command"] for e in entries} == {f"c{i}" for i in range(200)}


def test_last_source_picks_the_latest_successful_inject(tmp_path: Path) -> None:
    audit.append(tmp_path, action="inject", fault="service-down", outcome=audit.OK,
                 target="payments", command="old")
    audit.append(tmp_path, action="inject", fault="service-down", outcome=audit.OK,
                 target="payments", command="new")
    audit.append(tmp_path, action="inject", fault="service-down", outcome=audit.FAILED,
                 target="payments", command="failed")
    source = audit.last_source(audit.read(tmp_path), "service-down", "payments")
    assert source is not None and source["command"] == "new"
    assert audit.last_source(audit.read(tmp_path), "service-down", "orders") is None
