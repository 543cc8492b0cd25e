# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A CA Issuer's rotation with trust-manager carrying the trust bundle, under live TLS traffic.

A server serves the Certificate its Secret holds now (read from the API server every 0.2 s, as a pod whose
Secret volume is updated would); a client in another namespace trusts what the Bundle's ConfigMap there
holds now (read the same way) and handshakes all the time. Through trust both -> switched -> done no
handshake may fail; at the end the old root is refused.
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import tempfile
import threading
import time
import uuid

from kubernetes import client

from test_ca_rotation import rotate  # pylint: disable=wrong-import-order

READ_EVERY = 0.2


class Live:
    """The server and client threads; records every handshake's outcome."""

    def __init__(self, api_client, server_ns, client_ns, secret, bundle, server_name):
        self.core = client.CoreV1Api(api_client)
        self.server_ns, self.client_ns, self.secret, self.bundle = server_ns, client_ns, secret, bundle
        self.server_name = server_name
        self.stop = threading.Event()
        self.server_ctx = None
        self.trust = ""
        self.ok = 0
        self.failures = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.5)
        self.port = self.listener.getsockname()[1]
        self.errors = []

    def _read(self):
        secret = self.core.read_namespaced_secret(self.secret, self.server_ns)
        pem = base64.b64decode(secret.data["tls.crt"]) + base64.b64decode(secret.data["tls.key"])
        if pem != getattr(self, "_served_pem", None):
            with tempfile.NamedTemporaryFile(suffix=".pem") as handle:
                handle.write(pem)
                handle.flush()
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(handle.name)
            self.server_ctx, self._served_pem = ctx, pem
        self.trust = self.core.read_namespaced_config_map(self.bundle, self.client_ns).data["ca.crt"]

    def _reader(self):
        while not self.stop.is_set():
            try:
                self._read()
            except Exception as exc:  # pylint: disable=broad-except
                self.errors.append("read: %r" % exc)  # an API hiccup is not a TLS failure; counted apart
            self.stop.wait(READ_EVERY)

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                continue
            try:
                with self.server_ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (OSError, ssl.SSLError):
                conn.close()  # the client records the failure

    def _client(self):
        while not self.stop.is_set():
            ctx = ssl.create_default_context(cadata=self.trust)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    with ctx.wrap_socket(sock, server_hostname=self.server_name) as tls:
                        assert tls.recv(2) == b"ok"
                self.ok += 1
            except (OSError, ssl.SSLError, AssertionError) as exc:
                self.failures.append("%s: %r" % (time.strftime("%H:%M:%S"), exc))
            self.stop.wait(0.05)

    def __enter__(self):
        self._read()
        self.threads = [threading.Thread(target=t, daemon=True) for t in (self._reader, self._serve, self._client)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        self.listener.close()


def handshake(cert_key_pem: bytes, trust: str, server_name: str) -> bool:
    """One handshake of a server with ``cert_key_pem`` against a client trusting ``trust``."""
    with tempfile.NamedTemporaryFile(suffix=".pem") as handle:
        handle.write(cert_key_pem)
        handle.flush()
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(handle.name)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _addr = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError):
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=5) as sock:
            with ssl.create_default_context(cadata=trust).wrap_socket(sock, server_hostname=server_name) as tls:
                return tls.recv(2) == b"ok"
    except ssl.SSLCertVerificationError:
        return False
    finally:
        thread.join(5)
        listener.close()


def test_ca_issuer_rotation_through_a_trust_manager_bundle_without_a_failed_handshake(
        api_client, control_plane, run_module, tmp_path):
    core = client.CoreV1Api(api_client)
    label = "rot-" + uuid.uuid4().hex[:6]
    server_ns, client_ns, outside = ("tr-%s-%s" % (role, uuid.uuid4().hex[:6]) for role in ("srv", "cli", "out"))
    for name in (server_ns, client_ns):
        core.create_namespace({"metadata": {"name": name, "labels": {"sbd-trust": label}}})
    core.create_namespace({"metadata": {"name": outside}})
    bundle_name = "trust-" + label
    old_ca, new_ca = tmp_path / "ca-old", tmp_path / "ca-new"
    assert run_module("cluster_ca", {"ca_path": str(old_ca), "common_name": "live CA 1", "encrypt_key": False,
                                     "intermediate": True, "permitted_dns": ["svc.cluster.local"]})["changed"]
    assert run_module("cert_manager_issuer", {"name": "zone", "namespace": server_ns, "type": "ca",
                                              "ca_secret_name": "zone-ca", "ca_path": str(old_ca)})["ready"]
    server_name = "api.%s.svc.cluster.local" % server_ns
    assert run_module("cert_manager_certificate", {"name": "api", "namespace": server_ns, "issuer_name": "zone",
                                                   "dns_names": [server_name]})["ready"]
    # before the rotation: the bundle as trust-manager delivers it, from the old CA alone
    first = run_module("k8s_trust_bundle", {"name": bundle_name, "namespace": server_ns, "ca_paths": [str(old_ca)],
                                            "distribution": "auto", "namespace_selector": {"sbd-trust": label}})
    assert first["distribution"] == "trust_manager" and first["namespaces"] == sorted([server_ns, client_ns]), first
    secret = core.read_namespaced_secret("api", server_ns)
    old_pair = base64.b64decode(secret.data["tls.crt"]) + base64.b64decode(secret.data["tls.key"])

    extra = {"ca_rotation_nodes": False, "ca_rotation_old_ca_path": str(old_ca), "ca_rotation_new_ca_path": str(new_ca),
             "ca_rotation_new_ca": {"common_name": "live CA 2", "encrypt_key": False, "intermediate": True,
                                    "permitted_dns": ["svc.cluster.local"]},
             "ca_rotation_switch_after": "0", "ca_rotation_drop_after": "0", "ca_rotation_rounds": 1,
             "ca_rotation_trust_namespace_selector": {"sbd-trust": label},
             "ca_rotation_cert_manager": [{"namespace": server_ns, "issuer": "zone", "ca_secret": "zone-ca",
                                           "bundle": bundle_name}]}
    stages = []
    with Live(api_client, server_ns, client_ns, "api", bundle_name, server_name) as live:
        for _stage in range(3):
            time.sleep(2)  # traffic on each stage before the next
            stages.append(rotate(control_plane, tmp_path, extra)[0])
        time.sleep(2)
        # a client that saw the old bundle keeps working through the switch; the new root is there from the start
    assert stages == ["trust_both", "switched", "done"], stages
    assert live.failures == [], live.failures[:5]
    assert live.ok > 50, live.ok
    assert live.errors == [], live.errors[:5]

    final = core.read_namespaced_config_map(bundle_name, client_ns).data["ca.crt"]
    new_root = (new_ca / "root.crt").read_text()
    assert final.strip() == new_root.strip()  # trust-manager drops the final newline
    bundle = client.CustomObjectsApi(api_client).get_cluster_custom_object(
        "trust.cert-manager.io", "v1alpha1", "bundles", bundle_name)
    assert bundle["spec"]["sources"] == [{"inLine": new_root}]
    # the old root is refused at the end; the certificate served now is trusted
    assert not handshake(old_pair, final, server_name)
    secret = core.read_namespaced_secret("api", server_ns)
    assert handshake(base64.b64decode(secret.data["tls.crt"]) + base64.b64decode(secret.data["tls.key"]),
                     final, server_name)
    # a namespace the selector leaves out never got the bundle
    try:
        core.read_namespaced_config_map(bundle_name, outside)
        raise AssertionError("namespace %s got the bundle" % outside)
    except client.ApiException as exc:
        assert exc.status == 404
    # a rerun at the last stage changes nothing
    stage, changed = rotate(control_plane, tmp_path, extra)
    assert stage == "done" and changed == 0
    assert os.path.exists(str(new_ca) + ".rotation.json")


def test_rotation_of_a_ca_that_cert_manager_issued_without_a_failed_handshake(api_client, run_module):
    """The seed recipe (self-signed ClusterIssuer -> CA Certificate -> CA Issuer), rotated in stages."""
    core, objects = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
    label = "cm-" + uuid.uuid4().hex[:6]
    server_ns, client_ns = ("tc-%s-%s" % (role, uuid.uuid4().hex[:6]) for role in ("srv", "cli"))
    for name in (server_ns, client_ns):
        core.create_namespace({"metadata": {"name": name, "labels": {"sbd-trust": label}}})
    seed = "seed-" + label
    assert run_module("cert_manager_issuer", {"name": seed, "kind": "ClusterIssuer", "type": "self_signed"})["ready"]
    assert run_module("cert_manager_certificate", {
        "name": "zone-ca", "namespace": server_ns, "is_ca": True, "common_name": "zone CA " + label,
        "issuer_name": seed, "issuer_kind": "ClusterIssuer", "valid_for": "2160h"})["ready"]
    assert run_module("cert_manager_issuer", {"name": "zone", "namespace": server_ns, "type": "ca",
                                              "ca_secret_name": "zone-ca"})["ready"]
    server_name = "api.%s.svc.cluster.local" % server_ns
    assert run_module("cert_manager_certificate", {"name": "api", "namespace": server_ns, "issuer_name": "zone",
                                                   "dns_names": [server_name]})["ready"]
    old_root = base64.b64decode(core.read_namespaced_secret("zone-ca", server_ns).data["ca.crt"]).decode()
    bundle_name = "trust-" + label
    # the trust distribution the cluster had before: a Bundle of the old root for the labelled namespaces
    objects.create_cluster_custom_object("trust.cert-manager.io", "v1alpha1", "bundles", {
        "apiVersion": "trust.cert-manager.io/v1alpha1", "kind": "Bundle", "metadata": {"name": bundle_name},
        "spec": {"sources": [{"inLine": old_root}], "target": {
            "configMap": {"key": "ca.crt"}, "namespaceSelector": {"matchLabels": {"sbd-trust": label}}}}})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_config_map(bundle_name, client_ns)
            break
        except client.ApiException:
            time.sleep(0.5)
    secret = core.read_namespaced_secret("api", server_ns)
    old_pair = base64.b64decode(secret.data["tls.crt"]) + base64.b64decode(secret.data["tls.key"])

    args = {"namespace": server_ns, "issuer": "zone", "new_ca_certificate": "zone-ca-2", "bundle": bundle_name,
            "namespace_selector": {"sbd-trust": label}, "switch_after": "4s", "drop_after": "4s",
            "force_conflicts": True}  # the Bundle was made by hand (another field manager): taken over knowingly
    check = run_module("cert_manager_ca_rotation", args, check=True)
    assert check["_status"] == "CHANGED" and check["stage"] == "trust_both", check
    try:
        objects.get_namespaced_custom_object("cert-manager.io", "v1", server_ns, "certificates", "zone-ca-2")
        raise AssertionError("check mode made the new CA")
    except client.ApiException as exc:
        assert exc.status == 404

    results = []
    with Live(api_client, server_ns, client_ns, "api", bundle_name, server_name) as live:
        for _stage in range(3):
            time.sleep(5)  # past each gate's waiting time, with traffic throughout
            results.append(run_module("cert_manager_ca_rotation", args))
        time.sleep(2)
    assert [r.get("stage") for r in results] == ["trust_both", "switched", "done"], results
    assert results[1]["reissued"] == ["api"], results[1]
    assert live.failures == [], live.failures[:5]
    assert live.ok > 50 and live.errors == [], (live.ok, live.errors[:5])

    new_root = base64.b64decode(core.read_namespaced_secret("zone-ca-2", server_ns).data["ca.crt"]).decode()
    assert new_root.strip() != old_root.strip()
    final = core.read_namespaced_config_map(bundle_name, client_ns).data["ca.crt"]
    assert final.strip() == new_root.strip()
    issuer = objects.get_namespaced_custom_object("cert-manager.io", "v1", server_ns, "issuers", "zone")
    assert issuer["spec"]["ca"]["secretName"] == "zone-ca-2"
    for gone in (lambda: objects.get_namespaced_custom_object("cert-manager.io", "v1", server_ns, "certificates",
                                                              "zone-ca"),
                 lambda: core.read_namespaced_secret("zone-ca", server_ns)):
        try:
            gone()
            raise AssertionError("the old CA (or its key) is still there")
        except client.ApiException as exc:
            assert exc.status == 404
    assert not handshake(old_pair, final, server_name)
    rerun = run_module("cert_manager_ca_rotation", args)
    assert rerun["changed"] is False and rerun["stage"] == "done", rerun
