"""`chaosctl stack ...`: parse options, call the runtime backend, render, pick the exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chaosctl.cli.shapes import help_block
from chaosctl.results import dump
from chaosctl.results.stack import StackStatusResult, StackUpResult, StoppedEntry

if TYPE_CHECKING:
    from chaosctl.events import Event
    from chaosctl.runtime.base import Backend, ProcessStatus, StackStatus

STATUS_JSON_HELP = help_block("--json prints one object (stable shape):", StackStatusResult)
UP_JSON_HELP = help_block("--json prints the `stack status --json` object plus what this call "
                          "started:", StackUpResult)
DOWN_JSON_HELP = help_block("--json prints a list:", list[StoppedEntry])

stack_app = typer.Typer(
    name="stack",
    help=(
        "Run the bundled shop stack on this machine: redis-server, prometheus and the five "
        "services (gateway, orders, payments, inventory, notifications) as separate processes. "
        "Ports come from CHAOSCTL_*_PORT or the config file; state (pids, logs, data, admin "
        "token) lives under CHAOSCTL_HOME."
    ),
    no_args_is_help=True,
)

_SERVICE_HELP = "One of: redis, prometheus, gateway, orders, payments, inventory, notifications."
Service = Annotated[str, typer.Argument(help=_SERVICE_HELP)]
Json = Annotated[bool, typer.Option("--json", help="JSON output (shape in this help).")]


def _backend(ctx: typer.Context) -> Backend:
    from chaosctl.config import load_settings
    from chaosctl.runtime import get_backend

    return get_backend(load_settings(home=(ctx.obj or {}).get("home")))


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _progress(event: Event) -> None:
    """Runtime progress on stderr: a process ready, or a line of long work (image build)."""
    if event.kind == "ready":
        d = event.data
        _err(f"  ready  {event.subject:<16} pid {d.get('pid')!s:<8} port {d.get('port')}")
    elif "message" in event.data:
        _err(str(event.data["message"]))


def _state(p: ProcessStatus) -> str:
    if p.paused:
        return "paused"
    if p.alive:
        return "running"
    return p.health  # killed / stopped


def _render_status(status: StackStatus) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {"ok": "green", "degraded": "yellow", "paused": "yellow"}
    table = Table(title=f"stack ({status.backend}, home {status.home})")
    for col in ("process", "replica", "pid", "port", "health", "state"):
        table.add_column(col, justify="right" if col in ("replica", "pid", "port") else "left")
    for p in status.processes:
        colour = colours.get(p.health, "red")
        table.add_row(p.name, str(p.replica), str(p.pid or "-"), str(p.port),
                      f"[{colour}]{p.health}[/]", _state(p))
    console = Console()
    console.print(table)
    verdict = "[green]healthy[/]" if status.healthy else "[bold red]not healthy[/]"
    console.print(f"stack is {verdict}")


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


@stack_app.callback()
def stack_options(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option(
        "--home", help="State directory (default: $CHAOSCTL_HOME or the user state dir).",
    )] = None,
    backend: Annotated[str | None, typer.Option(
        "--backend", help="local (processes, the default), docker (containers) or kubernetes "
        "(a cluster); same as CHAOSCTL_BACKEND.")] = None,
    kubeconfig: Annotated[str | None, typer.Option(
        "--kubeconfig", help="kubernetes backend: the kubeconfig file (default: "
        "$CHAOSCTL_KUBECONFIG, $KUBECONFIG, ~/.kube/config, in-cluster).")] = None,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", help="kubernetes backend: the stack's namespace (default: "
        "$CHAOSCTL_NAMESPACE, else chaosctl).")] = None,
) -> None:
    import os

    # The environment, so chaos workers spawned from here use the same backend and cluster.
    for name, value in (("BACKEND", backend), ("KUBECONFIG", kubeconfig),
                        ("NAMESPACE", namespace)):
        if value:
            os.environ[f"CHAOSCTL_{name}"] = value
    ctx.obj = {"home": home}


@stack_app.command(help=(
    "Start everything that is not running and wait until all of it is ready and Prometheus "
    "has scraped every service, so `chaosctl health` is green at once. A second `up` "
    "changes nothing. Fails (exit 1) naming the process that did not start, with its log "
    "tail, or the targets Prometheus never scraped; exit 2 for a port in use, a stale pid "
    "file, a missing binary or an invalid run/stack.json.\n\n"
    + UP_JSON_HELP))
def up(ctx: typer.Context, as_json: Json = False) -> None:
    backend = _backend(ctx)
    backend.events.add(_progress)  # long work (the docker backend's image build)
    _err("starting the stack ...")
    status = backend.up(on_ready=_progress)
    if as_json:
        _print_json(dump(StackUpResult, {**status.to_json(), "started": status.started}))
        return
    if not status.started:
        _err("stack already running; nothing changed")
    settings = _backend(ctx).settings
    for name in ("gateway", "prometheus"):
        typer.echo(f"{name}: {settings.url(name)}")
    typer.echo(f"stack is up ({len(status.processes)} processes, home {status.home})")


@stack_app.command(help=(
    "Stop exactly the processes `up` started (SIGTERM, SIGKILL after a timeout). Chaos keys are "
    "deleted first, so the next `up` starts without faults. Data is kept unless --purge.\n\n"
    + DOWN_JSON_HELP))
def down(
    ctx: typer.Context,
    purge: Annotated[bool, typer.Option(
        "--purge", help="Also delete data/ and Prometheus data.")] = False,
    as_json: Json = False,
) -> None:
    from dataclasses import asdict

    from chaosctl.chaos.halt import drop_keys_for_down
    from chaosctl.config import load_settings

    settings = load_settings(home=(ctx.obj or {}).get("home"))
    dropped = drop_keys_for_down(settings)
    stopped = _backend(ctx).down(purge=purge)
    if as_json:
        _print_json(dump(StoppedEntry, [asdict(s) for s in stopped]))
        return
    if dropped:
        typer.echo(f"cleared chaos keys: {', '.join(dropped)}")
    for s in stopped:
        typer.echo(f"{s.how:<10} {s.name}.{s.replica} (pid {s.pid})")
    typer.echo("stack is down" + (" and purged" if purge else "") if stopped
               else "nothing was running" + ("; data purged" if purge else ""))


@stack_app.command(help=(
    "Each process of the stack: replica, pid, port, health, state (running, paused, killed, "
    "stopped). Exit 0 when every expected process is alive and healthy, 1 otherwise.\n\n"
    + STATUS_JSON_HELP))
def status(ctx: typer.Context, as_json: Json = False) -> None:
    result = _backend(ctx).status()
    if as_json:
        _print_json(dump(StackStatusResult, result.to_json()))
    else:
        _render_status(result)
    raise typer.Exit(0 if result.healthy else 1)


@stack_app.command(help="Show a process's log (all of them when SERVICE is omitted). "
                   "--follow keeps printing new lines until Ctrl-C.")
def logs(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Argument(help=_SERVICE_HELP)] = None,
    tail: Annotated[int, typer.Option(
        "--tail", "-n", min=0, help="Lines to show from each log.")] = 50,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
) -> None:
    lines = _backend(ctx).logs(service, tail=tail, follow=follow)
    try:
        for line in lines:
            typer.echo(line)
            if follow:
                sys.stdout.flush()
    except KeyboardInterrupt:
        raise typer.Exit(130) from None  # Ctrl-C is how --follow ends: the contract's 130


@stack_app.command(help="Stop and start services (all their replicas); data survives.")
def restart(
    ctx: typer.Context,
    services: Annotated[list[str], typer.Argument(help=_SERVICE_HELP)],
) -> None:
    _backend(ctx).restart(services, on_ready=_progress)
    typer.echo(f"restarted {', '.join(services)}")


@stack_app.command(help=(
    "Run N replicas of a service on its one port (SO_REUSEPORT spreads connections). Scaling "
    "down stops the highest-numbered replicas. Example: chaosctl stack scale orders=3"))
def scale(
    ctx: typer.Context,
    specs: Annotated[list[str], typer.Argument(metavar="SERVICE=N...", help="e.g. orders=3")],
) -> None:
    from chaosctl.errors import InvalidInputError

    parsed: list[tuple[str, int]] = []
    for spec in specs:
        name, sep, count = spec.partition("=")
        if not sep or not count.strip().isdigit():
            raise InvalidInputError(f"bad scale spec {spec!r}; expected SERVICE=N, e.g. orders=3")
        parsed.append((name.strip(), int(count)))
    backend = _backend(ctx)
    for name, count in parsed:
        backend.scale(name, count, on_ready=_progress)
        typer.echo(f"{name}: {count} replica(s)")


@stack_app.command(help="SIGKILL every replica of a service (chaos). `status` shows it killed; "
                   "`start` brings it back.")
def kill(ctx: typer.Context, service: Service) -> None:
    for s in _backend(ctx).kill(service):
        typer.echo(f"{s.how:<10} {s.name}.{s.replica} (pid {s.pid})")


@stack_app.command(help="Start a killed or stopped service with its recorded replica count.")
def start(ctx: typer.Context, service: Service) -> None:
    _backend(ctx).start(service, on_ready=_progress)
    typer.echo(f"{service} started")


@stack_app.command(help="Freeze every replica of a service (SIGSTOP); `resume` thaws it.")
def pause(ctx: typer.Context, service: Service) -> None:
    pids = _backend(ctx).pause(service)
    typer.echo(f"paused {service} (pids {', '.join(map(str, pids))})")


@stack_app.command(help="Thaw a paused service (SIGCONT).")
def resume(ctx: typer.Context, service: Service) -> None:
    pids = _backend(ctx).resume(service)
    typer.echo(f"resumed {service} (pids {', '.join(map(str, pids))})")


@stack_app.command(help=(
    "Build the stack's container image for the docker backend, offline: a Debian bookworm "
    "base made with debootstrap, wheels fetched on this host with pip download, then "
    "`docker build --network=none` of stack/Dockerfile. Rootfs and wheels are cached "
    "($CHAOSCTL_CACHE_DIR, else $XDG_CACHE_HOME/chaosctl), so later builds are quick. "
    "`stack up --backend docker` builds when the image is missing or out of date; this "
    "command always builds."))
def build(ctx: typer.Context) -> None:
    from chaosctl.runtime.docker import DockerBackend

    backend = _backend(ctx)
    if not isinstance(backend, DockerBackend):
        from chaosctl.config import load_settings

        backend = DockerBackend(load_settings(home=(ctx.obj or {}).get("home")))
    backend.events.add(_progress)
    result = backend.build(force=True)
    typer.echo(f"built {result['image']} ({result['hash']}) in {result['total_s']}s")


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
