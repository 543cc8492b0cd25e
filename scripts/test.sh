#!/usr/bin/env bash
# Runs every test of the collection. Usage: scripts/test.sh [stage...]
# Stages (all by default, in this order): lint engine sanity units integration kubernetes molecule
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/setup.sh
source "$here/setup.sh"

stages=("$@")
((${#stages[@]})) || stages=(lint engine sanity units integration kubernetes molecule)
started=$(date +%s)
declare -a summary=()

run_stage() {
  local name=$1 t0=$SECONDS
  log "stage $name"
  "stage_$name"
  summary+=("$name: passed in $((SECONDS - t0))s")
}

stage_lint() {
  cd "$SBD_REPO"
  ruff check .
  # the same pep8 rules as ansible-test sanity, seconds instead of minutes
  python -m pycodestyle --max-line-length=160 --ignore=E402,W503,W504,E741 plugins tests benchmarks
  shellcheck -x scripts/*.sh tests/netns/*.sh benchmarks/*.sh .ci/run
  local unformatted
  unformatted=$(gofmt -l tests/k8s/build)
  [[ -z "$unformatted" ]] || { echo "gofmt: $unformatted"; return 1; }
  ansible-lint --offline -q --nocolor
}

stage_engine() {
  # The engine on the controller's cryptography, then the node-side part on Debian's
  # python3-cryptography 38, the version the test hosts run.
  cd "$SBD_COLLECTION"
  python -m pytest -q tests/unit
  /usr/bin/python3 -m pytest -q -m "not controller" tests/unit
  # Whole runs on the controller: concurrent playbooks against one CA, a killed run, the EE definition.
  python -m pytest -q tests/system
}

stage_sanity() {
  cd "$SBD_COLLECTION"
  ansible-test sanity --local --python 3.11 --color no
}

stage_units() {
  cd "$SBD_COLLECTION"
  ansible-test units --local --python 3.11 --color no --requirements
}

stage_integration() {
  cd "$SBD_COLLECTION"
  ansible-test integration --local --python 3.11 --color no
}

stage_kubernetes() {
  # Real etcd, kube-apiserver and cert-manager built from Go modules (cached by version in
  # $SBD_PKI_CACHE/k8s; a cold build takes about 15 minutes on 2 cores), started for these tests
  # in a fresh state directory and stopped whatever happens.
  cd "$SBD_COLLECTION"
  if [[ -n "$prebuild_pid" ]]; then
    wait "$prebuild_pid" || { cat "$prebuild_log"; return 1; }
    cat "$prebuild_log"
  fi
  python tests/k8s/harness.py build
  (cd tests/k8s/build/cert-manager && go vet ./...)
  local state
  state=$(mktemp -u /tmp/sbd-pki-k8s-ci.XXXXXX)
  python tests/k8s/harness.py --dir "$state" run -- python -m pytest -q -p no:cacheprovider tests/k8s
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
  (cd "$SBD_COLLECTION" && python tests/k8s/harness.py build) >"$prebuild_log" 2>&1 &
  prebuild_pid=$!
  trap 'kill "$prebuild_pid" 2>/dev/null || true' EXIT
fi

for stage in "${stages[@]}"; do
  run_stage "$stage"
done
log "summary ($(( $(date +%s) - started ))s)"
printf '%s\n' "${summary[@]}"
