"""Offline stand-in for the get-pip.py that ansible-test downloads when it builds a venv.

Installed by scripts/setup.sh into ansible-test's cache. It bootstraps pip from
the interpreter's bundled ensurepip, then installs what it was asked for from
the configured package index.
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel", "--disable-pip-version-check")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
packages = [a for a in args if not a.startswith("-")]
if packages:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check"] + args)
