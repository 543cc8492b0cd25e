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
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes import client

PUBLIC = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


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
                                     "intermediate": True, "permitted_dns": ["pki.test", "svc.cluster.local"],
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
    # the Secret holds a per-issuer intermediate of the root: not the CA's key, not the root's
    issuer_secret = tls_secret(api_client, namespace, "zone-ca")
    held = x509.load_pem_x509_certificates(issuer_secret["tls.crt"])
    assert issuer["ca_secret"]["intermediate"] is True
    assert held[0] != x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    assert held[0].extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert held[1].public_bytes(serialization.Encoding.PEM) == (ca_dir / "root.crt").read_bytes()
    held[0].verify_directly_issued_by(held[1])
    own = serialization.load_pem_private_key(issuer_secret["tls.key"], None).public_key()
    for name in ("ca.key", "root.key"):
        kept = serialization.load_pem_private_key((ca_dir / name).read_bytes(), b"zone-ca-pass").public_key()
        assert kept.public_bytes(*PUBLIC) != own.public_bytes(*PUBLIC)

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
    # (the host serves its full chain: its certificate comes from the CA's intermediate)
    seen = mtls(str(tmp_path / "node" / "node-fullchain.crt"), str(tmp_path / "node" / "node.key"), bundle,
                str(tmp_path / "pod-tls.crt"), str(tmp_path / "pod-tls.key"), str(tmp_path / "pod-ca.crt"),
                "host1.pki.test")
    assert ("DNS", "api.%s.svc.cluster.local" % namespace) in seen["client"]["subjectAltName"]
    assert ("DNS", "host1.pki.test") in seen["server"]["subjectAltName"]
    # and the other way round: the pod serves, the host is the client
    seen = mtls(str(tmp_path / "pod-tls.crt"), str(tmp_path / "pod-tls.key"), str(tmp_path / "pod-ca.crt"),
                str(tmp_path / "node" / "node-fullchain.crt"), str(tmp_path / "node" / "node.key"), bundle,
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
        mtls(str(tmp_path / "node" / "node-fullchain.crt"), str(tmp_path / "node" / "node.key"), bundle,
             str(tmp_path / "intruder.crt"), str(tmp_path / "intruder.key"), bundle, "host1.pki.test")


def test_an_existing_different_ca_secret_is_not_overwritten(api_client, run_module, namespace, tmp_path):
    for name in ("ca1", "ca2"):
        assert run_module("cluster_ca", {"ca_path": str(tmp_path / name), "common_name": name, "encrypt_key": False,
                                         "intermediate": True,
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
    chain = x509.load_pem_x509_certificates(tls_secret(api_client, namespace, "zone-ca")["tls.crt"])
    assert chain[1].public_bytes(serialization.Encoding.PEM) == (tmp_path / "ca2" / "root.crt").read_bytes()


def test_the_root_key_goes_into_no_secret_unless_asked(api_client, run_module, namespace, tmp_path):
    assert run_module("cluster_ca", {"ca_path": str(tmp_path / "root-only"), "common_name": "root only",
                                     "encrypt_key": False, "permitted_dns": ["svc.cluster.local"]})["changed"]
    args = {"name": "zone", "namespace": namespace, "type": "ca", "ca_secret_name": "zone-ca",
            "ca_path": str(tmp_path / "root-only")}
    refused = run_module("cert_manager_issuer", args)
    assert refused["_status"] == "FAILED!" and "ca_path" in refused["msg"] and "intermediate: true" in refused["msg"]
    secrets = client.CoreV1Api(api_client).list_namespaced_secret(namespace).items
    assert "zone-ca" not in [s.metadata.name for s in secrets]  # nothing written
    # asked for explicitly, the CA's own key goes in (as before 0.4.0) ...
    legacy = run_module("cert_manager_issuer", dict(args, ca_secret_holds="signing_ca"))
    assert legacy["ready"] and legacy["ca_secret"]["intermediate"] is False
    own = (tmp_path / "root-only" / "ca.crt").read_bytes()
    assert tls_secret(api_client, namespace, "zone-ca")["tls.crt"].startswith(own)
    # ... and a later run with the default keeps that Secret (and warns) rather than breaking the issuer
    kept = run_module("cert_manager_issuer", args)
    assert kept["_status"] == "SUCCESS" and kept["ca_secret"]["changed"] is False


def test_the_intermediate_is_narrowed_and_never_wider_than_the_root(api_client, run_module, namespace, tmp_path):
    assert run_module("cluster_ca", {"ca_path": str(tmp_path / "ca"), "common_name": "zone", "encrypt_key": False,
                                     "intermediate": True, "permitted_dns": ["svc.cluster.local"],
                                     "permitted_ip_ranges": ["10.96.0.0/12"]})["changed"]
    args = {"name": "zone", "namespace": namespace, "type": "ca", "ca_secret_name": "zone-ca",
            "ca_path": str(tmp_path / "ca")}
    wider = run_module("cert_manager_issuer", dict(args, intermediate_permitted_dns=["example.com"]))
    assert wider["_status"] == "FAILED!" and "intermediate_permitted_dns" in wider["msg"]
    narrowed = run_module("cert_manager_issuer", dict(args, intermediate_permitted_dns=[
        "%s.svc.cluster.local" % namespace]))
    assert narrowed["ready"] and narrowed["ca_secret"]["renewed_because"] == "none yet"
    held = x509.load_pem_x509_certificates(tls_secret(api_client, namespace, "zone-ca")["tls.crt"])[0]
    constraints = held.extensions.get_extension_for_class(x509.NameConstraints).value
    assert [n.value for n in constraints.permitted_subtrees if isinstance(n, x509.DNSName)] == [
        "%s.svc.cluster.local" % namespace]
    assert [str(n.value) for n in constraints.permitted_subtrees if isinstance(n, x509.IPAddress)] == [
        "10.96.0.0/12"]  # kinds not narrowed keep the root's
    # other constraints asked: a new intermediate replaces it (same root, no replace_ca_secret needed)
    again = run_module("cert_manager_issuer", dict(args))
    assert again["ca_secret"]["changed"] and "constraints" in again["ca_secret"]["renewed_because"]
