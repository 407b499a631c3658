"""The kubernetes backend's configuration errors, through the real CLI and with no cluster:
one clear line and exit 2, never a traceback. Unreachable = a kubeconfig naming a free
loopback port (the connection is really refused)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaosctl.config import Settings
from chaosctl.errors import ExitCode
from chaosctl.runtime import k8s_client
from tests.support import free_ports


def run_stack(tmp_path: Path, *args: str, env_extra: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CHAOSCTL_", "KUBE")) and k != "HOME"}
    env.update({"HOME": str(tmp_path), "CHAOSCTL_HOME": str(tmp_path / "home")})
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "chaosctl.cli.main", "stack",
                           "--backend", "kubernetes", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def assert_one_clear_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_kubeconfig_flag_naming_a_missing_file(tmp_path: Path):
    proc = run_stack(tmp_path, "--kubeconfig", str(tmp_path / "nope.yaml"), "status")
    assert_one_clear_error(proc, "nope.yaml", "does not exist")


def test_no_kubeconfig_anywhere(tmp_path: Path):
    proc = run_stack(tmp_path, "status")
    assert_one_clear_error(proc, "no kubeconfig", "--kubeconfig")


def test_kubeconfig_that_is_not_one(tmp_path: Path):
    bad = tmp_path / "kubeconfig"
    bad.write_text("just: [text\n")
    proc = run_stack(tmp_path, "status", env_extra={"KUBECONFIG": str(bad)})
    assert_one_clear_error(proc, "cannot use kubeconfig", str(bad))


def test_unreachable_api_server(tmp_path: Path):
    (port,) = free_ports(1)
    config = tmp_path / "kubeconfig"
    config.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
users:
- name: u
  user: {{token: abc}}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
""")
    proc = run_stack(tmp_path, "status", env_extra={"CHAOSCTL_KUBECONFIG": str(config)})
    assert_one_clear_error(proc, f"https://127.0.0.1:{port}", "does not answer")


def test_bad_namespace_name(tmp_path: Path):
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\n")
    proc = run_stack(tmp_path, "--kubeconfig", str(config), "--namespace", "Bad_NS", "status")
    assert_one_clear_error(proc, "Bad_NS", "not a valid Kubernetes name")


def test_build_stays_docker_only_and_never_needs_a_cluster(tmp_path: Path):
    # `stack build` with the kubernetes backend builds the docker image: it must not try to
    # reach a cluster first (no kubeconfig here). It fails on the missing engine, exit 2.
    proc = run_stack(tmp_path, "build", env_extra={"DOCKER_HOST": f"unix://{tmp_path}/d.sock"})
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "kubeconfig" not in proc.stderr and "no container engine" in proc.stderr


@pytest.mark.parametrize(("status", "needles"), [
    (403, ["forbidden: chaosctl may not create deployments.apps in namespace ns1",
           "chaosctl-role.yaml"]),
    (401, ["refused chaosctl's credentials"]),
    (422, ["create deployments.apps in namespace ns1 failed: HTTP 422 bad spec"]),
])
def test_api_refusals_name_the_verb_and_resource(status: int, needles: list[str]):
    cluster = k8s_client.Cluster(api=None, source="/k", namespace="ns1",
                                 server="https://127.0.0.1:1")
    exc = k8s_client.api_error(cluster, "create", "deployments.apps", status, "Reason",
                               '{"kind": "Status", "message": "bad spec"}')
    text = f"{exc} {getattr(exc, 'hint', '')}"
    for needle in needles:
        assert needle in text


def test_namespace_defaults_to_the_manifests_one():
    assert k8s_client.namespace_of(Settings()) == "chaosctl"
    assert k8s_client.namespace_of(Settings(namespace="team-a")) == "team-a"
