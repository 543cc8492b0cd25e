# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes use cases (_ops) on the in-memory API: check mode, reruns, diffs, conflicts, transport errors.

Options go through each module's own argument spec, so defaults and deprecated aliases are the real ones.
"""
from __future__ import annotations

import base64
import json

import pytest

pytest.importorskip("ansible")  # the use cases and their runner run on the controller, not on the nodes

import urllib3  # noqa: E402

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager as cm_ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops import k8s_keyring as keyring_ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops import k8s_objects as object_ops
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import labels
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.ca_secret import SecretStore
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import KubeTransportError, namespaced_path
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.objects import ATTEMPTS, write_with_retry
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.modules import (
    cert_manager_certificate, cert_manager_certificates, cert_manager_issuer, cert_manager_reissue, k8s_keyring,
    k8s_namespace, k8s_trust_bundle)

from fake_kube import cert_manager  # pylint: disable=wrong-import-order

CERTS = "/apis/cert-manager.io/v1/namespaces/prod/certificates"
ISSUER = "/apis/cert-manager.io/v1/namespaces/prod/issuers/prod-ca"
KEYRING = namespaced_path("v1", "secrets", "prod", "session")


def secret_keys(obj):
    return sorted((obj.get("data") or {}))


# -- namespace
def test_namespace_check_mode_stores_nothing_then_converges(kube, context):
    args = {"name": "akka", "labels": {"app.kubernetes.io/part-of": "akka-cluster"}}
    check = object_ops.ensure_namespace(context(k8s_namespace.ARGUMENT_SPEC, args, check_mode=True))
    assert check["changed"] is True and kube.objects == {}
    assert kube.writes() == [("PATCH", "/api/v1/namespaces/akka", True)]

    first = object_ops.ensure_namespace(context(k8s_namespace.ARGUMENT_SPEC, args))
    assert first["changed"] is True and first["diff"]["before"] == {}
    assert first["diff"]["after"]["metadata"]["labels"] == {"app.kubernetes.io/part-of": "akka-cluster"}
    assert "managedFields" not in first["namespace"]["metadata"]

    again = object_ops.ensure_namespace(context(k8s_namespace.ARGUMENT_SPEC, args))
    assert again["changed"] is False and "diff" not in again

    relabel = object_ops.ensure_namespace(context(k8s_namespace.ARGUMENT_SPEC, dict(args, labels={"tier": "a"}),
                                                  check_mode=True))
    assert relabel["changed"] is True
    assert relabel["diff"]["after"]["metadata"]["labels"]["tier"] == "a"
    assert "tier" not in kube.objects["/api/v1/namespaces/akka"]["metadata"]["labels"]


def test_namespace_name_is_checked_before_any_request(kube, context):
    with pytest.raises(PKIError) as err:
        object_ops.ensure_namespace(context(k8s_namespace.ARGUMENT_SPEC, {"name": "a.b"}))
    assert err.value.field == "name" and kube.calls == 0


# -- trust bundle
def test_trust_bundle_converges_and_diffs_the_pem(kube, context, make_ca):
    old, new = make_ca("Old CA"), make_ca("New CA")
    args = {"name": "trust", "namespace": "prod", "ca_paths": [old.path]}
    path = namespaced_path("v1", "configmaps", "prod", "trust")
    check = object_ops.ensure_trust_bundle(context(k8s_trust_bundle.ARGUMENT_SPEC, args, check_mode=True))
    assert check["changed"] is True and path not in kube.objects

    first = object_ops.ensure_trust_bundle(context(k8s_trust_bundle.ARGUMENT_SPEC, args))
    stored = kube.objects[path]
    assert stored["data"]["ca.crt"] == first["bundle"] and first["bundle"].count("BEGIN CERTIFICATE") == 1
    assert stored["metadata"]["labels"] == dict(labels.MANAGED_BY, **{labels.TRUST_BUNDLE_LABEL: "true"})
    assert object_ops.ensure_trust_bundle(context(k8s_trust_bundle.ARGUMENT_SPEC, args))["changed"] is False

    both = object_ops.ensure_trust_bundle(context(k8s_trust_bundle.ARGUMENT_SPEC,
                                                  dict(args, ca_paths=[old.path, new.path, old.path])))
    assert both["changed"] is True and len(both["fingerprints"]) == 2
    assert both["diff"]["before"] == first["bundle"] and both["diff"]["after"] == both["bundle"]
    assert both["diff"]["before_header"] == "ConfigMap prod/trust"


# -- Certificate
def leaf(**extra):
    args = {"name": "web", "namespace": "prod", "issuer_name": "prod-ca",
            "dns_names": ["web.prod.svc.cluster.local"], "valid_for": "24h", "renew_before": "16h"}
    args.update(extra)
    return args


@pytest.fixture
def issuer(kube):
    kube.controller = cert_manager
    kube.put_object(ISSUER, {"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                             "metadata": {"name": "prod-ca", "namespace": "prod"},
                             "spec": {"ca": {"secretName": "prod-ca"}}})
    return ISSUER


def test_certificate_check_mode_real_rerun_and_diff(kube, context, issuer):
    path = CERTS + "/web"
    check = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf(), check_mode=True))
    assert check["changed"] is True and path not in kube.objects
    assert all(dry for _method, _path, dry in kube.writes())

    first = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf()))
    assert first["changed"] is True and first["ready"] is True and first["revision"] == 1
    assert kube.objects[path]["spec"]["duration"] == "24h"

    again = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf()))
    assert again["changed"] is False and "diff" not in again and again["revision"] == 1

    version = kube.objects[path]["metadata"]["resourceVersion"]
    diff = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf(valid_for="2d"),
                                             check_mode=True))
    assert diff["changed"] is True
    assert diff["diff"]["before"]["spec"]["duration"] == "24h" and diff["diff"]["after"]["spec"]["duration"] == "48h"
    assert kube.objects[path]["metadata"]["resourceVersion"] == version


def test_certificate_deprecated_aliases_still_work(kube, context, issuer):
    old = {k: v for k, v in leaf().items() if k != "valid_for"}
    ctx = context(cert_manager_certificate.ARGUMENT_SPEC,
                  dict(old, duration="48h", allow_wildcards=True, dns_names=["*.web.prod.example"]))
    assert {d["msg"].split("'")[1] for d in ctx.deprecations} == {"duration", "allow_wildcards"}
    result = cm_ops.ensure_certificate(ctx)
    assert result["spec"]["duration"] == "48h" and result["spec"]["dnsNames"] == ["*.web.prod.example"]


def test_certificate_renew_issues_a_new_revision(kube, context, issuer):
    cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf()))
    check = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf(renew=True),
                                              check_mode=True))
    assert check["changed"] is True and check["revision"] == 1
    renewed = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf(renew=True)))
    assert renewed["changed"] is True and renewed["revision"] == 2 and renewed["ready"] is True


def test_certificate_missing_issuer_fails_before_applying(kube, context):
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf()))
    assert err.value.field == "issuer_name" and CERTS + "/web" not in kube.objects
    ctx = context(cert_manager_certificate.ARGUMENT_SPEC, leaf(), check_mode=True)
    assert cm_ops.ensure_certificate(ctx)["changed"] is True
    assert any("does not exist" in w for w in ctx.warnings)


def test_certificate_password_secret_made_once(kube, context, issuer):
    args = leaf(keystores={"pkcs12": {"password_secret_name": "pw", "create_password_secret": True}})
    first = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, args))
    password = kube.objects[namespaced_path("v1", "secrets", "prod", "pw")]["data"]["password"]
    assert first["password_secrets_created"] == ["pw"]
    again = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, args))
    assert again["changed"] is False and again["password_secrets_created"] == []
    assert kube.objects[namespaced_path("v1", "secrets", "prod", "pw")]["data"]["password"] == password


def bulk(n, **extra):
    return {"certificates": [leaf(name="svc%d" % i, dns_names=["svc%d.prod.svc.cluster.local" % i], **extra)
                             for i in range(n)]}


def test_certificates_in_bulk_check_mode_real_rerun_and_diff(kube, context, issuer):
    check = cm_ops.ensure_certificates(context(cert_manager_certificates.ARGUMENT_SPEC, bulk(5), check_mode=True))
    assert check["changed"] is True and not [p for p in kube.objects if p.startswith(CERTS)]
    assert all(dry for _method, _path, dry in kube.writes())
    first = cm_ops.ensure_certificates(context(cert_manager_certificates.ARGUMENT_SPEC, bulk(5)))
    assert first["changed"] and first["ready"] and [r["revision"] for r in first["certificates"]] == [1] * 5
    assert [r["name"] for r in first["certificates"]] == ["svc%d" % i for i in range(5)]
    assert len(first["diff"]) == 5 and first["diff"][0]["before_header"] == "Certificate prod/svc0"
    # the same spec as the single module makes
    single = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf(
        name="svc0", dns_names=["svc0.prod.svc.cluster.local"])))
    assert single["changed"] is False and single["spec"] == first["certificates"][0]["spec"]
    seen = len(kube.log)
    again = cm_ops.ensure_certificates(context(cert_manager_certificates.ARGUMENT_SPEC, bulk(5)))
    assert again["changed"] is False and again["diff"] == []
    assert [p for _method, p, _dry in kube.log[seen:]].count(ISSUER) == 1  # the issuer is read once for all
    # each Certificate is already as asked and applied by this field manager: nothing is sent again
    assert [(m, p) for m, p, _dry in kube.log[seen:] if m in ("PATCH", "PUT", "POST")] == []
    # one that another manager applied last (or that nobody applied) is applied again
    kube.objects[CERTS + "/svc2"]["metadata"]["managedFields"] = [{"manager": "someone-else", "operation": "Apply"}]
    seen = len(kube.log)
    cm_ops.ensure_certificates(context(cert_manager_certificates.ARGUMENT_SPEC, bulk(5)))
    assert [p for m, p, _dry in kube.log[seen:] if m == "PATCH"] == [CERTS + "/svc2"]
    changed = cm_ops.ensure_certificates(context(cert_manager_certificates.ARGUMENT_SPEC, bulk(5, valid_for="2d"),
                                                 check_mode=True))
    assert changed["diff"][0]["after"]["spec"]["duration"] == "48h"


@pytest.mark.parametrize("item, field", [
    ({"dns_names": ["*.com"]}, "certificates[3].dns_names"),
    ({"valid_for": "1h", "renew_before": "2h"}, "certificates[3].renew_before"),
    ({"issuer_name": "nowhere"}, "certificates[3].issuer_name"),
    ({"colour": "blue"}, "certificates[3]"),
    ({"wait_timeout": 5}, "certificates[3]"),
])
def test_one_bad_certificate_in_bulk_writes_nothing_and_is_named(kube, context, issuer, item, field):
    args = bulk(5)
    args["certificates"][3].update(item)
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_certificates(context(cert_manager_certificates.ARGUMENT_SPEC, args))
    assert err.value.field.startswith(field), err.value
    assert not [p for p in kube.objects if p.startswith(CERTS)]


def test_a_certificate_listed_twice_in_bulk_is_refused(kube, context, issuer):
    args = bulk(3)
    args["certificates"].append(dict(args["certificates"][1]))
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_certificates(context(cert_manager_certificates.ARGUMENT_SPEC, args))
    assert err.value.field == "certificates[3].name" and "certificates[1]" in err.value.problem


def test_certificates_in_bulk_that_never_become_ready_are_named(kube, context, issuer):
    kube.controller = None  # no cert-manager acting: nothing is issued
    args = dict(bulk(3), wait_timeout=1)
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_certificates(context(cert_manager_certificates.ARGUMENT_SPEC, args))
    assert err.value.field == "wait_timeout" and "3 of 3" in err.value.problem and "prod/svc2" in err.value.problem
    assert err.value.result["ready"] is False and len(err.value.result["certificates"]) == 3


def test_certificate_absent(kube, context, issuer):
    cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf()))
    check = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf(state="absent"),
                                              check_mode=True))
    assert check["changed"] is True and CERTS + "/web" in kube.objects
    gone = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, leaf(state="absent")))
    assert gone["changed"] is True and gone["diff"]["after"] == {} and CERTS + "/web" not in kube.objects
    assert cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC,
                                             leaf(state="absent")))["changed"] is False


def test_certificate_without_cert_manager_names_the_missing_api(context):
    from fake_kube import FakeKube  # pylint: disable=import-outside-toplevel
    ctx = context(cert_manager_certificate.ARGUMENT_SPEC, leaf())
    ctx._kube = FakeKube(served={})  # pylint: disable=protected-access
    with pytest.raises(PKIError, match="CRDs are not installed") as err:
        cm_ops.ensure_certificate(ctx)
    assert err.value.field == "kubeconfig"


# -- Issuer
def test_issuer_from_a_ca_directory(kube, context, make_ca):
    kube.controller = cert_manager
    ca, other = make_ca("Zone CA", intermediate=True), make_ca("Other CA", intermediate=True)
    args = {"name": "prod-ca", "namespace": "prod", "type": "ca", "ca_secret_name": "zone-ca",
            "cluster_ca_path": ca.path, "ca_passphrase": "correct horse"}
    secret_path = namespaced_path("v1", "secrets", "prod", "zone-ca")
    ctx = context(cert_manager_issuer.ARGUMENT_SPEC, args, check_mode=True)
    assert [d["msg"].split("'")[1] for d in ctx.deprecations] == ["cluster_ca_path"]
    check = cm_ops.ensure_issuer(ctx)
    assert check["changed"] is True and kube.objects == {} and check["ca_secret"]["changed"] is True

    first = cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, args))
    assert first["ready"] is True and first["ca_secret"]["subject"] == "CN=prod/zone-ca cert-manager issuer"
    assert first["ca_secret"]["intermediate"] is True
    assert [d.get("before_header") for d in first["diff"]] == ["Secret prod/zone-ca", "Issuer prod-ca"]
    assert first["diff"][0]["after"]["tls.key"] == "(hidden)"
    assert b"PRIVATE KEY" in base64.b64decode(kube.objects[secret_path]["data"]["tls.key"])
    again = cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, args))
    assert again["changed"] is False and again["diff"] == []

    version = kube.objects[secret_path]["metadata"]["resourceVersion"]
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, dict(args, cluster_ca_path=other.path)))
    assert err.value.field == "ca_secret_name" and "replace_ca_secret" in err.value.fix
    assert kube.objects[secret_path]["metadata"]["resourceVersion"] == version


def test_the_issuer_secret_never_gets_a_root_key_unless_asked(kube, context, make_ca):
    kube.controller = cert_manager
    root_only = make_ca("Root only")
    args = {"name": "prod-ca", "namespace": "prod", "type": "ca", "ca_secret_name": "zone-ca",
            "ca_path": root_only.path, "ca_passphrase": "correct horse"}
    secret_path = namespaced_path("v1", "secrets", "prod", "zone-ca")
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, args))
    assert err.value.field == "ca_path" and secret_path not in kube.objects
    legacy = cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, dict(args, ca_secret_holds="signing_ca")))
    assert legacy["ca_secret"]["intermediate"] is False and legacy["ready"]
    data = dict(kube.objects[secret_path]["data"])
    # the default later keeps what is there (and says how to move on) instead of breaking a working issuer
    ctx = context(cert_manager_issuer.ARGUMENT_SPEC, args)
    kept = cm_ops.ensure_issuer(ctx)
    assert kept["changed"] is False and kube.objects[secret_path]["data"] == data
    assert any("replace_ca_secret" in w for w in ctx.warnings)


def test_the_issuer_intermediate_is_renewed_in_place_under_the_same_root(kube, context, make_ca):
    kube.controller = cert_manager
    ca = make_ca("Zone CA", intermediate=True, permitted_dns=["svc.cluster.local"])
    args = {"name": "prod-ca", "namespace": "prod", "type": "ca", "ca_secret_name": "zone-ca",
            "ca_path": ca.path, "ca_passphrase": "correct horse"}
    secret_path = namespaced_path("v1", "secrets", "prod", "zone-ca")
    first = cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, args))
    assert first["ca_secret"]["renewed_because"] == "none yet"
    held = base64.b64decode(kube.objects[secret_path]["data"]["tls.crt"])
    narrowed = dict(args, intermediate_permitted_dns=["prod.svc.cluster.local"])
    check = cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, narrowed, check_mode=True))
    assert check["ca_secret"]["changed"] and base64.b64decode(kube.objects[secret_path]["data"]["tls.crt"]) == held
    renewed = cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, narrowed))
    assert "constraints" in renewed["ca_secret"]["renewed_because"]
    assert base64.b64decode(kube.objects[secret_path]["data"]["tls.crt"]) != held
    assert cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, narrowed))["changed"] is False
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, dict(
            args, intermediate_permitted_dns=["example.com"])))
    assert err.value.field == "intermediate_permitted_dns"


def test_issuer_ca_path_only_for_type_ca(kube, context, make_ca):
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, {
            "name": "x", "kind": "ClusterIssuer", "ca_path": make_ca().path}))
    assert err.value.field == "ca_path" and kube.calls == 0


# -- re-issue
def leaf_pem(ca, name="web.prod.svc.cluster.local"):
    """A leaf certificate signed by ``ca``, as cert-manager would put into a Secret."""
    import datetime
    from cryptography.hazmat.primitives.asymmetric import ec
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import build_csr
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import certificate_pem
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity
    identity = build_identity([name], "names")
    csr = build_csr(ec.generate_private_key(ec.SECP256R1()), identity)
    return certificate_pem(ca.sign(csr, identity, ["server"], datetime.timedelta(days=1)))


def test_reissue_only_what_the_new_ca_did_not_sign(kube, context, make_ca):
    old, new = make_ca("Old CA"), make_ca("New CA")
    pem = {name: leaf_pem(ca) for name, ca in (("old", old), ("new", new))}

    def cert(name, signer):
        kube.put_object(CERTS + "/" + name, {
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": name, "namespace": "prod"},
            "spec": {"secretName": name, "issuerRef": {"name": "prod-ca", "kind": "Issuer"}},
            "status": {"revision": 1, "conditions": [{"type": "Ready", "status": "True"}]}})
        kube.put_object(namespaced_path("v1", "secrets", "prod", name), {
            "metadata": {"name": name, "namespace": "prod"},
            "data": {"tls.crt": base64.b64encode(pem[signer].encode()).decode()}})

    cert("stale", "old")
    cert("fresh", "new")

    def reissuing_cert_manager(fake):
        cert_manager(fake)  # a new revision for Certificates with Issuing=True; their Secret signed by the new CA
        stale = fake.objects[CERTS + "/stale"]
        if stale["status"]["revision"] > 1:
            fake.objects[namespaced_path("v1", "secrets", "prod", "stale")]["data"]["tls.crt"] = (
                base64.b64encode(pem["new"].encode()).decode())

    kube.controller = reissuing_cert_manager
    args = {"namespace": "prod", "issuer_name": "prod-ca", "ca_path": new.path}
    check = cm_ops.reissue(context(cert_manager_reissue.ARGUMENT_SPEC, args, check_mode=True))
    assert check["changed"] is True and check["reissued"] == ["stale"] and kube.writes() == []

    done = cm_ops.reissue(context(cert_manager_reissue.ARGUMENT_SPEC, args))
    assert done["reissued"] == ["stale"]
    assert {c["name"]: (c["revision"], c["reissued"]) for c in done["certificates"]} == {
        "stale": (2, True), "fresh": (1, False)}
    assert all(e["certificate"] == pem["new"] for e in done["evidence"])
    assert cm_ops.reissue(context(cert_manager_reissue.ARGUMENT_SPEC, args))["changed"] is False


# -- keyring Secret
def keyring_args(**extra):
    args = {"name": "session", "namespace": "prod", "kind": "symmetric", "promote_after": "0", "retire_after": "0"}
    args.update(extra)
    return args


def test_keyring_check_mode_stores_nothing_and_reruns_unchanged(kube, context):
    check = keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args(), check_mode=True))
    assert check["changed"] is True and check["entries"] == ["r1.key.primary"] and kube.objects == {}
    assert kube.writes() == [("POST", namespaced_path("v1", "secrets", "prod"), True)]

    first = keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args()))
    stored = kube.objects[KEYRING]
    assert first["changed"] is True and secret_keys(stored) == ["r1.key.primary"]
    assert json.loads(stored["metadata"]["annotations"][labels.KEYRING_STATE])["primary"] == "r1"
    assert labels.keyring_state_of(stored)["stage"] == "single"
    assert first["diff"]["after"].startswith("stage: single")
    assert "r1.key.primary" in first["diff"]["after"] and stored["data"]["r1.key.primary"] not in json.dumps(first)

    again = keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args()))
    assert again["changed"] is False and "diff" not in again


def test_a_conflict_on_the_keyring_secret_is_retried(kube, context):
    keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args()))
    r1 = kube.objects[KEYRING]["data"]["r1.key.primary"]

    def another_writer(fake):  # e.g. kubectl adding a label between our read and our write
        fake.objects[KEYRING]["metadata"].setdefault("labels", {})["team"] = "shop"
        fake.objects[KEYRING]["metadata"]["resourceVersion"] = fake._next_version()  # pylint: disable=protected-access

    kube.inject("PUT", KEYRING, status=409, before=another_writer)
    added = keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args(state="added")))
    stored = kube.objects[KEYRING]
    assert added["changed"] is True and added["stage"] == "added"
    assert secret_keys(stored) == ["r1.key.primary", "r2.key"] and stored["data"]["r1.key.primary"] == r1
    assert stored["metadata"]["labels"]["team"] == "shop"  # the other writer's change is kept
    assert [m for m, _p, _d in kube.writes()].count("PUT") == 2


def test_a_keyring_secret_created_meanwhile_is_read_and_stepped(kube, context):
    def created_by_another_run(fake):
        keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args()))

    kube.inject("POST", status=409, before=created_by_another_run)
    result = keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args()))
    assert result["changed"] is False and result["entries"] == ["r1.key.primary"]


def test_the_legacy_keyring_annotation_is_read_and_replaced_with_the_next_step(kube, context):
    keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args()))
    stored = kube.objects[KEYRING]
    annotations = stored["metadata"]["annotations"]
    state = annotations.pop(labels.KEYRING_STATE)
    annotations[labels.LEGACY_KEYRING_STATE] = state  # as 0.2.0 wrote it
    assert labels.keyring_state_of(stored) == json.loads(state)

    # the 0.2.0 key alone is no reason to write (idempotent after an upgrade) ...
    kept = keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args()))
    assert kept["changed"] is False and kube.objects[KEYRING]["metadata"]["annotations"] == annotations
    # ... the next real step writes the state under the new key and drops the old one
    added = keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args(state="added")))
    annotations = kube.objects[KEYRING]["metadata"]["annotations"]
    assert added["changed"] is True and added["entries"] == ["r1.key.primary", "r2.key"]
    assert labels.LEGACY_KEYRING_STATE not in annotations
    assert json.loads(annotations[labels.KEYRING_STATE])["stage"] == "added"


def test_a_user_label_cannot_take_the_managed_by_label(kube, context):
    keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args(
        labels={"app.kubernetes.io/managed-by": "someone-else", "team": "payments"})))
    stored = kube.objects[KEYRING]["metadata"]["labels"]
    assert stored["app.kubernetes.io/managed-by"] == "securebydefault.pki" and stored["team"] == "payments"


def test_keyring_state_prefers_the_new_annotation():
    secret = {"metadata": {"annotations": {labels.KEYRING_STATE: '{"stage": "added"}',
                                           labels.LEGACY_KEYRING_STATE: '{"stage": "single"}'}}}
    assert labels.keyring_state_of(secret) == {"stage": "added"}
    assert labels.keyring_state_of({"metadata": {}}) is None
    assert labels.keyring_state_of({"metadata": {"annotations": {labels.KEYRING_STATE: "{not json"}}}) is None
    assert all(key.startswith(labels.PREFIX) for key in (labels.CA_LABEL, labels.KEYRING_STATE))


# -- the one retry loop
def test_the_ca_secret_retries_through_the_same_loop(kube):
    path = namespaced_path("v1", "secrets", "pki", "ca")
    kube.put_object(path, {"metadata": {"name": "ca", "namespace": "pki", "labels": {labels.CA_LABEL: "true"}},
                           "data": {"ledger.jsonl": ""}})
    store = SecretStore(kube, "pki", "ca")
    kube.inject("PUT", path, status=409, times=2)
    store.update(lambda files: {"ledger.jsonl": (files["ledger.jsonl"] or b"") + b"{}\n"}, ("ledger.jsonl",))
    assert store.conflicts == 2
    assert base64.b64decode(kube.objects[path]["data"]["ledger.jsonl"]) == b"{}\n"


def test_a_concurrent_ledger_entry_survives_the_retry(kube):
    """The 409 comes from a real concurrent write: the retry starts from it, and both entries are kept."""
    path = namespaced_path("v1", "secrets", "pki", "ca")
    kube.put_object(path, {"metadata": {"name": "ca", "namespace": "pki", "labels": {labels.CA_LABEL: "true"}},
                           "data": {"ledger.jsonl": ""}})

    def another_job(fake):
        current = json.loads(json.dumps(fake.objects[path]))
        current["data"]["ledger.jsonl"] = base64.b64encode(b'{"serial": "other"}\n').decode()
        fake.put_object(path, current)

    kube.inject("PUT", path, status=409, before=another_job)
    store = SecretStore(kube, "pki", "ca")
    store.update(lambda files: {"ledger.jsonl": (files["ledger.jsonl"] or b"") + b'{"serial": "ours"}\n'},
                 ("ledger.jsonl",))
    ledger = base64.b64decode(kube.objects[path]["data"]["ledger.jsonl"]).decode()
    assert ledger == '{"serial": "other"}\n{"serial": "ours"}\n' and store.conflicts == 1


def test_a_concurrent_keyring_rotation_is_not_undone(kube, context):
    """Between our read and our write another run rotates fully: our step is planned again from its result."""
    keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args()))

    def another_run(fake):
        for state in ("added", "promoted"):
            keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args(state=state)))
        keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args(state="retired")))

    kube.inject("PUT", KEYRING, status=409, before=another_run)
    ours = keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args(state="added")))
    assert ours["entries"] == ["r2.key.primary", "r3.key"], ours["entries"]  # r1 stays retired
    stored = sorted(kube.objects[KEYRING]["data"])
    assert stored == ["r2.key.primary", "r3.key"]


def test_endless_conflicts_give_up_with_the_field(kube):
    kube.put_object(KEYRING, {"metadata": {"name": "session", "namespace": "prod"}, "data": {}})
    kube.inject("PUT", KEYRING, status=409, times=-1)
    with pytest.raises(PKIError) as err:
        write_with_retry(kube, KEYRING, lambda current: dict(current, data={"x": "eA=="}), False, "name",
                         "Secret prod/session", attempts=3)
    assert err.value.field == "name" and "3 times in a row" in err.value.problem
    assert [m for m, _p, _d in kube.writes()] == ["PUT"] * 3


def test_nothing_to_write_is_no_write(kube):
    kube.put_object(KEYRING, {"metadata": {"name": "session", "namespace": "prod"}, "data": {}})
    outcome = write_with_retry(kube, KEYRING, lambda current: None, False, "name", "Secret prod/session")
    assert outcome.written is False and kube.writes() == [] and ATTEMPTS > 1


# -- transport errors
@pytest.mark.parametrize("error,words", [
    (urllib3.exceptions.NewConnectionError(None, "Connection refused"), "is unreachable"),
    (ConnectionRefusedError(111, "Connection refused"), "is unreachable"),
    (urllib3.exceptions.SSLError("CERTIFICATE_VERIFY_FAILED"), "TLS with the Kubernetes API server"),
    (urllib3.exceptions.ReadTimeoutError(None, "/api", "Read timed out."), "did not answer within 30s"),
])
def test_a_transport_error_is_a_kube_transport_error_naming_kubeconfig(kube, context, error, words):
    kube.inject("GET", error=error)
    with pytest.raises(KubeTransportError) as err:
        keyring_ops.keyring_step(context(k8s_keyring.ARGUMENT_SPEC, keyring_args()))
    assert isinstance(err.value, PKIError)
    assert err.value.field == "kubeconfig" and words in err.value.problem and err.value.fix
    assert kube.objects == {}


def test_an_http_error_is_not_a_transport_error(kube, context):
    kube.inject("GET", status=403)
    with pytest.raises(PKIError) as err:
        object_ops.ensure_namespace(context(k8s_namespace.ARGUMENT_SPEC, {"name": "akka"}))
    assert not isinstance(err.value, KubeTransportError) and "forbidden" in err.value.problem


def issuer_args(ca, **extra):
    return dict({"name": "prod-ca", "namespace": "prod", "type": "ca", "ca_secret_name": "zone-ca",
                 "ca_path": ca.path, "ca_passphrase": "correct horse"}, **extra)


def planted(kube, crt_pem: bytes, key_pem: bytes):
    path = namespaced_path("v1", "secrets", "prod", "zone-ca")
    kube.put_object(path, {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                           "metadata": {"name": "zone-ca", "namespace": "prod"},
                           "data": {"tls.crt": base64.b64encode(crt_pem).decode(),
                                    "tls.key": base64.b64encode(key_pem).decode()}})
    return path


def test_the_ca_s_own_key_is_never_kept_as_an_intermediate(kube, context, make_ca):
    """The directory's issuing CA is signed by the root, path length 0, the root's constraints: it passed for a
    per-issuer intermediate. With replace_ca_secret it must give way to one; its key never stays in the Secret."""
    kube.controller = cert_manager
    ca = make_ca("Zone CA", intermediate=True)
    with open(ca.path + "/ca.crt", "rb") as handle:
        own = handle.read()
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import private_key_pem
    path = planted(kube, own, private_key_pem(ca.key))
    result = cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, issuer_args(ca, replace_ca_secret=True)))
    assert result["ca_secret"]["intermediate"] and "own certificate" in result["ca_secret"]["renewed_because"]
    assert base64.b64decode(kube.objects[path]["data"]["tls.key"]) != private_key_pem(ca.key)


def test_the_ca_s_certificate_with_a_stranger_s_key_is_not_kept_as_legacy(kube, context, make_ca):
    kube.controller = cert_manager
    ca = make_ca("Zone CA", intermediate=True)
    from cryptography.hazmat.primitives.asymmetric import ec
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import private_key_pem
    with open(ca.path + "/ca.crt", "rb") as handle:
        path = planted(kube, handle.read(), private_key_pem(ec.generate_private_key(ec.SECP256R1())))
    ctx = context(cert_manager_issuer.ARGUMENT_SPEC, issuer_args(ca))
    result = cm_ops.ensure_issuer(ctx)
    assert result["ca_secret"]["intermediate"] is True and result["ca_secret"]["changed"] is True
    assert not any("holds the key of the CA" in w for w in ctx.warnings)
    assert result["ca_secret"]["subject"] == "CN=prod/zone-ca cert-manager issuer"
    assert kube.objects[path]["data"]["tls.crt"] != base64.b64encode(open(ca.path + "/ca.crt", "rb").read()).decode()


def test_what_is_planted_beside_a_kept_intermediate_goes(kube, context, make_ca):
    kube.controller = cert_manager
    ca, stranger = make_ca("Zone CA", intermediate=True), make_ca("Stranger", intermediate=True)
    cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, issuer_args(ca)))
    path = namespaced_path("v1", "secrets", "prod", "zone-ca")
    data = dict(kube.objects[path]["data"])
    with open(stranger.path + "/root.crt", "rb") as handle:
        extra = base64.b64encode(base64.b64decode(data["tls.crt"]) + handle.read()).decode()
    kube.put_object(path, dict(kube.objects[path], data=dict(data, **{"tls.crt": extra, "ca.crt": extra})))
    healed = cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, issuer_args(ca)))
    assert healed["ca_secret"]["changed"] is True and "renewed_because" not in healed["ca_secret"]
    assert kube.objects[path]["data"]["tls.crt"] == data["tls.crt"] and kube.objects[path]["data"]["ca.crt"] == \
        data["ca.crt"]


def test_a_secret_whose_tls_crt_does_not_parse_is_not_overwritten_unasked(kube, context, make_ca):
    ca = make_ca("Zone CA", intermediate=True)
    path = planted(kube, b"not a certificate", b"")
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, issuer_args(ca)))
    assert err.value.field == "ca_secret_name" and kube.objects[path]["data"]["tls.crt"] == base64.b64encode(
        b"not a certificate").decode()


def test_a_long_issuer_name_still_gives_an_idempotent_intermediate(kube, context, make_ca):
    kube.controller = cert_manager
    ca = make_ca("Zone CA", intermediate=True)
    args = issuer_args(ca, namespace="n" * 63, name="i" * 63, ca_secret_name="s" * 63)
    first = cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, args))
    assert first["ca_secret"]["subject"].endswith("cert-manager issuer")
    assert cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, args))["changed"] is False


def test_a_failure_while_applying_in_bulk_says_what_was_written(kube, context, issuer):
    kube.inject("PATCH", CERTS + "/svc2", status=422)
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_certificates(context(cert_manager_certificates.ARGUMENT_SPEC, bulk(4)))
    assert err.value.field.startswith("certificates[2]")
    # the Certificates are applied side by side: all but the one refused are written, in order
    assert err.value.result["changed"] is True and [r["name"] for r in err.value.result["certificates"]] == [
        "svc0", "svc1", "svc3"]
    assert err.value.result["not_applied"] == ["prod/svc2"]
    assert CERTS + "/svc3" in kube.objects and CERTS + "/svc2" not in kube.objects


def test_certificates_in_bulk_that_share_a_password_secret_get_one_password(kube, context, issuer):
    store = {"pkcs12": {"password_secret_name": "pw", "create_password_secret": True}}
    args = bulk(6, keystores=store)
    first = cm_ops.ensure_certificates(context(cert_manager_certificates.ARGUMENT_SPEC, args))
    assert [r["password_secrets_created"] for r in first["certificates"]] == [["pw"]] * 6
    assert [m for m, p, _dry in kube.writes() if p.endswith("/secrets/pw")] == ["PATCH"]  # made once
    password = kube.objects[namespaced_path("v1", "secrets", "prod", "pw")]["data"]["password"]
    again = cm_ops.ensure_certificates(context(cert_manager_certificates.ARGUMENT_SPEC, args))
    assert again["changed"] is False
    assert kube.objects[namespaced_path("v1", "secrets", "prod", "pw")]["data"]["password"] == password
