# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""trust_manager_bundle against the real control plane: trust-manager v0.25 (controller and validating webhook)."""

from __future__ import annotations

import base64
import uuid

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from kubernetes import client

GROUP, VERSION = "trust.cert-manager.io", "v1alpha1"


def bundle_obj(api_client, name):
    try:
        return client.CustomObjectsApi(api_client).get_cluster_custom_object(GROUP, VERSION, "bundles", name)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def configmap(api_client, namespace, name):
    try:
        return client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def new_namespace(api_client, labels=None):
    name = "tm-" + uuid.uuid4().hex[:10]
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name, "labels": labels or {}}})
    return name


def test_bundle_of_the_collection_ca_reaches_every_namespace(api_client, run_module, tmp_path):
    ca = tmp_path / "ca"
    assert run_module("cluster_ca", {"ca_path": str(ca), "common_name": "trust CA", "encrypt_key": False})["changed"]
    root = x509.load_pem_x509_certificate((ca / "ca.crt").read_bytes())
    spaces = [new_namespace(api_client) for _index in range(2)]
    name = "trust-" + uuid.uuid4().hex[:6]
    args = {"name": name, "ca_paths": [str(ca)], "secret_key": "ca.crt",
            "pkcs12": {"key": "truststore.p12", "password": "changeit-p12", "profile": "Modern2023"}}

    check = run_module("trust_manager_bundle", args, check=True, diff=True)
    assert check["_status"] == "CHANGED" and bundle_obj(api_client, name) is None, check
    assert "inLine" in check["_diff"]

    first = run_module("trust_manager_bundle", args)
    assert first["_status"] == "CHANGED" and first["synced"] is True, first
    assert set(spaces) <= set(first["namespaces"]) and "default" in first["namespaces"]
    assert "changeit-p12" not in first["_stdout"]  # no_log masks the truststore password in the output
    for namespace in spaces + ["default"]:
        target = configmap(api_client, namespace, name)
        assert target is not None and target.metadata.labels["trust.cert-manager.io/bundle"] == name
        assert x509.load_pem_x509_certificate(target.data["ca.crt"].encode()) == root
        store = base64.b64decode(target.binary_data["truststore.p12"])
        loaded = pkcs12.load_pkcs12(store, b"changeit-p12")
        assert [c.certificate for c in loaded.additional_certs] == [root]
        secret = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
        assert base64.b64decode(secret.data["ca.crt"]) == target.data["ca.crt"].encode()

    again = run_module("trust_manager_bundle", args)
    assert again["_status"] == "SUCCESS" and again["changed"] is False, again

    # a namespace made later gets the targets too (trust-manager watches namespaces)
    late = new_namespace(api_client)
    assert run_module("trust_manager_bundle", args)["changed"] is False
    assert configmap(api_client, late, name) is not None


def test_selector_sources_and_bad_input(api_client, run_module, tmp_path):
    ca = tmp_path / "ca"
    run_module("cluster_ca", {"ca_path": str(ca), "common_name": "select CA", "encrypt_key": False})
    label = "sel-" + uuid.uuid4().hex[:6]
    chosen, other = new_namespace(api_client, {"trust": label}), new_namespace(api_client)
    partner = tmp_path / "partner"
    run_module("cluster_ca", {"ca_path": str(partner), "common_name": "partner CA", "encrypt_key": False})
    source = "partner-" + uuid.uuid4().hex[:6]
    client.CoreV1Api(api_client).create_namespaced_config_map("cert-manager", {
        "metadata": {"name": source}, "data": {"roots.pem": (partner / "ca.crt").read_text()}})
    name = "sel-" + uuid.uuid4().hex[:6]
    args = {"name": name, "ca_paths": [str(ca)], "namespace_selector": {"trust": label},
            "sources": [{"kind": "configmap", "name": source, "key": "roots.pem"}]}

    for bad, field in (({"sources": [{"kind": "configmap", "name": "no-such-" + source}]}, "sources[0].name"),
                       ({"namespace_selector": {"trust": "nowhere-" + label}}, "namespace_selector"),
                       ({"sources": [{"kind": "configmap", "name": source, "key": "missing.pem"}]}, "sources[0].key")):
        refused = run_module("trust_manager_bundle", dict(args, **bad))
        assert refused["_status"] == "FAILED!" and refused["msg"].startswith(field), refused
        assert bundle_obj(api_client, name) is None

    result = run_module("trust_manager_bundle", args)
    assert result["_status"] == "CHANGED" and result["namespaces"] == [chosen], result
    assert len(result["fingerprints"]) == 2
    assert configmap(api_client, chosen, name).data["ca.crt"].count("BEGIN CERTIFICATE") == 2
    assert configmap(api_client, other, name) is None

    # the source changes (the partner adds a root): trust-manager follows, the Bundle itself is unchanged
    extra = tmp_path / "extra"
    run_module("cluster_ca", {"ca_path": str(extra), "common_name": "partner CA 2", "encrypt_key": False})
    client.CoreV1Api(api_client).patch_namespaced_config_map(source, "cert-manager", {
        "data": {"roots.pem": (partner / "ca.crt").read_text() + (extra / "ca.crt").read_text()}})
    followed = run_module("trust_manager_bundle", args)
    assert followed["changed"] is False and len(followed["fingerprints"]) == 3, followed
    assert configmap(api_client, chosen, name).data["ca.crt"].count("BEGIN CERTIFICATE") == 3

    gone = run_module("trust_manager_bundle", {"name": name, "state": "absent"})
    assert gone["changed"] is True and bundle_obj(api_client, name) is None


def test_the_webhook_is_real(api_client):
    """What the module never sends, trust-manager's own webhook refuses: a Bundle without sources."""
    try:
        client.CustomObjectsApi(api_client).create_cluster_custom_object(GROUP, VERSION, "bundles", {
            "apiVersion": "%s/%s" % (GROUP, VERSION), "kind": "Bundle",
            "metadata": {"name": "no-sources-" + uuid.uuid4().hex[:6]},
            "spec": {"sources": [], "target": {"configMap": {"key": "ca.crt"}}}})
    except client.ApiException as exc:
        assert exc.status in (400, 422) and "source" in exc.body.lower(), exc.body
    else:
        raise AssertionError("a Bundle without sources was accepted")
