#!/usr/bin/env bash
# The local demo: three simulated Kubernetes clusters (kube-sim) on this machine, no Docker.
#
#   make demo                 build, run the story, shut everything down
#   DEMO_KEEP=1 make demo     keep the clusters, the operators and the Cassandra cluster running
#                             until Ctrl-C, and print how to point kubectl at them
#
# The story: three clusters (region-0 is the hub), the control plane in the hub and a data plane in
# each of the two other regions (local processes), the regions registered with
# `federator clientconfig create`, examples/multi-region.yaml applied and followed live until every
# datacenter is Ready, bad input refused, the cluster deleted everywhere.
#
# Environment:
#   FEDERATOR_BIN, KUBE_SIM_BIN   use these binaries instead of building them (the test does)
#   DEMO_DIR                      working directory for kubeconfig and logs (default: a temp dir)
#   KUBECTL                       kubectl to use (default: kubectl)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
kubectl_cmd=${KUBECTL:-kubectl}
demo_dir=${DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/federator-demo.XXXXXX")}
mkdir -p "$demo_dir"
kubeconfig="$demo_dir/kubeconfig"
sim_log="$demo_dir/kube-sim.log"
operator_log="$demo_dir/federator.log"
data_plane_logs=("$demo_dir/federator-region-1.log" "$demo_dir/federator-region-2.log")
pids=()

bold='' red='' plain=''
if [ -t 1 ]; then
  bold=$'\033[1m' red=$'\033[31m' plain=$'\033[0m'
fi
say() { printf '\n%s==> %s%s\n' "$bold" "$*" "$plain"; }
fail() {
  printf '\n%sdemo failed: %s%s\n' "$red" "$*" "$plain" >&2
  printf 'logs: %s %s %s\n' "$sim_log" "$operator_log" "${data_plane_logs[*]}" >&2
  exit 1
}

cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -z "${DEMO_DIR:-}" ] && [ "$status" -eq 0 ]; then
    rm -rf "$demo_dir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v "$kubectl_cmd" >/dev/null 2>&1 || fail "kubectl is needed (https://kubernetes.io/docs/tasks/tools/)"

if [ -z "${FEDERATOR_BIN:-}" ] || [ -z "${KUBE_SIM_BIN:-}" ]; then
  say "Building federator and kube-sim"
  (cd "$repo" && cargo build --locked --quiet -p federator -p kube-sim) || fail "cargo build failed"
  FEDERATOR_BIN=${FEDERATOR_BIN:-$repo/target/debug/federator}
  KUBE_SIM_BIN=${KUBE_SIM_BIN:-$repo/target/debug/kube-sim}
fi
[ -x "$FEDERATOR_BIN" ] || fail "no federator binary at $FEDERATOR_BIN"
[ -x "$KUBE_SIM_BIN" ] || fail "no kube-sim binary at $KUBE_SIM_BIN"

# Waits until a background process logs a line matching PATTERN; fails if it exits first.
wait_for_log_line() {
  local name=$1 pid=$2 log=$3 pattern=$4 seconds=$5
  local tries=$((seconds * 5))
  for _ in $(seq 1 "$tries"); do
    grep -q "$pattern" "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || fail "$name exited: $(tail -n 5 "$log")"
    sleep 0.2
  done
  fail "$name did not log '$pattern' within $seconds s"
}

k() { "$kubectl_cmd" --kubeconfig "$kubeconfig" --cache-dir "$demo_dir/kubectl-cache" "$@"; }

say "Starting three clusters: region-0 (the hub), region-1 and region-2"
"$KUBE_SIM_BIN" --clusters 3 --context-prefix region- --kubeconfig "$kubeconfig" \
  --crds "$repo/crds" --cass-operator --dc-ready-after 2 >"$sim_log" 2>&1 &
pids+=("$!")
wait_for_log_line kube-sim "${pids[0]}" "$sim_log" '^kube-sim ready' 30
k config get-contexts

say "Federator's CRDs are installed in the hub"
k --context region-0 get crd -o custom-columns=NAME:.metadata.name,ESTABLISHED:'.status.conditions[?(@.type=="Established")].status'

say "Starting the control plane (federator run --mode control-plane) in the hub's k8ssandra-operator namespace"
k --context region-0 create namespace k8ssandra-operator
"$FEDERATOR_BIN" run --mode control-plane --kubeconfig "$kubeconfig" --context region-0 \
  --namespace k8ssandra-operator --http-addr 127.0.0.1:0 >"$operator_log" 2>&1 &
pids+=("$!")
wait_for_log_line federator "${pids[1]}" "$operator_log" 'home cluster reachable' 20
grep 'home cluster reachable' "$operator_log"

say "Starting a data plane in region-1 and in region-2 (federator run --mode data-plane)"
data_plane_pids=()
for index in 1 2; do
  region="region-$index"
  log=${data_plane_logs[$((index - 1))]}
  k --context "$region" create namespace k8ssandra-operator >/dev/null
  "$FEDERATOR_BIN" run --mode data-plane --kubeconfig "$kubeconfig" --context "$region" \
    --namespace k8ssandra-operator --http-addr 127.0.0.1:0 >"$log" 2>&1 &
  pids+=("$!")
  data_plane_pids+=("$!")
  wait_for_log_line "data plane in $region" "$!" "$log" 'controllers started' 20
  echo "  $region: $(grep -m 1 'controllers started' "$log" | sed 's/\x1b\[[0-9;]*m//g')"
done

say "Registering region-1 and region-2 with the hub (federator clientconfig create)"
for region in region-1 region-2; do
  "$FEDERATOR_BIN" clientconfig create --src-kubeconfig "$kubeconfig" --src-context "$region" \
    --kubeconfig "$kubeconfig" --context region-0 --namespace k8ssandra-operator ||
    fail "clientconfig create $region failed"
done
for _ in $(seq 1 100); do
  ready=$(k --context region-0 get clientconfig -n k8ssandra-operator \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
  [ "$ready" -eq 2 ] && break
  sleep 0.2
done
k --context region-0 get clientconfig -n k8ssandra-operator
[ "$ready" -eq 2 ] || fail "the regions did not become Ready within 20 s (no restart of the operator was needed or made)"
say "Applying examples/multi-region.yaml: one datacenter in each region; the control plane fans it out"
k --context region-0 apply -f "$repo/examples/multi-region.yaml"

say "Waiting until every datacenter is Ready (Cassandra bootstraps one datacenter at a time)"
# One line per change: ready/total, then each datacenter's region and cass-operator progress.
# shellcheck disable=SC2016 # a Go template for kubectl, not shell
progress_template='{{with .status}}{{or .readyDatacenters 0}}/{{or .totalDatacenters 0}} ready:{{range $dc, $s := .datacenters}}  {{$dc}}@{{or $s.contextName "hub"}}={{with $s.cassandra}}{{or .cassandraOperatorProgress "Pending"}}{{else}}Pending{{end}}{{end}}{{else}}0/3 ready: waiting for the first status{{end}}'
ready=""
previous=""
deadline=$((SECONDS + 90))
while :; do
  ready=$(k --context region-0 get k8c demo -n default -o jsonpath='{.status.readyDatacenters}' 2>/dev/null || true)
  total=$(k --context region-0 get k8c demo -n default -o jsonpath='{.status.totalDatacenters}' 2>/dev/null || true)
  line=$(k --context region-0 get k8c demo -n default -o go-template="$progress_template" 2>/dev/null || true)
  if [ "$line" != "$previous" ]; then
    printf '  %s  %s\n' "$(date +%H:%M:%S)" "$line"
    previous=$line
  fi
  [ -n "$total" ] && [ "$total" != "0" ] && [ "$ready" = "$total" ] && break
  [ "$SECONDS" -lt "$deadline" ] || fail "the datacenters were not all Ready within 90 s (last: ${line:-no status})"
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || fail "a process of the demo exited (pid $pid); see the logs"
  done
  sleep 0.5
done
k --context region-0 get k8c -n default
for region in region-0 region-1 region-2; do
  echo "--- CassandraDatacenters in $region"
  k --context "$region" get cassandradatacenters -A \
    -o custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name,SIZE:.spec.size,PROGRESS:.status.cassandraOperatorProgress
done

# --- federator status -------------------------------------------------------------------
say "federator status: the cluster, its datacenters by region, and each region's reachability"
"$FEDERATOR_BIN" status --kubeconfig "$kubeconfig" --context region-0 -n default ||
  fail "federator status failed"

say "Bad input is refused by the API server with the field path (CEL and OpenAPI rules in the CRD)"
bad_manifest="$demo_dir/bad.yaml"
cat >"$bad_manifest" <<'EOF'
apiVersion: k8ssandra.io/v1alpha1
kind: K8ssandraCluster
metadata:
  name: broken
  namespace: default
spec:
  cassandra:
    serverVersion: "4.1"
    datacenters:
      - metadata: {name: dc1}
        size: 0
      - metadata: {name: dc1}
        size: 3
EOF
if k --context region-0 apply -f "$bad_manifest" 2>"$demo_dir/bad.err"; then
  fail "the invalid K8ssandraCluster was accepted"
fi
cat "$demo_dir/bad.err"
grep -q 'spec.cassandra.datacenters\[0\].size' "$demo_dir/bad.err" || fail "the rejection does not name the field"

say "Moving a datacenter to another region is refused while it stays in the spec"
if k --context region-0 patch k8c demo -n default --type json \
  -p '[{"op":"replace","path":"/spec/cassandra/datacenters/1/k8sContext","value":"region-2"}]' 2>"$demo_dir/move.err"; then
  fail "the k8sContext change was accepted"
fi
cat "$demo_dir/move.err"

say "The data planes are still running in region-1 and region-2"
for pid in "${data_plane_pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || fail "a data plane exited (pid $pid); see the logs"
done
echo "  yes (pids ${data_plane_pids[*]})"

if [ -n "${DEMO_KEEP:-}" ]; then
  say "Demo complete: everything keeps running until Ctrl-C"
  cat <<EOF
Point kubectl at the three clusters with:
  export KUBECONFIG=$kubeconfig
  kubectl config get-contexts
  kubectl --context region-0 get k8c -A
  kubectl --context region-1 get cassandradatacenters -A
Logs: $operator_log ${data_plane_logs[*]}
Delete the Cassandra cluster everywhere with:
  kubectl --context region-0 delete k8c demo -n default
EOF
  wait "${pids[0]}"
  exit 0
fi

say "Deleting the cluster: every region's datacenter goes first, then the K8ssandraCluster"
k --context region-0 delete k8c demo -n default --timeout=60s || fail "the K8ssandraCluster was not deleted within 60 s"
for region in region-0 region-1 region-2; do
  left=$(k --context "$region" get cassandradatacenters -A -o name | wc -l)
  echo "  $region: $left CassandraDatacenters left"
  [ "$left" -eq 0 ] || fail "$region still has CassandraDatacenters"
done

say "Demo complete"
