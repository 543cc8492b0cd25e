# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A CA in a Secret keeps signing past ~3000 signatures (issue #16): its ledger is compacted as it is written,
and a Secret that would still be too large fails before the API server is asked, naming ca_secret and the fix."""
from __future__ import annotations

import base64
import datetime
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.ca_secret import MAX_SECRET_SIZE, SecretStore
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ca_store, ledger, revocation
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import build_csr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, generate_private_key
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.signing import sign_csr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import isoformat, utcnow

from fake_kube import secret_size  # pylint: disable=wrong-import-order

DAY = datetime.timedelta(days=1)
PATH = "/api/v1/namespaces/pki/secrets/ca"


def csr_for(name):
    return build_csr(generate_private_key(KeySpec()), build_identity([name])).public_bytes(Encoding.PEM).decode()


def entry(number, host, not_after):
    serial = "%x" % (2**158 + number)
    return {"serial": serial, "host": host, "names": [host], "not_after": isoformat(not_after),
            "subject": "CN=%s" % host, "issued_at": isoformat(not_after - 30 * DAY)}


@pytest.fixture
def secret_ca(kube):
    """A CA in Secret pki/ca whose ledger is set by the test (as the API server would hold it)."""
    store = SecretStore(kube, "pki", "ca")
    assert store.create(ca_store.build_ca_files(ca_store.CASettings(common_name="Zone CA"), "pw"))

    def with_ledger(*entries, **files):
        data = kube.objects[PATH]["data"]
        data[ledger.LEDGER] = base64.b64encode(b"".join(ledger.line_of(e) for e in entries)).decode()
        for name, value in files.items():
            data[name.replace("_", ".")] = base64.b64encode(value).decode()
        return SecretStore(kube, "pki", "ca")
    return with_ledger


def secret_file(kube, name):
    return base64.b64decode(kube.objects[PATH]["data"][name])


def filled(kube, now, live, room):
    """Entries that fill the Secret to ``room`` bytes below its limit; the first ``live`` unexpired, the rest not."""
    out, size = [], secret_size(kube.objects[PATH])
    while size < MAX_SECRET_SIZE - room:
        number = len(out)
        out.append(entry(number, "n%d.pki.test" % (number % 40),
                         now + 30 * DAY if number < live else now - (2 + number % 90) * DAY))
        size += len(ledger.line_of(out[-1]))
    return out


def test_a_full_secret_ledger_is_compacted_and_signing_goes_on(kube, secret_ca):
    now = utcnow()
    entries = filled(kube, now, live=50, room=12000)
    assert len(entries) > 3000
    store = secret_ca(*entries)
    # without compaction the next ~40 signatures would take the Secret over 1 MiB: the API server refuses it
    assert MAX_SECRET_SIZE - 12000 <= secret_size(kube.objects[PATH]) <= MAX_SECRET_SIZE - 11000

    pem, serial = sign_csr(store, "pw", csr_for("n1.pki.test"), ["n1.pki.test"], ["server"], 30 * DAY, False,
                           "n1.pki.test")
    assert pem and kube.writes()[-1][0] == "PUT"
    after, bad = ledger.parse(secret_file(kube, ledger.LEDGER))
    assert bad == []
    assert [e for e in after if "serial" in e] == entries[:50] + [e for e in after if e.get("serial") == serial]
    assert sum(e.get(ledger.COMPACTED, 0) for e in after) == len(entries) - 50
    assert secret_size(kube.objects[PATH]) < 40000

    # the names of the live certificates are still held: another host is refused, naming the holder
    with pytest.raises(PKIError) as taken:
        sign_csr(SecretStore(kube, "pki", "ca"), "pw", csr_for("n2.pki.test"), ["n2.pki.test"], ["server"],
                 30 * DAY, False, "intruder.pki.test")
    assert taken.value.field == "names" and "n2.pki.test (held by n2.pki.test)" in str(taken.value)


def test_a_secret_too_full_of_live_certificates_fails_before_the_api_server_is_asked(kube, secret_ca):
    now = utcnow()
    entries = filled(kube, now, live=10**6, room=700)  # every one unexpired: nothing to compact
    store = secret_ca(*entries)
    error = None
    for _signature in range(10):
        sent = len(kube.writes())
        try:
            sign_csr(store, "pw", csr_for("n1.pki.test"), ["n1.pki.test"], ["server"], 30 * DAY, False,
                     "n1.pki.test")
        except PKIError as exc:
            error = exc
            break
    else:
        pytest.fail("the Secret grew past 1 MiB without an error")
    assert error.field == "ca_secret"
    assert "Secret pki/ca would hold" in error.problem and "ledger.jsonl" in error.problem
    assert "valid_for" in error.fix and "ca_path" in error.fix
    assert kube.writes()[sent:] == []  # refused here, not by the API server
    assert secret_size(kube.objects[PATH]) <= MAX_SECRET_SIZE


def test_revoke_on_a_secret_drops_revocations_of_long_expired_certificates(kube, secret_ca):
    now = utcnow().replace(microsecond=0)
    live, gone = entry(1, "n1.pki.test", now + 30 * DAY), entry(2, "n2.pki.test", now - 3 * DAY)
    record = {"format": 1, "crl_number": 4, "revoked": [
        dict(e, revoked_at=isoformat(now - 5 * DAY), reason="superseded") for e in (live, gone)]}
    store = secret_ca(live, gone, revoked_json=json.dumps(record).encode())
    ca = ca_store.load_ca_in(store, "pw")
    decided, pem = revocation.revoke(store, ca, [], [], "superseded", now, 3 * DAY, 7 * DAY)
    assert decided.changed and any(r.startswith("dropping 1 revoked") for r in decided.crl_reasons)
    crl = x509.load_pem_x509_crl(secret_file(kube, revocation.CRL))
    assert pem == secret_file(kube, revocation.CRL)
    assert revocation.crl_serials(crl) == [live["serial"]]  # revoked and unexpired: still on the CRL
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 5
    state = json.loads(secret_file(kube, revocation.STATE))
    assert [e["serial"] for e in state["revoked"]] == [live["serial"]]
    assert not revocation.revoke(SecretStore(kube, "pki", "ca"), ca, [], [], "superseded", now, 3 * DAY,
                                 7 * DAY)[0].changed
