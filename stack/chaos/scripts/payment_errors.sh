#!/usr/bin/env bash
# Payments answers 503 for a fraction of charges.
#   bash chaos/scripts/payment_errors.sh enable [RATE]   (default 0.2, 0 < RATE <= 1)
#   bash chaos/scripts/payment_errors.sh disable
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
USAGE="payment_errors.sh enable [RATE] | disable"
case "${1:-}" in
  enable)
    rate="${2:-0.2}"
    if use_cli; then exec chaosctl inject payment-errors --rate "$rate" --ttl "${CHAOS_TTL_S}s"; fi
    set_fault "$PAYMENTS_PORT" "{\"error_rate\": $rate, \"ttl_s\": $CHAOS_TTL_S}" ;;
  disable)
    if use_cli; then exec chaosctl chaos clear payment-errors; fi
    clear_fault "$PAYMENTS_PORT" error_rate ;;
  *) usage "$USAGE" ;;
esac
