# Shared by kind/up.sh and kind/down.sh (sourced, not run).
# shellcheck shell=bash

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Settings, each overridable from the environment (make passes them through).
NUM_CLUSTERS=${NUM_CLUSTERS:-3}
# Workers per cluster: cass-operator puts one Cassandra pod per worker by default, and the examples'
# datacenters have 3 nodes.
WORKERS=${WORKERS:-3}
CLUSTER_PREFIX=${CLUSTER_PREFIX:-federator}
IMAGE=${IMAGE:-federator:dev}
# Pinned upstream releases; cass-operator's webhook needs cert-manager.
CERT_MANAGER_VERSION=${CERT_MANAGER_VERSION:-v1.19.2}
CASS_OPERATOR_VERSION=${CASS_OPERATOR_VERSION:-v1.27.0}
# Optional kindest/node image (e.g. kindest/node:v1.33.1); kind's default otherwise.
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-}
KIND_DIR=${KIND_DIR:-$repo/.kind}
KUBECONFIG_OUT=${KUBECONFIG_OUT:-$KIND_DIR/kubeconfig}
# shellcheck disable=SC2034 # used by the scripts that source this file
OPERATOR_NAMESPACE=k8ssandra-operator
# How long to wait for every datacenter to be Ready (Cassandra takes minutes per node on kind).
READY_TIMEOUT_SECONDS=${READY_TIMEOUT_SECONDS:-2400}

bold='' red='' plain=''
if [ -t 1 ]; then
  bold=$'\033[1m' red=$'\033[31m' plain=$'\033[0m'
fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
fail() {
  printf '\n%serror: %s%s\n' "$red" "$*" "$plain" >&2
  exit 1
}

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is needed and not on PATH"
  done
}

cluster_name() { printf '%s-%s' "$CLUSTER_PREFIX" "$1"; }
context_name() { printf 'kind-%s' "$(cluster_name "$1")"; }

# kubectl against cluster i, through the merged kubeconfig.
kc() {
  local index=$1
  shift
  kubectl --kubeconfig "$KUBECONFIG_OUT" --context "$(context_name "$index")" "$@"
}

# The control-plane node's address on the kind Docker network: what pods in the other clusters
# use to reach this cluster's API server (127.0.0.1:<port> only works from this machine).
api_server_on_kind_network() {
  local node
  node="$(cluster_name "$1")-control-plane"
  local ip
  ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$node") ||
    fail "cannot inspect $node"
  [ -n "$ip" ] || fail "$node has no address on the kind network"
  printf 'https://%s:6443' "$ip"
}

# Polls COMMAND (a function name and its arguments) every 2 s until it succeeds or SECONDS pass.
wait_until() {
  local what=$1 seconds=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${seconds}s waiting for $what"
    sleep 2
  done
}
