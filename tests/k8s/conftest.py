"""Fixtures for the Kubernetes tests: a real one-node cluster of our own (tests/k8s/cluster.py).

Every test here is marked `k8s` (only `make test-k8s`, `pytest -m k8s` or a path under
tests/k8s select them; the other make targets run `-m "... and not k8s"`). They need root,
dockerd, etcd-server, socat, strace, jq (scripts/engines.sh) and the
Kubernetes v1.20.2 binaries: built by scripts/k8s-build.sh (about 6-10 minutes on 2 cores)
when the cache is empty, reused otherwise. When the cluster cannot start they FAIL on CI
(CI=true) and skip elsewhere, saying why.

`cluster` (session): the cluster in a network namespace, started once; its start-up time is
printed; teardown fails the run if the host is not as it was found.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.k8s.cluster import (
    REPO,
    ClusterError,
    PrivateCluster,
    binaries_missing,
    default_bin_dir,
    prerequisites,
)
from tests.support import mark_directory

HERE = Path(__file__).parent
# A cold start may first build the binaries (minutes); the item that starts the session's
# cluster carries that time.
TIMEOUT_S = 1800


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "k8s: a real one-node Kubernetes in a network namespace (`make test-k8s`, "
        "needs root, scripts/engines.sh, scripts/k8s-build.sh)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_directory(items, HERE, "k8s")
    for item in items:
        if HERE in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(TIMEOUT_S))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"k8s tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def _say(config: pytest.Config, line: str) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line, file=sys.stderr)


def _ensure_binaries(config: pytest.Config) -> None:
    bin_dir = default_bin_dir()
    if not binaries_missing(bin_dir):
        return
    if os.geteuid() != 0:
        _unavailable("building the Kubernetes binaries needs root (apt-get)")
    _say(config, f"\n[k8s] building Kubernetes binaries into {bin_dir} "
                 "(scripts/k8s-build.sh, 6-10 minutes) ...")
    started = time.monotonic()
    result = subprocess.run(["bash", str(REPO / "scripts" / "k8s-build.sh"), str(bin_dir)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        _unavailable(f"scripts/k8s-build.sh failed ({result.returncode}):\n{tail}")
    _say(config, f"[k8s] binaries built in {time.monotonic() - started:.0f}s")


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[PrivateCluster]:
    if os.geteuid() == 0:
        _ensure_binaries(request.config)
    problems = prerequisites(default_bin_dir())
    if problems:
        _unavailable("; ".join(problems))
    state = Path(tempfile.mkdtemp(prefix="chaosctl-k8s-", dir="/tmp"))
    handle = PrivateCluster(state)
    started = time.monotonic()
    try:
        # kubelet's connect() calls during its first 20 s: test_k8s_cluster.py checks them
        info = handle.up(trace_kubelet_s=20)
    except (ClusterError, OSError, subprocess.SubprocessError) as exc:
        differences = handle.down()
        _unavailable(f"the test cluster did not start: {exc}"
                     + (f"\nand the host changed: {differences}" if differences else ""))
    _say(request.config, f"\n[k8s] cluster up in {time.monotonic() - started:.1f}s "
                         f"({info['netns']}; steps {info['timings']})")
    try:
        yield handle
    finally:
        started = time.monotonic()
        differences = handle.down()
        _say(request.config, f"\n[k8s] cluster down in {time.monotonic() - started:.1f}s")
    assert not differences, f"the test cluster left the host changed: {differences}"


@pytest.fixture(scope="session")
def kubectl_bin(request: pytest.FixtureRequest) -> Path:
    """kubectl v1.20.2 from the build cache (for rendering; no cluster needed)."""
    _ensure_binaries(request.config)
    kubectl = default_bin_dir() / "kubectl"
    if not os.access(kubectl, os.X_OK):
        _unavailable(f"{kubectl} is missing: run scripts/k8s-build.sh")
    return kubectl
