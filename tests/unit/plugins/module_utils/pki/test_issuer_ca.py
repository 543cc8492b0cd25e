# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-issuer intermediate that backs a cert-manager CA Issuer: made by the root, path length 0, never wider
than the root, kept while good; leaves under it chain to the CA. Verified by openssl, independently."""
from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import issuer_ca
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import chains_to
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import certificate_pem
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import private_key_pem
from ansible_collections.securebydefault.pki.tests.unit.pki_helpers import openssl_verify

pytestmark = pytest.mark.controller
NOW = datetime.datetime.now(datetime.timezone.utc)
PASS = "correct horse"


@pytest.fixture
def zone(make_ca):
    return make_ca("Zone", intermediate=True, permitted_dns=["svc.cluster.local", "pki.test"],
                   permitted_ip_ranges=["10.96.0.0/12"], permitted_uri_domains=["zone.example"])


def leaf_under(key, cert, names):
    """A leaf signed by the intermediate as cert-manager would make it: whatever names it is asked for."""
    from cryptography.hazmat.primitives import hashes
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    identity = build_identity(names, "names")
    return (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(cert.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(minutes=5)).not_valid_after(NOW + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(identity.general_names()), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))


def test_the_root_signs_an_intermediate_that_cannot_make_cas_and_stays_inside_the_root(zone, tmp_path):
    signer = issuer_ca.load_signer(zone.path, PASS)
    constraints = issuer_ca.narrowed(signer, ["prod.svc.cluster.local"])
    key, cert = issuer_ca.issue(signer, "prod/zone-ca cert-manager issuer", constraints,
                                datetime.timedelta(days=365), NOW)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert cert.issuer == zone.root.subject and cert != zone.certificate
    nc = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    assert sorted(n.value for n in nc.permitted_subtrees if isinstance(n, x509.DNSName)) == ["prod.svc.cluster.local"]
    assert [str(n.value) for n in nc.permitted_subtrees if isinstance(n, x509.IPAddress)] == ["10.96.0.0/12"]
    root_pem = certificate_pem(zone.root)
    inside = leaf_under(key, cert, ["api.prod.svc.cluster.local"])
    ok, out = openssl_verify(certificate_pem(inside), root_pem, tmp_path, untrusted_pem=certificate_pem(cert))
    assert ok, out
    # the intermediate's own constraint binds: a name the root permits but the intermediate does not
    other = leaf_under(key, cert, ["api.staging.svc.cluster.local"])
    ok, out = openssl_verify(certificate_pem(other), root_pem, tmp_path, untrusted_pem=certificate_pem(cert))
    assert not ok and ("name constraint" in out.lower() or "permitted" in out.lower()), out
    # and it cannot make a CA that openssl would accept below it (path length 0)
    sub_key, sub = issuer_ca.issue(issuer_ca.Signer(key, cert, constraints), "sub", constraints,
                                   datetime.timedelta(days=30), NOW)
    below = leaf_under(sub_key, sub, ["x.prod.svc.cluster.local"])
    ok, out = openssl_verify(certificate_pem(below), root_pem, tmp_path,
                             untrusted_pem=certificate_pem(sub) + certificate_pem(cert))
    assert not ok and "path length" in out.lower(), out
    assert chains_to([inside, cert], [zone.certificate, zone.root])
    assert not chains_to([inside], [zone.certificate, zone.root])  # without its chain it does not


def test_a_root_without_room_for_an_intermediate_is_refused_naming_the_way_out(make_ca):
    root_only = make_ca("Root only", permitted_dns=["pki.test"])
    with pytest.raises(PKIError) as err:
        issuer_ca.load_signer(root_only.path, PASS)
    assert err.value.field == "ca_path" and "intermediate: true" in err.value.fix
    assert "signing_ca" in err.value.fix


def test_a_wrong_passphrase_names_ca_passphrase(zone):
    with pytest.raises(PKIError) as err:
        issuer_ca.load_signer(zone.path, "wrong")
    assert err.value.field == "ca_passphrase"


@pytest.mark.parametrize("kind, value", [
    ("permitted_dns", "example.com"),
    ("permitted_dns", "cluster.local"),  # wider than the root's svc.cluster.local
    ("permitted_ip_ranges", "10.0.0.0/8"),
    ("permitted_ip_ranges", "fd00::/64"),
    ("permitted_uri_domains", "other.example"),
])
def test_an_intermediate_wider_than_the_root_is_refused(zone, kind, value):
    signer = issuer_ca.load_signer(zone.path, PASS)
    with pytest.raises(PKIError) as err:
        issuer_ca.narrowed(signer, **{kind: [value]})
    assert err.value.field == "intermediate_" + kind


def test_kinds_not_narrowed_keep_the_root_s(zone):
    signer = issuer_ca.load_signer(zone.path, PASS)
    spec = issuer_ca.narrowed(signer, permitted_ip_ranges=["10.96.1.0/24"])
    assert spec.permitted_dns == signer.constraints.permitted_dns
    assert [str(n) for n in spec.permitted_ip_ranges] == ["10.96.1.0/24"]
    assert spec.permitted_uri_domains == ("zone.example",)


def test_the_intermediate_is_kept_while_good_and_replaced_with_a_reason(zone, make_ca):
    signer = issuer_ca.load_signer(zone.path, PASS)
    wanted = issuer_ca.narrowed(signer, ["prod.svc.cluster.local"])
    key, cert = issuer_ca.issue(signer, "prod/i" + issuer_ca.SUBJECT_SUFFIX, wanted, datetime.timedelta(days=300),
                                NOW)
    key_pem = private_key_pem(key)
    assert issuer_ca.still_good(cert, key_pem, signer, wanted, NOW) is None
    later = NOW + datetime.timedelta(days=201)
    assert "third of its life" in issuer_ca.still_good(cert, key_pem, signer, wanted, later)
    other = issuer_ca.narrowed(signer, ["staging.svc.cluster.local"])
    assert "constraints" in issuer_ca.still_good(cert, key_pem, signer, other, NOW)
    stranger = private_key_pem(ec.generate_private_key(ec.SECP256R1()))
    assert "does not match" in issuer_ca.still_good(cert, stranger, signer, wanted, NOW)
    assert "cannot be read" in issuer_ca.still_good(cert, b"garbage", signer, wanted, NOW)
    foreign = issuer_ca.load_signer(make_ca("Foreign", intermediate=True).path, PASS)
    assert "not an intermediate of this CA" in issuer_ca.still_good(cert, key_pem, foreign, wanted, NOW)
    # the directory's own issuing CA is an intermediate of the root too, but it may not be kept as is
    assert issuer_ca.is_ours(zone.certificate, signer)


def test_a_lifetime_under_a_day_is_refused():
    with pytest.raises(PKIError) as err:
        issuer_ca.check_valid_for(datetime.timedelta(hours=2))
    assert err.value.field == "intermediate_valid_for"


def test_the_ca_s_own_certificates_and_foreign_subjects_are_never_kept(zone):
    signer = issuer_ca.load_signer(zone.path, PASS)
    same = issuer_ca.narrowed(signer)  # the root's constraints: what the directory's issuing CA carries too
    why = issuer_ca.still_good(zone.certificate, private_key_pem(zone.key), signer, same, NOW,
                               own=[zone.certificate, zone.root])
    assert why is not None and "own certificate" in why
    key, cert = issuer_ca.issue(signer, "not-ours", same, datetime.timedelta(days=300), NOW)
    assert "not a per-issuer intermediate" in issuer_ca.still_good(cert, private_key_pem(key), signer, same, NOW)


def test_no_addresses_is_narrower_than_any_root_and_uri_domains_compare_exactly(make_ca):
    ca = make_ca("Exact", intermediate=True, permitted_dns=["pki.test"], permitted_ip_ranges=["10.0.0.0/8"],
                 permitted_uri_domains=["zone.example"])
    signer = issuer_ca.load_signer(ca.path, PASS)
    spec = issuer_ca.narrowed(signer, permitted_ip_ranges=list(issuer_ca.NO_ADDRESSES))
    assert sorted(str(n) for n in spec.permitted_ip_ranges) == ["0.0.0.0/32", "::/128"]
    with pytest.raises(PKIError) as err:  # the root permits exactly the host zone.example, not hosts below it
        issuer_ca.narrowed(signer, permitted_uri_domains=[".zone.example"])
    assert err.value.field == "intermediate_permitted_uri_domains"
    assert issuer_ca.narrowed(signer, permitted_uri_domains=["zone.example"]).permitted_uri_domains == (
        "zone.example",)


def test_a_ca_certificate_is_not_a_leaf_of_the_ca(zone):
    assert not chains_to([zone.certificate], [zone.certificate, zone.root])
    assert not chains_to([zone.root], [zone.root])
