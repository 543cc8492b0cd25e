# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""trust_manager_bundle on the in-memory API, with a fake trust-manager that syncs Bundles into namespaces."""
from __future__ import annotations

import base64

import pytest

pytest.importorskip("ansible")

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import trust_manager as ops  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.modules import trust_manager_bundle  # noqa: E402
from fake_kube import trust_manager  # noqa: E402  pylint: disable=wrong-import-order

BUNDLES = "/apis/trust.cert-manager.io/v1alpha1/bundles"
SPEC = trust_manager_bundle.ARGUMENT_SPEC


@pytest.fixture
def cluster(kube):
    kube.served[ops.API_VERSION] = ["bundles"]
    for name, labels in (("cert-manager", {}), ("prod", {"trust": "prod"}), ("dev", {})):
        kube.put_object("/api/v1/namespaces/" + name,
                        {"kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    kube.controller = trust_manager
    return kube


def run(context, args, check_mode=False):
    return ops.ensure_bundle(context(SPEC, args, check_mode=check_mode))


def test_bundle_reaches_every_namespace_and_reruns_unchanged(cluster, context, make_ca):
    ca = make_ca("Cluster CA")
    args = {"name": "cluster-trust", "ca_paths": [ca.path], "secret_key": "ca.crt"}
    check = run(context, args, check_mode=True)
    assert check["changed"] is True and BUNDLES + "/cluster-trust" not in cluster.objects
    assert cluster.writes(dry_run=False) == []

    first = run(context, args)
    assert first["changed"] is True and first["synced"] is True
    assert first["namespaces"] == ["cert-manager", "dev", "prod"] and len(first["fingerprints"]) == 1
    spec = cluster.objects[BUNDLES + "/cluster-trust"]["spec"]
    assert spec["target"] == {"configMap": {"key": "ca.crt"}, "secret": {"key": "ca.crt"}}
    assert spec["sources"][0]["inLine"].count("BEGIN CERTIFICATE") == 1
    for ns in first["namespaces"]:
        assert "BEGIN CERTIFICATE" in cluster.objects["/api/v1/namespaces/%s/configmaps/cluster-trust" % ns]["data"][
            "ca.crt"]
    again = run(context, args)
    assert again["changed"] is False and "diff" not in again


def test_selector_and_sources(cluster, context, make_ca):
    ca, partner = make_ca("Cluster CA"), make_ca("Partner CA")
    cluster.put_object("/api/v1/namespaces/cert-manager/configmaps/partner",
                       {"kind": "ConfigMap", "metadata": {"name": "partner", "namespace": "cert-manager"},
                        "data": {"roots.pem": open(partner.path + "/ca.crt").read()}})
    result = run(context, {"name": "prod-trust", "ca_paths": [ca.path], "namespace_selector": {"trust": "prod"},
                           "sources": [{"kind": "configmap", "name": "partner", "key": "roots.pem"}],
                           "pkcs12": {"key": "truststore.p12", "password": "s3cret", "profile": "Modern2023"}})
    assert result["namespaces"] == ["prod"] and len(result["fingerprints"]) == 2
    spec = cluster.objects[BUNDLES + "/prod-trust"]["spec"]
    assert spec["sources"][1] == {"configMap": {"name": "partner", "key": "roots.pem"}}
    assert spec["target"]["namespaceSelector"] == {"matchLabels": {"trust": "prod"}}
    assert spec["target"]["additionalFormats"] == {
        "pkcs12": {"key": "truststore.p12", "password": "s3cret", "profile": "Modern2023"}}
    assert "/api/v1/namespaces/dev/configmaps/prod-trust" not in cluster.objects


@pytest.mark.parametrize("change, field", [
    ({"sources": [{"kind": "configmap", "name": "missing"}]}, "sources[0].name"),
    ({"sources": [{"kind": "secret", "name": "nocert"}]}, "sources[0]"),
    ({"namespace_selector": {"trust": "nowhere"}}, "namespace_selector"),
    ({"namespace_selector": {"bad key!": "x"}}, "namespace_selector"),
    ({"configmap_key": "", "secret_key": None}, "configmap_key"),
    ({"jks": {"key": "ca.crt"}}, "jks.key"),
    ({"configmap_key": "a/b"}, "configmap_key"),
    ({"name": "Not_A_Name"}, "name"),
])
def test_bad_input_fails_before_any_write(cluster, context, make_ca, change, field):
    ca = make_ca("Cluster CA")
    cluster.put_object("/api/v1/namespaces/cert-manager/secrets/nocert",
                       {"kind": "Secret", "metadata": {"name": "nocert", "namespace": "cert-manager"},
                        "data": {"ca.crt": "bm90IGEgY2VydA=="}})
    with pytest.raises(PKIError) as err:
        run(context, dict({"name": "t", "ca_paths": [ca.path]}, **change))
    assert err.value.field == field, err.value
    assert cluster.writes() == []


def test_no_source_and_no_api(kube, context, make_ca):
    with pytest.raises(PKIError) as err:
        run(context, {"name": "t"})
    assert err.value.field == "kubeconfig" and "trust-manager" in str(err.value)  # API checked first
    kube.served[ops.API_VERSION] = ["bundles"]
    with pytest.raises(PKIError) as err:
        run(context, {"name": "t"})
    assert err.value.field == "ca_paths"


def test_wait_times_out_when_trust_manager_does_not_sync(cluster, context, make_ca):
    cluster.controller = None
    with pytest.raises(PKIError) as err:
        run(context, {"name": "t", "ca_paths": [make_ca("CA").path], "wait_timeout": 1})
    assert err.value.field == "wait_timeout" and "not Synced" in str(err.value)
    assert err.value.result["synced"] is False


def test_a_target_with_other_certificates_keeps_waiting(cluster, context, make_ca):
    ca, other = make_ca("CA"), make_ca("Other")

    def lying_trust_manager(kube):
        trust_manager(kube)
        kube.objects["/api/v1/namespaces/dev/configmaps/t"]["data"]["ca.crt"] = open(other.path + "/ca.crt").read()

    cluster.controller = lying_trust_manager
    with pytest.raises(PKIError) as err:
        run(context, {"name": "t", "ca_paths": [ca.path]})
    assert "dev: configmap t holds other certificates" in str(err.value)


def test_absent_deletes_the_bundle(cluster, context, make_ca):
    run(context, {"name": "t", "ca_paths": [make_ca("CA").path]})
    assert run(context, {"name": "t", "state": "absent"}, check_mode=True)["changed"] is True
    assert BUNDLES + "/t" in cluster.objects
    assert run(context, {"name": "t", "state": "absent"})["changed"] is True and BUNDLES + "/t" not in cluster.objects
    assert run(context, {"name": "t", "state": "absent"})["changed"] is False


# -- taking over objects of the Bundle's name
def put_configmap(kube, namespace, name, pem, labels=None):
    kube.put_object("/api/v1/namespaces/%s/configmaps/%s" % (namespace, name), {
        "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "data": {"ca.crt": pem}})


def test_a_foreign_configmap_of_that_name_is_never_overwritten(cluster, context, make_ca):
    ca = make_ca("CA")
    put_configmap(cluster, "dev", "t", "someone else's data")
    with pytest.raises(PKIError) as err:
        run(context, {"name": "t", "ca_paths": [ca.path]})
    assert err.value.field == "name" and "configmap dev/t exists and is not made by this collection" in str(err.value)
    assert cluster.writes() == []
    # leaving that namespace out is the way
    assert run(context, {"name": "t", "ca_paths": [ca.path], "namespace_selector": {"trust": "prod"}})["synced"]


def test_a_configmap_of_this_collection_is_taken_over_only_if_no_root_is_lost(cluster, context, make_ca):
    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.labels import MANAGED_BY

    old, new = make_ca("Old"), make_ca("New")
    old_pem = open(old.path + "/ca.crt").read()
    put_configmap(cluster, "dev", "t", old_pem, MANAGED_BY)
    with pytest.raises(PKIError) as err:
        run(context, {"name": "t", "ca_paths": [new.path]})
    assert "holds 1 certificate(s) the Bundle's sources do not" in str(err.value) and cluster.writes() == []
    result = run(context, {"name": "t", "ca_paths": [old.path, new.path]})
    assert result["synced"] and cluster.objects["/api/v1/namespaces/dev/configmaps/t"]["data"]["ca.crt"].count(
        "BEGIN CERTIFICATE") == 2
    # now the Bundle's own target: dropping the old root is the rotation's last stage, and allowed
    assert run(context, {"name": "t", "ca_paths": [new.path]})["changed"] is True


# -- k8s_trust_bundle through trust-manager
def trust_bundle(context, args, check_mode=False):
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops import k8s_objects
    from ansible_collections.securebydefault.pki.plugins.modules import k8s_trust_bundle

    return k8s_objects.ensure_trust_bundle(context(k8s_trust_bundle.ARGUMENT_SPEC, args, check_mode=check_mode))


def test_k8s_trust_bundle_distribution(kube, context, make_ca):
    ca = make_ca("CA")
    args = {"name": "tb", "namespace": "prod", "ca_paths": [ca.path]}
    with pytest.raises(PKIError) as err:  # asked for trust-manager where there is none
        trust_bundle(context, dict(args, distribution="trust_manager"))
    assert err.value.field == "distribution" and kube.writes() == []
    with pytest.raises(PKIError) as err:
        trust_bundle(context, dict(args, namespace_selector={"trust": "prod"}))
    assert err.value.field == "namespace_selector"
    plain = trust_bundle(context, dict(args, distribution="auto"))  # none there: the ConfigMap
    assert plain["distribution"] == "configmap" and "/api/v1/namespaces/prod/configmaps/tb" in kube.objects


def test_k8s_trust_bundle_through_trust_manager(cluster, context, make_ca):
    ca = make_ca("CA")
    args = {"name": "tb", "namespace": "prod", "ca_paths": [ca.path], "distribution": "auto"}
    with pytest.raises(PKIError) as err:
        trust_bundle(context, dict(args, namespace_selector={"trust": "elsewhere"}))
    assert err.value.field == "namespace_selector" and cluster.writes() == []
    check = trust_bundle(context, args, check_mode=True)
    assert check["changed"] and BUNDLES + "/tb" not in cluster.objects
    first = trust_bundle(context, args)
    assert first["distribution"] == "trust_manager" and first["namespaces"] == ["cert-manager", "dev", "prod"]
    assert cluster.objects[BUNDLES + "/tb"]["spec"]["sources"] == [{"inLine": first["bundle"]}]
    assert cluster.objects["/api/v1/namespaces/dev/configmaps/tb"]["data"]["ca.crt"] == first["bundle"]
    assert trust_bundle(context, args)["changed"] is False


def test_k8s_trust_bundle_never_takes_over_another_cas_bundle(cluster, context, make_ca):
    mine, theirs = make_ca("Mine"), make_ca("Theirs")
    trust_bundle(context, {"name": "tb", "namespace": "prod", "ca_paths": [theirs.path], "distribution": "auto"})
    writes = len(cluster.writes())
    with pytest.raises(PKIError) as err:
        trust_bundle(context, {"name": "tb", "namespace": "prod", "ca_paths": [mine.path], "distribution": "auto"})
    assert err.value.field == "name" and "another CA's bundle" in str(err.value)
    assert len(cluster.writes()) == writes
    # a rotation's steps share a root each time: both, then the new one only
    both = trust_bundle(context, {"name": "tb", "namespace": "prod", "ca_paths": [theirs.path, mine.path],
                                  "distribution": "auto"})
    assert both["changed"] and len(both["fingerprints"]) == 2
    assert trust_bundle(context, {"name": "tb", "namespace": "prod", "ca_paths": [mine.path],
                                  "distribution": "auto"})["changed"]


def test_a_secret_of_that_name_is_never_taken_over(cluster, context, make_ca):
    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.labels import MANAGED_BY

    ca = make_ca("CA")
    pem = open(ca.path + "/ca.crt").read()
    cluster.put_object("/api/v1/namespaces/dev/secrets/t", {
        "kind": "Secret", "metadata": {"name": "t", "namespace": "dev", "labels": dict(MANAGED_BY)},
        "data": {"ca.crt": base64.b64encode(pem.encode()).decode()}})  # e.g. a CA Secret of this collection
    with pytest.raises(PKIError) as err:
        run(context, {"name": "t", "ca_paths": [ca.path], "secret_key": "ca.crt"})
    assert "secret dev/t exists and is not made by this collection" in str(err.value) and cluster.writes() == []


def test_a_bundle_made_elsewhere_needs_force_conflicts(cluster, context, make_ca):
    ca = make_ca("CA")
    cluster.put_object(BUNDLES + "/t", {"apiVersion": ops.API_VERSION, "kind": "Bundle", "metadata": {"name": "t"},
                                        "spec": {"sources": [{"inLine": open(ca.path + "/ca.crt").read()}],
                                                 "target": {"configMap": {"key": "ca.crt"}}}})
    with pytest.raises(PKIError) as err:
        run(context, {"name": "t", "ca_paths": [ca.path]})
    assert err.value.field == "name" and "not made by this collection" in str(err.value)
    assert run(context, {"name": "t", "ca_paths": [ca.path], "force_conflicts": True})["synced"]


def test_truststore_passwords_are_never_returned(cluster, context, make_ca):
    ca = make_ca("CA")
    first = run(context, {"name": "t", "ca_paths": [ca.path], "jks": {"key": "ts.jks", "password": "first-pw"}})
    second = run(context, {"name": "t", "ca_paths": [ca.path], "jks": {"key": "ts.jks", "password": "second-pw"}})
    text = repr(first) + repr(second)
    assert "first-pw" not in text and "second-pw" not in text and "********" in text
    assert cluster.objects[BUNDLES + "/t"]["spec"]["target"]["additionalFormats"]["jks"]["password"] == "second-pw"


def test_namespaces_limit_the_targets(cluster, context, make_ca):
    result = run(context, {"name": "t", "ca_paths": [make_ca("CA").path], "namespaces": ["dev", "prod"]})
    assert result["namespaces"] == ["dev", "prod"]
    assert cluster.objects[BUNDLES + "/t"]["spec"]["target"]["namespaceSelector"] == {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["dev", "prod"]}]}
    assert "/api/v1/namespaces/cert-manager/configmaps/t" not in cluster.objects
    with pytest.raises(PKIError) as err:
        run(context, {"name": "u", "ca_paths": [make_ca("CA2").path], "namespaces": ["nowhere"]})
    assert err.value.field == "namespace_selector"
    with pytest.raises(PKIError) as err:
        run(context, {"name": "u", "ca_paths": [make_ca("CA3").path], "configmap_key": "ca.crt\n"})
    assert err.value.field == "configmap_key"  # a trailing newline is not a key


def test_synced_only_for_the_current_generation_and_never_on_garbage():
    def bundle(observed, status="True", generation=2):
        return {"metadata": {"generation": generation},
                "status": {"conditions": [{"type": "Synced", "status": status, "observedGeneration": observed}]}}

    assert ops.synced(bundle(2)) and ops.synced(bundle(None))
    assert not ops.synced(bundle(1)) and not ops.synced(bundle(2, "False"))
    assert not ops.synced(bundle("2")) and not ops.synced(bundle([2])) and not ops.synced(None)
