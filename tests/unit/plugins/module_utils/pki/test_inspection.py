# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import datetime

from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import build_csr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.inspection import renewal_reasons
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, generate_private_key

DAY = datetime.timedelta(days=1)


def test_reasons_cover_every_cause(make_ca):
    ca = make_ca()
    other = make_ca(common_name="Other")
    key = generate_private_key(KeySpec())
    ident = build_identity(["n.pki.test", "10.0.0.1"])
    cert = ca.sign(build_csr(key, ident), ident, ["server"], 10 * DAY)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert renewal_reasons(cert, private_key=key, identity=ident, issuers=[ca.certificate], renew_before=5 * DAY,
                           key_spec=KeySpec(), usages=["server"], now=now) == []
    assert renewal_reasons(None) == ["no certificate yet"]
    due = renewal_reasons(cert, renew_before=11 * DAY, now=now)
    assert len(due) == 1 and due[0].startswith("expires in 9d23h") and "renew_before 11d" in due[0]
    assert renewal_reasons(cert, now=now + 11 * DAY)[0].startswith("expired 1d")
    changed = renewal_reasons(cert, identity=build_identity(["n.pki.test", "10.0.0.2"]), now=now)
    assert changed == ["name 10.0.0.2 missing from certificate", "name 10.0.0.1 in certificate no longer wanted"]
    assert renewal_reasons(cert, private_key=generate_private_key(KeySpec()), now=now) == [
        "private key does not match certificate"]
    assert renewal_reasons(cert, issuers=[other.certificate], now=now)[0].startswith("issuer changed")
    assert renewal_reasons(cert, issuers=[other.certificate, ca.certificate], now=now) == []
    assert renewal_reasons(cert, key_spec=KeySpec("ec", 384), now=now) == ["key algorithm changed: ec/256 -> ec/384"]
    assert renewal_reasons(cert, usages=["server", "client"], now=now) == ["usages changed: server -> client,server"]
