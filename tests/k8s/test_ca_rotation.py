# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ca_rotation for cert-manager CA Issuers on the real control plane: trust both, switch, drop old."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess

from kubernetes import client

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: securebydefault.pki.ca_rotation
"""


def rotate(plane, tmp_path, extra):
    (tmp_path / "rotate.yml").write_text(PLAY)
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", **plane.env())
    proc = subprocess.run(["ansible-playbook", "-i", "localhost,", str(tmp_path / "rotate.yml"),
                           "-e", "@%s" % (tmp_path / "vars.json"),
                           "-e", "ansible_python_interpreter=%s" % os.sys.executable],
                          capture_output=True, text=True, env=env, check=False)
    recap = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", proc.stdout)
    assert recap and recap.group(3) == "0", proc.stdout[-6000:] + proc.stderr[-2000:]
    state = json.loads((tmp_path / "ca-new.rotation.json").read_text())
    return state["stage"], int(recap.group(2))


def secret_pem(api_client, namespace, name):
    obj = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
    return base64.b64decode(obj.data["tls.crt"])


def bundle(api_client, namespace):
    return client.CoreV1Api(api_client).read_namespaced_config_map("sbd-pki-trust-bundle", namespace).data["ca.crt"]


def verifies(tmp_path, ca_pem, cert_pem):
    (tmp_path / "ca.pem").write_bytes(ca_pem if isinstance(ca_pem, bytes) else ca_pem.encode())
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    # tls.crt is the leaf and its chain (the Issuer's per-issuer intermediate): untrusted, the root decides
    return subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.pem"),
                           "-untrusted", str(tmp_path / "cert.pem"), str(tmp_path / "cert.pem")],
                          capture_output=True, check=False).returncode == 0


def revisions(api_client, namespace, names):
    objects = client.CustomObjectsApi(api_client)
    return {n: objects.get_namespaced_custom_object("cert-manager.io", "v1", namespace, "certificates", n)
            ["status"]["revision"] for n in names}


def test_cert_manager_ca_rotation(api_client, control_plane, run_module, namespace, tmp_path):
    old_ca, new_ca = tmp_path / "ca-old", tmp_path / "ca-new"
    assert run_module("cluster_ca", {"ca_path": str(old_ca), "common_name": "zone CA 1", "encrypt_key": False,
                                     "intermediate": True, "permitted_dns": ["svc.cluster.local"]})["changed"]
    assert run_module("cert_manager_issuer", {"name": "zone", "namespace": namespace, "type": "ca",
                                              "ca_secret_name": "zone-ca", "ca_path": str(old_ca)})["ready"]
    names = ["api", "web", "worker"]
    for name in names:
        assert run_module("cert_manager_certificate", {
            "name": name, "namespace": namespace, "issuer_name": "zone",
            "dns_names": ["%s.%s.svc.cluster.local" % (name, namespace)]})["ready"]
    old_root = (old_ca / "root.crt").read_bytes()
    before = revisions(api_client, namespace, names)
    for name in names:
        assert verifies(tmp_path, old_root, secret_pem(api_client, namespace, name))

    extra = {"ca_rotation_nodes": False, "ca_rotation_old_ca_path": str(old_ca), "ca_rotation_new_ca_path": str(new_ca),
             "ca_rotation_new_ca": {"common_name": "zone CA 2", "encrypt_key": False, "intermediate": True,
                                    "permitted_dns": ["svc.cluster.local"]},
             "ca_rotation_switch_after": "0", "ca_rotation_drop_after": "0", "ca_rotation_rounds": 1,
             "ca_rotation_trust_distribution": "configmap",  # trust-manager's Bundle: test_trust_rotation.py
             "ca_rotation_cert_manager": [{"namespace": namespace, "issuer": "zone", "ca_secret": "zone-ca"}]}

    # 1. trust both: pods' bundle holds both roots; nothing re-issued yet
    stage, _changed = rotate(control_plane, tmp_path, extra)
    new_root = (new_ca / "root.crt").read_bytes()
    assert stage == "trust_both"
    assert bundle(api_client, namespace) == old_root.decode() + new_root.decode()
    assert revisions(api_client, namespace, names) == before

    # 2. switch: the Issuer's Secret holds the new CA; every Certificate re-issued from it
    stage, _changed = rotate(control_plane, tmp_path, extra)
    assert stage == "switched"
    after = revisions(api_client, namespace, names)
    assert all(after[n] == before[n] + 1 for n in names), (before, after)
    both = bundle(api_client, namespace)
    assert both == old_root.decode() + new_root.decode()
    for name in names:
        pem = secret_pem(api_client, namespace, name)
        assert verifies(tmp_path, new_root, pem) and not verifies(tmp_path, old_root, pem)
        assert verifies(tmp_path, both, pem)

    # 3. drop old: only the new root is left in the bundle; a certificate from the old CA no longer verifies
    stage, _changed = rotate(control_plane, tmp_path, extra)
    assert stage == "done"
    final = bundle(api_client, namespace)
    assert final == new_root.decode()
    assert not verifies(tmp_path, final, old_root)  # the old CA is no longer trusted
    for name in names:
        assert verifies(tmp_path, final, secret_pem(api_client, namespace, name))

    # 4. re-running the last stage changes nothing
    stage, changed = rotate(control_plane, tmp_path, extra)
    assert stage == "done" and changed == 0
    assert revisions(api_client, namespace, names) == after
