#!/usr/bin/env bash
# Install the programs the stack runs that pip cannot provide: redis-server, prometheus
# (with promtool), plus python3-venv (Debian ships venv separately) and curl/jq (the runbook's
# own commands). Uses apt-get when it can (root, or sudo); otherwise prints the exact command
# and exits non-zero, so `make demo` never half-works.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  missing+=(prometheus)
fi
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: redis-server, prometheus, promtool, python3-venv, curl and jq are present"
  exit 0
fi
echo "deps: missing: ${missing[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: no apt-get here; install them yourself, e.g. on macOS:" >&2
  echo "    brew install redis prometheus" >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "deps: not root and no sudo; run this, then 'make demo' again:" >&2
  echo "    sudo apt-get update && sudo apt-get install redis-server prometheus ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"

# On a systemd machine the packages start their own redis (6379) and prometheus (9090), which
# would take the ports `chaosctl stack up` needs; chaosctl runs its own copies, so switch off
# the ones we just installed (only those) and say so.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  for unit in redis-server prometheus; do
    case " ${missing[*]} " in *" $unit "*) ;; *) continue ;; esac
    if systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl is-active --quiet "$unit"; then
      echo "deps: disabling the distro's $unit service (chaosctl starts its own on demand)"
      "${SUDO[@]}" systemctl disable --now "$unit" || true
    fi
  done
fi
echo "deps: installed ${missing[*]}"
