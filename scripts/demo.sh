#!/usr/bin/env bash
# The main job, end to end, with the installed CLI (run by `make demo` after deps and venv):
# bring the stack up, check it, inject payment errors, send orders so the breaker reacts, watch
# `chaosctl health` and `chaosctl diagnose` report it, clear the fault, show the stack recover,
# then run a game day (payment-errors) and print where its HTML report is.
# Every claim it prints about the breaker is read from /status/breakers first, never assumed.
# Ports and state dir come from the usual CHAOSCTL_* variables / config.toml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN="${VENV:-.venv}/bin"
CHAOSCTL="$BIN/chaosctl"
ORDERS="${DEMO_ORDERS:-40}"          # orders sent while payments fail (bounded)
# 80 % of charges fail: well above the payments breaker's 50 % failure-rate threshold over at
# least 10 calls. (At 50 % the window's measured rate hovers around the threshold - 42 % once -
# and the breaker may stay closed.)
ERROR_RATE="${DEMO_ERROR_RATE:-0.8}"
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

payments_breaker() {  # prints: STATE FAILURE_PERCENT CALLS_IN_WINDOW (from /status/breakers)
  curl -s --max-time 5 "$GATEWAY/status/breakers" | "$BIN/python" -c '
import json, sys
try:
    b = json.load(sys.stdin)["breakers"]["payments"]
    print(b["state"], round(100 * b["failure_rate"]), b["calls_in_window"])
except Exception:
    print("unknown 0 0")'
}

step "3. Inject payment errors ($ERROR_RATE of charges fail; ends by itself after 10 min)"
show "$CHAOSCTL" inject payment-errors --rate "$ERROR_RATE" --ttl 10m

step "4. Send $ORDERS orders through the gateway; the payments breaker opens at >= 50 % failures"
send_orders "$ORDERS"
show curl -s "$GATEWAY/status/breakers"; echo
read -r BREAKER FAIL_PCT CALLS <<<"$(payments_breaker)"
if [ "$BREAKER" = "open" ]; then
  echo "payments breaker: OPEN - orders now fail fast as payment_failed instead of waiting"
else
  # Say what happened, not what should have: the window's failure rate decides.
  echo "payments breaker: ${BREAKER^^}, not open - ${FAIL_PCT} % of ${CALLS} calls failed in its" \
       "window (opens at 50 % over >= 10 calls)"
fi

if [ "$BREAKER" = "open" ]; then
  step "5. Health now: payments breaker open, chaos key 'may have been left enabled'"
else
  step "5. Health now: payments failing (breaker $BREAKER), chaos key 'may have been left enabled'"
fi
health

step "5b. Diagnose: which runbook incident is this (chaosctl reads Prometheus, names the playbook)"
show "$CHAOSCTL" diagnose || echo "(chaosctl diagnose exit $?: an incident fires, as expected here)"

step "6. Clear the fault (the runbook's 'clear any lingering chaos injection')"
show "$CHAOSCTL" chaos clear --all

if [ "$BREAKER" = "open" ]; then
  step "7. Recovery: the open breaker probes after its open period (30 s); keep a trickle of orders flowing"
else
  step "7. Recovery: payments answers again; keep a trickle of orders flowing"
fi
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
