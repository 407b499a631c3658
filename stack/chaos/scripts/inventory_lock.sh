#!/usr/bin/env bash
# Inventory holds its stock lock per reservation, so concurrent reservations queue.
#   bash chaos/scripts/inventory_lock.sh enable [MS]   (default 2000, 1..60000)
#   bash chaos/scripts/inventory_lock.sh disable
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"
USAGE="inventory_lock.sh enable [MS] | disable"
case "${1:-}" in
  enable)
    ms="${2:-2000}"
    if use_cli; then exec chaosctl inject inventory-lock --ms "$ms" --ttl "${CHAOS_TTL_S}s"; fi
    set_fault "$INVENTORY_PORT" "{\"lock_contention_ms\": $ms, \"ttl_s\": $CHAOS_TTL_S}" ;;
  disable)
    if use_cli; then exec chaosctl chaos clear inventory-lock; fi
    clear_fault "$INVENTORY_PORT" lock_contention_ms ;;
  *) usage "$USAGE" ;;
esac
