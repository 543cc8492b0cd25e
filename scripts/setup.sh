#!/usr/bin/env bash
# Installs everything the collection, its demo, tests and benchmarks need, idempotently.
# Caches outside the repo (SBD_PKI_CACHE, default ~/.cache/sbd-pki) so warm runs are fast.
# Source it (". scripts/setup.sh") to get the environment; run it to just install.
set -euo pipefail
SBD_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SBD_PKI_CACHE="${SBD_PKI_CACHE:-$HOME/.cache/sbd-pki}"
SBD_VENV="$SBD_PKI_CACHE/venv"
# ansible-test insists on a real .../ansible_collections/<namespace>/<name> directory: a synced copy.
SBD_COLLECTIONS="$SBD_PKI_CACHE/collections"
SBD_COLLECTION="$SBD_COLLECTIONS/ansible_collections/securebydefault/pki"
export SBD_REPO SBD_PKI_CACHE SBD_VENV SBD_COLLECTIONS SBD_COLLECTION

log() { printf '\n== %s\n' "$*"; }

apt_packages=(openssh-server openssh-client iproute2 openssl ca-certificates rsync shellcheck python3 python3-venv
              python3-cryptography python3-yaml
              python3-pytest python3-hypothesis procps
              prometheus-node-exporter)  # molecule/live_gates scrapes it on the test hosts
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
command -v keytool >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go builds the real Kubernetes control plane the tests run against (tests/k8s); it is not
# a runtime dependency of the collection.
if ! command -v go >/dev/null 2>&1; then
  for candidate in /usr/local/go/bin /usr/lib/go/bin "$HOME/go/bin"; do
    [[ -x "$candidate/go" ]] && export PATH="$PATH:$candidate" && break
  done
fi
command -v go >/dev/null 2>&1 || { echo "setup.sh: Go >= 1.26 is needed to build the test control plane (tests/k8s); install it and put it on PATH" >&2; exit 1; }

# requirements-dev.txt includes tests/unit/requirements.txt: a change to either reinstalls.
req_hash=$(cat "$SBD_REPO/requirements-dev.txt" "$SBD_REPO/tests/unit/requirements.txt" | sha256sum | cut -c1-16)
if [[ ! -x "$SBD_VENV/bin/ansible-playbook" || "$(cat "$SBD_VENV/.req-hash" 2>/dev/null)" != "$req_hash" ]]; then
  log "Python tools into $SBD_VENV"
  python3 -m venv "$SBD_VENV"
  "$SBD_VENV/bin/pip" install -q --disable-pip-version-check -r "$SBD_REPO/requirements-dev.txt"
  echo "$req_hash" > "$SBD_VENV/.req-hash"
fi
export PATH="$SBD_VENV/bin:$PATH"

# The collection synced to $SBD_COLLECTION and the offline stand-in for ansible-test's pip bootstrap
# (for every pip version ansible-test names): the preparation of the Python tiers, scripts/tier.sh.
bash "$SBD_REPO/scripts/tier.sh" prepare
export ANSIBLE_COLLECTIONS_PATH="$SBD_COLLECTIONS"
export PYTHONPATH="$SBD_COLLECTIONS${PYTHONPATH:+:$PYTHONPATH}"
export ANSIBLE_NOCOLOR=1
