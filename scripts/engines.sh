#!/usr/bin/env bash
# Install what the docker and kubernetes backends' tests (tests/docker, tests/k8s) need on a
# fresh Debian machine: Debian's Docker Engine (dockerd 20.10, containerd, runc), debootstrap
# (the stack image's base is a bookworm rootfs built locally: no registry is reachable),
# Compose v1 (Debian docker-compose 1.29, for stack/compose.yaml), and for the test cluster
# etcd-server (the control plane's store), socat (`kubectl port-forward` through dockershim),
# strace (the check that kubelet connects only to loopback), jq (the runc wrapper) and openssl
# (its certificates). The Kubernetes binaries come from scripts/k8s-build.sh. Idempotent: installs only
# what is missing. It never starts an engine: the tests start their own dockerd on a private
# socket, and chaosctl uses whatever DOCKER_HOST names.
set -euo pipefail

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)  # the tests' engine picks a free subnet
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if [ ${#missing[@]} -eq 0 ]; then
  echo "engines: dockerd, debootstrap, docker-compose, etcd, socat, strace, jq and openssl are present"
  exit 0
fi
echo "engines: missing: ${missing[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
  echo "engines: no apt-get here; install Docker Engine, debootstrap and docker-compose" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "engines: not root and no sudo; run:" >&2
  echo "    sudo apt-get update && sudo apt-get install ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
# On a systemd machine the package would start the system's dockerd; policy-rc.d (where
# present) stops that, and the tests never use it anyway (they start their own).
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "engines: installed ${missing[*]}"
