"""Every validation error path of a playbook, with its message and line checked (no servers)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chaosctl.errors import PlaybookError
from chaosctl.playbook.library import load_catalog, playbook_files
from chaosctl.playbook.loader import PlaybookValidationError
from chaosctl.playbook.model import parse_duration

GOOD = """\
name: {name}
title: Test incident
severity: high
runbook: "Incident: Test"
detect:
  all:
    - {{name: traffic, query: 'sum(rate(orders_total[15s]))', op: '>', threshold: 0.5}}
    - {{chaos_key: "chaos:payments:error_rate"}}
diagnose:
  - {{action: chaos_config, params: {{service: payments}}}}
remediate:
  - if: {{chaos_key: "chaos:payments:error_rate"}}
    then:
      - {{action: clear_chaos, params: {{service: payments, fault: error_rate}}}}
    else:
      - {{action: scale, params: {{service: payments, replicas: 2}}}}
verify:
  hold_for: 5s
  conditions:
    - {{query: 'max(breaker_state{{downstream="payments"}})', op: '==', threshold: 0}}
"""


def write(tmp_path: Path, text: str, name: str = "test-incident") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, name: str = "test-incident") -> list:
    path = write(tmp_path, text, name)
    with pytest.raises(PlaybookValidationError) as info:
        load_catalog([path], known_names=set())
    return info.value.problems


def test_good_playbook_validates(tmp_path: Path) -> None:
    catalog = load_catalog([write(tmp_path, GOOD.format(name="test-incident"))],
                           known_names=set())
    pb = catalog.get("test-incident")
    assert pb.verify.hold_for == 5.0
    assert pb.verify.timeout == 90.0


def test_shipped_playbooks_are_valid_and_cover_the_runbook() -> None:
    catalog = load_catalog()
    assert catalog.names() == sorted([
        "payment-degradation", "inventory-lock-contention", "gateway-overload",
        "outbox-backlog", "retry-storm", "idempotency-conflict-storm", "service-down",
        "inventory-errors", "order-failures"])


def test_unknown_action_names_line_and_valid_actions(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace("action: scale", "action: scael")
    [p] = problems(tmp_path, text)
    assert p.line == 16
    assert p.path == "remediate[0].else[0].action"
    assert "unknown action 'scael'; valid actions:" in p.message
    assert "scale" in p.message and "clear_chaos" in p.message


def test_bad_params_name_the_param_and_range(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace("replicas: 2", "replicas: 99")
    [p] = problems(tmp_path, text)
    assert p.path == "remediate[0].else[0].params.replicas"
    assert p.line == 16
    assert "scale:" in p.message and "less than or equal to 16" in p.message


def test_unknown_param_is_refused(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace("fault: error_rate", "faults: error_rate")
    [p] = problems(tmp_path, text)
    assert "unknown field 'faults'" in p.message and "remove it or fix its spelling" in p.message


def test_bad_fault_for_service(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace("fault: error_rate", "fault: latency")
    [p] = problems(tmp_path, text)
    assert "unknown fault 'latency' for payments; valid: error_rate, latency_ms" in p.message


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_bad_promql_is_caught_with_its_line(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace(
        "'sum(rate(orders_total[15s]))'", "'sum(rate(orders_total))'")
    [p] = problems(tmp_path, text)
    assert p.line == 7
    assert p.path == "detect.all[0].query"
    assert "bad PromQL 'sum(rate(orders_total))'" in p.message
    assert "expected type range vector" in p.message


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promql_syntax_error(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace(
        "'max(breaker_state{{downstream=\"payments\"}})'".replace("{{", "{").replace("}}", "}"),
        "'max(breaker_state{downstream=\"payments\"}'")
    [p] = problems(tmp_path, text)
    assert p.path.startswith("verify.conditions[0]")
    assert "parse error" in p.message


def test_missing_field(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace("severity: high\n", "")
    [p] = problems(tmp_path, text)
    assert p.path == "severity"
    assert "Field required (add this field)" in p.message


def test_missing_threshold_in_a_symptom(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace(", op: '>', threshold: 0.5", ", op: '>'")
    [p] = problems(tmp_path, text)
    assert p.line == 7 and p.path == "detect.all[0].threshold"
    assert "Field required" in p.message


def test_bad_comparison(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace("op: '>'", "op: '=>'")
    [p] = problems(tmp_path, text)
    assert p.path == "detect.all[0].op" and "'<', '<=', '>', '>=', '==' or '!='" in p.message


def test_misspelt_field_is_refused(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace("threshold: 0.5", "treshold: 0.5")
    found = problems(tmp_path, text)
    messages = [p.message for p in found]
    assert any("unknown field 'treshold'" in m for m in messages)
    assert all(p.line == 7 for p in found)


def test_unknown_condition_kind(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace(
        '{chaos_key: "chaos:payments:error_rate"}}\ndiagnose', "{redis_key: x}}\ndiagnose")
    text = GOOD.format(name="test-incident").replace(
        '    - {chaos_key: "chaos:payments:error_rate"}\ndiagnose',
        "    - {redis_key: x}\ndiagnose")
    [p] = problems(tmp_path, text)
    assert p.line == 8
    assert "a condition needs one of the keys: query" in p.message


def test_unknown_chaos_key(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace(
        '    - {chaos_key: "chaos:payments:error_rate"}\ndiagnose',
        '    - {chaos_key: "chaos:payments:errors"}\ndiagnose')
    [p] = problems(tmp_path, text)
    assert "unknown chaos key 'chaos:payments:errors'; valid keys:" in p.message


def test_mutating_action_in_diagnose(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace(
        "  - {action: chaos_config, params: {service: payments}}",
        "  - {action: restart, params: {services: [payments]}}")
    [p] = problems(tmp_path, text)
    assert p.path == "diagnose[0].action" and p.line == 10
    assert "changes the stack; diagnose steps must be read-only" in p.message


def test_bad_yaml_reports_the_line(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace("severity: high", "severity: [high")
    [p] = problems(tmp_path, text)
    assert p.line is not None and p.line >= 3
    assert "not valid YAML" in p.message


def test_not_a_mapping(tmp_path: Path) -> None:
    [p] = problems(tmp_path, "- just\n- a list\n")
    assert "a playbook is a YAML mapping" in p.message


def test_name_must_match_file(tmp_path: Path) -> None:
    [p] = problems(tmp_path, GOOD.format(name="other-name"))
    assert p.path == "name" and p.line == 1
    assert "does not match the file name" in p.message


def test_bad_name_shape(tmp_path: Path) -> None:
    found = problems(tmp_path, GOOD.format(name="Test_Incident"), name="Test_Incident")
    assert any("lower-case words joined by '-'" in p.message for p in found)


def test_unknown_inhibitor(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace(
        "runbook:", "inhibited_by: [no-such-playbook]\nrunbook:")
    [p] = problems(tmp_path, text)
    assert p.path == "inhibited_by[0]"
    assert "inhibited_by names unknown playbook 'no-such-playbook'" in p.message


def test_bad_duration(tmp_path: Path) -> None:
    text = GOOD.format(name="test-incident").replace("hold_for: 5s", "hold_for: five")
    [p] = problems(tmp_path, text)
    assert p.path == "verify.hold_for"
    assert "'five' is not a duration; write e.g. 10s, 2m or 500ms" in p.message


def test_every_problem_of_every_file_is_listed(tmp_path: Path) -> None:
    a = write(tmp_path, GOOD.format(name="test-incident").replace("action: scale", "action: x"))
    b = write(tmp_path, GOOD.format(name="second").replace("severity: high", "severity: meh"),
              name="second")
    with pytest.raises(PlaybookValidationError) as info:
        load_catalog([a, b], known_names=set())
    files = {Path(p.file).name for p in info.value.problems}
    assert files == {"test-incident.yaml", "second.yaml"}
    assert "2 problems" in str(info.value)


def test_unknown_playbook_name() -> None:
    catalog = load_catalog(check_promql=False)
    with pytest.raises(PlaybookError, match="unknown playbook 'nope'; available: gateway-overload"):
        catalog.get("nope")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlaybookValidationError, match="cannot read"):
        load_catalog([tmp_path / "absent.yaml"], known_names=set())


def test_playbook_files_lists_shipped_yaml() -> None:
    assert len(playbook_files()) == 9


@pytest.mark.parametrize(("raw", "seconds"), [
    ("10s", 10.0), ("2m", 120.0), ("500ms", 0.5), (3, 3.0), ("1.5", 1.5), ("1h", 3600.0)])
def test_parse_duration(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["-1", "fast", True, "10 parsecs"])
def test_parse_duration_rejects(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(raw)
