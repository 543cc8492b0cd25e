#!/usr/bin/env bash
# Benchmark: certificates for N local hosts with node_certificate vs the community.crypto own-CA
# recipe vs a bare ping, first run and idempotent rerun. Writes the table into docs/performance.md.
#   benchmarks/run.sh [N...]        (default: 10 50 200)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/setup.sh
source "$here/../scripts/setup.sh"

# community.crypto ships inside the "ansible" package on PyPI; unpack only that collection.
peer="$SBD_PKI_CACHE/peer"
if [[ ! -f "$peer/ansible_collections/community/crypto/MANIFEST.json" ]]; then
  mkdir -p "$peer"
  pip download -q --no-deps --disable-pip-version-check "ansible==12.3.0" -d "$peer"
  python3 - "$peer" <<'PY'
import glob, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(sys.argv[1] + "/ansible-*.whl")[0])
wheel.extractall(sys.argv[1], [n for n in wheel.namelist() if n.startswith("ansible_collections/community/crypto/")])
PY
fi
export ANSIBLE_COLLECTIONS_PATH="$SBD_COLLECTIONS:$peer"
exec python "$here/bench.py" "$@"
