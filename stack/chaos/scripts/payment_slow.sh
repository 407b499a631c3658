#!/usr/bin/env bash
# Payments waits before answering each charge.
#   bash chaos/scripts/payment_slow.sh enable [MS]   (default 3000, 1..60000)
#   bash chaos/scripts/payment_slow.sh disable
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
USAGE="payment_slow.sh enable [MS] | disable"
case "${1:-}" in
  enable)
    ms="${2:-3000}"
    if use_cli; then exec chaosctl inject payment-latency --ms "$ms" --ttl "${CHAOS_TTL_S}s"; fi
    set_fault "$PAYMENTS_PORT" "{\"latency_ms\": $ms, \"ttl_s\": $CHAOS_TTL_S}" ;;
  disable)
    if use_cli; then exec chaosctl chaos clear payment-latency; fi
    clear_fault "$PAYMENTS_PORT" latency_ms ;;
  *) usage "$USAGE" ;;
esac
