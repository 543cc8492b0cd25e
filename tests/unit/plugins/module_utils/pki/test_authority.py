# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issuing under policy, checked by verifiers that are not ours: openssl and cryptography's X.509 verifier."""
from __future__ import annotations

import datetime
import os
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ca_store
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import build_csr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import certificate_pem, pem_of
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, generate_private_key

from ansible_collections.securebydefault.pki.tests.unit.pki_helpers import openssl_ok, openssl_verify

DAY = datetime.timedelta(days=1)
pytestmark = pytest.mark.controller  # cryptography's X.509 verifier (>= 42) is only on the controller


def issue(ca, names, usages=("server", "client"), key=None, valid_for=30 * DAY, now=None):
    key = key or generate_private_key(KeySpec())
    ident = build_identity(names)
    return key, ca.sign(build_csr(key, ident), ident, usages, valid_for, now=now)


def verify_with_cryptography(cert, ca, hostname=None, ip=None):
    from cryptography.x509 import verification
    store = verification.Store([ca.root])
    builder = verification.PolicyBuilder().store(store)
    subject = x509.DNSName(hostname) if hostname else x509.IPAddress(__import__("ipaddress").ip_address(ip))
    verifier = builder.build_server_verifier(subject)
    return verifier.verify(cert, ca.issuer_chain())


def test_root_ca_properties(make_ca):
    ca = make_ca(permitted_dns=["pki.test"], permitted_ip_ranges=["10.20.0.0/16"])
    cert = ca.certificate
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    nc = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical
    assert [g.value for g in nc.value.permitted_subtrees][0] == "pki.test"
    assert cert.serial_number.bit_length() > 64


def test_leaf_verifies_with_openssl_and_cryptography(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"], permitted_ip_ranges=["10.20.0.0/16"])
    cert = issue(ca, ["node1.pki.test", "10.20.0.7"])[1]
    ok, out = openssl_verify(certificate_pem(cert), certificate_pem(ca.root), tmp_path,
                             extra=["-verify_hostname", "node1.pki.test", "-purpose", "sslserver"])
    assert ok, out
    chain = verify_with_cryptography(cert, ca, hostname="node1.pki.test")
    assert chain[-1] == ca.root
    verify_with_cryptography(cert, ca, ip="10.20.0.7")
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def test_leaf_negative_verifications(make_ca, tmp_path):
    ca = make_ca()
    other = make_ca(common_name="Other CA")
    cert = issue(ca, ["node1.pki.test"], usages=["client"])[1]
    ok = openssl_ok(certificate_pem(cert), certificate_pem(other.root), tmp_path)
    assert not ok, "a certificate must not verify against another CA"
    ok = openssl_ok(certificate_pem(cert), certificate_pem(ca.root), tmp_path,
                    extra=["-verify_hostname", "node2.pki.test"])
    assert not ok, "wrong host name must fail"
    ok = openssl_ok(certificate_pem(cert), certificate_pem(ca.root), tmp_path, extra=["-purpose", "sslserver"])
    assert not ok, "a client-only certificate must not pass as a server certificate"
    from cryptography.x509.verification import VerificationError
    with pytest.raises(VerificationError):
        verify_with_cryptography(cert, ca, hostname="node2.pki.test")


def test_expired_leaf_rejected_by_openssl(make_ca, tmp_path):
    past = datetime.datetime.now(datetime.timezone.utc) - 10 * DAY
    ca = make_ca(now=past)
    cert = issue(ca, ["node1.pki.test"], valid_for=DAY, now=past + datetime.timedelta(minutes=6))[1]
    ok, out = openssl_verify(certificate_pem(cert), certificate_pem(ca.root), tmp_path)
    assert not ok and "expired" in out


def test_intermediate_chain(make_ca, tmp_path):
    ca = make_ca(intermediate=True, permitted_dns=["pki.test"])
    path = ca.path
    assert ca.certificate != ca.root
    assert sorted(os.listdir(path)) == ["ca.crt", "ca.json", "ca.key", "root.crt", "root.key"]
    cert = issue(ca, ["a.pki.test"])[1]
    ok, out = openssl_verify(certificate_pem(cert), certificate_pem(ca.root), tmp_path,
                             untrusted_pem=pem_of(ca.issuer_chain()))
    assert ok, out
    ok = openssl_ok(certificate_pem(cert), certificate_pem(ca.root), tmp_path)
    assert not ok, "without the intermediate the chain must not build"
    assert verify_with_cryptography(cert, ca, hostname="a.pki.test")[1] == ca.certificate


@pytest.mark.parametrize("names, words", [
    (["node1.other.test"], "outside the permitted DNS subtrees"),
    (["node1.pki.test", "10.99.0.1"], "outside the permitted IP ranges"),
    (["spiffe://evil.test/x"], "outside the permitted URI domains"),
    (["secret.pki.test"], "excluded subtree"),
])
def test_names_outside_constraints_refused(make_ca, names, words):
    ca = make_ca(permitted_dns=["pki.test"], permitted_ip_ranges=["10.20.0.0/16"],
                 permitted_uri_domains=["pki.test"], excluded_dns=["secret.pki.test"])
    with pytest.raises(PKIError, match=words) as err:
        issue(ca, names)
    assert "widen the CA's constraints" in err.value.fix


def test_openssl_enforces_the_constraints_too(make_ca, tmp_path):
    """Defence in depth: even a certificate our policy would refuse is rejected by peers."""
    ca = make_ca(permitted_dns=["pki.test"])
    key = generate_private_key(KeySpec())
    ident = build_identity(["evil.other.test"])
    builder = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.certificate.subject)
               .public_key(key.public_key()).serial_number(7)
               .not_valid_before(datetime.datetime.now(datetime.timezone.utc) - DAY)
               .not_valid_after(datetime.datetime.now(datetime.timezone.utc) + DAY)
               .add_extension(x509.SubjectAlternativeName(ident.general_names()), critical=True))
    from cryptography.hazmat.primitives import hashes
    rogue = builder.sign(ca.key, hashes.SHA256())
    ok, out = openssl_verify(certificate_pem(rogue), certificate_pem(ca.root), tmp_path)
    assert not ok and "permitted subtree violation" in out


def test_wildcard_policy(make_ca):
    strict = make_ca()
    key = generate_private_key(KeySpec())
    wild = build_identity(["*.apps.pki.test"], allow_wildcard=True)
    with pytest.raises(PKIError, match="refuses wildcard"):
        strict.sign(build_csr(key, wild), wild, ["server"], DAY)
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import SigningPolicy
    lenient = make_ca(policy=SigningPolicy(allow_wildcard=True))
    assert lenient.sign(build_csr(key, wild), wild, ["server"], DAY)


def test_csr_must_match_approved_identity(make_ca):
    ca = make_ca()
    key = generate_private_key(KeySpec())
    csr = build_csr(key, build_identity(["node1.pki.test", "node2.pki.test"]))
    with pytest.raises(PKIError, match="extra") as err:
        ca.sign(csr, build_identity(["node1.pki.test"]), ["server"], DAY)
    assert err.value.field == "csr"


def test_weak_csr_key_refused(make_ca):
    ca = make_ca()
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ident = build_identity(["node1.pki.test"])
    with pytest.raises(PKIError, match="not acceptable"):
        ca.sign(build_csr(weak, ident), ident, ["server"], DAY)


def test_validity_capped_by_policy_and_ca(make_ca):
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import SigningPolicy
    ca = make_ca(policy=SigningPolicy(max_validity=10 * DAY))
    with pytest.raises(PKIError, match="exceeds the CA's maximum") as err:
        issue(ca, ["n.pki.test"], valid_for=11 * DAY)
    assert err.value.field == "valid_for"
    short = make_ca(valid_for=5 * DAY, policy=SigningPolicy(max_validity=400 * DAY))
    cert = issue(short, ["n.pki.test"], valid_for=30 * DAY)[1]
    assert cert.not_valid_after_utc <= short.certificate.not_valid_after_utc


def test_expired_ca_refused(make_ca, tmp_path):
    path = make_ca(valid_for=DAY).path
    later = datetime.datetime.now(datetime.timezone.utc) + 2 * DAY
    with pytest.raises(PKIError, match="expired") as err:
        ca_store.load_ca(path, "correct horse", now=later)
    assert err.value.field == "ca_path"
    assert "create a new CA" in err.value.fix


def test_ca_key_not_matching_certificate(make_ca):
    path_a = make_ca().path
    path_b = make_ca(common_name="B").path
    shutil.copy(os.path.join(path_b, "ca.key"), os.path.join(path_a, "ca.key"))
    with pytest.raises(PKIError, match="does not match the CA certificate"):
        ca_store.load_ca(path_a, "correct horse")


def test_wrong_ca_passphrase(make_ca):
    path = make_ca().path
    with pytest.raises(PKIError, match="passphrase does not decrypt") as err:
        ca_store.load_ca(path, "wrong horse")
    assert err.value.field == "ca_passphrase"


def test_new_ca_directory_is_private_and_complete(make_ca):
    path = make_ca().path
    assert oct(os.stat(path).st_mode & 0o777) == "0o700"
    assert oct(os.stat(os.path.join(path, "ca.key")).st_mode & 0o777) == "0o600"
    assert b"ENCRYPTED" in open(os.path.join(path, "ca.key"), "rb").read()
    assert not [n for n in os.listdir(os.path.dirname(path)) if ".new." in n], "no staging directory left"


@pytest.mark.parametrize("spec", [KeySpec("ec", 384), KeySpec("rsa", 2048), KeySpec("ed25519")])
def test_other_ca_key_types_issue_verifiable_leaves(make_ca, tmp_path, spec):
    ca = make_ca(key_spec=spec)
    cert = issue(ca, ["n.pki.test"], key=generate_private_key(spec))[1]
    ok, out = openssl_verify(certificate_pem(cert), certificate_pem(ca.root), tmp_path)
    assert ok, out


def test_serials_are_unique(make_ca):
    ca = make_ca()
    key = generate_private_key(KeySpec())
    serials = {issue(ca, ["n.pki.test"], key=key)[1].serial_number for _attempt in range(50)}
    assert len(serials) == 50
    assert isinstance(key, ec.EllipticCurvePrivateKey)
