# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compacting a ledger (issue #16): expired entries go, whatever decides (names, revocation, the CRL) stays."""
from __future__ import annotations

import datetime
import json
import os

import pytest
from cryptography import x509

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ca_store, ledger, ownership, revocation
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import isoformat, utcnow

DAY = datetime.timedelta(days=1)


def entry(serial, host, not_after, names=None, **extra):
    return dict({"serial": serial, "host": host, "names": names or [host], "not_after": isoformat(not_after),
                 "subject": "CN=%s" % host, "issued_at": isoformat(not_after - 30 * DAY)}, **extra)


def lines(*entries):
    return b"".join(ledger.line_of(e) for e in entries)


class SizeLimitedStore(ca_store.DirectoryStore):
    """A CA directory that compacts like a Secret does (revocation looks at size_limit only)."""

    size_limit = 1024 * 1024


def test_thousands_of_expired_entries_compact_to_the_live_ones():
    now = utcnow().replace(microsecond=0)
    expired = [entry("%x" % (2**158 + i), "old%d.pki.test" % (i % 7), now - (2 + i % 300) * DAY) for i in range(6000)]
    live = [entry("a1", "n1.pki.test", now + 30 * DAY), entry("a2", "n2.pki.test", now + DAY, shared=["vip.pki.test"]),
            entry("a3", "old3.pki.test", now - DAY + datetime.timedelta(hours=1))]  # expired, but within the day
    data = b"".join(ledger.line_of(e) for pair in zip(expired[:3], live) for e in pair) + lines(*expired[3:])
    assert len(data) > 1024 * 1024

    out, dropped = ledger.compacted(data, now)
    assert dropped == 6000 and len(out) < 2000
    entries, bad = ledger.parse(out)
    assert bad == []
    kept = [e for e in entries if ledger.COMPACTED not in e]
    assert kept == live  # in their order, and byte for byte:
    assert out.endswith(lines(*live))
    summaries = {e["host"]: e for e in entries if ledger.COMPACTED in e}
    assert sorted(summaries) == sorted({e["host"] for e in expired})
    assert sum(s[ledger.COMPACTED] for s in summaries.values()) == 6000
    assert summaries["old0.pki.test"]["not_after"] == isoformat(now - 2 * DAY)  # the latest one of that host
    assert all("serial" not in s for s in summaries.values())

    assert ledger.compacted(out, now) == (out, 0)  # nothing more to drop: the same bytes
    later, dropped = ledger.compacted(out, now + 3 * DAY)  # a2 and a3 expire: merged into the summaries
    assert dropped == 2
    summaries = {e["host"]: e for e in ledger.parse(later)[0] if ledger.COMPACTED in e}
    assert summaries["old3.pki.test"][ledger.COMPACTED] == len([e for e in expired if e["host"] == "old3.pki.test"]) + 1
    assert summaries["n2.pki.test"] == {ledger.COMPACTED: 1, "host": "n2.pki.test", "not_after": live[1]["not_after"]}
    assert [e["serial"] for e in ledger.parse(later)[0] if "serial" in e] == ["a1"]


def test_what_cannot_be_read_or_dated_stays():
    now = utcnow()
    undated = {"serial": "b1", "host": "n1"}
    odd_summary = {ledger.COMPACTED: "many", "host": "n2", "not_after": isoformat(now - 9 * DAY)}
    data = (b"not json\n" + lines(undated, odd_summary, entry("c1", "n3", now - 5 * DAY), entry("c2", "n3", now + DAY))
            + b'{"serial": "d1", "ho')  # a torn last line
    out, dropped = ledger.compacted(data, now)
    assert dropped == 1
    assert out.count(b"not json\n") == 1 and b'{"serial": "d1", "ho\n' in out
    entries, bad = ledger.parse(out)
    assert len(bad) == 2 and undated in entries and odd_summary in entries
    assert [e["serial"] for e in entries if "serial" in e] == ["b1", "c2"]
    assert ledger.appended(out, {"serial": "e1"}).endswith(b'{"serial":"e1"}\n')


def test_ownership_and_revocation_read_a_compacted_ledger_as_before(make_ca):
    now = utcnow()
    data = lines(entry("a1", "n1.pki.test", now - 10 * DAY, names=["n1.pki.test", "db.pki.test"]),
                 entry("a2", "n1.pki.test", now + 20 * DAY, names=["n1.pki.test", "api.pki.test"]),
                 entry("b1", "gone.pki.test", now - 10 * DAY))
    out, dropped = ledger.compacted(data, now)
    assert dropped == 2
    for ledger_bytes in (data, out):
        # a live name is still refused to another host; a name only an expired certificate had is free
        with pytest.raises(PKIError) as taken:
            ownership.check_free(ledger_bytes, None, "n2.pki.test", ["api.pki.test"], [], now, "CA")
        assert taken.value.field == "names" and "api.pki.test (held by n1.pki.test)" in str(taken.value)
        ownership.check_free(ledger_bytes, None, "n2.pki.test", ["db.pki.test", "gone.pki.test"], [], now, "CA")

    # revoke by host: the live certificate is chosen; a host whose certificates all expired (and were
    # compacted) is still known, a no-op rather than a typo; a typo is still an error
    ca = make_ca()
    files = {ledger.LEDGER: out, revocation.STATE: None, revocation.CRL: None}
    decided = revocation.plan(ca, "CA", files, ["n1.pki.test", "gone.pki.test"], [], "superseded", now, 3 * DAY)
    assert [e["serial"] for e in decided.newly_revoked] == ["a2"]
    with pytest.raises(PKIError) as typo:
        revocation.plan(ca, "CA", files, ["gone.pki.tst"], [], "superseded", now, 3 * DAY)
    assert typo.value.field == "hosts" and "gone.pki.test" in typo.value.fix


def test_a_size_limited_store_drops_expired_revocations_from_the_crl_and_a_directory_keeps_them(make_ca):
    now = utcnow().replace(microsecond=0)
    ca = make_ca()
    for e in (entry("a1", "n1", now + 30 * DAY), entry("b2", "n2", now - 2 * DAY), entry("c3", "n3", now - DAY / 24)):
        ledger.append(ca.path, e)
    directory = ca_store.DirectoryStore(ca.path)
    decided, pem = revocation.revoke(directory, ca, [], ["a1", "b2", "c3"], "superseded", now, 3 * DAY, 7 * DAY)
    assert decided.changed and sorted(revocation.crl_serials(x509.load_pem_x509_crl(pem))) == ["a1", "b2", "c3"]
    again, _pem = revocation.revoke(directory, ca, [], [], "superseded", now, 3 * DAY, 7 * DAY)
    assert not again.changed  # a directory keeps its whole record

    limited = SizeLimitedStore(ca.path)
    compacting, pem = revocation.revoke(limited, ca, [], [], "superseded", now, 3 * DAY, 7 * DAY)
    assert compacting.changed and compacting.crl_reasons[0].startswith("dropping 1 revoked certificates")
    crl = x509.load_pem_x509_crl(pem)
    assert crl.is_signature_valid(ca.certificate.public_key())
    # the unexpired one stays, so does the one expired less than a day ago; the long expired one leaves
    assert revocation.crl_serials(crl) == ["a1", "c3"]
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    state = json.loads(open(os.path.join(ca.path, revocation.STATE), "rb").read())
    assert sorted(e["serial"] for e in state["revoked"]) == ["a1", "c3"]
    rerun, _pem = revocation.revoke(limited, ca, [], [], "superseded", now, 3 * DAY, 7 * DAY)
    assert not rerun.changed

    # revoking a long expired certificate by serial adds nothing there
    ledger.append(ca.path, entry("d4", "n4", now - 3 * DAY))
    late, _pem = revocation.revoke(limited, ca, [], ["d4"], "superseded", now, 3 * DAY, 7 * DAY)
    assert not late.changed and late.newly_revoked == []
