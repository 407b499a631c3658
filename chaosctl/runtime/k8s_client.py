"""Connecting to a Kubernetes API server, and turning its errors into chaosctl's.

kubeconfig, first found wins: `--kubeconfig` / CHAOSCTL_KUBECONFIG / `kubeconfig` in the config
file (Settings.kubeconfig; the file must exist), then $KUBECONFIG, then ~/.kube/config, then
the pod's own service account (in-cluster). Namespace: `--namespace` / CHAOSCTL_NAMESPACE /
`namespace` (Settings.namespace), else "chaosctl", the one stack/k8s names.

The official `kubernetes` client is imported here only, and only when a command uses the
kubernetes backend (it costs ~0.3 s of imports that `chaosctl --help` must not pay).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from chaosctl.config import Settings
from chaosctl.errors import ConfigError, MissingBinaryError, StackStartError

DEFAULT_NAMESPACE = "chaosctl"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
T = TypeVar("T")


class KubeconfigError(ConfigError):
    """No usable kubeconfig, or a bad namespace name (exit 2)."""


class ApiUnreachableError(MissingBinaryError):
    """The API server does not answer (exit 2: a missing prerequisite, like no engine)."""


class ForbiddenError(ConfigError):
    """RBAC refused a call; the message names the verb and the resource (exit 2)."""


class KubernetesApiError(StackStartError):
    """Any other refusal by the API server (exit 1)."""


@dataclass(frozen=True)
class Cluster:
    """A connected client: the ApiClient, where its config came from, and the namespace."""

    api: Any  # kubernetes.client.ApiClient
    source: str
    namespace: str
    server: str

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)


def namespace_of(settings: Settings) -> str:
    namespace = settings.namespace or DEFAULT_NAMESPACE
    if not _DNS_LABEL.match(namespace):
        raise KubeconfigError(
            f"namespace {namespace!r} is not a valid Kubernetes name (lower-case letters, "
            "digits and '-', at most 63, starting and ending with a letter or digit)",
            hint="pass e.g. --namespace chaosctl or set CHAOSCTL_NAMESPACE")
    return namespace


def kubeconfig_source(settings: Settings) -> tuple[str, str | None]:
    """(kind, path): ("file", path) for a kubeconfig file, ("in-cluster", None) inside a pod.
    KubeconfigError naming every place looked at when there is none."""
    if settings.kubeconfig:
        path = Path(settings.kubeconfig).expanduser()
        if not path.is_file():
            raise KubeconfigError(
                f"kubeconfig {path} (from --kubeconfig / CHAOSCTL_KUBECONFIG / the config "
                "file) does not exist", hint="point it at your cluster's kubeconfig file")
        return "file", str(path)
    env = os.environ.get("KUBECONFIG")
    if env:
        paths = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
        if not any(p.is_file() for p in paths):
            raise KubeconfigError(f"KUBECONFIG={env} names no existing file",
                                  hint="fix KUBECONFIG or pass --kubeconfig")
        return "file", env
    home = Path("~/.kube/config").expanduser()
    if home.is_file():
        return "file", str(home)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and IN_CLUSTER_TOKEN.is_file():
        return "in-cluster", None
    raise KubeconfigError(
        "no kubeconfig: none given (--kubeconfig, CHAOSCTL_KUBECONFIG, `kubeconfig` in the "
        f"config file), KUBECONFIG is unset, {home} does not exist and this is not a pod",
        hint="pass --kubeconfig PATH (e.g. the file your kubectl uses)")


def connect(settings: Settings) -> Cluster:
    """A client for the configured cluster; KubeconfigError when the file cannot be used."""
    import yaml
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    namespace = namespace_of(settings)  # a bad name fails before any file is read
    kind, path = kubeconfig_source(settings)
    cfg = client.Configuration()
    try:
        if kind == "in-cluster":
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(config_file=path, client_configuration=cfg)
    except (ConfigException, OSError, ValueError, TypeError, KeyError, AttributeError,
            yaml.YAMLError) as exc:  # what a malformed file raises from the loader
        raise KubeconfigError(f"cannot use kubeconfig {path or 'in-cluster'}: {exc}",
                              hint="check the file with `kubectl --kubeconfig ... version`") \
            from None
    # The client reads HTTPS_PROXY & co. itself; chaosctl never sends its traffic through a
    # proxy from the environment (a proxy the kubeconfig names, proxy-url, still applies).
    if getattr(cfg, "_proxy_from_env", False):
        cfg.proxy = None
    api = client.ApiClient(cfg)
    return Cluster(api, path or "in-cluster", namespace, str(cfg.host))


def call(cluster: Cluster, verb: str, resource: str, fn: Callable[..., T], *args: Any,
         absent_ok: bool = False, **kwargs: Any) -> T | None:
    """fn(*args, **kwargs), with the API's refusals as chaosctl errors naming `verb` on
    `resource` (e.g. "create", "deployments.apps") in the namespace; with `absent_ok`, None
    when the object does not exist (404)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        if absent_ok and exc.status == 404:
            return None
        raise api_error(cluster, verb, resource, exc.status, exc.reason, exc.body) from None
    except (Urllib3Error, OSError) as exc:
        raise unreachable(cluster, exc) from None
    except ValueError as exc:  # the client's models refused the answer (pydantic)
        raise KubernetesApiError(
            f"{verb} {resource} in namespace {cluster.namespace}: the API server's answer "
            f"does not fit the client's model: {str(exc).splitlines()[0][:200]}") from None


def unreachable(cluster: Cluster, exc: BaseException) -> ApiUnreachableError:
    return ApiUnreachableError(
        f"the Kubernetes API server at {cluster.server} (kubeconfig {cluster.source}) does "
        f"not answer: {type(exc).__name__}: {str(exc)[:200]}",
        hint="is the cluster running? `kubectl --kubeconfig ... get nodes` should answer")


def api_error(cluster: Cluster, verb: str, resource: str, status: int | None,
              reason: str | None, body: Any) -> Exception:
    message = _message(body) or reason or ""
    where = f"in namespace {cluster.namespace}"
    if status == 0 or status is None:
        return unreachable(cluster, ConnectionError(message))
    if status == 401:
        return ForbiddenError(
            f"the API server at {cluster.server} refused chaosctl's credentials "
            f"(401 Unauthorized) from {cluster.source}",
            hint="refresh the kubeconfig's token or certificate")
    if status == 403:
        return ForbiddenError(
            f"forbidden: chaosctl may not {verb} {resource} {where}: {message}",
            hint="bind the Role in stack/k8s/rbac/chaosctl-role.yaml to this user "
                 "(README: Kubernetes)")
    return KubernetesApiError(f"{verb} {resource} {where} failed: HTTP {status} {message}")


def _message(body: Any) -> str:
    import json

    if not body:
        return ""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body)[:300]
    return str(data.get("message", ""))[:300] if isinstance(data, dict) else str(data)[:300]

