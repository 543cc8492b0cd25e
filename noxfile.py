# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Python test tiers for anyone with Python 3.11 and pip, no root (see CONTRIBUTING.md):

    python3 -m pip install --user nox && nox -s lint engine units

Each session installs requirements-dev.txt into its virtualenv (.nox/, reused) and runs
``scripts/tier.sh <session>``, the same commands scripts/test.sh runs in CI. What only a package
manager installs is skipped with a note here (shellcheck, gofmt) or replaced (Debian's
python3-cryptography 38 by cryptography==38.0.4 from PyPI); CI runs it all.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "engine", "units"]
nox.options.error_on_missing_interpreters = True

HERE = os.path.dirname(os.path.abspath(__file__))
# The nodes' cryptography (Debian 12's python3-cryptography), the oldest the engine supports.
NODE_CRYPTOGRAPHY = "cryptography==38.0.4"


def _tier(session: nox.Session, name: str, env: dict[str, str] | None = None) -> None:
    session.install("--disable-pip-version-check", "-r", "requirements-dev.txt")
    session.run("bash", os.path.join(HERE, "scripts", "tier.sh"), name, external=True, env=env or {})


def _pins(path: str) -> dict[str, str]:
    pins = {}
    with open(os.path.join(HERE, path)) as f:
        for line in f:
            match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
            if match:
                pins[match.group(1).lower()] = line.split("#")[0].strip()
    return pins


def _node_python(session: nox.Session) -> str:
    """A virtualenv next to the session's with the unit tests' pins, but the nodes' cryptography."""
    pins = _pins("tests/unit/requirements.txt")
    pins["cryptography"] = NODE_CRYPTOGRAPHY
    pins["pytest"] = _pins("requirements-dev.txt")["pytest"]
    requirements = sorted(pins.values())
    venv = os.path.join(os.path.dirname(session.virtualenv.location), "engine-cryptography-38")
    python = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, ".requirements")
    wanted = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    current = open(stamp).read() if os.path.exists(stamp) else ""
    if current != wanted or not os.path.exists(python):
        session.log("node-side virtualenv %s: %s", venv, " ".join(requirements))
        session.run(sys.executable, "-m", "venv", "--clear", venv, external=True)
        session.run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements, external=True)
        with open(stamp, "w") as f:
            f.write(wanted)
    return python


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, pycodestyle, ansible-lint, changelog fragments, mypy (shellcheck and gofmt when installed)."""
    _tier(session, "lint")


@nox.session
def engine(session: nox.Session) -> None:
    """tests/unit on the controller's cryptography and on cryptography 38, then tests/system."""
    _tier(session, "engine", env={"SBD_NODE_PYTHON": _node_python(session)})


@nox.session
def units(session: nox.Session) -> None:
    """ansible-test units on every ansible-core from 2.16 to 2.19 (venvs cached in ~/.cache/sbd-pki)."""
    _tier(session, "units")


@nox.session
def sanity(session: nox.Session) -> None:
    """ansible-test sanity on the pinned ansible-core (a few minutes)."""
    _tier(session, "sanity")
