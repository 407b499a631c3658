"""Finding the container engine, and the names and labels of the stack's containers.

The engine is found the usual way: DOCKER_HOST when set, else Docker's default socket, else
podman's (rootful, then the user's). Containers, the network and the volumes carry Compose's
own labels and names (`<project>_<service>_<n>`, `<project>_default`, `<project>_<volume>`),
so a stack started by `docker-compose -p chaosctl -f stack/compose.yaml up -d` and one started
by `chaosctl stack up --backend docker` are the same thing to both tools.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from chaosctl.errors import MissingBinaryError

if TYPE_CHECKING:
    import docker

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
ONEOFF_LABEL = "com.docker.compose.oneoff"
VOLUME_LABEL = "com.docker.compose.volume"
NETWORK_LABEL = "com.docker.compose.network"
MANAGED_LABEL = "org.chaosctl.managed-by"

EDGE = "edge"  # the relay that owns the services' published ports (stack/image/edge_proxy.py)
# The named volumes (each mounted at /data): the services' SQLite files, Redis's append-only
# file. Prometheus keeps its TSDB in its container: series of a previous run carry replica
# IPs as instances, and such a stale `up == 0` would read as a service down after `up`.
VOLUMES: dict[str, str] = {"shopdata": "services", "redisdata": "redis"}
# `shopdata` is a local-driver volume bound to $CHAOSCTL_HOME/data (DATA_VOLUME): the SQLite
# files sit where they sit for the local backend, so what reads them on the host (game-day's
# integrity check, the outbox evidence step) works unchanged on both backends.
DATA_VOLUME = "shopdata"
# The image's unprivileged user (stack/Dockerfile); owner of the bound data directory.
SHOP_UID = 10001
# Ports inside the network are always the runbook's; only the published host ports follow
# the settings.
CONTAINER_PORTS: dict[str, int] = {
    "gateway": 8000, "orders": 8001, "payments": 8002, "inventory": 8003,
    "notifications": 8004, "redis": 6379, "prometheus": 9090,
}


class EngineUnavailableError(MissingBinaryError):
    """No container engine answers (exit 2: a missing prerequisite, like a missing binary)."""


def project_name() -> str:
    """CHAOSCTL_COMPOSE_PROJECT, else Compose's own COMPOSE_PROJECT_NAME, else "chaosctl"."""
    return (os.environ.get("CHAOSCTL_COMPOSE_PROJECT") or os.environ.get("COMPOSE_PROJECT_NAME")
            or "chaosctl")


def candidate_urls() -> list[str]:
    explicit = os.environ.get("DOCKER_HOST")
    if explicit:
        return [explicit]
    urls = ["unix:///var/run/docker.sock", "unix:///run/podman/podman.sock"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        urls.append(f"unix://{runtime}/podman/podman.sock")
    return urls


def connect(timeout: float = 120.0) -> docker.DockerClient:
    """A client for the first engine that answers a ping; EngineUnavailableError otherwise."""
    import docker
    import docker.errors
    import requests.exceptions

    tried: list[str] = []
    for url in candidate_urls():
        if url.startswith("unix://") and not os.path.exists(url.removeprefix("unix://")):
            tried.append(f"{url} (no such socket)")
            continue
        try:
            client = docker.DockerClient(base_url=url, timeout=int(timeout))
            client.ping()
            return client
        except (docker.errors.DockerException, requests.exceptions.RequestException,
                OSError) as exc:
            tried.append(f"{url} ({type(exc).__name__})")
    raise EngineUnavailableError(
        f"no container engine answers at {', '.join(tried)}: start Docker "
        "(e.g. `sudo dockerd &`, installed by scripts/engines.sh) or podman "
        "(`podman system service --time=0 &`) and set DOCKER_HOST to its socket",
        hint="or run the stack as local processes: CHAOSCTL_BACKEND=local")


def container_name(project: str, service: str, number: int) -> str:
    return f"{project}_{service}_{number}"


def labels(project: str, service: str, number: int) -> dict[str, str]:
    return {PROJECT_LABEL: project, SERVICE_LABEL: service, NUMBER_LABEL: str(number),
            ONEOFF_LABEL: "False", MANAGED_LABEL: "chaosctl"}
