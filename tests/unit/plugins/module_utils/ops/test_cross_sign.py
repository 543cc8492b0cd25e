# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ca_rotation cross_sign (issue #16): the new CA's certificate issued again by the old root, served while switched.

What must hold is checked by openssl, independently of the code: a leaf of the new CA served with the
cross certificate verifies for a peer that trusts only the old root, and for one that trusts both roots.
"""
from __future__ import annotations

import datetime
import os

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import rotation
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import build_csr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import DirectoryStore
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.cross_sign import CROSS_FILE
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, generate_private_key
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.signing import sign_csr
from ansible_collections.securebydefault.pki.tests.unit.pki_helpers import openssl_verify

pytestmark = pytest.mark.controller
NOW = datetime.datetime.now(datetime.timezone.utc)
PASS = "correct horse"


def read(ca, name):
    path = os.path.join(ca.path, name)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return handle.read()


def leaf_of(ca, name="n1.zone.test"):
    csr = build_csr(generate_private_key(KeySpec()), build_identity([name])).public_bytes(Encoding.PEM).decode()
    return sign_csr(DirectoryStore(ca.path), PASS, csr, [name], ["server"], datetime.timedelta(days=1), False, "n1")[0]


def request(old, new, tmp_path, **kwargs):
    kwargs.setdefault("switch_after", datetime.timedelta(0))
    kwargs.setdefault("drop_after", datetime.timedelta(0))
    kwargs.setdefault("old_ca_passphrase", PASS)
    return rotation.RotationRequest(path=str(tmp_path / "r.rotation.json"), old_ca_path=old.path,
                                    new_ca_path=new.path, cross_sign=True, **kwargs)


def evidence(old, new, signer):
    return [{"host": "n1", "bundle": read(old, "root.crt") + read(new, "root.crt"), "certificate": leaf_of(signer)}]


@pytest.mark.parametrize("new_intermediate", [True, False])
def test_leaves_served_with_the_cross_certificate_verify_for_old_and_new_peers(make_ca, tmp_path, new_intermediate):
    old = make_ca("Old CA", intermediate=True, permitted_dns=["zone.test"])
    new = make_ca("New CA", intermediate=new_intermediate, permitted_dns=["zone.test"])

    dry = rotation.step(request(old, new, tmp_path), check_mode=True, now=NOW)
    assert dry["issuer_chain"] == "" and read(new, CROSS_FILE) is None and not (tmp_path / "r.rotation.json").exists()

    first = rotation.step(request(old, new, tmp_path), check_mode=False, now=NOW)
    assert first["stage"] == "trust_both" and first["issuer_chain"] == ""  # leaves of the old CA: their own chain
    cross = read(new, CROSS_FILE)
    assert cross and cross.count("BEGIN CERTIFICATE") == 1

    switched = rotation.step(request(old, new, tmp_path, evidence=evidence(old, new, old)), check_mode=False, now=NOW)
    assert switched["stage"] == "switched" and switched["issuer_chain"] == cross
    leaf = leaf_of(new)
    old_root, new_root = read(old, "root.crt"), read(new, "root.crt")
    # a peer that never reread its bundle: the old root only, the leaf and the cross certificate from the server
    ok, out = openssl_verify(leaf, old_root, tmp_path, untrusted_pem=cross)
    assert ok, out
    # a peer that reread it: both roots
    ok, out = openssl_verify(leaf, old_root + new_root, tmp_path, untrusted_pem=cross)
    assert ok, out
    # without the cross certificate the old-root peer refuses the new CA's leaf: what cross_sign is for
    own_chain = read(new, "ca.crt") if new_intermediate else ""
    assert not openssl_verify(leaf, old_root, tmp_path, untrusted_pem=own_chain)[0]

    done = rotation.step(request(old, new, tmp_path, evidence=evidence(old, new, new)), check_mode=False, now=NOW)
    assert done["stage"] == "done" and done["issuer_chain"] == ""
    # how a node still serving the cross certificate gets its own chain first: still trusting the old root
    assert done["uncross"] == {"trust_also": [old.path], "cross_certificate": cross}
    # a rerun keeps the same cross certificate
    assert read(new, CROSS_FILE) == cross


def test_what_cannot_be_cross_signed_fails_before_anything_is_written(make_ca, tmp_path):
    root_only = make_ca("Old CA", permitted_dns=["zone.test"])
    new = make_ca("New CA", intermediate=True, permitted_dns=["zone.test"])
    with pytest.raises(PKIError) as err:
        rotation.step(request(root_only, new, tmp_path), check_mode=False, now=NOW)
    assert err.value.field == "cross_sign" and "intermediate: true" in err.value.problem
    assert read(new, CROSS_FILE) is None and not (tmp_path / "r.rotation.json").exists()

    old = make_ca("Old CA 2", intermediate=True, permitted_dns=["zone.test"])
    with pytest.raises(PKIError) as err:
        rotation.step(request(old, new, tmp_path, old_ca_passphrase="wrong"), check_mode=False, now=NOW)
    assert err.value.field == "old_ca_passphrase"
    wider = make_ca("Wider CA", intermediate=True, permitted_dns=["zone.test", "elsewhere.test"])
    with pytest.raises(PKIError) as err:
        rotation.step(request(old, wider, tmp_path), check_mode=False, now=NOW)
    assert err.value.field == "cross_sign" and "DNS elsewhere.test" in err.value.problem
    assert read(new, CROSS_FILE) is None and read(wider, CROSS_FILE) is None
    assert not (tmp_path / "r.rotation.json").exists()


def test_a_cross_certificate_someone_else_put_there_is_refused(make_ca, tmp_path):
    old = make_ca("Old CA", intermediate=True, permitted_dns=["zone.test"])
    new = make_ca("New CA", intermediate=True, permitted_dns=["zone.test"])
    stranger = make_ca("Stranger", intermediate=True, permitted_dns=["zone.test"])
    # a certificate of the new CA's name and key, but signed by another root
    planted = rotation.RotationRequest(path=str(tmp_path / "s.json"), old_ca_path=stranger.path, new_ca_path=new.path,
                                       cross_sign=True, old_ca_passphrase=PASS)
    rotation.step(planted, check_mode=False, now=NOW)
    with pytest.raises(PKIError) as err:
        rotation.step(request(old, new, tmp_path), check_mode=False, now=NOW)
    assert err.value.field == "new_ca_path" and "the old root did not sign it" in err.value.problem
    assert not (tmp_path / "r.rotation.json").exists()


def test_the_cross_certificate_keeps_the_old_roots_exclusions_and_outlives_only_the_rotation(make_ca, tmp_path):
    """Peers that ignore a trusted root's own constraints (Java's default) must still see the old root's exclusions."""
    from cryptography import x509  # pylint: disable=import-outside-toplevel

    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificate  # noqa: E501 pylint: disable=import-outside-toplevel

    old = make_ca("Old CA", intermediate=True, permitted_dns=["zone.test"], excluded_dns=["secret.zone.test"])
    new = make_ca("New CA", intermediate=True, permitted_dns=["zone.test"])
    rotation.step(request(old, new, tmp_path, switch_after=datetime.timedelta(hours=2)), check_mode=False, now=NOW)
    cross = load_certificate(read(new, CROSS_FILE), "cross")
    constraints = cross.extensions.get_extension_for_class(x509.NameConstraints).value
    assert [n.value for n in constraints.excluded_subtrees] == ["secret.zone.test"]
    # it lives for the rotation and a margin, not for the years the CAs live
    lifetime = cross.not_valid_after_utc - NOW
    assert datetime.timedelta(days=30) < lifetime <= datetime.timedelta(days=30, hours=3, minutes=1), lifetime
    assert openssl_verify(leaf_of(new, "ok.zone.test"), read(old, "root.crt"), tmp_path, untrusted_pem=read(
        new, CROSS_FILE))[0]
    assert not openssl_verify(leaf_of(new, "secret.zone.test"), read(old, "root.crt"), tmp_path,
                              untrusted_pem=read(new, CROSS_FILE), extra=["-ignore_critical"])[0]


def test_uri_domains_follow_rfc_5280_when_compared(make_ca, tmp_path):
    old = make_ca("Old CA", intermediate=True, permitted_uri_domains=["example.test"])
    new = make_ca("New CA", intermediate=True, permitted_uri_domains=[".example.test"])  # hosts below: wider
    with pytest.raises(PKIError) as err:
        rotation.step(request(old, new, tmp_path), check_mode=False, now=NOW)
    assert err.value.field == "cross_sign" and "URI .example.test" in err.value.problem


def test_at_done_the_cross_certificate_is_still_checked(make_ca, tmp_path):
    old = make_ca("Old CA", intermediate=True, permitted_dns=["zone.test"])
    new = make_ca("New CA", intermediate=True, permitted_dns=["zone.test"])
    rotation.step(request(old, new, tmp_path), check_mode=False, now=NOW)
    rotation.step(request(old, new, tmp_path, evidence=evidence(old, new, old)), check_mode=False, now=NOW)
    done = rotation.step(request(old, new, tmp_path, evidence=evidence(old, new, new)), check_mode=False, now=NOW)
    assert done["uncross"]["cross_certificate"] == read(new, CROSS_FILE)
    # someone who may write the new CA but holds no key plants whitespace (found in every chain) or another cert
    for planted in ("\n", read(old, "ca.crt")):
        with open(os.path.join(new.path, CROSS_FILE), "w") as handle:
            handle.write(planted)
        with pytest.raises(PKIError) as err:
            rotation.step(request(old, new, tmp_path), check_mode=False, now=NOW)
        assert err.value.field == "new_ca_path" and "not the cross-signed certificate" in err.value.problem
    os.unlink(os.path.join(new.path, CROSS_FILE))
    assert rotation.step(request(old, new, tmp_path), check_mode=False, now=NOW)["uncross"]["cross_certificate"] == ""
