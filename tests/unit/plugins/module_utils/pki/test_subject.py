# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A subject chosen by the controller: in the certificate as asked, never the CSR's; client certificates
without names; every bad value refused naming its field; renewal when the subject changes, and only then.

Judged by openssl (verify, x509 -text) and real TLS handshakes, not by the code under test.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ledger, node, record, signing
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import build_csr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import certificate_pem
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import (
    Subject, build_identity, parse_subject)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, generate_private_key
from ansible_collections.securebydefault.pki.tests.unit.pki_helpers import openssl_verify, request_for, tree
from ansible_collections.securebydefault.pki.tests.unit.plugins.module_utils.pki.test_node import mtls, snapshot

DAY = datetime.timedelta(days=1)
PASS = "correct horse"
KUBELET = {"common_name": "system:node:node1", "organizations": ["system:nodes"]}
ADMIN = {"common_name": "kubernetes-admin", "organizations": ["system:masters"]}


def csr_pem(names=(), subject=None):
    """A CSR for ``names``; without names its subject is whatever the node put there (never taken)."""
    key = generate_private_key(KeySpec())
    csr = build_csr(key, build_identity(list(names)), subject or (None if names else Subject("whoever")))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def sign(ca, names, usages, subject, csr=None, host="node1"):
    pem = signing.sign_csr(ca.path, PASS, csr or csr_pem(names), list(names), usages, 90 * DAY, False, host,
                           subject=subject)[0]
    return x509.load_pem_x509_certificate(pem.encode())


def attributes(cert):
    return [(a.oid, a.value) for a in cert.subject]


def openssl_text(cert, tmp_path):
    (tmp_path / "t.pem").write_text(certificate_pem(cert))
    return subprocess.run(["openssl", "x509", "-noout", "-text", "-nameopt", "RFC2253", "-in", str(tmp_path / "t.pem")],
                          capture_output=True, text=True, check=True).stdout


def option_of(subject):
    """The subject option that gives ``subject`` (what the action hands sign_csr)."""
    if subject.is_default():
        return None
    return {"common_name": subject.common_name, "organizations": list(subject.organizations)}


def converge(ca, request, usages=("server", "client"), host=""):
    """prepare -> sign_csr (ledger, the subject of the request) -> install, as node_certificate does."""
    prepared = node.prepare(request)
    if not prepared.csr:
        return prepared, None
    pem = signing.sign_csr(ca.path, PASS, prepared.csr, prepared.identity, list(usages), 90 * DAY, False, host,
                           subject=option_of(request.chosen_subject))[0]
    request.names = prepared.identity
    return prepared, node.install(request, pem)


# ---------------------------------------------------------------- the subject in the certificate

def test_organizations_then_common_name_in_the_given_order(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    subject = {"common_name": "system:node:node1", "organizations": ["system:nodes", "b-team", "a-team"]}
    cert = sign(ca, ["node1.pki.test"], ["server", "client"], subject)
    assert attributes(cert) == [(NameOID.ORGANIZATION_NAME, "system:nodes"), (NameOID.ORGANIZATION_NAME, "b-team"),
                                (NameOID.ORGANIZATION_NAME, "a-team"), (NameOID.COMMON_NAME, "system:node:node1")]
    # openssl prints RFC 2253 most significant last: the common name first, the organizations reversed
    assert "Subject: CN=system:node:node1,O=a-team,O=b-team,O=system:nodes" in openssl_text(cert, tmp_path)
    ok, out = openssl_verify(certificate_pem(cert), certificate_pem(ca.root), tmp_path,
                             extra=["-purpose", "sslserver", "-verify_hostname", "node1.pki.test"])
    assert ok, out


def test_the_csr_subject_is_never_taken(make_ca):
    ca = make_ca()
    claimed = csr_pem(["n.pki.test"], Subject("kubernetes-admin", ("system:masters",)))
    cert = sign(ca, ["n.pki.test"], ["client"], None, csr=claimed)
    assert attributes(cert) == [(NameOID.COMMON_NAME, "n.pki.test")]
    cert = sign(ca, ["n.pki.test"], ["client"], KUBELET, csr=claimed)
    assert attributes(cert) == [(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                (NameOID.COMMON_NAME, "system:node:node1")]


def test_no_subject_is_the_subject_of_before(make_ca):
    ca = make_ca()
    for subject in (None, {}, {"common_name": None, "organizations": None}, {"organizations": []}):
        cert = sign(ca, ["n.pki.test", "10.0.0.1"], ["server"], subject)
        assert attributes(cert) == [(NameOID.COMMON_NAME, "n.pki.test")]


def test_the_ledger_records_the_subject_and_no_names(make_ca):
    ca = make_ca()
    cert = sign(ca, [], ["client"], ADMIN, host="console1")
    entries = ledger.parse(open(os.path.join(ca.path, ledger.LEDGER), "rb").read())[0]
    entry = next(e for e in entries if e.get("serial") == "%x" % cert.serial_number)
    assert entry["subject"] == "CN=kubernetes-admin,O=system:masters"
    assert entry["names"] == [] and entry["host"] == "console1"
    # a subject is not a name: a second host may hold a certificate with the same subject
    sign(ca, [], ["client"], ADMIN, host="console2")


# ---------------------------------------------------------------- a client certificate without names

def test_client_certificate_without_names_has_no_san_and_verifies(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"], permitted_ip_ranges=["10.0.0.0/8"])
    cert = sign(ca, [], ["client"], ADMIN)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    assert "Subject Alternative Name" not in openssl_text(cert, tmp_path)
    ok, out = openssl_verify(certificate_pem(cert), certificate_pem(ca.root), tmp_path,
                             extra=["-purpose", "sslclient"])
    assert ok, out
    ok, out = openssl_verify(certificate_pem(cert), certificate_pem(ca.root), tmp_path,
                             extra=["-purpose", "sslserver"])
    assert not ok, "a client certificate must not pass as a server's"


@pytest.mark.parametrize("usages,subject,field,match", [
    (["server"], ADMIN, "usages", "client certificate only, not server"),
    (["server", "client"], ADMIN, "usages", "client certificate only, not client,server"),
    (["client"], None, "names", "would name nothing"),
    (["client"], {"common_name": None, "organizations": []}, "names", "would name nothing"),
])
def test_no_names_only_for_a_client_with_a_common_name(make_ca, usages, subject, field, match):
    ca = make_ca()
    before = tree(ca.path)
    with pytest.raises(PKIError, match=match) as err:
        sign(ca, [], usages, subject)
    assert err.value.field == field
    assert tree(ca.path) == before, "nothing signed, nothing in the ledger"


def test_a_dotted_common_name_without_dns_names_stays_in_the_constraints(make_ca, tmp_path):
    """OpenSSL takes such a common name for a host name and holds it to the CA's DNS constraints."""
    ca = make_ca(permitted_dns=["pki.test"])
    with pytest.raises(PKIError, match="reads as a host name") as err:
        sign(ca, [], ["client"], {"common_name": "admin.other.test"})
    assert err.value.field == "subject.common_name"
    cert = sign(ca, [], ["client"], {"common_name": "admin.pki.test"})
    ok, out = openssl_verify(certificate_pem(cert), certificate_pem(ca.root), tmp_path,
                             extra=["-purpose", "sslclient"])
    assert ok, out
    # with a DNS name in the certificate, OpenSSL leaves the common name alone
    assert sign(ca, ["n.pki.test"], ["client"], {"common_name": "admin.other.test"})


def test_client_without_names_on_the_node_converges_and_shakes_hands(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    converge(ca, request_for(ca, tmp_path / "server", ["server.pki.test"]))
    client = request_for(ca, tmp_path / "admin", [], usages=["client"], subject=ADMIN)
    prepared, installed = converge(ca, client, usages=["client"])
    assert prepared.reasons == ["no certificate yet"] and prepared.identity == []
    assert installed.certificate["subject"] == "CN=kubernetes-admin,O=system:masters"
    assert installed.certificate["names"] == []
    before = snapshot(tmp_path / "admin")
    again = node.prepare(request_for(ca, tmp_path / "admin", [], usages=["client"], subject=ADMIN))
    assert again.reasons == [] and not again.changed
    assert snapshot(tmp_path / "admin") == before
    # the quick path believes the record: same subject asked for
    found = record.load(client.cert.path)
    assert found["subject"] == "CN=kubernetes-admin,O=system:masters"
    assert found["requested_subject"] == {"common_name": "kubernetes-admin", "organizations": ["system:masters"]}
    # a real mutual-TLS handshake: the server sees who the client is from the subject alone
    error, outcome = mtls(str(tmp_path / "server"), str(tmp_path / "admin"), "server.pki.test")
    assert error is None and "error" not in outcome, (error, outcome)
    assert outcome["peer"]["subject"] == ((("organizationName", "system:masters"),),
                                          (("commonName", "kubernetes-admin"),))
    assert "subjectAltName" not in outcome["peer"]


def test_no_names_on_the_node_refused_before_anything_is_written(make_ca, tmp_path):
    ca = make_ca()
    for kwargs, field in [(dict(usages=["server", "client"], subject=ADMIN), "usages"),
                          (dict(usages=["client"]), "names")]:
        with pytest.raises(PKIError) as err:
            node.prepare(request_for(ca, tmp_path / "n", [], **kwargs))
        assert err.value.field == field
        assert not os.path.exists(tmp_path / "n")


# ---------------------------------------------------------------- validation, naming the field

@pytest.mark.parametrize("value,field,match", [
    ({"common_name": ""}, "subject.common_name", "empty"),
    ({"common_name": "x" * 65}, "subject.common_name", "65 characters"),
    ({"common_name": "kubernetes admin"}, "subject.common_name", "whitespace"),
    ({"common_name": "admin\n"}, "subject.common_name", "control character"),
    ({"common_name": "admin\u202eevil"}, "subject.common_name", "invisible"),
    ({"common_name": 7}, "subject.common_name", "not a string"),
    ({"organizations": ["system:masters"]}, "subject.common_name", "without a common name"),
    ({"common_name": "a", "organizations": ["system:nodes", ""]}, "subject.organizations[1]", "empty"),
    ({"common_name": "a", "organizations": ["o" * 65]}, "subject.organizations[0]", "65 characters"),
    ({"common_name": "a", "organizations": ["x", "y\t"]}, "subject.organizations[1]", "whitespace"),
    ({"common_name": "a", "organizations": ["x", "y", "x"]}, "subject.organizations[2]", "listed twice"),
    ({"common_name": "a", "organizations": ["o%d" % i for i in range(9)]}, "subject.organizations", "9 organ"),
    ({"common_name": "a", "organizations": "system:masters"}, "subject.organizations", "not a list"),
    ({"common_name": "a", "organisation": "x"}, "subject", "unknown keys \\['organisation'\\]"),
    ("CN=a", "subject", "not a mapping"),
])
def test_bad_subjects_are_refused_naming_the_field(value, field, match):
    with pytest.raises(PKIError, match=match) as err:
        parse_subject(value)
    assert err.value.field == field


def test_bad_subject_fails_before_anything_is_written(make_ca, tmp_path):
    ca = make_ca()
    before = tree(ca.path)
    with pytest.raises(PKIError) as err:
        sign(ca, [], ["client"], {"common_name": "a", "organizations": ["x", "x"]})
    assert err.value.field == "subject.organizations[1]" and tree(ca.path) == before
    with pytest.raises(PKIError) as err:
        node.prepare(request_for(ca, tmp_path / "n", ["n.pki.test"], subject={"common_name": "a b"}))
    assert err.value.field == "subject.common_name" and not os.path.exists(tmp_path / "n")


def test_the_limits_themselves_are_accepted():
    subject = parse_subject({"common_name": "c" * 64, "organizations": ["o%d" % i for i in range(8)]})
    assert len(subject.common_name) == 64 and len(subject.organizations) == 8
    assert parse_subject({"common_name": "Zürich-ÄG"}).common_name == "Zürich-ÄG"


# ---------------------------------------------------------------- renewal

def test_renewal_when_the_subject_changes_and_only_then(make_ca, tmp_path):
    ca = make_ca()
    base = tmp_path / "n"

    def wanted(subject, **kwargs):
        return request_for(ca, base, ["n.pki.test"], usages=["client"], subject=subject, **kwargs)

    converge(ca, wanted(KUBELET), usages=["client"])
    assert node.prepare(wanted(KUBELET, check_mode=True)).reasons == []
    moved = {"common_name": "system:node:node2", "organizations": ["system:nodes"]}
    assert node.prepare(wanted(moved, check_mode=True)).reasons == [
        "subject changed: CN=system:node:node1,O=system:nodes -> CN=system:node:node2,O=system:nodes"]
    assert node.prepare(wanted(ADMIN, check_mode=True)).reasons == [
        "subject changed: CN=system:node:node1,O=system:nodes -> CN=kubernetes-admin,O=system:masters"]
    more = dict(KUBELET, organizations=["system:nodes", "ops"])
    assert node.prepare(wanted(more, check_mode=True)).reasons == [
        "subject changed: CN=system:node:node1,O=system:nodes -> CN=system:node:node1,O=ops,O=system:nodes"]
    # the subject dropped: a certificate issued to a chosen subject goes back to the default one
    assert node.prepare(wanted(None, check_mode=True)).reasons == [
        "subject changed: CN=system:node:node1,O=system:nodes -> CN=n.pki.test"]
    # re-issued for the new subject, then settled
    prepared, installed = converge(ca, wanted(moved), usages=["client"])
    assert prepared.reasons == [
        "subject changed: CN=system:node:node1,O=system:nodes -> CN=system:node:node2,O=system:nodes"]
    assert installed.certificate["subject"] == "CN=system:node:node2,O=system:nodes"
    assert node.prepare(wanted(moved)).reasons == []


def test_the_order_of_organizations_is_no_reason(make_ca, tmp_path):
    ca = make_ca()
    two = {"common_name": "u", "organizations": ["g1", "g2"]}
    req = request_for(ca, tmp_path / "n", ["n.pki.test"], subject=two)
    converge(ca, req)
    swapped = {"common_name": "u", "organizations": ["g2", "g1"]}
    swapped = request_for(ca, tmp_path / "n", ["n.pki.test"], subject=swapped)
    assert node.prepare(swapped).reasons == []


def test_no_reason_when_no_subject_is_asked_for(make_ca, tmp_path):
    """Certificates issued without a subject (as before the option existed) stay as they are."""
    ca = make_ca()
    for names in (["n.pki.test", "10.0.0.1"], ["10.0.0.2"], ["spiffe://pki.test/n"]):
        base = tmp_path / names[0].replace("/", "_").replace(":", "_")
        converge(ca, request_for(ca, base, names))
        before = snapshot(base)
        for subject in (None, {}, {"common_name": None, "organizations": None}):
            again = node.prepare(request_for(ca, base, names, subject=subject))
            assert again.reasons == [] and not again.changed
        assert snapshot(base) == before


def test_a_certificate_with_another_subject_is_not_installed(make_ca, tmp_path):
    """The CA host signed without the subject the node asked for (sign_csr called without it)."""
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"], usages=["client"], subject=KUBELET)
    prepared = node.prepare(req)
    pem = signing.sign_csr(ca.path, PASS, prepared.csr, prepared.identity, ["client"], 90 * DAY, False)[0]
    before = tree(tmp_path / "n")
    with pytest.raises(PKIError, match="not issued to the subject asked for") as err:
        node.install(req, pem)
    assert err.value.field == "certificate" and tree(tmp_path / "n") == before


def test_check_mode_and_diff_show_the_subject(make_ca, tmp_path):
    ca = make_ca()
    converge(ca, request_for(ca, tmp_path / "n", ["n.pki.test"]))
    before = tree(tmp_path / "n")
    result = node.prepare(request_for(ca, tmp_path / "n", ["n.pki.test"], subject=KUBELET, check_mode=True))
    assert result.changed and result.csr is None
    assert result.before["subject"] == "CN=n.pki.test"
    assert result.after["subject"] == "CN=system:node:node1,O=system:nodes"
    assert tree(tmp_path / "n") == before
    json.dumps(result.as_dict())  # what the module returns stays plain data
