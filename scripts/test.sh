#!/usr/bin/env bash
# Runs every test of the collection. Usage: scripts/test.sh [stage...]
# Stages (all by default, in this order): lint engine sanity units integration molecule kubernetes
# (kubernetes last: on a fresh machine its Go build runs in the background through all the others)
# lint, engine, sanity and units run scripts/tier.sh (the same commands as `nox`, see CONTRIBUTING.md);
# integration, kubernetes and molecule need root (network namespaces, apt packages, Go).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/setup.sh
source "$here/setup.sh"

stages=("$@")
((${#stages[@]})) || stages=(lint engine sanity units integration molecule kubernetes)
started=$(date +%s)
declare -a summary=()

run_stage() {
  local name=$1 t0=$SECONDS
  log "stage $name"
  "stage_$name"
  summary+=("$name: passed in $((SECONDS - t0))s")
}

# The Python tiers are defined once, in scripts/tier.sh, which noxfile.py also runs for contributors
# without root. Here every tool must be present (SBD_STRICT=1): shellcheck, gofmt, Debian's python3 with
# python3-cryptography 38 for the node-side engine tests (SBD_NODE_PYTHON, default /usr/bin/python3).
export SBD_STRICT=1
stage_lint() { bash "$here/tier.sh" lint; }      # ruff, pycodestyle, shellcheck, gofmt, ansible-lint, changelog, mypy
stage_engine() { bash "$here/tier.sh" engine; }  # tests/unit on cryptography 50 and 38, tests/system
stage_sanity() { bash "$here/tier.sh" sanity; }  # ansible-test sanity on the pinned ansible-core
stage_units() { bash "$here/tier.sh" units; }    # ansible-test units on ansible-core 2.16 to 2.19

stage_integration() {
  cd "$SBD_COLLECTION"
  ansible-test integration --local --python 3.11 --color no
}

# Builds the control plane's binaries (cached by version in $SBD_PKI_CACHE/k8s) and vets the Go
# programs of tests/k8s/build. On a fresh machine both are slow (the build about 30 minutes on 2 cores,
# go vet's analysis of cert-manager's and trust-manager's dependencies several minutes), so both run
# in the background prebuild below, beside the Python stages.
build_control_plane() {
  cd "$SBD_COLLECTION"
  python tests/k8s/harness.py build
  (cd tests/k8s/build/cert-manager && go vet ./...)
  (cd tests/k8s/build/trust-manager && go vet ./...)
}

stage_kubernetes() {
  # Real etcd, kube-apiserver, controller-manager, scheduler, cert-manager and trust-manager,
  # started for these tests in a fresh state directory and stopped whatever happens.
  cd "$SBD_COLLECTION"
  if [[ -n "$prebuild_pid" ]]; then
    local t0=$SECONDS
    wait "$prebuild_pid" || { cat "$prebuild_log"; return 1; }
    cat "$prebuild_log"
    log "waited $((SECONDS - t0))s for the background build"
  else
    build_control_plane
  fi
  local state rc=0
  state=$(mktemp -u /tmp/sbd-pki-k8s-ci.XXXXXX)
  # requests and failures per stage of the cluster PKI's zero-downtime tests (pytest -q shows no passing output)
  export SBD_PKI_K8S_LOAD_REPORT="$state.load.txt"
  python tests/k8s/harness.py --dir "$state" run -- python -m pytest -q -p no:cacheprovider --durations=20 tests/k8s || rc=$?
  if [[ -s "$SBD_PKI_K8S_LOAD_REPORT" ]]; then
    log "requests under load, per stage"
    cat "$SBD_PKI_K8S_LOAD_REPORT"
  fi
  return "$rc"
}

stage_molecule() {
  cd "$SBD_COLLECTION"
  NO_COLOR=1 molecule test --all
}

# The control plane's Go build takes minutes and mostly waits on the compiler while the Python
# stages mostly wait on single processes: start it now, collect it in stage_kubernetes.
prebuild_pid=""
prebuild_log="$SBD_PKI_CACHE/k8s-prebuild.log"
if [[ " ${stages[*]} " == *" kubernetes "* ]]; then
  (t0=$SECONDS; build_control_plane; echo "background build and go vet: $((SECONDS - t0))s") >"$prebuild_log" 2>&1 &
  prebuild_pid=$!
  trap 'kill "$prebuild_pid" 2>/dev/null || true' EXIT
fi

for stage in "${stages[@]}"; do
  run_stage "$stage"
done
log "summary ($(( $(date +%s) - started ))s)"
printf '%s\n' "${summary[@]}"
