# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ca_rotation between CAs kept in Kubernetes Secrets (issue #16), on the in-memory API.

The stage machine is the one of CA directories; what differs is where things are read and kept: the roots
and the ledgers in the Secrets, the state in the new CA's Secret (key rotation.json), written only when the
stage changes and never over a state that another run recorded meanwhile.
"""
from __future__ import annotations

import base64
import datetime
import json

import pytest

pytest.importorskip("ansible")  # the use cases and their runner run on the controller, not on the nodes

from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import ca as ca_ops  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager as cm_ops  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils._ops import k8s_objects as object_ops  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils._ops import rotation  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import CAOptions, _ca_store  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.ca_secret import SecretStore  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import namespaced_path  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ca_store  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import build_csr  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import fingerprint, load_certificate  # noqa: E402,E501
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import (  # noqa: E402
    KeySpec, generate_private_key, sign_data, signed_by)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.signing import sign_csr  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.modules import (  # noqa: E402
    ca_info, ca_rotation, cert_manager_issuer, k8s_trust_bundle)

OLD, NEW = {"namespace": "pki", "name": "ca"}, {"namespace": "pki", "name": "ca-2027"}


def secret_path(secret):
    return namespaced_path("v1", "secrets", secret["namespace"], secret["name"])


@pytest.fixture
def cas(kube):
    for secret, name in ((OLD, "Zone CA"), (NEW, "Zone CA 2027")):
        store = SecretStore(kube, secret["namespace"], secret["name"])
        assert store.create(ca_store.build_ca_files(ca_store.CASettings(common_name=name), "pw"))
    return kube


def fingerprint_of(pem):
    return fingerprint(load_certificate(pem, "root"))


def root_of(kube, secret):
    return base64.b64decode(kube.objects[secret_path(secret)]["data"]["root.crt"]).decode()


def state_in(kube):
    data = kube.objects[secret_path(NEW)]["data"].get(rotation.STATE_KEY)
    return json.loads(base64.b64decode(data)) if data else None


def run(context, args, check_mode=False):
    args = dict({"old_ca_passphrase": "pw", "new_ca_passphrase": "pw"}, **args)
    ctx = context(ca_rotation.ARGUMENT_SPEC, args, check_mode=check_mode)
    ctx.store = _ca_store(ctx, CAOptions(path="new_ca_path", secret="new_ca_secret"))
    return rotation.ca_rotation(ctx)


def evidence(kube, roots, signer):
    """One node's evidence: a bundle of ``roots`` and a certificate the CA in Secret ``signer`` signed for it."""
    key = generate_private_key(KeySpec())
    csr = build_csr(key, build_identity(["n1.pki.test"])).public_bytes(Encoding.PEM).decode()
    store = SecretStore(kube, signer["namespace"], signer["name"])
    pem = sign_csr(store, "pw", csr, ["n1.pki.test"], ["server"], datetime.timedelta(days=1), False, "n1")[0]
    return [{"host": "n1", "bundle": "".join(root_of(kube, r) for r in roots), "certificate": pem}]


def test_a_rotation_between_secrets_keeps_its_state_in_the_new_secret(cas, context):
    kube = cas
    args = {"old_ca_secret": OLD, "new_ca_secret": NEW, "switch_after": "0s", "drop_after": "0s"}

    dry = run(context, args, check_mode=True)
    assert dry["stage"] == "trust_both" and dry["changed"] and state_in(kube) is None

    first = run(context, args)
    prints = {"ca": fingerprint_of(root_of(kube, OLD)), "ca-2027": fingerprint_of(root_of(kube, NEW))}
    assert first["stage"] == "trust_both" and first["signing_ca_secret"] == dict(OLD, fingerprint=prints["ca"])
    assert first["trust_also_secrets"] == [dict(NEW, fingerprint=prints["ca-2027"])] and "signing_ca_path" not in first
    assert first["signs_new"] is False
    recorded = state_in(kube)
    assert recorded["stage"] == "trust_both" and recorded["new_ca_secret"] == NEW
    assert recorded["new_root"] == root_of(kube, NEW) and recorded["old_root"] == root_of(kube, OLD)
    version = kube.objects[secret_path(NEW)]["metadata"]["resourceVersion"]

    # the nodes do not trust the new root yet: the stage holds, and nothing is written
    held = run(context, dict(args, evidence=evidence(kube, [OLD], OLD)))
    assert held["stage"] == "trust_both" and not held["changed"] and held["hosts_missing_new_root"] == ["n1"]
    assert kube.objects[secret_path(NEW)]["metadata"]["resourceVersion"] == version

    switched = run(context, dict(args, evidence=evidence(kube, [OLD, NEW], OLD)))
    assert switched["stage"] == "switched" and switched["signing_ca_secret"]["name"] == "ca-2027"
    assert switched["trust_also_secrets"] == [dict(OLD, fingerprint=prints["ca"])] and switched["signs_new"]
    assert state_in(kube)["stage"] == "switched"

    done = run(context, dict(args, evidence=evidence(kube, [OLD, NEW], NEW)))
    assert done["stage"] == "done" and done["trust_also_secrets"] == [] and state_in(kube)["stage"] == "done"
    # the CA itself is untouched by the state beside it: it still loads with its passphrase
    assert ca_store.load_ca_in(SecretStore(kube, "pki", "ca-2027"), "pw").root.subject.rfc4514_string() == \
        "CN=Zone CA 2027"
    again = run(context, dict(args, evidence=evidence(kube, [NEW], NEW)))
    assert again["stage"] == "done" and not again["changed"]


def test_a_state_recorded_by_another_run_meanwhile_is_not_overwritten(cas, context, monkeypatch):
    kube = cas
    args = {"old_ca_secret": OLD, "new_ca_secret": NEW, "switch_after": "0s"}
    run(context, args)
    other = dict(state_in(kube), stage="switched")
    other["times"]["switched"] = other["times"]["trust_both"]
    original = rotation.SecretState.load

    def load_then_other_run(self, ca=None):
        state = original(self, ca)
        # another job advances the rotation between this run's read and its write (a new resourceVersion)
        stored = kube.objects[secret_path(NEW)]
        stored["data"][rotation.STATE_KEY] = base64.b64encode(json.dumps(other).encode()).decode()
        stored["metadata"]["resourceVersion"] = kube._next_version()  # pylint: disable=protected-access
        return state

    monkeypatch.setattr(rotation.SecretState, "load", load_then_other_run)
    with pytest.raises(PKIError) as err:
        run(context, dict(args, evidence=evidence(kube, [OLD, NEW], OLD)))
    assert err.value.field == "new_ca_secret" and "another run moved this rotation" in err.value.problem
    assert state_in(kube) == other


def test_bad_input_fails_before_anything_is_written(cas, context):
    kube = cas
    with pytest.raises(PKIError) as err:
        run(context, {"old_ca_secret": NEW, "new_ca_secret": NEW})
    assert err.value.field == "new_ca_secret" and "same Secret" in err.value.problem
    with pytest.raises(PKIError) as err:
        run(context, {"old_ca_secret": {"namespace": "pki", "name": "absent"}, "new_ca_secret": NEW})
    assert err.value.field == "old_ca_secret" and "there is no CA" in err.value.problem
    # a Secret that is not a CA of this collection is never read as one
    kube.objects[secret_path({"namespace": "pki", "name": "other"})] = {
        "metadata": {"name": "other", "namespace": "pki", "labels": {}}, "data": {}}
    with pytest.raises(PKIError) as err:
        run(context, {"old_ca_secret": {"namespace": "pki", "name": "other"}, "new_ca_secret": NEW})
    assert err.value.field == "old_ca_secret" and "not a CA this collection keeps" in err.value.problem
    # a state that is not one this collection wrote is refused, not started over
    kube.objects[secret_path(NEW)]["data"][rotation.STATE_KEY] = base64.b64encode(b'{"stage": "bogus"}').decode()
    with pytest.raises(PKIError) as err:
        run(context, {"old_ca_secret": OLD, "new_ca_secret": NEW})
    assert err.value.field == "new_ca_secret" and "not a rotation state" in err.value.problem
    assert base64.b64decode(kube.objects[secret_path(NEW)]["data"][rotation.STATE_KEY]) == b'{"stage": "bogus"}'


def test_a_rotation_to_another_new_ca_is_refused(cas, context):
    kube = cas
    run(context, {"old_ca_secret": OLD, "new_ca_secret": NEW})
    recorded = state_in(kube)
    third = {"namespace": "pki", "name": "ca-2028"}
    assert SecretStore(kube, "pki", "ca-2028").create(
        ca_store.build_ca_files(ca_store.CASettings(common_name="Zone CA 2028"), "pw"))
    stored = base64.b64encode(json.dumps(recorded).encode()).decode()
    kube.objects[secret_path(third)]["data"][rotation.STATE_KEY] = stored
    # copied from another CA's Secret, it carries that CA's signature, not this one's
    with pytest.raises(PKIError) as err:
        run(context, {"old_ca_secret": OLD, "new_ca_secret": third})
    assert err.value.field == "new_ca_secret" and "not signed by the new CA's key" in err.value.problem
    # signed by this CA (a rotation it really is in, between other CAs): refused all the same
    recorded.pop(rotation.SEAL_KEY)
    key = ca_store.load_ca_in(SecretStore(kube, "pki", "ca-2028"), "pw").key
    recorded[rotation.SEAL_KEY] = base64.b64encode(sign_data(key, rotation._sealed_bytes(recorded))).decode()
    kube.objects[secret_path(third)]["data"][rotation.STATE_KEY] = base64.b64encode(
        json.dumps(recorded).encode()).decode()
    with pytest.raises(PKIError) as err:
        run(context, {"old_ca_secret": OLD, "new_ca_secret": third})
    assert "records a rotation between other CAs" in err.value.problem


def test_a_state_not_signed_by_the_new_ca_is_refused_before_anything_is_written(cas, context):
    """Whoever may update the new CA's Secret but knows no passphrase cannot choose the stage."""
    kube = cas
    args = {"old_ca_secret": OLD, "new_ca_secret": NEW, "switch_after": "0s", "drop_after": "0s"}
    run(context, args)
    began = state_in(kube)
    run(context, dict(args, evidence=evidence(kube, [OLD, NEW], OLD)))
    recorded = state_in(kube)
    assert recorded["stage"] == "switched"
    # the signature is the new CA's key over the state
    public = ca_store.load_ca_in(SecretStore(kube, "pki", "ca-2027"), "pw").certificate.public_key()
    unsigned = {k: v for k, v in recorded.items() if k != rotation.SEAL_KEY}
    assert signed_by(public, base64.b64decode(recorded[rotation.SEAL_KEY]), rotation._sealed_bytes(unsigned))

    def tamper(state):
        kube.objects[secret_path(NEW)]["data"][rotation.STATE_KEY] = base64.b64encode(
            json.dumps(state).encode()).decode()
        return kube.objects[secret_path(NEW)]["metadata"]["resourceVersion"]

    # back to trust_both (the old CA would sign again), the signature kept; then with none; then garbage
    done_evidence = evidence(kube, [OLD, NEW], NEW)
    for forged in (dict(recorded, stage="trust_both"), unsigned, dict(unsigned, signature="not base64!")):
        version = tamper(forged)
        with pytest.raises(PKIError) as err:
            run(context, dict(args, evidence=done_evidence))
        assert err.value.field == "new_ca_secret" and "not signed by the new CA's key" in err.value.problem
        assert kube.objects[secret_path(NEW)]["metadata"]["resourceVersion"] == version
        assert state_in(kube) == forged
    # a signed state of this rotation replayed: trust_both, after the new CA signed (the evidence) - refused
    version = tamper(began)
    with pytest.raises(PKIError) as err:
        run(context, dict(args, evidence=done_evidence))
    assert err.value.field == "new_ca_secret" and "a state before switched" in err.value.problem
    assert kube.objects[secret_path(NEW)]["metadata"]["resourceVersion"] == version
    tamper(recorded)
    assert run(context, dict(args, evidence=done_evidence))["stage"] == "done"


def test_ca_info_adds_the_roots_of_the_other_secrets_to_the_bundle(cas, context):
    kube = cas
    ctx = context(ca_info.ARGUMENT_SPEC, {"ca_secret": NEW, "trust_also_secrets": [OLD]})
    public = ca_ops.ca_info(ctx)["public"]
    assert public["bundle"] == root_of(kube, NEW) + root_of(kube, OLD)
    ctx = context(ca_info.ARGUMENT_SPEC, {"ca_secret": NEW, "trust_also_secrets": [{"namespace": "pki", "name": "x"}]})
    with pytest.raises(PKIError) as err:
        ca_ops.ca_info(ctx)
    assert err.value.field == "trust_also_secrets[0]"


# -- the modules of a CA Issuer's rotation, with the Ansible CA kept in a Secret
@pytest.fixture
def intermediate_cas(kube):
    for secret, name in ((OLD, "Zone CA"), (NEW, "Zone CA 2027")):
        store = SecretStore(kube, secret["namespace"], secret["name"])
        assert store.create(ca_store.build_ca_files(ca_store.CASettings(common_name=name, intermediate=True), "pw"))
    return kube


def test_an_issuer_secret_from_a_ca_kept_in_a_secret_holds_an_intermediate(intermediate_cas, context):
    kube = intermediate_cas
    args = {"name": "zone", "namespace": "prod", "type": "ca", "ca_secret_name": "zone-ca", "ca_secret": OLD,
            "ca_passphrase": "pw", "wait": False}
    made = cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, args))
    assert made["changed"] and made["ca_secret"]["intermediate"] is True
    data = kube.objects[namespaced_path("v1", "secrets", "prod", "zone-ca")]["data"]
    root = root_of(kube, OLD)
    assert base64.b64decode(data["ca.crt"]).decode() == root
    assert base64.b64decode(data["tls.crt"]).decode().endswith(root)  # intermediate, then the root
    root_key = base64.b64decode(kube.objects[secret_path(OLD)]["data"]["root.key"])
    assert base64.b64decode(data["tls.key"]) != root_key and b"ENCRYPTED" in root_key
    # the intermediate is kept while it is good
    assert cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, args))["changed"] is False
    # a wrong passphrase names the option, and writes nothing
    before = json.dumps(kube.objects, sort_keys=True)
    ctx = context(cert_manager_issuer.ARGUMENT_SPEC, dict(args, ca_passphrase="nope", name="other",
                                                          ca_secret_name="other-ca"))
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_issuer(ctx)
    assert err.value.field == "ca_passphrase" and json.dumps(kube.objects, sort_keys=True) == before


def test_a_trust_bundle_from_cas_kept_in_secrets(intermediate_cas, context):
    kube = intermediate_cas
    args = {"name": "trust", "namespace": "prod", "ca_secrets": [OLD, NEW]}
    made = object_ops.ensure_trust_bundle(context(k8s_trust_bundle.ARGUMENT_SPEC, args))
    assert made["changed"] and made["bundle"] == root_of(kube, OLD) + root_of(kube, NEW)
    missing = dict(args, ca_secrets=[OLD, {"namespace": "pki", "name": "gone"}])
    with pytest.raises(PKIError) as err:
        object_ops.ensure_trust_bundle(context(k8s_trust_bundle.ARGUMENT_SPEC, missing))
    assert err.value.field == "ca_secrets[1]" and "there is no CA" in err.value.problem
    with pytest.raises(PKIError) as err:
        object_ops.ensure_trust_bundle(context(k8s_trust_bundle.ARGUMENT_SPEC, {"name": "trust", "namespace": "prod"}))
    assert err.value.field == "ca_paths"


def test_a_root_swapped_into_a_secret_without_the_key_is_refused(cas, context):
    """Whoever may write the CA's namespace but knows no passphrase cannot make nodes or pods trust their root."""
    kube = cas
    # the public files of another CA (its key unknown to them) put into the old CA's Secret
    evil_ca = ca_store.build_ca_files(ca_store.CASettings(common_name="Evil"), "x")
    assert SecretStore(kube, "pki", "evil").create(evil_ca)
    evil = kube.objects[secret_path({"namespace": "pki", "name": "evil"})]["data"]
    for name in ("ca.crt", "root.crt", "ca.json"):
        kube.objects[secret_path(OLD)]["data"][name] = evil[name]
    with pytest.raises(PKIError) as err:
        run(context, {"old_ca_secret": OLD, "new_ca_secret": NEW})
    assert err.value.field in ("old_ca_secret", "old_ca_passphrase") and state_in(kube) is None
    # a root that changed after the rotation checked it is refused where it would be trusted
    ctx = context(ca_info.ARGUMENT_SPEC, {"ca_secret": NEW, "ca_passphrase": "pw", "trust_also_secrets": [
        dict(OLD, fingerprint=fingerprint_of(root_of(kube, NEW)))]})
    with pytest.raises(PKIError) as err:
        ca_ops.ca_info(ctx)
    assert err.value.field == "trust_also_secrets[0].fingerprint"
    bundle = {"name": "trust", "namespace": "prod", "ca_secrets": [dict(OLD, fingerprint=fingerprint_of(
        root_of(kube, NEW)).lower().replace(":", ""))]}
    with pytest.raises(PKIError) as err:
        object_ops.ensure_trust_bundle(context(k8s_trust_bundle.ARGUMENT_SPEC, bundle))
    assert err.value.field == "ca_secrets[0].fingerprint"
    right = dict(bundle, ca_secrets=[dict(NEW, fingerprint=fingerprint_of(root_of(kube, NEW)).lower())])
    assert object_ops.ensure_trust_bundle(context(k8s_trust_bundle.ARGUMENT_SPEC, right))["changed"]


def test_a_new_ca_that_signed_but_lost_its_state_is_not_started_over(cas, context):
    kube = cas
    key = generate_private_key(KeySpec())
    csr = build_csr(key, build_identity(["n1.pki.test"])).public_bytes(Encoding.PEM).decode()
    sign_csr(SecretStore(kube, "pki", "ca-2027"), "pw", csr, ["n1.pki.test"], ["server"], datetime.timedelta(days=1),
             False, "n1")
    with pytest.raises(PKIError) as err:
        run(context, {"old_ca_secret": OLD, "new_ca_secret": NEW})
    assert err.value.field == "new_ca_secret" and "holds no rotation state" in err.value.problem
    assert state_in(kube) is None


def test_an_issuer_secret_is_never_the_ca_secret_itself(intermediate_cas, context):
    args = {"name": "zone", "namespace": "pki", "type": "ca", "ca_secret_name": "ca", "ca_secret": OLD,
            "ca_passphrase": "pw", "wait": False}
    before = json.dumps(intermediate_cas.objects, sort_keys=True)
    with pytest.raises(PKIError) as err:
        cm_ops.ensure_issuer(context(cert_manager_issuer.ARGUMENT_SPEC, args))
    assert err.value.field == "ca_secret_name" and json.dumps(intermediate_cas.objects, sort_keys=True) == before


def test_the_status_report_lists_a_rotation_kept_in_a_secret_and_an_edited_one(cas, context):
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops import status

    kube = cas
    run(context, {"old_ca_secret": OLD, "new_ca_secret": NEW})
    rows = [i for i in status.report(status.StatusRequest(kubernetes=True), kube=kube)["items"]
            if i["kind"] == "ca_rotation"]
    assert [(r["name"], r["stage"], r["status"], r["where"]) for r in rows] == [
        ("pki/ca -> pki/ca-2027", "trust_both", "due", "k8s:pki/ca-2027: rotation.json")]
    assert rows[0]["next_action"] == "run ca_rotation (stage switched)" and rows[0]["stage_since"]
    # an edited state does not hide the rotation: it is listed as blocked
    recorded = state_in(kube)
    recorded.pop(rotation.SEAL_KEY)
    kube.objects[secret_path(NEW)]["data"][rotation.STATE_KEY] = base64.b64encode(
        json.dumps(recorded).encode()).decode()
    rows = [i for i in status.report(status.StatusRequest(kubernetes=True), kube=kube)["items"]
            if i["kind"] == "ca_rotation"]
    assert [(r["name"], r["status"]) for r in rows] == [("ca-2027", "blocked")]
    assert "not a signed rotation state" in rows[0]["note"]


def test_a_finished_rotation_whose_state_and_ledger_were_deleted_is_not_started_over(cas, context):
    """Whoever may update the new CA's Secret can delete rotation.json and the ledger beside it; the nodes' evidence
    (certificates of the new CA) still says the rotation has begun."""
    kube = cas
    args = {"old_ca_secret": OLD, "new_ca_secret": NEW, "switch_after": "0s", "drop_after": "0s"}
    run(context, args)
    run(context, dict(args, evidence=evidence(kube, [OLD, NEW], OLD)))
    on_new = evidence(kube, [OLD, NEW], NEW)
    assert run(context, dict(args, evidence=on_new))["stage"] == "done"
    stored = kube.objects[secret_path(NEW)]["data"]
    del stored[rotation.STATE_KEY], stored["ledger.jsonl"]
    version = kube.objects[secret_path(NEW)]["metadata"]["resourceVersion"]
    with pytest.raises(PKIError) as err:
        run(context, dict(args, evidence=on_new))
    assert err.value.field == "new_ca_secret" and "n1 holds one" in err.value.problem
    assert kube.objects[secret_path(NEW)]["metadata"]["resourceVersion"] == version


@pytest.mark.parametrize("forged", [
    {"stage": "done", "times": {}, "old_ca_secret": "pki/ca"},
    {"stage": "done", "times": {}, "new_root": ["x"]},
    "[" * 100000 + "]" * 100000,
])
def test_a_state_of_the_wrong_shape_is_refused_and_reported_blocked(cas, context, forged):
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops import status

    kube = cas
    raw = forged if isinstance(forged, str) else json.dumps(dict(forged, signature="AAAA"))
    kube.objects[secret_path(NEW)]["data"][rotation.STATE_KEY] = base64.b64encode(raw.encode()).decode()
    with pytest.raises(PKIError) as err:
        run(context, {"old_ca_secret": OLD, "new_ca_secret": NEW})
    assert err.value.field == "new_ca_secret"
    rows = [i for i in status.report(status.StatusRequest(kubernetes=True), kube=kube)["items"]
            if i["kind"] == "ca_rotation"]
    assert [r["status"] for r in rows] == ["blocked"]
