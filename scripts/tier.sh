#!/usr/bin/env bash
# The commands of the Python test tiers, defined once: lint, engine, sanity, units.
# Usage: scripts/tier.sh <prepare|lint|engine|sanity|units>
#
# Called by scripts/test.sh (CI, as root, after scripts/setup.sh) and by noxfile.py (any user with
# only Python 3.11 and pip). The Python tools come from PATH: scripts/setup.sh's virtualenv in CI,
# the nox session's virtualenv for contributors.
#
#   SBD_STRICT=1      every tool must be there: shellcheck and gofmt run or the tier fails
#                     (scripts/test.sh sets it). Unset: a missing shellcheck or gofmt is skipped
#                     with a note that CI runs it.
#   SBD_NODE_PYTHON   the Python with the nodes' cryptography 38 for the node-side engine tests:
#                     default /usr/bin/python3 (Debian's python3-cryptography); nox passes a
#                     virtualenv with cryptography==38.0.4 from PyPI.
#   SBD_PKI_CACHE     caches outside the repo (default ~/.cache/sbd-pki): the synced collection,
#                     one virtualenv per ansible-core version for the units matrix.
#   SBD_ANSIBLE_CORE_MATRIX  the older ansible-core releases the units also run on (the newest,
#                     pinned in requirements-dev.txt, is the one on PATH).
set -euo pipefail
SBD_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SBD_PKI_CACHE="${SBD_PKI_CACHE:-$HOME/.cache/sbd-pki}"
# ansible-test insists on a real .../ansible_collections/<namespace>/<name> directory: a synced copy.
SBD_COLLECTIONS="$SBD_PKI_CACHE/collections"
SBD_COLLECTION="$SBD_COLLECTIONS/ansible_collections/securebydefault/pki"
export SBD_REPO SBD_PKI_CACHE SBD_COLLECTIONS SBD_COLLECTION
export ANSIBLE_COLLECTIONS_PATH="$SBD_COLLECTIONS"
[[ ":${PYTHONPATH:-}:" == *":$SBD_COLLECTIONS:"* ]] || export PYTHONPATH="$SBD_COLLECTIONS${PYTHONPATH:+:$PYTHONPATH}"
export ANSIBLE_NOCOLOR=1

# meta/runtime.yml: requires_ansible ">=2.16.0". Every minor release from 2.16 up to the newest that
# Python 3.11 runs (2.20 needs Python >= 3.12); 2.19 is the pinned one of requirements-dev.txt.
read -r -a ansible_core_matrix <<<"${SBD_ANSIBLE_CORE_MATRIX:-2.16.19 2.17.14 2.18.19}"

strict="${SBD_STRICT:-}"
note() { printf -- '-- %s\n' "$*"; }

# A tool only a package manager installs: required in CI, skipped (and said so) elsewhere.
have_tool() {
  command -v "$1" >/dev/null 2>&1 && return 0
  if [[ -n "$strict" ]]; then
    echo "tier.sh: $1 is required here (SBD_STRICT=1) but not on PATH" >&2
    exit 1
  fi
  note "SKIPPED: $1 is not installed (${2:-}); CI (bash scripts/test.sh) runs this check"
  return 1
}

pyver() { python -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

# The collection, synced to where Ansible and ansible-test look for it (rsync, or Python without it).
sync_collection() {
  mkdir -p "$SBD_COLLECTION"
  local excludes=(.git tests/output .ansible __pycache__ .pytest_cache .hypothesis .nox .mypy_cache .ruff_cache
                  .venv)
  if command -v rsync >/dev/null 2>&1; then
    local args=()
    for e in "${excludes[@]}"; do args+=(--exclude "$e"); done
    rsync -a --delete "${args[@]}" "$SBD_REPO/" "$SBD_COLLECTION/"
  else
    python - "$SBD_REPO" "$SBD_COLLECTION" "${excludes[@]}" <<'EOF'
import os, shutil, sys
src, dst, excludes = sys.argv[1], sys.argv[2], set(sys.argv[3:])
def skip(rel):
    return os.path.basename(rel) in excludes or rel in excludes
def sync(rel):
    s, d = os.path.join(src, rel), os.path.join(dst, rel)
    names = set(n for n in os.listdir(s) if not skip(os.path.join(rel, n).lstrip("./")))
    os.makedirs(d, exist_ok=True)
    for n in os.listdir(d):
        r = os.path.join(rel, n).lstrip("./")
        if n not in names and not skip(r):
            p = os.path.join(d, n)
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.remove(p)
    for n in sorted(names):
        r, sp, dp = os.path.join(rel, n).lstrip("./"), os.path.join(s, n), os.path.join(d, n)
        if os.path.isdir(sp) and not os.path.islink(sp):
            if os.path.lexists(dp) and (os.path.islink(dp) or not os.path.isdir(dp)):
                os.remove(dp)
            sync(r)
        else:
            st = os.lstat(sp)
            if os.path.lexists(dp):
                dt = os.lstat(dp)
                if dt.st_size == st.st_size and int(dt.st_mtime) == int(st.st_mtime) and dt.st_mode == st.st_mode:
                    continue
                shutil.rmtree(dp) if os.path.isdir(dp) and not os.path.islink(dp) else os.remove(dp)
            shutil.copy2(sp, dp, follow_symlinks=False)
sync("")
EOF
  fi
}

# ansible-test builds virtualenvs with a get-pip.py it downloads into ~/.ansible/test/cache/get_pip_<pip>.py;
# offline it uses tests/utils/offline_get_pip.py there instead. Each ansible-test names its own pip version.
offline_get_pip() {
  local python=$1 file version
  file=$("$python" -c 'import ansible_test, os; print(os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py"))' 2>/dev/null) ||
    return 0  # no ansible-test in this Python
  while read -r version; do
    local getpip="$HOME/.ansible/test/cache/get_pip_${version//./_}.py"
    if [[ ! -f "$getpip" ]]; then
      mkdir -p "$(dirname "$getpip")"
      cp "$SBD_REPO/tests/utils/offline_get_pip.py" "$getpip"
    fi
  done < <(grep -oE "pip=['\"][0-9.]+['\"]" "$file" | grep -oE "[0-9.]+" | sort -u)
}

tier_prepare() {
  sync_collection
  offline_get_pip python
}

tier_lint() {
  cd "$SBD_REPO"
  ruff check .
  # the engine and the use cases are formatted by ruff (`ruff format plugins/module_utils/pki plugins/module_utils/_ops`)
  ruff format --check plugins/module_utils/pki plugins/module_utils/_ops
  # the same pep8 rules as ansible-test sanity, seconds instead of minutes
  python -m pycodestyle --max-line-length=160 --ignore=E402,W503,W504,E741 plugins tests benchmarks
  if have_tool shellcheck "apt-get install shellcheck"; then
    shellcheck -x scripts/*.sh tests/netns/*.sh benchmarks/*.sh .ci/run
  fi
  if have_tool gofmt "Go, for the test control plane's build files"; then
    local unformatted
    unformatted=$(gofmt -l tests/k8s/build)
    [[ -z "$unformatted" ]] || { echo "gofmt: $unformatted"; return 1; }
  fi
  ansible-lint --offline -q --nocolor
  # changelog fragments and changelogs/changelog.yaml
  antsibull-changelog lint
  antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
  # type check of the engine, from the synced tree so that ansible_collections.securebydefault.pki resolves
  (cd "$SBD_COLLECTIONS" && mypy --config-file "$SBD_COLLECTION/pyproject.toml" \
    -p ansible_collections.securebydefault.pki.plugins.module_utils.pki)
}

tier_engine() {
  # The engine on the controller's cryptography, then the node-side part on the nodes' cryptography 38.
  cd "$SBD_COLLECTION"
  python -m pytest -q tests/unit
  local node_python="${SBD_NODE_PYTHON:-/usr/bin/python3}"
  if [[ -z "$strict" && -z "${SBD_NODE_PYTHON:-}" ]] &&
     ! "$node_python" -c 'import cryptography, pytest, hypothesis, yaml' >/dev/null 2>&1; then
    note "SKIPPED: the node-side tests on cryptography 38 ($node_python lacks python3-cryptography, pytest," \
         "hypothesis or yaml); run them with 'nox -s engine', which installs cryptography==38.0.4"
  else
    "$node_python" -c 'import cryptography, sys; print("-- node side: cryptography %s on %s" % (cryptography.__version__, sys.executable))'
    "$node_python" -m pytest -q -m "not controller" tests/unit
  fi
  # Whole runs on the controller: concurrent playbooks against one CA, a killed run, the EE definition.
  python -m pytest -q tests/system
}

tier_sanity() {
  cd "$SBD_COLLECTION"
  ansible-test sanity --local --python "$(pyver)" --color no
}

# One virtualenv per ansible-core minor version, cached in $SBD_PKI_CACHE/ansible-core-<minor>.
ansible_core_venv() {
  local version=$1 venv="$SBD_PKI_CACHE/ansible-core-${1%.*}"
  if [[ ! -x "$venv/bin/ansible-test" || "$(cat "$venv/.ansible-core" 2>/dev/null)" != "$version" ]]; then
    note "ansible-core $version into $venv" >&2
    rm -rf "$venv"
    python -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "ansible-core==$version" >&2
    echo "$version" >"$venv/.ansible-core"
  fi
  offline_get_pip "$venv/bin/python"
  echo "$venv"
}

tier_units() {
  cd "$SBD_COLLECTION"
  local py venv version
  py=$(pyver)
  note "units on ansible-core $(python -c 'import ansible; print(ansible.__version__)') (requirements-dev.txt)"
  ansible-test units --local --python "$py" --color no --requirements
  for version in "${ansible_core_matrix[@]}"; do
    venv=$(ansible_core_venv "$version")
    note "units on ansible-core $version ($venv)"
    PATH="$venv/bin:$PATH" "$venv/bin/ansible-test" units --local --python "$py" --color no --requirements
  done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  (($# == 1)) || { echo "usage: $0 prepare|lint|engine|sanity|units" >&2; exit 2; }
  case $1 in
    prepare) tier_prepare ;;
    lint|engine|sanity|units) tier_prepare; "tier_$1" ;;
    *) echo "usage: $0 prepare|lint|engine|sanity|units" >&2; exit 2 ;;
  esac
fi
