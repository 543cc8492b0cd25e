# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The test control plane itself: real etcd, kube-apiserver and cert-manager.

These tests check the harness the collection's Kubernetes tests stand on:
that cert-manager really issues, that nothing listens beyond loopback, and
that failures and interruptions leave no processes, ports or files behind.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

import harness

GROUP, VERSION = "cert-manager.io", "v1"
HARNESS = Path(harness.__file__)


def apply(api_client, namespace, kind, name, spec):
    objects = client.CustomObjectsApi(api_client)
    body = {"apiVersion": "%s/%s" % (GROUP, VERSION), "kind": kind,
            "metadata": {"name": name}, "spec": spec}
    plural = kind.lower() + "s"
    if namespace is None:
        return objects.create_cluster_custom_object(GROUP, VERSION, plural, body)
    body["metadata"]["namespace"] = namespace
    return objects.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def wait_ready(api_client, namespace, kind, name, timeout=60.0, newer_than=0):
    """Wait for Ready=True at the current generation (and a revision above newer_than)."""
    objects = client.CustomObjectsApi(api_client)
    plural = kind.lower() + "s"
    deadline = time.monotonic() + timeout
    obj = {}
    while time.monotonic() < deadline:
        if namespace is None:
            obj = objects.get_cluster_custom_object(GROUP, VERSION, plural, name)
        else:
            obj = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        status = obj.get("status") or {}  # fields can be present but null right after creation
        for cond in status.get("conditions") or []:
            if (cond["type"] == "Ready" and cond["status"] == "True"
                    and cond.get("observedGeneration", obj["metadata"]["generation"]) == obj["metadata"]["generation"]
                    and status.get("revision", 1) > newer_than):
                return obj
        time.sleep(0.2)
    raise AssertionError("%s %s/%s not Ready in %ss: %s" % (kind, namespace, name, timeout, obj.get("status")))


def secret_data(api_client, namespace, name):
    secret = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
    return {key: base64.b64decode(value) for key, value in secret.data.items()}


def openssl_verify(tmp_path, ca_pem, leaf_pem, purpose="sslserver"):
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    (tmp_path / "leaf.pem").write_bytes(leaf_pem)
    return subprocess.run(["openssl", "verify", "-purpose", purpose, "-CAfile", str(tmp_path / "ca.pem"),
                           str(tmp_path / "leaf.pem")], capture_output=True, text=True, check=False)


def serial_of(pem):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=pem, capture_output=True, check=True)
    return out.stdout.decode().strip()


def test_cert_manager_issues_the_seed_chain(control_plane, api_client, namespace, tmp_path):
    """selfSigned ClusterIssuer -> CA Certificate -> CA Issuer -> short-lived leaf, all Ready."""
    root = "selfsigned-" + namespace
    apply(api_client, None, "ClusterIssuer", root, {"selfSigned": {}})
    wait_ready(api_client, None, "ClusterIssuer", root)

    apply(api_client, namespace, "Certificate", "cluster-ca", {
        "isCA": True, "commonName": "smoke test CA", "secretName": "cluster-ca",
        "duration": "87600h", "privateKey": {"algorithm": "ECDSA", "size": 256},
        "issuerRef": {"name": root, "kind": "ClusterIssuer", "group": GROUP},
    })
    wait_ready(api_client, namespace, "Certificate", "cluster-ca")
    apply(api_client, namespace, "Issuer", "cluster-ca", {"ca": {"secretName": "cluster-ca"}})
    wait_ready(api_client, namespace, "Issuer", "cluster-ca")

    apply(api_client, namespace, "Certificate", "web", {
        "secretName": "web-tls", "dnsNames": ["web.%s.svc" % namespace],
        "duration": "1h", "renewBefore": "40m", "usages": ["server auth", "digital signature"],
        "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
        "issuerRef": {"name": "cluster-ca", "kind": "Issuer"},
    })
    first = wait_ready(api_client, namespace, "Certificate", "web")

    ca = secret_data(api_client, namespace, "cluster-ca")
    leaf = secret_data(api_client, namespace, "web-tls")
    assert leaf["ca.crt"] == ca["tls.crt"]
    result = openssl_verify(tmp_path, ca["tls.crt"], leaf["tls.crt"])
    assert result.returncode == 0, result.stdout + result.stderr
    # and not against an unrelated CA (the harness's own): the check can fail
    unrelated = (control_plane.state / "pki" / "ca.crt").read_bytes()
    assert openssl_verify(tmp_path, unrelated, leaf["tls.crt"]).returncode != 0

    # Deleting the Secret makes cert-manager issue again: a new certificate, a new key.
    client.CoreV1Api(api_client).delete_namespaced_secret("web-tls", namespace)
    deadline = time.monotonic() + 60
    again = None
    while time.monotonic() < deadline:
        try:
            again = secret_data(api_client, namespace, "web-tls")
            if again.get("tls.crt") and again["tls.crt"] != leaf["tls.crt"]:
                break
        except ApiException as exc:
            assert exc.status == 404
        time.sleep(0.2)
    assert again and again.get("tls.crt"), "the deleted Secret was not issued again"
    assert serial_of(again["tls.crt"]) != serial_of(leaf["tls.crt"])
    assert again["tls.key"] != leaf["tls.key"]
    assert openssl_verify(tmp_path, ca["tls.crt"], again["tls.crt"]).returncode == 0
    second = wait_ready(api_client, namespace, "Certificate", "web", newer_than=first["status"]["revision"])
    assert second["status"]["revision"] > first["status"]["revision"]


def test_nothing_listens_beyond_loopback(control_plane):
    pids = control_plane.pids()
    assert set(pids) == {"etcd", "kube-apiserver", "cert-manager", "trust-manager"}
    listening = harness.listening_addresses(pids.values())
    ports = {entry[2] for entry in listening}
    state = json.loads(control_plane.state_file.read_text())
    assert state["ports"]["apiserver"] in ports and state["ports"]["etcd"] in ports
    # trust-manager's three listeners (upstream binds two of them to 0.0.0.0; the harness build does not)
    assert {state["ports"][k] for k in ("trust-manager", "trust-manager-webhook", "trust-manager-metrics")} <= ports
    for pid, address, port in listening:
        assert ipaddress.ip_address(address) in ipaddress.ip_network("127.0.0.0/8"), (pid, address, port)


def _run_harness(state, *cmd, **popen):
    return subprocess.Popen([sys.executable, str(HARNESS), "--dir", str(state), "run", "--"] + list(cmd),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def _wait_for_file(path, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "the control plane did not come up"
        time.sleep(0.2)


def _gone(pids, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(harness._alive(pid) for pid in pids):  # pylint: disable=protected-access
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_nothing(tmp_path, sig):
    """`harness.py run` stopped by a signal takes its processes, ports and files with it."""
    state = tmp_path / "plane"
    ready = tmp_path / "ready"
    proc = _run_harness(state, "sh", "-c", "touch %s; exec sleep 300" % ready)
    _wait_for_file(ready, proc)
    info = json.loads((state / "state.json").read_text())
    pids = list(info["pids"].values())
    assert len(pids) == 4 and all(harness._alive(pid) for pid in pids)  # pylint: disable=protected-access
    proc.send_signal(sig)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output
    assert _gone(pids)
    assert not state.exists()
    assert not harness.listening_addresses(pids)


def test_killed_supervisor_takes_its_children(tmp_path):
    """Even SIGKILL of the harness stops the components (PR_SET_PDEATHSIG); `stop` cleans up the rest."""
    state = tmp_path / "plane"
    ready = tmp_path / "ready"
    proc = _run_harness(state, "sh", "-c", "touch %s; exec sleep 300" % ready)
    _wait_for_file(ready, proc)
    pids = list(json.loads((state / "state.json").read_text())["pids"].values())
    proc.kill()
    proc.communicate(timeout=30)
    assert _gone(pids), "components outlived a killed harness"
    assert state.exists()  # nobody could clean up after SIGKILL ...
    harness.ControlPlane(state).stop()
    assert not state.exists()  # ... until `stop`


def test_run_returns_the_command_status(tmp_path):
    proc = _run_harness(tmp_path / "plane", "sh", "-c", 'test -s "$KUBECONFIG" && exit 7')
    output = proc.communicate(timeout=180)[0]
    assert proc.returncode == 7, output
    assert not (tmp_path / "plane").exists()


def test_a_component_that_cannot_start_is_reported_with_its_log(tmp_path):
    plane = harness.ControlPlane(tmp_path / "plane")
    plane.state.mkdir()
    (plane.state / harness.MARKER).write_text("")
    (plane.state / "logs").mkdir()
    binaries = {"etcd": Path("/bin/false"), "kube-apiserver": Path("/bin/false"), "cert-manager": Path("/bin/false")}
    with pytest.raises(harness.HarnessError) as err:
        plane._start(binaries, tmp_path, timeout=30, out=sys.stderr)  # pylint: disable=protected-access
    message = str(err.value)
    assert "etcd exited with status 1 while starting" in message
    assert str(plane.log("etcd")) in message
    plane.stop()
    assert not plane.state.exists()


def test_a_component_that_does_not_build_is_reported_with_its_log(tmp_path, monkeypatch):
    broken = tmp_path / "build" / "broken"
    broken.mkdir(parents=True)
    (broken / "go.mod").write_text("module securebydefault.test/broken\n\ngo 1.24.0\n")
    (broken / "main.go").write_text("package main\n\nfunc main() { undefined() }\n")
    monkeypatch.setenv("SBD_PKI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(harness, "BUILD_DIR", tmp_path / "build")
    monkeypatch.setitem(harness.VERSIONS, "broken", "v0.0.1")
    monkeypatch.setitem(harness.PACKAGES, "broken", ("broken", "."))
    with pytest.raises(harness.HarnessError) as err:
        harness.build("broken")
    message = str(err.value)
    log = tmp_path / "cache" / "k8s" / "logs" / "build-broken.log"
    assert "building broken v0.0.1 failed" in message and str(log) in message
    assert "undefined" in log.read_text()
    assert not list((tmp_path / "cache" / "k8s" / "bin").iterdir())  # no half-built binary


def test_start_refuses_a_directory_it_did_not_make(tmp_path):
    (tmp_path / "precious").write_text("keep me")
    with pytest.raises(harness.HarnessError, match="was not made by this harness"):
        harness.ControlPlane(tmp_path).start()
    assert (tmp_path / "precious").read_text() == "keep me"
    harness.ControlPlane(tmp_path).stop()
    assert (tmp_path / "precious").exists()


def test_cert_manager_refuses_a_non_loopback_healthz_address():
    binary = harness.build("cert-manager")
    result = subprocess.run([str(binary), "--kubeconfig=/nonexistent", "--healthz-address=0.0.0.0:0"],
                            capture_output=True, text=True, check=False, env=dict(os.environ))
    assert result.returncode == 1
    assert "must be a loopback IP address" in result.stderr
