# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One trust zone: the Ansible cluster CA signs a host certificate (node_certificate) and, through a
cert-manager CA Issuer, a pod certificate; the two complete a real mutual-TLS handshake."""

from __future__ import annotations

import base64
import socket
import ssl
import threading

import pytest
from kubernetes import client


def tls_secret(api_client, namespace, name):
    obj = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v) for k, v in obj.data.items()}


def mtls(server_cert, server_key, server_ca, client_cert, client_key, client_ca, server_name):
    """Serve once with client-cert auth on 127.0.0.1 and connect; returns (client peer CN, server peer SANs)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server_cert, server_key)
    server_ctx.load_verify_locations(server_ca)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=client_ca)
    client_ctx.load_cert_chain(client_cert, client_key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen = {}

    def serve():
        conn = listener.accept()[0]
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["client"] = tls.getpeercert()
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            seen["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                assert tls.recv(2) == b"ok"
                seen["server"] = tls.getpeercert()
    finally:
        thread.join(10)
        listener.close()
    if "error" in seen:
        raise seen["error"]
    return seen


def test_host_and_pod_share_the_cluster_ca(api_client, run_module, namespace, tmp_path):
    ca_dir = tmp_path / "ca"
    made = run_module("cluster_ca", {"ca_path": str(ca_dir), "common_name": "zone CA", "ca_passphrase": "zone-ca-pass",
                                     "permitted_dns": ["pki.test", "svc.cluster.local"],
                                     "permitted_ip_ranges": ["127.0.0.0/8"]})
    assert made["changed"] is True, made
    node = run_module("node_certificate", {"ca_path": str(ca_dir), "ca_passphrase": "zone-ca-pass",
                                           "path": str(tmp_path / "node"), "identity_from": [],
                                           "dns_names": ["host1.pki.test"], "ip_addresses": ["127.0.0.1"]})
    assert node["changed"] is True, node

    issuer = run_module("cert_manager_issuer", {
        "name": "zone-ca", "namespace": namespace, "type": "ca", "ca_secret_name": "zone-ca",
        "ca_path": str(ca_dir), "ca_passphrase": "zone-ca-pass"})
    assert issuer["changed"] is True and issuer["ready"] is True, issuer
    assert "zone-ca-pass" not in issuer["_stdout"]
    assert "PRIVATE KEY" not in issuer["_stdout"]  # the key never appears in results
    again = run_module("cert_manager_issuer", {
        "name": "zone-ca", "namespace": namespace, "type": "ca", "ca_secret_name": "zone-ca",
        "ca_path": str(ca_dir), "ca_passphrase": "zone-ca-pass"})
    assert again["changed"] is False and again["ca_secret"]["changed"] is False

    pod = run_module("cert_manager_certificate", {
        "name": "api", "namespace": namespace, "issuer_name": "zone-ca",
        "dns_names": ["api.%s.svc.cluster.local" % namespace],
        "usages": ["client auth", "server auth", "digital signature"]})
    assert pod["ready"] is True, pod
    pod_secret = tls_secret(api_client, namespace, "api")
    for name, data in pod_secret.items():
        (tmp_path / ("pod-" + name)).write_bytes(data)
    bundle = str(tmp_path / "node" / "ca-bundle.crt")
    root = (ca_dir / "root.crt").read_bytes()
    assert pod_secret["ca.crt"] == root

    # the host serves, the pod is the client; each verifies the other against the same bundle
    seen = mtls(str(tmp_path / "node" / "node.crt"), str(tmp_path / "node" / "node.key"), bundle,
                str(tmp_path / "pod-tls.crt"), str(tmp_path / "pod-tls.key"), str(tmp_path / "pod-ca.crt"),
                "host1.pki.test")
    assert ("DNS", "api.%s.svc.cluster.local" % namespace) in seen["client"]["subjectAltName"]
    assert ("DNS", "host1.pki.test") in seen["server"]["subjectAltName"]
    # and the other way round: the pod serves, the host is the client
    seen = mtls(str(tmp_path / "pod-tls.crt"), str(tmp_path / "pod-tls.key"), str(tmp_path / "pod-ca.crt"),
                str(tmp_path / "node" / "node.crt"), str(tmp_path / "node" / "node.key"), bundle,
                "api.%s.svc.cluster.local" % namespace)
    assert ("DNS", "host1.pki.test") in seen["client"]["subjectAltName"]

    # negative control: a client from another CA (cert-manager self-signed) is refused by the host
    run_module("cert_manager_issuer", {"name": "other-" + namespace, "kind": "ClusterIssuer"})
    other = run_module("cert_manager_certificate", {
        "name": "intruder", "namespace": namespace, "issuer_name": "other-" + namespace,
        "issuer_kind": "ClusterIssuer", "dns_names": ["intruder.%s.svc.cluster.local" % namespace],
        "usages": ["client auth", "digital signature"]})
    assert other["ready"] is True
    intruder = tls_secret(api_client, namespace, "intruder")
    (tmp_path / "intruder.crt").write_bytes(intruder["tls.crt"])
    (tmp_path / "intruder.key").write_bytes(intruder["tls.key"])
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        mtls(str(tmp_path / "node" / "node.crt"), str(tmp_path / "node" / "node.key"), bundle,
             str(tmp_path / "intruder.crt"), str(tmp_path / "intruder.key"), bundle, "host1.pki.test")


def test_an_existing_different_ca_secret_is_not_overwritten(api_client, run_module, namespace, tmp_path):
    for name in ("ca1", "ca2"):
        assert run_module("cluster_ca", {"ca_path": str(tmp_path / name), "common_name": name, "encrypt_key": False,
                                         "permitted_dns": ["svc.cluster.local"]})["changed"]
    args = {"name": "zone", "namespace": namespace, "type": "ca", "ca_secret_name": "zone-ca",
            "ca_path": str(tmp_path / "ca1")}
    assert run_module("cert_manager_issuer", args)["ready"] is True
    before = tls_secret(api_client, namespace, "zone-ca")
    refused = run_module("cert_manager_issuer", dict(args, ca_path=str(tmp_path / "ca2")))
    assert refused["_status"] == "FAILED!"
    assert "already holds a different CA certificate" in refused["msg"] and "replace_ca_secret" in refused["msg"]
    assert tls_secret(api_client, namespace, "zone-ca") == before
    replaced = run_module("cert_manager_issuer", dict(args, ca_path=str(tmp_path / "ca2"),
                                                      replace_ca_secret=True))
    assert replaced["changed"] is True and replaced["ready"] is True
    assert tls_secret(api_client, namespace, "zone-ca")["tls.crt"] == (tmp_path / "ca2" / "ca.crt").read_bytes()
