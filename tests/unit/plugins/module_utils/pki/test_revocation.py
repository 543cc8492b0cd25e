# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Revocation and the CRL, checked by openssl (an independent verifier) wherever it can be."""
from __future__ import annotations

import datetime
import json
import os
import subprocess

import pytest
from cryptography import x509

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ca_store, ledger, revocation
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import build_csr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import certificate_pem
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, generate_private_key
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import isoformat, not_valid_after, utcnow

DAY = datetime.timedelta(days=1)


def issue(ca, host, valid_for=30 * DAY, now=None):
    """Sign a leaf for ``host`` and record it in the ledger, as node_certificate does."""
    ident = build_identity([host])
    cert = ca.sign(build_csr(generate_private_key(KeySpec()), ident), ident, ["server"], valid_for, now=now)
    ledger.append(ca.path, {"serial": format(cert.serial_number, "x"), "host": host, "names": [host],
                            "subject": cert.subject.rfc4514_string(), "not_after": isoformat(not_valid_after(cert))})
    return cert


def run(ca, hosts=(), serials=(), now=None, renew_before=3 * DAY, valid_for=7 * DAY, **kwargs):
    now = now or utcnow().replace(microsecond=0)
    decided, pem = revocation.revoke(ca_store.DirectoryStore(ca.path), ca, list(hosts), list(serials),
                                     kwargs.pop("reason", "cessation_of_operation"), now, renew_before, valid_for,
                                     **kwargs)
    return decided, pem if decided.changed else None


def openssl_verify_crl(ca, cert, tmp_path):
    (tmp_path / "root.pem").write_text(certificate_pem(ca.root))
    (tmp_path / "leaf.pem").write_text(certificate_pem(cert))
    proc = subprocess.run(["openssl", "verify", "-crl_check", "-CAfile", str(tmp_path / "root.pem"), "-CRLfile",
                           os.path.join(ca.path, revocation.CRL), str(tmp_path / "leaf.pem")],
                          capture_output=True, text=True, check=False)
    return proc.returncode == 0, proc.stdout + proc.stderr


def test_revoking_a_host_lists_its_certificates_and_openssl_refuses_them(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    gone = [issue(ca, "n3.pki.test"), issue(ca, "n3.pki.test")]
    kept = issue(ca, "n1.pki.test")
    decided, pem = run(ca, hosts=["n3.pki.test"])
    assert sorted(e["serial"] for e in decided.newly_revoked) == sorted(format(c.serial_number, "x") for c in gone)
    crl = x509.load_pem_x509_crl(pem)
    assert crl.is_signature_valid(ca.certificate.public_key())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    entry = crl.get_revoked_certificate_by_serial_number(gone[0].serial_number)
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.cessation_of_operation
    for cert in gone:
        ok, out = openssl_verify_crl(ca, cert, tmp_path)
        assert not ok and "certificate revoked" in out, out
    ok, out = openssl_verify_crl(ca, kept, tmp_path)
    assert ok, out
    assert oct(os.stat(os.path.join(ca.path, revocation.STATE)).st_mode & 0o777) == "0o600"


def test_a_rerun_changes_nothing_and_numbers_only_grow(make_ca):
    ca = make_ca()
    issue(ca, "a")
    issue(ca, "b")
    first, _pem = run(ca, hosts=["a"])
    crl_before = open(os.path.join(ca.path, revocation.CRL), "rb").read()
    again, pem = run(ca, hosts=["a"])
    assert not again.changed and pem is None and again.crl_reasons == []
    assert open(os.path.join(ca.path, revocation.CRL), "rb").read() == crl_before
    second, pem = run(ca, hosts=["b"])
    crl = x509.load_pem_x509_crl(pem)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert len(list(crl)) == 2
    assert first.after["crl_number"] == 1 and second.after["crl_number"] == 2


def test_a_fresh_crl_is_published_when_the_next_update_nears(make_ca):
    ca = make_ca()
    issue(ca, "a")
    now = utcnow().replace(microsecond=0)
    run(ca, hosts=["a"], now=now)
    unchanged, _pem = run(ca, now=now + 3 * DAY)
    assert not unchanged.changed
    refreshed, pem = run(ca, now=now + 5 * DAY)
    assert refreshed.newly_revoked == [] and "within crl_renew_before" in refreshed.crl_reasons[0]
    assert x509.load_pem_x509_crl(pem).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2


def test_a_run_killed_between_record_and_crl_is_finished_with_a_higher_number(make_ca):
    ca = make_ca()
    issue(ca, "a")
    issue(ca, "b")
    run(ca, hosts=["a"])
    # as if killed after the record was written and before the CRL was
    crl_path = os.path.join(ca.path, revocation.CRL)
    stale = open(crl_path, "rb").read()
    run(ca, hosts=["b"])
    with open(crl_path, "wb") as handle:
        handle.write(stale)
    decided, pem = run(ca)
    assert decided.changed and decided.newly_revoked == []
    crl = x509.load_pem_x509_crl(pem)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3
    assert len(list(crl)) == 2


def test_serials_in_any_spelling_and_unknown_ones(make_ca):
    ca = make_ca()
    cert = issue(ca, "a")
    spelled = "0x" + ":".join("%02X" % b for b in cert.serial_number.to_bytes(20, "big")).lstrip("0:")
    decided, _pem = run(ca, serials=[spelled], reason="key_compromise")
    assert [e["serial"] for e in decided.newly_revoked] == [format(cert.serial_number, "x")]
    assert decided.newly_revoked[0]["reason"] == "key_compromise"
    with pytest.raises(PKIError) as excinfo:
        run(ca, serials=["abcdef"])
    assert excinfo.value.field == "serials" and "allow_unlisted" in excinfo.value.fix
    decided, _pem = run(ca, serials=["abcdef"], allow_unlisted=True)
    assert decided.newly_revoked[0]["serial"] == "abcdef"
    with pytest.raises(PKIError) as excinfo:
        revocation.normalize_serial("node7")
    assert excinfo.value.field == "serials"


def test_unknown_host_and_bad_reason_fail_before_anything_is_written(make_ca):
    ca = make_ca()
    issue(ca, "known.example")
    with pytest.raises(PKIError) as excinfo:
        run(ca, hosts=["typo.example"])
    assert excinfo.value.field == "hosts" and "known.example" in excinfo.value.fix
    with pytest.raises(PKIError) as excinfo:
        run(ca, hosts=["known.example"], reason="because")
    assert excinfo.value.field == "reason"
    assert not os.path.exists(os.path.join(ca.path, revocation.STATE))
    assert not os.path.exists(os.path.join(ca.path, revocation.CRL))


def test_expired_certificates_are_not_listed(make_ca):
    past = utcnow() - 40 * DAY
    ca = make_ca(now=past - DAY)
    issue(ca, "a", valid_for=10 * DAY, now=past)
    live = issue(ca, "a")
    decided, _pem = run(ca, hosts=["a"])
    assert [e["serial"] for e in decided.newly_revoked] == [format(live.serial_number, "x")]


def test_a_crl_signed_by_another_ca_is_replaced_and_rejected_by_check_crl(make_ca):
    ca, other = make_ca(common_name="A"), make_ca(common_name="B")
    cert = issue(ca, "a")
    issue(other, "a")
    run(other, hosts=["a"])
    foreign = open(os.path.join(other.path, revocation.CRL), "rb").read()
    crl = revocation.load_crl(foreign)
    signed, error = revocation.check_crl(crl, [ca.certificate], utcnow())
    assert not signed and "none of the certificate's issuers" in error
    with open(os.path.join(ca.path, revocation.CRL), "wb") as handle:
        handle.write(foreign)
    decided, pem = run(ca)
    assert "not signed by the current issuing CA" in decided.crl_reasons[0]
    mine = revocation.load_crl(pem)
    assert revocation.check_crl(mine, [ca.certificate], utcnow()) == (True, None)
    assert revocation.revocation_of(mine, cert) is None
    run(ca, hosts=["a"])
    mine = revocation.load_crl(open(os.path.join(ca.path, revocation.CRL), "rb").read())
    assert revocation.revocation_of(mine, cert)["reason"] == "cessation_of_operation"
    signed, error = revocation.check_crl(mine, [ca.certificate], utcnow() + 8 * DAY)
    assert signed and "expired" in error


def test_intermediate_signs_the_crl(make_ca, tmp_path):
    ca = make_ca(intermediate=True)
    cert = issue(ca, "a")
    _decided, pem = run(ca, hosts=["a"])
    crl = x509.load_pem_x509_crl(pem)
    assert crl.issuer == ca.certificate.subject and crl.is_signature_valid(ca.certificate.public_key())
    (tmp_path / "chain.pem").write_text(certificate_pem(ca.certificate))
    (tmp_path / "root.pem").write_text(certificate_pem(ca.root))
    (tmp_path / "leaf.pem").write_text(certificate_pem(cert))
    proc = subprocess.run(["openssl", "verify", "-crl_check", "-CAfile", str(tmp_path / "root.pem"), "-untrusted",
                           str(tmp_path / "chain.pem"), "-CRLfile", os.path.join(ca.path, revocation.CRL),
                           str(tmp_path / "leaf.pem")], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "certificate revoked" in proc.stdout + proc.stderr


def test_a_record_edited_by_hand_is_refused(make_ca):
    ca = make_ca()
    with open(os.path.join(ca.path, revocation.STATE), "w") as handle:
        json.dump({"revoked": "everything"}, handle)
    with pytest.raises(PKIError) as excinfo:
        revocation.revoked_serials(ca.path)
    assert excinfo.value.field == "ca_path"
