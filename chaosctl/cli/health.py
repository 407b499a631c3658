"""`chaosctl health`: parse options, call chaosctl.health, render, pick the exit code."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import RenderableType

    from chaosctl.health import HealthReport

# Paragraphs are single logical lines (rich rewraps them); the "\\b" block keeps the JSON layout.
HELP = (
    "Check the whole stack at once: the five services' /health, the gateway's breakers, "
    "Redis, Prometheus (ready, and every scrape target up) and any chaos key still set in "
    'Redis ("may have been left enabled", with its remaining TTL).\n\n'
    "Exit code: 0 healthy and no chaos on; 1 anything unhealthy, unreachable (a paused "
    "service times out) or chaos still enabled; 2 the stack configuration cannot be loaded "
    "(bad CHAOSCTL_CONFIG, config.toml or CHAOSCTL_* value); 130 interrupted.\n\n"
    + """--json prints one object (with --watch: one object per line, per refresh):

\b
{"healthy": bool, "problems": \\[str],
 "services": {NAME: {"status": "ok|degraded|down|unreachable|error",
     "url": str, "latency_ms": float|null, "detail": str}},
 "breakers": {"status": "ok|unreachable|error", "url": str, "detail": str,
     "states": {DOWNSTREAM: {"state": "closed|open|half_open",
         "failure_rate": float|null, "calls_in_window": int|null,
         "owner": str|null, "next_probe_at": float|null}}},
 "redis": {"status": "ok|unreachable", "url": str,
     "latency_ms": float|null, "detail": str},
 "prometheus": {"status": "ok|not_ready|unreachable|error", "url": str,
     "targets_total": int, "detail": str,
     "targets_down": \\[{"job", "instance", "health", "last_error"}]},
 "chaos": \\[{"key": str, "value": str, "ttl_s": int|null}],
 "checked_at": float}
"""
)

_STATUS_STYLE = {"ok": "green", "closed": "green", "degraded": "yellow", "half_open": "yellow"}


def _style(status: str) -> str:
    return f"[{_STATUS_STYLE.get(status, 'bold red')}]{status}[/]"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _addr(url: str) -> str:
    # host:port is what people compare with `ss -ltnp`; the scheme only costs width.
    return url.split("://", 1)[-1].split("/", 1)[0]


def render(report: HealthReport) -> RenderableType:
    """Rich tables for people: components, breakers, chaos, then the verdict."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[RenderableType] = []
    comp = Table(title="Stack health", title_justify="left")
    for col in ("component", "status", "latency", "address", "detail"):
        if col == "detail":
            comp.add_column(col, overflow="fold")
        else:
            comp.add_column(col, no_wrap=True)
    for name, svc in report.services.items():
        comp.add_row(name, _style(svc.status), _ms(svc.latency_ms), _addr(svc.url), svc.detail)
    r = report.redis
    comp.add_row("redis", _style(r.status), _ms(r.latency_ms), _addr(r.url), r.detail)
    p = report.prometheus
    targets = f"{p.targets_total - len(p.targets_down)}/{p.targets_total} targets up"
    prom_detail = p.detail or (targets if p.status == "ok" else "")
    comp.add_row("prometheus", _style(p.status), "-", _addr(p.url), prom_detail)
    parts.append(comp)

    if p.targets_down:
        down = Table(title="Prometheus targets not up", title_justify="left")
        for col in ("job", "instance", "health", "last error"):
            down.add_column(col)
        for t in p.targets_down:
            down.add_row(t.job, t.instance, _style(t.health), t.last_error)
        parts.append(down)

    b = report.breakers
    if b.status != "ok":
        parts.append(Text.from_markup(f"breakers: {_style(b.status)} {b.detail}"))
    else:
        br = Table(title="Circuit breakers", title_justify="left")
        for col in ("owner", "downstream", "state", "failure rate", "calls in window"):
            br.add_column(col)
        for downstream, s in b.states.items():
            rate = "-" if s.failure_rate is None else f"{s.failure_rate:.0%}"
            calls = "-" if s.calls_in_window is None else str(s.calls_in_window)
            br.add_row(s.owner or "-", downstream, _style(s.state), rate, calls)
        parts.append(br)

    if report.chaos:
        ch = Table(title="Chaos still enabled (may have been left enabled)", title_justify="left")
        for col in ("key", "value", "ttl left", "clear with"):
            ch.add_column(col)
        for k in report.chaos:
            # chaos:SERVICE:FAULT -> the service's own clear endpoint, as in the runbook.
            _, service, fault = k.key.split(":", 2)
            base = report.services[service].url if service in report.services else service
            ttl = "no TTL" if k.ttl_s is None else f"{k.ttl_s} s"
            clear = f"curl -X DELETE '{base}/chaos/config?fault={fault}'"
            ch.add_row(k.key, k.value, ttl, clear)
        parts.append(ch)

    if report.healthy:
        parts.append(Text("healthy", style="bold green"))
    else:
        lines = "\n".join(f"  - {p}" for p in report.problems)
        parts.append(Text(f"UNHEALTHY ({len(report.problems)}):\n{lines}", style="bold red"))
    return Group(*parts)


def health(
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON (shape above)."),
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh in place until Ctrl-C."),
    interval: float = typer.Option(
        2.0, "--interval", min=0.2, help="Seconds between refreshes with --watch."
    ),
    count: int | None = typer.Option(
        None, "--count", min=1, help="With --watch: stop after N refreshes."
    ),
    timeout: float = typer.Option(
        2.0, "--timeout", min=0.1, help="Seconds each check may take before 'unreachable'."
    ),
) -> None:
    from chaosctl.config import load_settings
    from chaosctl.health import check_health, exit_code

    if count is not None and not watch:
        raise typer.BadParameter("--count only makes sense with --watch", param_hint="--count")
    settings = load_settings()  # ConfigError -> exit 2 through the entry point's handler

    if not watch:
        report = check_health(settings, timeout)
        _emit(report, json_out)
        raise typer.Exit(int(exit_code(report)))

    try:
        code = _watch(settings, json_out, interval, count, timeout)
    except KeyboardInterrupt:
        # Ctrl-C is the normal way to leave --watch: no traceback, no click "Aborted!".
        raise typer.Exit(130) from None
    raise typer.Exit(code)


def _emit(report: HealthReport, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(report.model_dump(mode="json"), sort_keys=True))
    else:
        from rich.console import Console

        Console().print(render(report))


def _watch(settings, json_out: bool, interval: float, count: int | None, timeout: float) -> int:
    from chaosctl.health import check_health, exit_code

    rounds = 0
    if json_out:
        while True:
            report = check_health(settings, timeout)
            typer.echo(json.dumps(report.model_dump(mode="json"), sort_keys=True))
            rounds += 1
            if count is not None and rounds >= count:
                return int(exit_code(report))
            time.sleep(interval)

    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    def frame(report: HealthReport) -> RenderableType:
        stamp = time.strftime("%H:%M:%S", time.localtime(report.checked_at))
        note = f"checked {stamp}, every {interval:g}s; Ctrl-C to stop"
        return Group(render(report), Text(note, style="dim"))

    report = check_health(settings, timeout)
    with Live(frame(report), auto_refresh=False) as live:
        while True:
            rounds += 1
            if count is not None and rounds >= count:
                return int(exit_code(report))
            time.sleep(interval)
            report = check_health(settings, timeout)
            live.update(frame(report), refresh=True)


def register(app: typer.Typer) -> None:
    app.command("health", help=HELP)(health)
