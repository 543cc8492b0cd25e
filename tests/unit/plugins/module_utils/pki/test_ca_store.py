# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CA store interface on a directory, and the ledger bytes a Secret store keeps."""
from __future__ import annotations

import datetime
import os

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ca_store, ledger, revocation
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import build_csr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, generate_private_key
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.signing import sign_csr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import utcnow

DAY = datetime.timedelta(days=1)


def snapshot(path):
    return {name: open(os.path.join(path, name), "rb").read() for name in sorted(os.listdir(path))}


def csr_for(name):
    return build_csr(generate_private_key(KeySpec()), build_identity([name])).public_bytes(Encoding.PEM).decode()


def test_appended_keeps_a_torn_line_apart_and_parse_reports_it():
    torn = ledger.line_of({"serial": "a1", "host": "n1"}) + b'{"serial": "b2", "ho'
    data = ledger.appended(torn, {"serial": "c3", "host": "n3"})
    entries, bad = ledger.parse(data)
    assert [e["serial"] for e in entries] == ["a1", "c3"] and bad == [2]
    assert ledger.appended(b"", {"serial": "d4"}) == ledger.line_of({"serial": "d4"})


def test_a_dry_run_store_decides_but_writes_nothing(make_ca):
    ca = make_ca(passphrase="pw", permitted_dns=["pki.test"])
    real = ca_store.DirectoryStore(ca.path)
    sign_csr(real, "pw", csr_for("n1.pki.test"), ["n1.pki.test"], ["server"], 30 * DAY, False, "n1.pki.test")
    before = snapshot(ca.path)
    dry = ca_store.DirectoryStore(ca.path, dry_run=True)
    decided, pem = revocation.revoke(dry, ca, ["n1.pki.test"], [], "superseded", utcnow(), 3 * DAY, 7 * DAY)
    assert decided.changed and len(decided.newly_revoked) == 1
    assert pem is None  # the CRL that is published: none yet
    dry.record({"serial": "ff", "host": "ghost"})
    assert snapshot(ca.path) == before
    decided, pem = revocation.revoke(real, ca, ["n1.pki.test"], [], "superseded", utcnow(), 3 * DAY, 7 * DAY)
    assert pem == snapshot(ca.path)[revocation.CRL]
    assert oct(os.stat(os.path.join(ca.path, revocation.STATE)).st_mode & 0o777) == "0o600"


def test_load_ca_from_names_where_the_ca_is_and_what_is_missing(make_ca):
    ca = make_ca(passphrase="pw")
    files = ca_store.DirectoryStore(ca.path).read()
    assert ca_store.load_ca_from(files, "Secret ns/x", "pw").certificate == ca.certificate
    with pytest.raises(PKIError) as missing:
        ca_store.load_ca_from(dict(files, **{"ca.key": None}), "Secret ns/x", "pw", field="ca_secret")
    assert missing.value.field == "ca_secret" and "Secret ns/x is incomplete, missing ca.key" in str(missing.value)
    with pytest.raises(PKIError) as wrong:
        ca_store.load_ca_from(files, "Secret ns/x", "not-pw", field="ca_secret")
    assert wrong.value.field == "ca_passphrase"


def test_create_refuses_a_directory_that_holds_something_else(tmp_path):
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "notes.txt").write_text("mine")
    store = ca_store.DirectoryStore(str(tmp_path / "ca"), field="path")
    with pytest.raises(PKIError) as refused:
        store.create(ca_store.build_ca_files(ca_store.CASettings(common_name="x"), "pw"))
    assert refused.value.field == "path" and (tmp_path / "ca" / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path / "ca")) == ["notes.txt"]
