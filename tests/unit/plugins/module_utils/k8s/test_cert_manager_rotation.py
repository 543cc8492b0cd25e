# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cert_manager_ca_rotation's checks on the in-memory API: every refusal comes before the first write.

The stages themselves run against real cert-manager and trust-manager (tests/k8s/test_trust_rotation.py):
they need Secrets issued by cert-manager, which the fake does not make.
"""
from __future__ import annotations

import json

import pytest

pytest.importorskip("ansible")

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager_rotation as ops  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.modules import cert_manager_ca_rotation  # noqa: E402

CM = "/apis/cert-manager.io/v1/namespaces/prod"


def put(kube, kind, name, spec, annotations=None, labels=None):
    plural = {"Issuer": "issuers", "Certificate": "certificates"}[kind]
    kube.put_object("%s/%s/%s" % (CM, plural, name), {
        "apiVersion": "cert-manager.io/v1", "kind": kind,
        "metadata": {"name": name, "namespace": "prod", "annotations": annotations or {}, "labels": labels or {}},
        "spec": spec})


@pytest.fixture
def seeded(kube):
    put(kube, "Issuer", "zone", {"ca": {"secretName": "zone-ca"}})
    put(kube, "Certificate", "zone-ca", {"isCA": True, "secretName": "zone-ca", "commonName": "zone CA",
                                         "issuerRef": {"name": "seed", "kind": "ClusterIssuer"}})
    return kube


def rotate(context, **extra):
    args = dict({"namespace": "prod", "issuer": "zone", "new_ca_certificate": "zone-ca-2"}, **extra)
    return ops.rotate_ca_issuer(context(cert_manager_ca_rotation.ARGUMENT_SPEC, args))


def refused(kube, context, field, text, **extra):
    with pytest.raises(PKIError) as err:
        rotate(context, **extra)
    assert err.value.field == field and text in str(err.value), err.value
    assert kube.writes() == []


def test_an_issuer_that_is_not_there_or_not_a_ca_issuer(kube, context):
    refused(kube, context, "issuer", "does not exist")
    put(kube, "Issuer", "zone", {"selfSigned": {}})
    refused(kube, context, "issuer", "is not a CA Issuer")


def test_a_ca_kept_elsewhere_is_not_this_modules(seeded, context):
    seeded.objects.pop(CM + "/certificates/zone-ca")
    refused(seeded, context, "issuer", "not kept by exactly one cert-manager CA Certificate")


def test_the_new_name_must_be_new_and_free(seeded, context):
    refused(seeded, context, "new_ca_certificate", "already signs with zone-ca", new_ca_certificate="zone-ca")
    put(seeded, "Certificate", "zone-ca-2", {"secretName": "zone-ca-2", "dnsNames": ["x"]})
    refused(seeded, context, "new_ca_certificate", "is not a copy of zone-ca")
    put(seeded, "Certificate", "web", {"secretName": "zone-ca-3", "dnsNames": ["y"]})
    refused(seeded, context, "new_ca_certificate", "belongs to another Certificate", new_ca_certificate="zone-ca-3")


def test_a_tampered_stage_annotation_is_checked_like_an_option(seeded, context):
    state = {"from": "web", "to": "zone-ca-2", "stage": "switched", "since": "2020-01-01T00:00:00Z"}
    put(seeded, "Issuer", "zone", {"ca": {"secretName": "zone-ca"}}, annotations={ops.ANNOTATION: json.dumps(state)})
    put(seeded, "Certificate", "web", {"secretName": "web", "dnsNames": ["web.prod"]})
    # "from" names a leaf: at done it would be deleted with its Secret
    refused(seeded, context, "issuer", "is not a CA")
    state["from"] = "Not A Name\n"
    put(seeded, "Issuer", "zone", {"ca": {"secretName": "zone-ca"}}, annotations={ops.ANNOTATION: json.dumps(state)})
    refused(seeded, context, "issuer", "not a valid Kubernetes object name")


def test_durations_are_checked_first(seeded, context):
    refused(seeded, context, "switch_after", "", switch_after="soon")
    assert seeded.calls == 0


def test_an_issuer_rotated_to_a_new_ca_is_never_switched_back(kube, context):
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager as cm_ops
    from ansible_collections.securebydefault.pki.plugins.modules import cert_manager_issuer

    def apply(secret, check_mode=False):
        args = {"name": "zone", "namespace": "prod", "type": "ca", "ca_secret_name": secret, "wait": False}
        return cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, args, check_mode=check_mode))

    for stage, refused_too in (("trust_both", False), ("switched", True), ("done", True)):
        state = {"from": "zone-ca", "to": "zone-ca-2", "stage": stage, "since": "2026-01-01T00:00:00Z"}
        current = "zone-ca" if stage == "trust_both" else "zone-ca-2"
        put(kube, "Issuer", "zone", {"ca": {"secretName": current}}, annotations={ops.ANNOTATION: json.dumps(state)})
        writes = len(kube.writes())
        if refused_too:
            with pytest.raises(PKIError) as err:
                apply("zone-ca", check_mode=True)  # the role's guard task: check mode, before anything is written
            assert err.value.field == "ca_secret_name"
            assert "cert_manager_pki_ca_certificate: zone-ca-2" in str(err.value)
            assert len(kube.writes()) == writes
            assert apply("zone-ca-2")["changed"] is False
        else:
            assert apply("zone-ca")["changed"] is False


def test_a_new_ca_left_by_a_stopped_run_is_taken_when_it_is_the_copy(seeded, context):
    # a run that made the new CA Certificate and stopped before recording the stage: the next run goes on with it
    put(seeded, "Certificate", "zone-ca-2", {"isCA": True, "secretName": "zone-ca-2", "commonName": "zone CA",
                                             "issuerRef": {"name": "seed", "kind": "ClusterIssuer"}})
    with pytest.raises(PKIError) as err:
        rotate(context)  # gets past the checks; stops at the Secrets the fake does not issue
    assert err.value.field != "new_ca_certificate", err.value
