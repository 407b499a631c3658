"""`chaosctl health`: parse options, call chaosctl.health, render, pick the exit code.

Two ways in, one behaviour. `chaosctl health` is the runbook's first command and must start as
fast as its curl loop, but typer costs ~120 ms CPU to import and, since typer 0.29, converts
every non-flag option through a pydantic TypeAdapter (another ~150 ms, figures in README's
health section). So `chaosctl.cli.main.run` first offers the arguments to `parse_fast`, which
accepts only plainly valid options (flags, and numbers written as digits within the bounds)
and runs `execute` without typer. Anything else (`--help`, a bad value, an unknown option, an
unusual spelling) goes to the typer command below, which calls the same `execute`;
tests/unit/test_health_cli.py checks that both parse every accepted command line alike.
Nothing here imports typer, rich or pydantic at module level.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chaosctl.config import Settings, load_settings
from chaosctl.health import HealthReport, check_health, exit_code

if TYPE_CHECKING:
    import typer
    from rich.console import RenderableType

SUMMARY = (
    "Check the whole stack at once: the five services' /health, the gateway's breakers, "
    "Redis, Prometheus (ready, and every scrape target up) and any chaos key still set in "
    'Redis ("may have been left enabled", with its remaining TTL).'
)
EXIT_CODES = (
    "Exit code: 0 healthy and no chaos on; 1 anything unhealthy, unreachable (a paused "
    "service times out) or chaos still enabled; 2 the stack configuration cannot be loaded "
    "(bad CHAOSCTL_CONFIG, config.toml or CHAOSCTL_* value); 130 interrupted."
)


@dataclass(frozen=True)
class Options:
    """The command's options, as the typer command declares them (defaults included)."""

    json_out: bool = False
    watch: bool = False
    interval: float = 2.0
    count: int | None = None
    timeout: float = 2.0


# The fast parser's view of the typer command's options: flags, and (field, type, minimum).
FLAGS = {"--json": "json_out", "--watch": "watch", "-w": "watch"}
VALUED = {"--interval": ("interval", float, 0.2), "--count": ("count", int, 1),
          "--timeout": ("timeout", float, 0.1)}


def _plain_number(text: str, kind: type) -> float | int | None:
    """`text` as `kind` when written with ASCII digits (and one '.' for a float), else None."""
    whole, dot, fraction = text.partition(".")
    digits = whole.isascii() and whole.isdigit()
    if kind is int:
        return int(text) if digits and not dot else None
    if digits and (not dot or (fraction.isascii() and fraction.isdigit())):
        return float(text)
    return None


def parse_fast(args: list[str]) -> Options | None:
    """The options in `args` when they are plainly valid; None leaves them to typer."""
    values: dict[str, object] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in FLAGS:
            values[FLAGS[arg]] = True
            continue
        name, eq, text = arg.partition("=")
        if name not in VALUED:
            return None
        if not eq:
            if i >= len(args):
                return None
            text = args[i]
            i += 1
        field, kind, minimum = VALUED[name]
        value = _plain_number(text, kind)
        if value is None or value < minimum:
            return None
        values[field] = value
    options = Options(**values)  # type: ignore[arg-type]
    if options.count is not None and not options.watch:
        return None  # a usage error: typer says so
    return options


def execute(options: Options) -> int:
    """Run the command; its exit code. ConfigError (exit 2) propagates to the entry point."""
    settings = load_settings()
    if not options.watch:
        report = check_health(settings, options.timeout)
        _emit(report, options.json_out)
        return int(exit_code(report))
    try:
        return _watch(settings, options)
    except KeyboardInterrupt:
        return 130  # Ctrl-C is the normal way to leave --watch: no traceback, no "Aborted!"


# -- output ----------------------------------------------------------------------------------


def _json_line(report: HealthReport) -> None:
    sys.stdout.write(json.dumps(report.to_json(), sort_keys=True) + "\n")
    sys.stdout.flush()  # one object per refresh must reach a pipe at once


def _emit(report: HealthReport, json_out: bool) -> None:
    if json_out:
        _json_line(report)
    else:
        from rich.console import Console

        Console().print(render(report))


def _watch(settings: Settings, options: Options) -> int:
    rounds = 0
    if options.json_out:
        while True:
            report = check_health(settings, options.timeout)
            _json_line(report)
            rounds += 1
            if options.count is not None and rounds >= options.count:
                return int(exit_code(report))
            time.sleep(options.interval)

    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    def frame(report: HealthReport) -> RenderableType:
        stamp = time.strftime("%H:%M:%S", time.localtime(report.checked_at))
        note = f"checked {stamp}, every {options.interval:g}s; Ctrl-C to stop"
        return Group(render(report), Text(note, style="dim"))

    report = check_health(settings, options.timeout)
    with Live(frame(report), auto_refresh=False) as live:
        while True:
            rounds += 1
            if options.count is not None and rounds >= options.count:
                return int(exit_code(report))
            time.sleep(options.interval)
            report = check_health(settings, options.timeout)
            live.update(frame(report), refresh=True)


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


# -- the typer command (help, and every command line parse_fast leaves to it) ----------------


def help_text() -> str:
    """The command's help; its JSON shape rendered from the contract model (imports pydantic:
    help is not the hot path)."""
    from chaosctl.cli.shapes import help_block
    from chaosctl.results.health import HealthReport as Contract

    return (f"{SUMMARY}\n\n{EXIT_CODES}\n\n"
            + help_block("--json prints one object (with --watch: one object per line, per "
                         "refresh); healthy is true exactly when problems is empty:", Contract))


def register(app: typer.Typer) -> None:
    import typer

    def health(
        json_out: bool = typer.Option(False, "--json",
                                      help="Print the report as JSON (shape above)."),
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
        if count is not None and not watch:
            raise typer.BadParameter("--count only makes sense with --watch",
                                     param_hint="--count")
        raise typer.Exit(execute(Options(json_out, watch, interval, count, timeout)))

    app.command("health", help=help_text())(health)
