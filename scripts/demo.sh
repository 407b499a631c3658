#!/usr/bin/env bash
# The main job, end to end, with the installed CLI (run by `make demo` after deps and venv):
# bring the stack up, check it, inject payment errors, send orders so the breaker reacts, watch
# `chaosctl health` report it, clear the fault, show the stack recover, then run a game day
# (payment-errors) and print where its HTML report is.
# Ports and state dir come from the usual CHAOSCTL_* variables / config.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN="${VENV:-.venv}/bin"
CHAOSCTL="$BIN/chaosctl"
ORDERS="${DEMO_ORDERS:-40}"          # orders sent while payments fail (bounded)
RECOVERY_S="${DEMO_RECOVERY_S:-120}" # upper bound on waiting for recovery

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
# `chaosctl health` exits 1 while something is wrong; during the demo that is the point.
health() { show "$CHAOSCTL" health "$@" || echo "(chaosctl health exit $?: not healthy, as expected here)"; }

# The gateway URL exactly as chaosctl resolves it (env, config.toml, defaults).
GATEWAY="$("$BIN/python" -c 'from chaosctl.config import load_settings; print(load_settings().url("gateway"))')"

send_orders() {  # send_orders N : N orders through the gateway, print a status tally
  local n="$1" i codes=""
  for i in $(seq 1 "$n"); do
    codes+="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "$GATEWAY/orders" \
      -H 'Content-Type: application/json' -H "Idempotency-Key: demo-$$-$RANDOM-$i" \
      -d '{"customer_id": "demo", "items": [{"product_id": "SKU-001", "quantity": 1, "unit_price": 9.99}]}') "
  done
  echo "HTTP codes: $(tr ' ' '\n' <<<"$codes" | sed '/^$/d' | sort | uniq -c | tr -s ' ' | paste -sd, -)"
  curl -s "$GATEWAY/orders?limit=$n" | "$BIN/python" -c '
import collections, json, sys
body = json.load(sys.stdin)
orders = body.get("orders", body) if isinstance(body, dict) else body
print("last orders by status:", dict(collections.Counter(o.get("status") for o in orders)))' || true
}

step "1. Bring the stack up (redis, prometheus, five services)"
show "$CHAOSCTL" stack up

step "2. Health before anything breaks"
# Prometheus marks a target 'unknown' until its first scrape (1 s); give it a moment.
for _ in $(seq 1 15); do "$CHAOSCTL" health --json >/dev/null 2>&1 && break; sleep 1; done
health

step "3. Inject payment errors (50 %, ends by itself after 10 min)"
show "$CHAOSCTL" inject payment-errors --rate 0.5 --ttl 10m

step "4. Send $ORDERS orders through the gateway; the payments breaker should open"
send_orders "$ORDERS"
show curl -s "$GATEWAY/status/breakers"; echo

step "5. Health now: payments degraded, breaker open, chaos key 'may have been left enabled'"
health

step "6. Clear the fault (the runbook's 'clear any lingering chaos injection')"
show "$CHAOSCTL" chaos clear --all

step "7. Recovery: the breaker probes after its open period; keep a trickle of orders flowing"
start=$SECONDS
deadline=$((SECONDS + RECOVERY_S))
until "$CHAOSCTL" health --json >/dev/null 2>&1; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "not recovered within ${RECOVERY_S}s"; health; exit 1
  fi
  send_orders 1 >/dev/null
  sleep 2
done
echo "recovered about $((SECONDS - start)) s after the clear"
health

step "8. Game day: the whole loop under load, timed (inject, detect, remediate, verify, roll back)"
REPORTS="$("$BIN/python" -c 'from chaosctl.config import load_settings; print(load_settings().home / "reports")')"
show "$CHAOSCTL" game-day payment-errors --rps 20 --baseline 5s --report "$REPORTS" \
  || echo "(game-day exit $?: see the report for what missed)"
echo "report: $(ls -t "$REPORTS"/payment-errors-*.html 2>/dev/null | head -1)"

step "Done. The stack is still running: try the runbook's commands against it, then"
echo "    $CHAOSCTL stack down"
