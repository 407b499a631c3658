"""The health verdict and the parsing of service answers: pure logic, no servers.

chaosctl.health builds plain dataclasses (no pydantic on `chaosctl health`'s path); the
pydantic models of chaosctl.results.health are the documented contract. The tests here hold
the two together: same fields and defaults, and everything the parsers and the verdict build
is valid under the models and dumps exactly as the models dump it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from chaosctl import health as plain
from chaosctl.clients.http import HttpAnswerError, parse_http_answer
from chaosctl.errors import ExitCode
from chaosctl.health import (
    CHAOS_KEYS,
    Breaker,
    BreakersHealth,
    ChaosKey,
    PrometheusHealth,
    RedisHealth,
    ServiceHealth,
    Target,
    build_report,
    dependency_detail,
    exit_code,
    parse_breakers,
    parse_service_health,
    parse_targets,
)
from chaosctl.results import health as contract

SERVICES = ("gateway", "orders", "payments", "inventory", "notifications")


def healthy_parts() -> dict:
    return {
        "services": {
            s: ServiceHealth(status="ok", url=f"http://127.0.0.1:{8000 + i}", latency_ms=3.0)
            for i, s in enumerate(SERVICES)
        },
        "breakers": BreakersHealth(
            status="ok",
            url="http://127.0.0.1:8000/status/breakers",
            states={d: Breaker(state="closed", owner="orders") for d in ("payments", "inventory")},
        ),
        "redis": RedisHealth(status="ok", url="redis://127.0.0.1:6379/0", latency_ms=1.0),
        "prometheus": PrometheusHealth(status="ok", url="http://127.0.0.1:9090", targets_total=5),
        "chaos": [],
    }


def test_all_good_is_healthy_with_exit_0() -> None:
    report = build_report(**healthy_parts())
    assert report.healthy is True
    assert report.problems == []
    assert exit_code(report) == ExitCode.OK


def _degrade(parts: dict, what: str) -> str:
    """Break one thing in `parts`; return a word the problem line must contain."""
    if what == "service_down":
        parts["services"]["payments"] = ServiceHealth(status="down", url="u", detail="db=down")
        return "payments is down"
    if what == "service_degraded":
        parts["services"]["orders"] = ServiceHealth(status="degraded", url="u")
        return "orders is degraded"
    if what == "service_unreachable":
        parts["services"]["notifications"] = ServiceHealth(status="unreachable", url="u")
        return "notifications is unreachable"
    if what == "breaker_open":
        parts["breakers"].states["payments"] = Breaker(state="open", owner="orders")
        return "orders->payments is open"
    if what == "breaker_half_open":
        parts["breakers"].states["inventory"] = Breaker(state="half_open", owner="orders")
        return "inventory is half_open"
    if what == "breakers_unknown":
        parts["breakers"] = BreakersHealth(status="unreachable", url="u")
        return "breakers unknown"
    if what == "redis_down":
        parts["redis"] = RedisHealth(status="unreachable", url="u", detail="connection refused")
        return "redis is unreachable"
    if what == "prometheus_not_ready":
        parts["prometheus"] = PrometheusHealth(status="not_ready", url="u")
        return "prometheus is not_ready"
    if what == "target_down":
        parts["prometheus"].targets_down.append(
            Target(job="inventory", instance="127.0.0.1:8003", health="down")
        )
        return "target inventory"
    if what == "chaos_on":
        parts["chaos"].append(ChaosKey(key=CHAOS_KEYS[0], value="0.5", ttl_s=600))
        return "chaos:payments:error_rate=0.5 (600s left)"
    if what == "chaos_without_ttl":
        parts["chaos"].append(ChaosKey(key=CHAOS_KEYS[2], value="200", ttl_s=None))
        return "no TTL"
    raise AssertionError(what)


@pytest.mark.parametrize(
    "what",
    [
        "service_down", "service_degraded", "service_unreachable", "breaker_open",
        "breaker_half_open", "breakers_unknown", "redis_down", "prometheus_not_ready",
        "target_down", "chaos_on", "chaos_without_ttl",
    ],
)
def test_any_single_problem_makes_it_unhealthy_and_is_named(what: str) -> None:
    parts = healthy_parts()
    expected = _degrade(parts, what)
    report = build_report(**parts)
    assert report.healthy is False
    assert exit_code(report) == ExitCode.UNHEALTHY
    assert len(report.problems) == 1, report.problems
    assert expected in report.problems[0]


def test_json_shape_is_stable() -> None:
    """Locks the documented `health --json` shape (README and --help)."""
    parts = healthy_parts()
    _degrade(parts, "chaos_on")
    _degrade(parts, "target_down")
    data = build_report(**parts).to_json()
    assert set(data) == {
        "healthy", "problems", "services", "breakers", "redis", "prometheus", "chaos",
        "checked_at",
    }
    assert set(data["services"]) == set(SERVICES)
    assert set(data["services"]["gateway"]) == {"status", "url", "latency_ms", "detail"}
    assert set(data["breakers"]) == {"status", "url", "detail", "states"}
    assert set(data["breakers"]["states"]["payments"]) == {
        "state", "failure_rate", "calls_in_window", "owner", "next_probe_at",
    }
    assert set(data["redis"]) == {"status", "url", "latency_ms", "detail"}
    assert set(data["prometheus"]) == {
        "status", "url", "targets_total", "targets_down", "detail",
    }
    assert data["prometheus"]["targets_down"] == [
        {"job": "inventory", "instance": "127.0.0.1:8003", "health": "down", "last_error": ""}
    ]
    assert data["chaos"] == [{"key": "chaos:payments:error_rate", "value": "0.5", "ttl_s": 600}]


def test_service_answer_parsing() -> None:
    ok = parse_service_health("u", 200, {"status": "ok", "dependencies": {"redis": "ok"}}, 2.0)
    assert (ok.status, ok.detail, ok.latency_ms) == ("ok", "", 2.0)
    down = parse_service_health("u", 503, {"status": "down", "dependencies": {"database": "down"}},
                                1.0)
    assert (down.status, down.detail) == ("down", "database=down")
    bare_503 = parse_service_health("u", 503, {"status": "down"}, 1.0)
    assert bare_503.detail == "HTTP 503"
    for body in ("<html>oops</html>", {"status": "fine"}, {"no": "status"}, None):
        bad = parse_service_health("u", 200, body, 1.0)
        assert bad.status == "error", body
        assert "unexpected body" in bad.detail


def test_dependency_detail_names_only_what_is_wrong() -> None:
    deps = {
        "redis": "ok", "outbox_pending": 12, "database": "ok",
        "breakers": {"payments": "open", "inventory": "closed"},
        "chaos": {"error_rate": 0.5}, "lock_waiters": 0,
    }
    assert dependency_detail(deps) == "breakers.payments=open, chaos.error_rate=0.5"
    assert dependency_detail({"redis": "ok", "chaos": None}) == ""
    assert dependency_detail("not a dict") == ""


def test_breakers_parsing() -> None:
    body = {"breakers": {
        "payments": {"state": "open", "state_code": 1, "failure_rate": 0.6,
                     "calls_in_window": 20, "opened_at": 1.0, "next_probe_at": 31.0,
                     "owner": "orders"},
        "orders": {"state": "closed", "owner": "gateway"},
    }}
    parsed = parse_breakers("u", body)
    assert parsed.status == "ok"
    assert list(parsed.states) == ["orders", "payments"]
    assert parsed.states["payments"].state == "open"
    assert parsed.states["payments"].failure_rate == 0.6
    assert parse_breakers("u", {"unexpected": 1}).status == "error"


def test_targets_parsing_lists_every_target_that_is_not_up() -> None:
    def target(job: str, health: str, err: str = "") -> dict:
        return {"labels": {"job": job, "instance": f"127.0.0.1:{job}"}, "health": health,
                "lastError": err, "scrapeUrl": f"http://x/{job}"}

    body = {"status": "success", "data": {"activeTargets": [
        target("gateway", "up"), target("payments", "down", "context deadline exceeded"),
        target("orders", "unknown"),
    ]}}
    prom = parse_targets("u", body)
    assert prom.status == "ok"
    assert prom.targets_total == 3
    assert [(t.job, t.health) for t in prom.targets_down] == [("orders", "unknown"),
                                                             ("payments", "down")]
    assert prom.targets_down[1].last_error == "context deadline exceeded"
    assert parse_targets("u", {"data": {"activeTargets": []}}).status == "error"
    assert parse_targets("u", {"error": "x"}).status == "error"


def test_unexpected_breaker_state_or_target_health_is_an_error_not_a_crash() -> None:
    # The statuses are Literals in the result models: a value outside them is reported, not
    # passed through (it would break the documented shape) and not a traceback.
    odd = parse_breakers("u", {"breakers": {"payments": {"state": "melted"}}})
    assert (odd.status, odd.detail) == ("error", "unexpected state 'melted' for payments")
    weird = {"data": {"activeTargets": [{"labels": {"job": "x"}, "health": "sideways"}]}}
    assert parse_targets("u", weird).targets_down[0].health == "unknown"


MODEL_PAIRS = [(getattr(plain, name), getattr(contract, name)) for name in (
    "ServiceHealth", "Breaker", "BreakersHealth", "RedisHealth", "Target", "PrometheusHealth",
    "ChaosKey", "HealthReport")]


def _plain_fields(cls: type) -> list[tuple[str, bool, Any]]:
    out = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = None if required else (
            f.default_factory() if f.default is dataclasses.MISSING else f.default)
        out.append((f.name, required, default))
    return out


def _model_fields(model: Any) -> list[tuple[str, bool, Any]]:
    return [(name, info.is_required(),
             None if info.is_required() else info.get_default(call_default_factory=True))
            for name, info in model.model_fields.items()]


@pytest.mark.parametrize(("plain_cls", "model"), MODEL_PAIRS, ids=lambda c: c.__name__)
def test_each_runtime_class_has_its_contract_models_fields_and_defaults(plain_cls: type,
                                                                       model: Any) -> None:
    assert _plain_fields(plain_cls) == _model_fields(model)


def assert_valid_under_the_contract(report: plain.HealthReport) -> None:
    data = report.to_json()
    assert json.loads(json.dumps(data)) == data  # plain JSON types only
    validated = contract.HealthReport.model_validate(data, strict=False)
    assert validated.model_dump(mode="json") == data


def every_report() -> list[plain.HealthReport]:
    """One report per problem, plus reports carrying each parser's odd and error results."""
    reports = []
    for what in ("service_down", "service_degraded", "service_unreachable", "breaker_open",
                 "breaker_half_open", "breakers_unknown", "redis_down", "prometheus_not_ready",
                 "target_down", "chaos_on", "chaos_without_ttl"):
        parts = healthy_parts()
        _degrade(parts, what)
        reports.append(build_report(**parts))
    odd_services = {
        "gateway": parse_service_health("u", 200, "<html>", 1.0),
        "orders": parse_service_health("u", 503, {"status": "down"}, 2.5),
        "payments": parse_service_health("u", 200, {"status": "ok", "dependencies": {
            "chaos": {"error_rate": 0.5}}}, 0.0),
    }
    targets = {"data": {"activeTargets": [
        {"labels": {"job": "x"}, "health": "sideways"},
        {"labels": {"job": "y", "instance": "i"}, "health": "down", "lastError": "boom"}]}}
    for breakers, prometheus in (
        (parse_breakers("u", {"breakers": {"payments": {
            "state": "open", "failure_rate": 1, "calls_in_window": 20, "owner": "orders",
            "next_probe_at": 12}}}), parse_targets("u", targets)),
        (parse_breakers("u", {"breakers": {"payments": {"state": "melted"}}}),
         parse_targets("u", {"data": {"activeTargets": []}})),
        (parse_breakers("u", "not json"), parse_targets("u", None)),
    ):
        parts = healthy_parts()
        parts["services"].update(odd_services)
        parts.update(breakers=breakers, prometheus=prometheus)
        reports.append(build_report(**parts))
    return reports


def test_everything_the_health_code_builds_is_valid_under_the_contract() -> None:
    reports = every_report()
    assert all(not r.healthy for r in reports)
    for report in [build_report(**healthy_parts()), *reports]:
        assert_valid_under_the_contract(report)


def test_numbers_are_dumped_as_the_models_dump_them() -> None:
    # The model's `float | None` fields turn 1 into 1.0; the plain data must print the same.
    breaker = parse_breakers("u", {"breakers": {"p": {"state": "open", "failure_rate": 1,
                                                      "next_probe_at": 3}}}).states["p"]
    assert (breaker.failure_rate, breaker.next_probe_at) == (1.0, 3.0)
    assert isinstance(breaker.failure_rate, float)


def test_http_answers_are_read_whole_or_refused() -> None:
    ok = parse_http_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n{\"status\": \"ok\"}")
    assert (ok.status, ok.json()) == (200, {"status": "ok"})
    no_length = parse_http_answer(b"HTTP/1.0 503 Service Unavailable\r\nX: y\r\n\r\n{}")
    assert (no_length.status, no_length.json()) == (503, {})
    extra = parse_http_answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk")
    assert extra.body == b"{}"
    for raw, why in ((b"", "without an answer"), (b"SSH-2.0-OpenSSH\r\n", "not an HTTP"),
                     (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", "cut short"),
                     (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}",
                      "chunked")):
        with pytest.raises(HttpAnswerError, match=why):
            parse_http_answer(raw)
