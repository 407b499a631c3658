# Shared by the runbook's chaos scripts. Sourced, not run.
# Prefer the chaosctl CLI (TTL, audit log, verification); fall back to curl against the
# services' /chaos/config when chaosctl is not on PATH (or CHAOS_SCRIPTS_VIA=curl).
set -euo pipefail

CHAOS_HOST=127.0.0.1
PAYMENTS_PORT="${CHAOSCTL_PAYMENTS_PORT:-8002}"
INVENTORY_PORT="${CHAOSCTL_INVENTORY_PORT:-8003}"
CHAOS_TTL_S="${CHAOS_TTL_S:-600}"   # every fault ends by itself (10 min default)

use_cli() {
  [ "${CHAOS_SCRIPTS_VIA:-}" != "curl" ] && command -v chaosctl >/dev/null 2>&1
}

state_dir() {
  if [ -n "${CHAOSCTL_HOME:-}" ]; then echo "$CHAOSCTL_HOME"
  else echo "${XDG_STATE_HOME:-$HOME/.local/state}/chaosctl"; fi
}

admin_token() {
  if [ -n "${CHAOSCTL_ADMIN_TOKEN:-}" ]; then echo "$CHAOSCTL_ADMIN_TOKEN"; return; fi
  local file; file="$(state_dir)/admin_token"
  if [ ! -r "$file" ]; then
    echo "no admin token at $file: start the stack (chaosctl stack up) or set CHAOSCTL_HOME" >&2
    exit 1
  fi
  tr -d '[:space:]' < "$file"
}

# set_fault PORT JSON_BODY : POST /chaos/config with the admin token, print the new config
set_fault() {
  local port="$1" body="$2"
  curl -sS --fail-with-body -X POST "http://$CHAOS_HOST:$port/chaos/config" \
    -H "Authorization: Bearer $(admin_token)" -H "Content-Type: application/json" -d "$body"
  echo
}

# clear_fault PORT FAULT : DELETE /chaos/config?fault=FAULT (no token needed to make things safer)
clear_fault() {
  local port="$1" fault="$2"
  curl -sS --fail-with-body -X DELETE "http://$CHAOS_HOST:$port/chaos/config?fault=$fault"
  echo
}

usage() {
  echo "usage: $1" >&2
  exit 2
}
