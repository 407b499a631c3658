#!/usr/bin/env bash
# The study's retry storm: payment errors plus clients that re-POST failed orders at once.
#   bash chaos/scripts/retry_storm.sh enable [RATE]   (payment error rate, default 0.5)
#   bash chaos/scripts/retry_storm.sh disable
# With chaosctl on PATH the retrying clients run as a detached, bounded worker
# (`chaosctl inject retry-storm --detach`, 20 orders/s for 60 s, 5 retries each).
# Without it only the payment errors are set: bring your own retrying client.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
USAGE="retry_storm.sh enable [RATE] | disable"
case "${1:-}" in
  enable)
    rate="${2:-0.5}"
    if use_cli; then
      exec chaosctl inject retry-storm --rate "$rate" --ttl "${CHAOS_TTL_S}s" --detach
    fi
    echo "chaosctl not on PATH: setting payment errors only (no retrying clients)" >&2
    set_fault "$PAYMENTS_PORT" "{\"error_rate\": $rate, \"ttl_s\": $CHAOS_TTL_S}" ;;
  disable)
    if use_cli; then exec chaosctl chaos clear retry-storm; fi
    clear_fault "$PAYMENTS_PORT" error_rate ;;
  *) usage "$USAGE" ;;
esac
