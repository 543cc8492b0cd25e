# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module cert_manager_pki on the in-memory API: the role's recipe in one run, with the checks of each part's own
module, every offline check before the first write, and the same objects the single modules make."""
from __future__ import annotations

import pytest

pytest.importorskip("ansible")  # the use cases and their runner run on the controller, not on the nodes

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager as cm_ops  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager_pki as pki_ops  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.modules import (  # noqa: E402
    cert_manager_certificate, cert_manager_issuer, cert_manager_pki)

from fake_kube import cert_manager  # noqa: E402  pylint: disable=wrong-import-order

CM = "/apis/cert-manager.io/v1"


def services(*pairs, **extra):
    return [dict({"name": name, "namespace": namespace, "issuer_name": "sbd-pki-cluster-ca",
                  "dns_names": ["%s.%s.svc.cluster.local" % (name, namespace)], "valid_for": "24h",
                  "renew_before": "16h"}, **extra) for name, namespace in pairs]


def args(**extra):
    return dict({"create_namespaces": True, "namespaces": ["extra"],
                 "certificates": services(("api", "prod"), ("web", "prod"), ("db", "data"))}, **extra)


@pytest.fixture
def cluster(kube):
    kube.controller = cert_manager
    return kube


def test_check_mode_stores_nothing_then_one_run_makes_it_all_and_a_rerun_writes_nothing(cluster, context):
    kube = cluster
    check = pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, args(), check_mode=True))
    assert check["changed"] and kube.objects == {} and all(dry for _m, _p, dry in kube.writes())
    assert {d["before_header"] for d in check["diff"]} >= {"Namespace prod", "ClusterIssuer sbd-pki-selfsigned"}

    first = pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, args()))
    assert first["changed"] and first["ready"]
    # the namespaces listed first, then those of the Certificates, each once
    assert [n["namespace"]["metadata"]["name"] for n in first["namespaces"]] == ["extra", "prod", "data"]
    assert first["cluster_issuer"]["ready"] and all(i["ready"] for i in first["issuers"])
    assert [(c["namespace"], c["name"], c["ready"]) for c in first["ca_certificates"]] == [
        (ns, "sbd-pki-cluster-ca", True) for ns in ("extra", "prod", "data")]
    assert [(c["namespace"], c["name"], c["revision"]) for c in first["certificates"]] == [
        ("prod", "api", 1), ("prod", "web", 1), ("data", "db", 1)]
    # each namespace's CA may sign only below <namespace>.<domain>, and signs with a fresh P-384 key each time
    ca = kube.objects[CM + "/namespaces/prod/certificates/sbd-pki-cluster-ca"]["spec"]
    assert ca["isCA"] and ca["nameConstraints"] == {"critical": True,
                                                    "permitted": {"dnsDomains": ["prod.svc.cluster.local"]}}
    assert ca["privateKey"] == {"algorithm": "ECDSA", "size": 384, "encoding": "PKCS1", "rotationPolicy": "Always"}
    assert ca["issuerRef"] == {"name": "sbd-pki-selfsigned", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert kube.objects[CM + "/namespaces/data/issuers/sbd-pki-cluster-ca"]["spec"] == {
        "ca": {"secretName": "sbd-pki-cluster-ca"}}

    # the objects are those the single modules make: applying them with those changes nothing
    single = cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, {
        "name": "sbd-pki-cluster-ca", "namespace": "prod", "type": "ca", "ca_secret_name": "sbd-pki-cluster-ca"}))
    assert single["changed"] is False
    single = cm_ops.ensure_certificate(context(cert_manager_certificate.ARGUMENT_SPEC, services(("api", "prod"))[0]))
    assert single["changed"] is False

    stored = {path: (obj.get("spec"), obj.get("data")) for path, obj in kube.objects.items()}
    again = pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, args()))
    assert again["changed"] is False and again["diff"] == [] and again["ready"]
    assert {path: (obj.get("spec"), obj.get("data")) for path, obj in kube.objects.items()} == stored
    # nothing but server-side applies of the same objects (no-ops) and reads
    assert {method for method, _path, _dry in kube.log[-60:]} <= {"GET", "PATCH"}


@pytest.mark.parametrize("extra, field", [
    ({"certificates": services(("api", "prod"), ("web", "prod"), dns_names=["*.prod.svc.cluster.local"])},
     "certificates[0].dns_names"),
    ({"certificates": services(("api", "prod"), ("api", "prod"))}, "certificates[1].name"),
    ({"certificates": services(("sbd-pki-cluster-ca", "prod"))}, "certificates[0].name"),
    ({"certificates": services(("api", "prod")) + [{"name": "x", "namespace": "prod", "colour": "blue"}]},
     "certificates[1]"),
    ({"certificates": [{"name": "x"}]}, "certificates[0]"),  # "missing required arguments: namespace"
    ({"certificates": [{"name": "x", "namespace": "prod"}]}, "certificates[0]"),  # no issuer_name
    ({"namespaces": ["Not_A_Name"]}, "namespaces[0]"),
    ({"ca_valid_for": "1h", "ca_renew_before": "2h"}, "ca_renew_before"),
    ({"ca_valid_for": "forever"}, "ca_valid_for"),
    ({"ca_issuer": "Bad Name"}, "ca_issuer"),
    ({"ca_permitted_ip_ranges": ["10.0.0.1/8"]}, "ca_permitted_ip_ranges"),
    ({"ca_certificate": "x" * 300}, "ca_certificate"),
    ({"ca_path": "/srv/pki/prod"}, "ca_path"),
])
def test_bad_input_anywhere_writes_nothing_and_names_the_option(cluster, context, extra, field):
    kube = cluster
    with pytest.raises(PKIError) as err:
        pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, args(**extra)))
    assert err.value.field == field, err.value
    assert kube.writes() == []


def test_an_issuer_rotated_to_a_new_ca_is_not_switched_back_and_nothing_is_written(cluster, context):
    kube = cluster
    pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, args()))
    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import labels

    # cert_manager_ca_rotation switched the prod namespace's Issuer to a new CA Certificate
    issuer = kube.objects[CM + "/namespaces/prod/issuers/sbd-pki-cluster-ca"]
    issuer["spec"]["ca"]["secretName"] = "sbd-pki-cluster-ca-2"
    issuer["metadata"].setdefault("annotations", {})[labels.CA_ROTATION] = (
        '{"from": "sbd-pki-cluster-ca", "to": "sbd-pki-cluster-ca-2", "stage": "switched", '
        '"since": "2026-01-01T00:00:00Z"}')
    seen = len(kube.writes())
    with pytest.raises(PKIError) as err:
        pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, args(certificates=services(("new", "prod")))))
    assert err.value.field == "ca_certificate" and "sbd-pki-cluster-ca-2" in str(err.value)
    assert len(kube.writes()) == seen  # nothing applied: not the extra namespace's objects, not the Certificate


def test_with_the_ansible_ca_each_namespace_gets_its_own_constrained_intermediate(cluster, context, make_ca):
    import base64

    from cryptography import x509

    kube = cluster
    ca = make_ca("Zone CA", intermediate=True)
    extra = dict(args(), ca_source="cluster_ca", ca_path=ca.path, ca_passphrase="correct horse")
    first = pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, extra))
    assert first["ready"] and "cluster_issuer" not in first and first["ca_certificates"] == []
    assert not [p for p in kube.objects if "/clusterissuers/" in p]
    for namespace in ("extra", "prod", "data"):
        secret = kube.objects["/api/v1/namespaces/%s/secrets/sbd-pki-cluster-ca" % namespace]
        cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
        constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
        assert [n.value for n in constraints.permitted_subtrees if isinstance(n, x509.DNSName)] == [
            "%s.svc.cluster.local" % namespace]
        assert cert.issuer == ca.root.subject  # signed by the root, whose key stayed in the CA directory
    assert [i["ca_secret"]["intermediate"] for i in first["issuers"]] == [True] * 3
    again = pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, extra))
    assert again["changed"] is False
    # a wrong passphrase fails before anything is written
    seen = len(kube.writes())
    with pytest.raises(PKIError) as err:
        wrong = dict(extra, ca_passphrase="wrong", namespaces=["new"])
        pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, wrong))
    assert err.value.field == "ca_passphrase" and len(kube.writes()) == seen


def test_an_issuer_that_never_becomes_ready_is_named(kube, context):
    kube.controller = None  # no cert-manager acting
    with pytest.raises(PKIError) as err:
        pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, args(wait_timeout=1)))
    assert err.value.field == "wait_timeout" and "ClusterIssuer sbd-pki-selfsigned not Ready" in err.value.problem
    # what comes after it was applied all the same (cert-manager issues it once the ClusterIssuer is Ready), and the
    # failure says so
    assert CM + "/namespaces/prod/certificates/api" in kube.objects
    assert err.value.result["changed"] is True and "prod/api" in err.value.result["applied_certificates"]
    assert [i["issuer"]["metadata"]["name"] for i in err.value.result["issuers"]] == ["sbd-pki-cluster-ca"] * 3


@pytest.mark.parametrize("extra, field", [
    ({"ca_permitted_dns": ["elsewhere.example"]}, "ca_permitted_dns"),  # outside the root's constraints
    ({"ca_permitted_ip_ranges": ["10.0.0.1/8"]}, "ca_permitted_ip_ranges"),
    ({"domain": "Bad Domain"}, "domain"),
    ({"certificates": services(("api", "prod"), secret_name="sbd-pki-cluster-ca")}, "certificates[0].secret_name"),
])
def test_with_the_ansible_ca_bad_input_writes_nothing(cluster, context, make_ca, extra, field):
    kube = cluster
    ca = make_ca("Zone CA", intermediate=True, permitted_dns=["svc.cluster.local"])
    params = dict(args(), ca_source="cluster_ca", ca_path=ca.path, ca_passphrase="correct horse", **extra)
    with pytest.raises(PKIError) as err:
        pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, params))
    assert err.value.field == field, err.value
    assert kube.writes() == []


def test_a_namespace_given_as_a_number_is_a_name(cluster, context):
    first = pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, args(
        namespaces=[], certificates=services(("api", 2024)))))
    assert first["ready"] and [c["namespace"] for c in first["ca_certificates"]] == ["2024"]


def test_what_only_the_api_can_check_is_read_before_the_first_write(cluster, context):
    """A service Certificate naming a keystore password Secret that does not exist: found while reading, before the
    namespace, the ClusterIssuer, the CA or the Issuer is written."""
    kube = cluster
    bad = services(("api", "prod"), ("web", "prod"), keystores={"pkcs12": {"password_secret_name": "missing"}})
    with pytest.raises(PKIError) as err:
        pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, args(certificates=bad)))
    assert err.value.field == "certificates[0].keystores.pkcs12.password_secret_name", err.value
    assert "'missing' does not exist" in err.value.problem
    assert kube.writes() == []


def test_everything_is_applied_in_the_order_needed_before_anything_is_waited_for(cluster, context):
    kube = cluster
    waits = []
    plain_wait = kube.wait

    def wait(path, done, timeout, interval=0.5):
        waits.append((len(kube.log), path))
        return plain_wait(path, done, timeout, interval)

    kube.wait = wait
    pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, args(namespaces=[])))
    writes = [(n, path) for n, (method, path, _dry) in enumerate(kube.log) if method in ("PATCH", "POST", "PUT")]
    kinds = []
    for _n, path in writes:
        kind = ("namespace" if path.startswith("/api/v1/namespaces/") and path.count("/") == 4 else
                "clusterissuer" if "/clusterissuers/" in path else
                "ca" if path.endswith("/certificates/sbd-pki-cluster-ca") else
                "issuer" if "/issuers/" in path else "service" if "/certificates/" in path else path)
        if not kinds or kinds[-1] != kind:
            kinds.append(kind)
    assert kinds == ["namespace", "clusterissuer", "ca", "issuer", "service"], kinds
    # the first wait (for the ClusterIssuer) begins after the last write, and the waits go in the same order
    assert waits[0] == (writes[-1][0] + 1, CM + "/clusterissuers/sbd-pki-selfsigned"), waits[:2]
    order = []
    for _n, path in waits:
        kind = "clusterissuers" if "/clusterissuers/" in path else "issuers" if "/issuers/" in path else "certificates"
        if not order or order[-1] != kind:
            order.append(kind)
    assert order == ["clusterissuers", "certificates", "issuers", "certificates"], waits


def test_a_changing_ca_is_issued_before_a_service_certificate_is_applied(cluster, context):
    """Where the CA already exists, a run that changes it applies the service Certificates only once the new CA is
    issued and the Issuer Ready: none is signed by the key being replaced. A namespace set up from nothing in the
    same run still gets everything at once."""
    kube = cluster
    pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, args(namespaces=[])))
    waits = []
    plain_wait = kube.wait

    def wait(path, done, timeout, interval=0.5):
        waits.append((len(kube.log), path))
        return plain_wait(path, done, timeout, interval)

    kube.wait = wait
    changed = args(namespaces=[], ca_permitted_dns=["extra.example"],
                   certificates=services(("api", "prod"), ("new", "prod"), ("cache", "fresh")))
    again = pki_ops.ensure_pki(context(cert_manager_pki.ARGUMENT_SPEC, changed))
    assert again["changed"] and again["ready"]
    position = {path: n for n, (method, path, dry) in enumerate(kube.log) if method == "PATCH" and not dry}
    prod_ca_wait = min(n for n, path in waits if path == CM + "/namespaces/prod/certificates")
    prod_issuer_wait = min(n for n, path in waits if path.endswith("/namespaces/prod/issuers/sbd-pki-cluster-ca"))
    assert position[CM + "/namespaces/prod/certificates/sbd-pki-cluster-ca"] < prod_ca_wait
    assert prod_ca_wait < prod_issuer_wait < position[CM + "/namespaces/prod/certificates/new"]
    # the new namespace: its service Certificate applied before the first wait
    assert position[CM + "/namespaces/fresh/certificates/cache"] < min(n for n, _path in waits)
    # the diff follows the writes: the CA Certificates before the Issuers, the Issuers before the services
    headers = [d["before_header"] for d in again["diff"]]
    assert headers.index("Certificate prod/sbd-pki-cluster-ca") < headers.index("Certificate prod/new")
