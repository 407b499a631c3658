"""The kubernetes backend: the stack as the Deployments and Services of stack/k8s in one
namespace, driven through the official `kubernetes` client; chaosctl reaches them on
127.0.0.1 through its own port forwarder (k8s_forward.py), so health, inject, diagnose,
remediate and game-day work unchanged.

What each verb does (README "Kubernetes"):
- up: create or update every object of stack/k8s (k8s_manifests.render), start the
  forwarder, wait until every Deployment has rolled out and Prometheus has scraped each
  service; a pod that cannot start (image missing, crash loop) fails it with its reason.
- down: stop the forwarder, delete the objects (PVCs too with --purge), wait for the pods.
- restart: rollout restart (the pod template's restartedAt annotation), wait for it.
- scale: the Deployment's replicas. kill: replicas to 0 and every pod deleted at once
  (grace period 0), so the service stays down until `start`, as on the other backends.
- pause: replicas to 0 (graceful), resume: back to the remembered count. A container cannot
  be frozen through the API, so a paused service refuses connections instead of hanging.
The count to come back to and why a service is down live in the Deployment's annotations.
Core code: never prints.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chaosctl.config import Settings
from chaosctl.domain import SERVICES
from chaosctl.errors import InvalidInputError, StackNotRunningError, StackStartError
from chaosctl.runtime import k8s_manifests as mf
from chaosctl.runtime import probes
from chaosctl.runtime.base import (
    ALL_PROCESSES,
    HEALTH_KILLED,
    HEALTH_PAUSED,
    HEALTH_STOPPED,
    HEALTH_UNREACHABLE,
    Backend,
    ProcessStatus,
    ReadyCallback,
    StackStatus,
    StoppedProcess,
    notify_ready,
)
from chaosctl.runtime.k8s_client import Cluster, ForbiddenError, call, connect
from chaosctl.runtime.k8s_forward import pod_is_ready, pod_is_running
from chaosctl.runtime.k8s_ports import Forwarder
from chaosctl.runtime.local import _exclusive
from chaosctl.runtime.procs import RunDir
from chaosctl.runtime.scrape import wait_scraped

REPLICAS_ANNOTATION = "chaosctl.io/replicas"  # the count start/resume bring back
STATE_ANNOTATION = "chaosctl.io/state"  # "killed" or "paused" while chaosctl holds it at 0
RESTARTED_ANNOTATION = "kubectl.kubernetes.io/restartedAt"  # what `kubectl rollout restart` sets
# Waiting reasons of a container that will not get better by waiting.
FATAL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull",
                           "InvalidImageName", "CreateContainerConfigError",
                           "CreateContainerError", "CrashLoopBackOff"})
# (kind, RBAC resource, API group accessor, method suffix): how each kind is read/written.
# Only these: each kind here needs its verbs in stack/k8s/rbac/chaosctl-role.yaml.
KINDS: dict[str, tuple[str, str, str]] = {
    "ConfigMap": ("configmaps", "core", "config_map"),
    "Secret": ("secrets", "core", "secret"),
    "PersistentVolumeClaim": ("persistentvolumeclaims", "core", "persistent_volume_claim"),
    "Service": ("services", "core", "service"),
    "Deployment": ("deployments.apps", "apps", "deployment"),
}
DELETE_WAIT_S = 90.0
# A probe through the forwarder first sets up a port-forward via the API server: ~40 ms
# median on the test machine, but past the other backends' 1 s when it is loaded.
PROBE_TIMEOUT_S = 5.0


class KubernetesBackend(Backend):
    name = "kubernetes"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = Path(settings.home).expanduser()
        self.run = RunDir(self.home / "run")  # the lock shared with other chaosctls
        self.forwarder = Forwarder(settings, self.home)
        self._cluster: Cluster | None = None
        self._lock_depth = 0

    # -- cluster -------------------------------------------------------------------------------
    @property
    def cluster(self) -> Cluster:
        if self._cluster is None:  # not in __init__: `stack build` must not need a cluster
            self._cluster = connect(self.settings)
        return self._cluster

    @property
    def namespace(self) -> str:
        return self.cluster.namespace

    def _api(self, kind: str) -> tuple[Any, str, str]:
        if kind not in KINDS:
            raise mf.ManifestError(
                f"stack/k8s has a {kind}, which chaosctl's kubernetes backend does not "
                f"manage (it manages {', '.join(KINDS)})",
                hint="apply it with kubectl, or teach the backend and its Role the kind")
        resource, group, suffix = KINDS[kind]
        api = {"core": self.cluster.core, "apps": self.cluster.apps}[group]()
        return api, resource, suffix

    def _call(self, verb: str, resource: str, fn: Any, *args: Any, **kw: Any) -> Any:
        return call(self.cluster, verb, resource, fn, *args, **kw)

    def _read(self, kind: str, name: str) -> Any | None:
        """The object, or None when it does not exist."""
        api, resource, suffix = self._api(kind)
        return self._call("get", resource, getattr(api, f"read_namespaced_{suffix}"), name,
                          self.namespace, absent_ok=True)

    def _objects(self) -> list[dict[str, Any]]:
        return mf.stack_objects(mf.render(mf.k8s_dir(), self.namespace,
                                          admin_token=self._admin_token(),
                                          database_url=self.settings.database_url))

    # -- public operations ---------------------------------------------------------------------
    @_exclusive
    def up(self, on_ready: ReadyCallback | None = None) -> StackStatus:
        since = time.time()
        objects = self._objects()
        self._ensure_namespace(objects)
        before = self._pod_names(None)
        changed = [self._apply(obj) for obj in objects if obj["kind"] != "Namespace"]
        deployments = list(mf.deployments(objects))
        self.forwarder.ensure()
        ready = self._wait_rollout(deployments, on_ready, before)
        if not any(changed) and not ready:
            return self.status()
        self._await_scrapes(since)
        status = self.status()
        status.started = ready
        return status

    @_exclusive
    def down(self, purge: bool = False) -> list[StoppedProcess]:
        from chaosctl.runtime.workers import WorkerStore

        workers = WorkerStore(self.home)  # a pending reverter would start a service again
        for worker in workers.live():
            workers.stop(worker)
        self.forwarder.stop()
        pods = self._pods(None)
        stopped = [StoppedProcess(_service(p), i, 0, "terminated")
                   for _, group in _by_service(pods).items() for i, p in enumerate(group)]
        objects = self._objects()
        order = [o for o in reversed(objects) if o["kind"] != "Namespace"
                 and (purge or o["kind"] != "PersistentVolumeClaim")]
        for obj in order:  # Deployments first (reversed creation order): pods go first
            self._delete(obj["kind"], obj["metadata"]["name"])
        self._wait_pods_gone()
        return stopped

    def status(self) -> StackStatus:
        deployments = {d.metadata.name: d for d in self._deployments()}
        by_name = _by_service(self._pods(None))
        entries: list[tuple[ProcessStatus, bool]] = []  # (entry, its pod is Ready)
        expected: dict[str, int] = {}
        port = self.settings.port
        for name in ALL_PROCESSES:
            dep = deployments.get(name)
            pods = [p for p in by_name.get(name, []) if p.metadata.deletion_timestamp is None]
            want = _wanted(dep)
            expected[name] = max(1, want)
            if dep is None or not pods:
                state = _annotation(dep, STATE_ANNOTATION) or ""
                health = {"killed": HEALTH_KILLED, "paused": HEALTH_PAUSED}.get(
                    state, HEALTH_STOPPED)
                entries += [(ProcessStatus(name, i, None, port(name), False,
                                           state == "paused", health), False)
                            for i in range(max(1, want))]
                continue
            for i, pod in enumerate(pods):
                alive = pod_is_running(pod)
                entries.append((ProcessStatus(name, i, None, port(name), alive, False,
                                              HEALTH_UNREACHABLE if alive else HEALTH_STOPPED),
                                alive and pod_is_ready(pod)))
        # One probe per service through the forwarder, which reaches a Ready pod as the
        # Service does: a Ready pod shows its service's answer, a running one that is not
        # Ready (its /health failing) "unreachable", like a replica the Service skips.
        if self.forwarder.record() is not None:
            # each probe opens a port-forward first: PROBE_TIMEOUT_S, not the usual 1 s
            health = probes.health_of(self.settings,
                                      sorted({e.name for e, ready in entries if ready}),
                                      PROBE_TIMEOUT_S)
            for e, ready in entries:
                if ready:
                    e.health = health[e.name]
        return StackStatus(self.name, str(self.home), [e for e, _ in entries], expected)

    @_exclusive
    def restart(self, services: list[str], on_ready: ReadyCallback | None = None) -> StackStatus:
        names = list(dict.fromkeys(self._check_name(s) for s in services))
        if not names:
            raise InvalidInputError("name at least one service to restart",
                                    hint=f"valid names: {', '.join(ALL_PROCESSES)}")
        since = time.time()
        before = self._pod_names(None)
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        for name in names:
            dep = self._deployment(name)
            patch: dict[str, Any] = {"spec": {"template": {"metadata": {"annotations": {
                RESTARTED_ANNOTATION: stamp}}}}}
            if dep.spec.replicas == 0:  # a killed or paused service comes back too
                restore = _restore_patch(dep)
                patch["metadata"] = restore["metadata"]
                patch["spec"]["replicas"] = restore["spec"]["replicas"]
            self._patch_deployment(name, patch)
        self.forwarder.ensure()
        self._wait_rollout(names, on_ready, before)
        self._await_scrapes(since)
        return self.status()

    @_exclusive
    def scale(self, service: str, replicas: int,
              on_ready: ReadyCallback | None = None) -> StackStatus:
        self._check_scale(service, replicas)
        if not self._deployments():
            raise StackNotRunningError("the stack is not running",
                                       hint="start it with `chaosctl stack up`")
        self._deployment(service)
        before = self._pod_names(service)
        self._patch_deployment(service, {
            "metadata": {"annotations": {STATE_ANNOTATION: None,
                                         REPLICAS_ANNOTATION: str(replicas)}},
            "spec": {"replicas": replicas}})
        self._wait_rollout([service], on_ready, before)
        return self.status()

    @_exclusive
    def kill(self, service: str) -> list[StoppedProcess]:
        name = self._check_name(service)
        dep = self._deployment(name)
        pods = [p for p in self._pods(name) if p.metadata.deletion_timestamp is None]
        if not pods:
            raise StackNotRunningError(f"{name} is not running",
                                       hint=f"start it with `chaosctl stack start {name}`")
        self._hold_at_zero(dep, "killed")
        result = []
        for i, pod in enumerate(pods):
            self._delete_pod(pod.metadata.name, grace=0)
            result.append(StoppedProcess(name, i, 0, "killed"))
        return result

    @_exclusive
    def start(self, service: str, on_ready: ReadyCallback | None = None) -> StackStatus:
        name = self._check_name(service)
        since = time.time()
        dep = self._read("Deployment", name)
        before = self._pod_names(name)
        if dep is None:  # deleted behind our back: create it (and what it needs) again
            objects = self._objects()
            self._ensure_namespace(objects)
            for obj in objects:
                if obj["kind"] != "Namespace" and (obj["kind"] != "Deployment"
                                                   or obj["metadata"]["name"] == name):
                    self._apply(obj)
        elif dep.spec.replicas == 0 or _annotation(dep, STATE_ANNOTATION):
            self._patch_deployment(name, _restore_patch(dep))
        self.forwarder.ensure()
        started = self._wait_rollout([name], on_ready, before)
        if started and name in SERVICES:
            self._await_scrapes(since)
        return self.status()

    @_exclusive
    def pause(self, service: str) -> list[int]:
        name = self._check_name(service)
        dep = self._deployment(name)
        pods = [p for p in self._pods(name) if p.metadata.deletion_timestamp is None]
        if not pods and _annotation(dep, STATE_ANNOTATION) != "paused":
            raise StackNotRunningError(f"{name} is not running",
                                       hint=f"start it with `chaosctl stack start {name}`")
        if _annotation(dep, STATE_ANNOTATION) != "paused":
            self._hold_at_zero(dep, "paused")
        return [0 for _ in pods]

    @_exclusive
    def resume(self, service: str) -> list[int]:
        name = self._check_name(service)
        dep = self._deployment(name)
        if _annotation(dep, STATE_ANNOTATION) != "paused":
            if dep.spec.replicas == 0:
                raise StackNotRunningError(f"{name} is not running",
                                           hint=f"start it with `chaosctl stack start {name}`")
            return [0 for _ in range(dep.spec.replicas)]
        count = _wanted(dep)
        before = self._pod_names(name)
        self._patch_deployment(name, _restore_patch(dep))
        self._wait_rollout([name], None, before)
        return [0 for _ in range(count)]

    def logs(self, service: str | None = None, tail: int = 50,
             follow: bool = False) -> Iterator[str]:
        names = [self._check_name(service)] if service else list(ALL_PROCESSES)
        by_name = _by_service(self._pods(service))
        pods = [(n, i, p.metadata.name) for n in names
                for i, p in enumerate(by_name.get(n, []))]
        if not pods:
            raise StackNotRunningError(
                f"no pods for {service or 'the stack'} in namespace {self.namespace}",
                hint="start the stack with `chaosctl stack up --backend kubernetes`")
        return self._read_logs(pods, tail, follow)

    # -- applying ------------------------------------------------------------------------------
    def _ensure_namespace(self, objects: list[dict[str, Any]]) -> None:
        """Create the namespace when it is missing and we may; a Role-bound chaosctl (which may
        not read namespaces) assumes it exists, as its RoleBinding lives there."""
        core = self.cluster.core()
        try:
            if self._call("get", "namespaces", core.read_namespace, self.namespace,
                          absent_ok=True) is not None:
                return
        except ForbiddenError:
            return
        body = next((o for o in objects if o["kind"] == "Namespace"),
                    {"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": self.namespace}})
        self._call("create", "namespaces", core.create_namespace, body)

    def _apply(self, obj: dict[str, Any]) -> bool:
        """Create `obj`, or bring the existing one in line; True when something was created."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        api, resource, suffix = self._api(kind)
        current = self._read(kind, name)
        if current is None:
            body = obj
            if kind == "Deployment":
                body = _with_replicas(obj, None)
            self._call("create", resource, getattr(api, f"create_namespaced_{suffix}"),
                       self.namespace, body)
            return True
        if kind == "PersistentVolumeClaim":
            return False  # its spec is immutable once bound; nothing of ours to update
        body = obj
        if kind == "Deployment":
            # Keep the scale someone chose (stack scale, kubectl scale); `up` only brings a
            # killed or paused service back.
            replicas = current.spec.replicas or _wanted(current) or None
            body = _with_replicas(obj, replicas)
            body.setdefault("metadata", {}).setdefault("annotations", {})[
                STATE_ANNOTATION] = None
        self._call("patch", resource, getattr(api, f"patch_namespaced_{suffix}"), name,
                   self.namespace, body)
        return False

    def _delete(self, kind: str, name: str) -> None:
        api, resource, suffix = self._api(kind)
        # Not deserialised: servers answer a delete with the object or with a Status (v1.20
        # does for Services), and the client's model for the object refuses a Status.
        self._call("delete", resource, getattr(api, f"delete_namespaced_{suffix}"), name,
                   self.namespace, propagation_policy="Background", absent_ok=True,
                   _preload_content=False)

    def _delete_pod(self, name: str, grace: int | None = None) -> None:
        core = self.cluster.core()
        self._call("delete", "pods", core.delete_namespaced_pod, name, self.namespace,
                   grace_period_seconds=grace, absent_ok=True, _preload_content=False)

    def _deployments(self) -> list[Any]:
        apps = self.cluster.apps()
        return list(self._call("list", "deployments.apps", apps.list_namespaced_deployment,
                               self.namespace, label_selector=mf.PART_OF).items)

    def _deployment(self, name: str) -> Any:
        dep = self._read("Deployment", name)
        if dep is None:
            raise StackNotRunningError(
                f"{name} has no Deployment in namespace {self.namespace}",
                hint="start the stack with `chaosctl stack up --backend kubernetes`")
        return dep

    def _patch_deployment(self, name: str, patch: dict[str, Any]) -> None:
        apps = self.cluster.apps()
        self._call("patch", "deployments.apps", apps.patch_namespaced_deployment, name,
                   self.namespace, patch)

    def _hold_at_zero(self, dep: Any, why: str) -> None:
        remember = dep.spec.replicas or _wanted(dep) or 1
        self._patch_deployment(dep.metadata.name, {
            "metadata": {"annotations": {STATE_ANNOTATION: why,
                                         REPLICAS_ANNOTATION: str(remember)}},
            "spec": {"replicas": 0}})

    def _pods(self, service: str | None) -> list[Any]:
        selector = mf.PART_OF if service is None else f"{mf.NAME_LABEL}={service},{mf.PART_OF}"
        core = self.cluster.core()
        return list(self._call("list", "pods", core.list_namespaced_pod, self.namespace,
                               label_selector=selector).items)

    def _pod_names(self, service: str | None) -> set[str]:
        return {p.metadata.name for p in self._pods(service)}

    # -- waiting -------------------------------------------------------------------------------
    def _wait_rollout(self, names: list[str], on_ready: ReadyCallback | None,
                      before: set[str]) -> list[str]:
        """Wait until each Deployment in `names` has rolled out (every replica updated and
        Ready, no old pod left); emit a ready event per new Ready pod (one not in `before`,
        the pods that existed before the change) and return their labels."""
        deadline = time.monotonic() + max(self.settings.start_timeout, 30.0) * 2
        seen = set(before)
        started: list[str] = []
        pending = list(names)
        while True:
            pods = self._pods(None)
            by_name = _by_service(pods)
            for name, group in by_name.items():
                for i, pod in enumerate(group):
                    if pod.metadata.name not in seen and pod_is_ready(pod):
                        seen.add(pod.metadata.name)
                        started.append(f"{name}.{i}")
                        notify_ready(on_ready, ProcessStatus(
                            name, i, None, self.settings.port(name), True, False, "ok"))
            # Only pods made by this call: an old crash-looping pod that this rollout
            # replaces (the fix being applied) is not this start failing.
            _raise_if_failing(self, [p for p in pods if _service(p) in pending
                                     and p.metadata.name not in before])
            pending = [n for n in pending if not _rolled_out(self._deployment(n),
                                                             by_name.get(n, []))]
            if not pending:
                return started
            if time.monotonic() > deadline:
                raise StackStartError(
                    f"not rolled out within {deadline_s(self.settings):g}s: "
                    + "; ".join(_describe(n, by_name.get(n, [])) for n in pending),
                    hint=f"see `kubectl -n {self.namespace} describe pods` and "
                         "`chaosctl stack logs`")
            time.sleep(0.5)

    def _wait_pods_gone(self) -> None:
        deadline = time.monotonic() + DELETE_WAIT_S
        while self._pods(None):
            if time.monotonic() > deadline:
                left = ", ".join(p.metadata.name for p in self._pods(None))
                raise StackStartError(f"pods still terminating after {DELETE_WAIT_S:g}s: {left}")
            time.sleep(0.5)

    def _await_scrapes(self, since: float) -> None:
        deps = {d.metadata.name: d for d in self._deployments()}
        prom = deps.get("prometheus")
        if prom is None or not prom.spec.replicas:
            return
        jobs = [n for n in SERVICES if n in deps and deps[n].spec.replicas]
        wait_scraped(self.settings, jobs, since, self.settings.start_timeout)
        self._await_no_stale_targets(jobs)

    def _await_no_stale_targets(self, jobs: list[str]) -> None:
        """Until no target of `jobs` is down: a replaced pod's address stays in DNS (and so
        in Prometheus's targets, failing) for a DNS TTL after it is gone, and `health`
        right after a restart would report it."""
        from chaosctl.clients.prometheus import Prometheus
        from chaosctl.errors import ChaosctlError

        if not jobs:
            return
        prom = Prometheus(self.settings.prometheus_url, timeout=2.0)
        expr = f'up{{job=~"{"|".join(jobs)}"}} == 0'
        deadline = time.monotonic() + self.settings.start_timeout
        down: list[str] = []
        while time.monotonic() < deadline:
            try:
                down = [s.labels.get("instance", "?") for s in prom.query(expr)]
            except ChaosctlError:
                down = ["(Prometheus did not answer)"]
            if not down:
                return
            time.sleep(0.5)
        raise StackStartError(
            f"Prometheus still sees targets down after {self.settings.start_timeout:g}s: "
            f"{', '.join(down)}", hint=f"see {self.settings.prometheus_url}/targets")

    def _read_logs(self, pods: list[tuple[str, int, str]], tail: int,
                   follow: bool) -> Iterator[str]:
        core = self.cluster.core()
        prefix = len(pods) > 1

        def fmt(name: str, i: int, line: str) -> str:
            return f"[{name}.{i}] {line}" if prefix else line

        if not follow:
            for name, i, pod in pods:
                text = self._call("get", "pods/log", core.read_namespaced_pod_log, pod,
                                  self.namespace, tail_lines=max(tail, 0)) if tail > 0 else ""
                for line in str(text).splitlines():
                    yield fmt(name, i, line)
            return
        lines: queue.Queue[str] = queue.Queue()

        def pump(name: str, i: int, pod: str) -> None:
            resp = core.read_namespaced_pod_log(pod, self.namespace, follow=True,
                                                tail_lines=max(tail, 0),
                                                _preload_content=False)
            buffer = b""
            for chunk in resp.stream():
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                for line in complete:
                    lines.put(fmt(name, i, line.decode(errors="replace")))

        for item in pods:
            threading.Thread(target=pump, args=item, daemon=True).start()
        while True:
            yield lines.get()


# -- helpers -----------------------------------------------------------------------------------
def deadline_s(settings: Settings) -> float:
    return max(settings.start_timeout, 30.0) * 2


def _service(pod: Any) -> str:
    return str((pod.metadata.labels or {}).get(mf.NAME_LABEL, ""))


def _by_service(pods: list[Any]) -> dict[str, list[Any]]:
    """Pods per service, oldest first (replica numbers follow creation)."""
    out: dict[str, list[Any]] = {}
    for pod in sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name)):
        out.setdefault(_service(pod), []).append(pod)
    return out


def _annotation(dep: Any, key: str) -> str | None:
    if dep is None:
        return None
    return (dep.metadata.annotations or {}).get(key)


def _wanted(dep: Any) -> int:
    """The replica count the Deployment should have when not held at 0 by chaosctl."""
    if dep is None:
        return 1
    if dep.spec.replicas:
        return int(dep.spec.replicas)
    try:
        return max(1, int(_annotation(dep, REPLICAS_ANNOTATION) or 1))
    except ValueError:
        return 1


def _restore_patch(dep: Any) -> dict[str, Any]:
    return {"metadata": {"annotations": {STATE_ANNOTATION: None}},
            "spec": {"replicas": _wanted(dep)}}


def _with_replicas(obj: dict[str, Any], replicas: int | None) -> dict[str, Any]:
    import copy

    body = copy.deepcopy(obj)
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def _rolled_out(dep: Any, pods: list[Any]) -> bool:
    want = dep.spec.replicas or 0
    st = dep.status
    if (st.observed_generation or 0) < (dep.metadata.generation or 0):
        return False
    if (st.updated_replicas or 0) != want and want:
        return False
    if (st.ready_replicas or 0) != want or (st.replicas or 0) != want:
        return False
    live = [p for p in pods if p.metadata.deletion_timestamp is None]
    return len(live) == want


def _describe(name: str, pods: list[Any]) -> str:
    if not pods:
        return f"{name}: no pod"
    parts = []
    for pod in pods:
        why = pod.status.phase or "?"
        for cond in pod.status.conditions or []:
            if cond.type == "PodScheduled" and cond.status != "True":
                why = f"unschedulable: {cond.message}"
        for cs in pod.status.container_statuses or []:
            if cs.state.waiting is not None:
                why = f"{cs.state.waiting.reason}: {cs.state.waiting.message or ''}".strip()
            elif cs.state.running is not None and not cs.ready:
                why = "running, not Ready (its /health)"
        parts.append(f"{pod.metadata.name} {why}")
    return f"{name}: " + ", ".join(parts)


def _raise_if_failing(backend: KubernetesBackend, pods: list[Any]) -> None:
    for pod in pods:
        for cs in pod.status.container_statuses or []:
            waiting = cs.state.waiting
            if waiting is None or waiting.reason not in FATAL_WAITING:
                continue
            tail = ""
            if waiting.reason == "CrashLoopBackOff":
                core = backend.cluster.core()
                try:
                    tail = "; last lines of its log:\n" + str(core.read_namespaced_pod_log(
                        pod.metadata.name, backend.namespace, tail_lines=15, previous=True))
                except Exception:  # noqa: BLE001 - only for the message
                    tail = ""
            raise StackStartError(
                f"pod {pod.metadata.name} cannot start: {waiting.reason}: "
                f"{waiting.message or ''}{tail}".rstrip(),
                hint="the stack image must be in the node's container runtime (chaosctl stack "
                     "build with DOCKER_HOST at the node's engine; CHAOSCTL_K8S_IMAGE names it)"
                if "Image" in waiting.reason else
                f"see `chaosctl stack logs {_service(pod)}`")
