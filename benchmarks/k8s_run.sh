#!/usr/bin/env bash
# Benchmark: N cert-manager service Certificates (default 100) applied with the cert_manager_pki
# role and Ready, on the real test control plane. Writes its table into docs/performance.md.
#   benchmarks/k8s_run.sh [N...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/setup.sh
source "$here/../scripts/setup.sh"
python "$SBD_REPO/tests/k8s/harness.py" build
exec python "$here/k8s_bench.py" "$@"
