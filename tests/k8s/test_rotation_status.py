# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/rotation_status.yml: one report of CAs, node certificates, keyrings and cert-manager."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from kubernetes import client

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "rotation_status.yml"


def test_the_report_lists_everything_with_its_next_step(api_client, control_plane, run_module, namespace, tmp_path):
    ca = tmp_path / "ca"
    assert run_module("cluster_ca", {"ca_path": str(ca), "common_name": "status CA", "encrypt_key": False,
                                     "intermediate": True,
                                     "permitted_dns": ["pki.test", "svc.cluster.local"]})["changed"]
    assert run_module("node_certificate", {"ca_path": str(ca), "path": str(tmp_path / "node"), "identity_from": [],
                                           "dns_names": ["host1.pki.test"], "valid_for": "90d"})["changed"]
    for state in ("present", "added"):  # on an empty keyring "added" only creates r1
        assert run_module("keyring", {"path": str(tmp_path / "ring"), "kind": "symmetric", "state": state})["changed"]
    assert run_module("k8s_keyring", {"name": "session", "namespace": namespace, "kind": "password"})["changed"]
    revoked = run_module("revoke", {"ca_path": str(ca), "serials": [run_module("certificate_info", {
        "path": str(tmp_path / "node" / "node.crt")})["serial"]]})
    assert revoked["changed"] and revoked["crl_number"] == 1
    assert run_module("node_certificate", {"ca_path": str(ca), "path": str(tmp_path / "node"), "identity_from": [],
                                           "dns_names": ["host1.pki.test"], "valid_for": "90d"})["changed"]
    assert run_module("cert_manager_issuer", {"name": "zone", "namespace": namespace, "type": "ca",
                                              "ca_secret_name": "zone-ca", "cluster_ca_path": str(ca)})["ready"]
    assert run_module("cert_manager_certificate", {"name": "api", "namespace": namespace, "issuer_name": "zone",
                                                   "dns_names": ["api.%s.svc.cluster.local" % namespace]})["ready"]
    # a Certificate whose issuer does not exist never becomes Ready (made directly: the module would refuse it)
    orphan = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "orphan"},
              "spec": {"secretName": "orphan", "dnsNames": ["orphan.%s.svc.cluster.local" % namespace],
                       "issuerRef": {"name": "missing", "kind": "Issuer"}}}
    client.CustomObjectsApi(api_client).create_namespaced_custom_object("cert-manager.io", "v1", namespace,
                                                                        "certificates", orphan)

    (tmp_path / "inventory.ini").write_text("[pki_nodes]\nlocalhost ansible_connection=local\n")
    report = tmp_path / "status.md"
    extra = {"pki_ca_path": str(ca), "pki_node_path": str(tmp_path / "node"),
             "status_keyrings": [str(tmp_path / "ring")], "status_kubernetes": True,
             "status_namespaces": [namespace], "status_warn_within": "100d", "status_report": str(report),
             "ansible_python_interpreter": os.sys.executable}
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", **control_plane.env())
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "inventory.ini"), str(PLAYBOOK),
                           "-e", json.dumps(extra)], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    text = report.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| status")]

    def row(kind, name_part):
        found = [r for r in rows if "| %s |" % kind in r and name_part in r]
        assert len(found) == 1, (kind, name_part, text)
        return [cell.strip() for cell in found[0].strip("|").split("|")]

    assert row("ca", "status CA")[0] == "ok"
    crl = row("crl", "CRL 1 (1 revoked)")  # 7 days to its next update: outside the 3-day CRL window
    assert crl[0] == "ok" and crl[4]
    node = row("node_certificate", "host1")  # 90 days left, inside the 100-day window
    assert node[0] == "due" and node[6] == "renew (node_certificate)"
    ring = row("keyring", "ring")
    assert ring[0] == "ok" and ring[5] == "added" and ring[6] == "promote"
    assert row("k8s_keyring", "session")[5] == "single"
    api = row("cert_manager_certificate", "| api |")
    assert api[0] == "due" and api[6] == "renewal by cert-manager" and api[7]  # 24h certificate: renewal time set
    assert row("cert_manager_certificate", "orphan")[0] == "not_ready"
    # most urgent first
    order = [r.split("|")[1].strip() for r in rows]
    assert order == sorted(order, key=["expired", "blocked", "not_ready", "due", "ok"].index)
