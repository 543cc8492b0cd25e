# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cert_manager_pki role through playbooks/kubernetes.yml, against the real control plane."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

from kubernetes import client

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "kubernetes.yml"


def playbook(plane, *extra, check=False):
    cmd = ["ansible-playbook", str(PLAYBOOK), "-e", "ansible_python_interpreter=%s" % os.sys.executable]
    for item in extra:
        cmd += ["-e", item if isinstance(item, str) else json.dumps(item)]
    if check:
        cmd.append("--check")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", **plane.env())
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    recap = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout)
    assert recap, proc.stdout + proc.stderr
    return proc, {k: int(v) for k, v in zip(("ok", "changed", "unreachable", "failed"), recap.groups())}


def tls_secret(api_client, namespace, name):
    obj = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v) for k, v in obj.data.items()}, obj


def openssl_verify(tmp_path, ca, cert, name):
    (tmp_path / "ca.pem").write_bytes(ca)
    (tmp_path / "cert.pem").write_bytes(cert)
    # tls.crt is the leaf and its chain (a per-namespace intermediate with a cluster CA): untrusted, the root decides
    return subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", str(tmp_path / "ca.pem"),
                           "-untrusted", str(tmp_path / "cert.pem"), "-verify_hostname", name,
                           str(tmp_path / "cert.pem")],
                          capture_output=True, text=True, check=False)


def test_kubernetes_playbook_with_cert_manager_cas(api_client, control_plane, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    services = [{"name": "akka-seed", "namespace": "akka-" + suffix, "pkcs12": True, "reloader": True},
                {"name": "akka-member", "namespace": "akka-" + suffix, "pkcs12": True, "reloader": True},
                {"name": "orders", "namespace": "shop-" + suffix, "reloader": True}]
    extra = {"cert_manager_pki_services": services, "cert_manager_pki_selfsigned_issuer": "selfsigned-" + suffix}

    # check mode on a fresh cluster: it passes, reports what it would do, and creates nothing
    proc, recap = playbook(control_plane, extra, check=True)
    assert recap["failed"] == 0 and recap["changed"] > 0, proc.stdout
    namespaces = [n.metadata.name for n in client.CoreV1Api(api_client).list_namespace().items]
    assert "akka-" + suffix not in namespaces and "shop-" + suffix not in namespaces

    proc, recap = playbook(control_plane, extra)
    assert recap["failed"] == 0 and recap["changed"] > 0, proc.stdout
    assert "mount Secret akka-seed-tls" in proc.stdout

    cas = {}
    for service in services:
        ns = service["namespace"]
        if ns not in cas:
            cas[ns] = tls_secret(api_client, ns, "sbd-pki-cluster-ca")[0]["tls.crt"]
        data, obj = tls_secret(api_client, ns, service["name"] + "-tls")
        fqdn = "%s.%s.svc.cluster.local" % (service["name"], ns)
        result = openssl_verify(tmp_path, cas[ns], data["tls.crt"], fqdn)
        assert result.returncode == 0, result.stdout + result.stderr
        assert obj.metadata.annotations.get("reloader.stakater.com/match") == "true"
        assert ("keystore.p12" in data) == bool(service.get("pkcs12"))
        text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=data["tls.crt"], capture_output=True,
                              check=True).stdout.decode()
        assert "URI:spiffe://cluster.local/ns/%s/sa/%s" % (ns, service["name"]) in text
    # a CA per namespace: the akka CA does not vouch for the shop service
    shop = tls_secret(api_client, "shop-" + suffix, "orders-tls")[0]["tls.crt"]
    assert openssl_verify(tmp_path, cas["akka-" + suffix], shop,
                          "orders.shop-%s.svc.cluster.local" % suffix).returncode != 0
    # and each namespace CA may only sign below <namespace>.svc.cluster.local
    ca_text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=cas["akka-" + suffix],
                             capture_output=True, check=True).stdout.decode()
    assert "Permitted:" in ca_text and "DNS:akka-%s.svc.cluster.local" % suffix in ca_text

    proc, recap = playbook(control_plane, extra)
    assert recap["failed"] == 0 and recap["changed"] == 0, proc.stdout
    proc, recap = playbook(control_plane, extra, check=True)
    assert recap["failed"] == 0 and recap["changed"] == 0, proc.stdout


def test_kubernetes_playbook_on_the_ansible_cluster_ca(api_client, control_plane, run_module, tmp_path):
    ca_dir = tmp_path / "ca"
    assert run_module("cluster_ca", {"ca_path": str(ca_dir), "common_name": "zone CA", "encrypt_key": False,
                                     "intermediate": True, "permitted_dns": ["svc.cluster.local"]})["changed"]
    namespace = "zone-" + uuid.uuid4().hex[:6]
    extra = {"k8s_ca_path": str(ca_dir), "cert_manager_pki_services": [{"name": "api", "namespace": namespace}]}
    proc, recap = playbook(control_plane, extra)
    assert recap["failed"] == 0 and recap["changed"] > 0, proc.stdout
    data = tls_secret(api_client, namespace, "api-tls")[0]
    assert data["ca.crt"] == (ca_dir / "root.crt").read_bytes()
    result = openssl_verify(tmp_path, (ca_dir / "root.crt").read_bytes(), data["tls.crt"],
                            "api.%s.svc.cluster.local" % namespace)
    assert result.returncode == 0, result.stdout + result.stderr
    proc, recap = playbook(control_plane, extra)
    assert recap["failed"] == 0 and recap["changed"] == 0, proc.stdout


def test_the_role_after_a_rotation_of_its_cert_manager_ca(api_client, control_plane, run_module):
    """cert_manager_ca_rotation moves a namespace's Issuer to a new CA Certificate; the role never moves it back,
    and once told the new name it applies the same spec under it without cert-manager issuing anything."""
    suffix = uuid.uuid4().hex[:6]
    ns = "rot-" + suffix
    extra = {"cert_manager_pki_services": [{"name": "api", "namespace": ns}],
             "cert_manager_pki_create_namespaces": True, "cert_manager_pki_selfsigned_issuer": "selfsigned-" + suffix}
    proc, recap = playbook(control_plane, extra)
    assert recap["failed"] == 0, proc.stdout
    objects = client.CustomObjectsApi(api_client)

    rotated = run_module("cert_manager_ca_rotation", {
        "namespace": ns, "issuer": "sbd-pki-cluster-ca", "new_ca_certificate": "sbd-pki-cluster-ca-2",
        "bundle": "trust-" + suffix, "switch_after": "0", "drop_after": "0"})
    assert rotated["stage"] == "done" and rotated["reissued"] == ["api"], rotated
    new_ca = objects.get_namespaced_custom_object("cert-manager.io", "v1", ns, "certificates", "sbd-pki-cluster-ca-2")

    # the role as it was: refused at its first Kubernetes write, naming the variable; the old CA is not made again
    proc, recap = playbook(control_plane, extra)
    assert recap["failed"] == 1 and "cert_manager_pki_ca_certificate: sbd-pki-cluster-ca-2" in proc.stdout, proc.stdout
    try:
        objects.get_namespaced_custom_object("cert-manager.io", "v1", ns, "certificates", "sbd-pki-cluster-ca")
        raise AssertionError("the role made the old CA again")
    except client.ApiException as exc:
        assert exc.status == 404
    issuer = objects.get_namespaced_custom_object("cert-manager.io", "v1", ns, "issuers", "sbd-pki-cluster-ca")
    assert issuer["spec"]["ca"]["secretName"] == "sbd-pki-cluster-ca-2"

    # told the new name: nothing changes, and the new CA is not issued again
    proc, recap = playbook(control_plane, dict(extra, cert_manager_pki_ca_certificate="sbd-pki-cluster-ca-2"))
    assert recap["failed"] == 0 and recap["changed"] == 0, proc.stdout
    again = objects.get_namespaced_custom_object("cert-manager.io", "v1", ns, "certificates", "sbd-pki-cluster-ca-2")
    assert again["status"]["revision"] == new_ca["status"]["revision"]
    assert again["metadata"]["generation"] == new_ca["metadata"]["generation"]
