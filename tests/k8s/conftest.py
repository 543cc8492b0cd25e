# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pytest fixtures for tests that need the real control plane (tests/k8s/harness.py)."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    """A running control plane: the one `harness.py run` started, or one of our own."""
    shared = os.environ.get("SBD_PKI_K8S_STATE")
    if shared and (Path(shared) / "state.json").exists():
        plane = harness.ControlPlane(shared)
        if plane.pids():
            yield plane
            return
    plane = harness.ControlPlane(tmp_path_factory.mktemp("k8s") / "plane")
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api_client(control_plane):
    return config.new_client_from_config(config_file=str(control_plane.kubeconfig))


@pytest.fixture
def namespace(api_client):
    """A fresh namespace per test (not deleted: there is no namespace controller here)."""
    name = "t-" + uuid.uuid4().hex[:10]
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name}})
    return name


def load_state(plane) -> dict:
    return json.loads(plane.state_file.read_text())


class AnsibleRun:
    """Runs one module ad hoc on localhost against the control plane; returns its result."""

    def __init__(self, plane):
        self.plane = plane

    def __call__(self, module, args, check=False, diff=False, extra_env=None):
        import subprocess  # pylint: disable=import-outside-toplevel

        # the ad-hoc default callback (minimal) prints the diff, then "host | STATUS => {json}"
        cmd = ["ansible", "localhost", "-c", "local", "-i", "localhost,",
               "-e", "ansible_python_interpreter=%s" % sys.executable,
               "-m", "securebydefault.pki." + module, "-a", json.dumps(args)]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0",
                   ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
                   **self.plane.env())
        env.update(extra_env or {})
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        marker = proc.stdout.find("localhost | ")
        assert marker >= 0 and "=>" in proc.stdout[marker:], "no result from %s:\n%s\n%s" % (
            module, proc.stdout, proc.stderr)
        head, body = proc.stdout[marker:].split("=>", 1)
        result = json.loads(body)
        result["_status"] = head.split("|", 1)[1].strip()
        result["_stdout"] = proc.stdout
        result["_diff"] = proc.stdout[:marker]
        return result


@pytest.fixture(scope="session")
def run_module(control_plane):
    return AnsibleRun(control_plane)
