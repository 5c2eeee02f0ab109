#!/usr/bin/env bash
# Deletes every kind cluster made by kind/up.sh (named CLUSTER_PREFIX-<i>) and the generated files
# in KIND_DIR (make multi-down).
set -euo pipefail

# shellcheck source=kind/lib.sh
. "$(dirname "$0")/lib.sh"

need kind
found=0
while read -r name; do
  case "$name" in
  "$CLUSTER_PREFIX"-[0-9]*)
    say "Deleting cluster $name"
    kind delete cluster --name "$name"
    found=$((found + 1))
    ;;
  esac
done < <(kind get clusters 2>/dev/null || true)
[ "$found" -gt 0 ] || echo "no kind cluster named $CLUSTER_PREFIX-<i>"
rm -f "$KIND_DIR"/*.kubeconfig "$KIND_DIR"/*.yaml "$KUBECONFIG_OUT"
