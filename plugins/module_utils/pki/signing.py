# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Signing a node's CSR where the CA lives, and recording it in the CA's ledger.

One function for every place a CA can live: the controller (node_certificate's
action plugin calls it in-process), a designated CA host (the sign_csr module
calls it there) and a Kubernetes Secret (sign_csr with ca_secret: the key is
decrypted in memory on the host that runs the task, never written to disk).
The CA is loaded and fully checked (passphrase, key match, expiry) and the CSR
is held to the CA's policy and name constraints before every signature. The
ledger entry is recorded before the certificate is returned, because
decommissioning needs every signature.
"""

from __future__ import annotations

import datetime
from typing import Mapping, Optional, Sequence, Tuple

from . import ca_store, ledger, ownership
from .bundle import certificate_pem
from .errors import PKIError
from .identity import build_identity, parse_subject
from .revocation import STATE
from .timeutil import isoformat, not_valid_after, utcnow


def sign_csr(
    store,
    passphrase: Optional[str],
    csr_pem: str,
    names: Sequence[str],
    usages: Sequence[str],
    valid_for: datetime.timedelta,
    allow_wildcard: bool,
    host: str = "",
    shared_names: Sequence[str] = (),
    dry_run: bool = False,
    subject: Optional[Mapping] = None,
) -> Tuple[Optional[str], Optional[str]]:
    """Sign the CSR for exactly ``names`` with the CA in ``store`` (a path means a CA directory).

    ``subject`` is the subject option as given (None or {}: CN=one of the names); the CSR's own subject is
    never taken. No names at all only for a client certificate with a chosen subject (identity.py).

    A name another live host holds in the ledger is refused (ownership.py) unless it is in
    ``shared_names``; the check and the ledger entry happen under one exclusion of the store.
    Returns (certificate PEM, serial in hex as the ledger has it); a dry run (check mode) makes every check
    and returns (None, None) without signing or recording.
    """
    from cryptography import x509

    chosen = parse_subject(subject, "subject")
    if isinstance(store, str):
        store = ca_store.DirectoryStore(store)
    files = store.read(ca_store.LOAD_FILES + (ledger.LEDGER, STATE))
    ca = ca_store.load_ca_from(files, store.where, passphrase, store.field)
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
    except ValueError as exc:
        raise PKIError(
            "csr", "not a PEM certificate signing request (%s)" % exc, "pass the csr node_certificate returned"
        ) from None
    identity = build_identity(list(names), "names", allow_wildcard)
    shared = sorted(set(identity.names()) & set(build_identity(list(shared_names), "shared_names", True).names()))
    now = utcnow()
    # fail early, before a signature; the same check runs again under the store's exclusion
    ownership.check_free(
        files.get(ledger.LEDGER) or b"", files.get(STATE), host, identity.names(), shared, now, store.where
    )
    if dry_run:
        ca.check_request(csr, identity, usages, valid_for, now, chosen)
        return None, None
    cert = ca.sign(csr, identity, usages, valid_for, subject=chosen)
    serial = format(cert.serial_number, "x")
    entry = {
        "serial": serial,
        "subject": cert.subject.rfc4514_string(),
        "names": identity.names(),
        "not_after": isoformat(not_valid_after(cert)),
        "host": host,
        "issued_at": isoformat(now),
    }
    if shared:
        entry["shared"] = shared
    store.record(
        entry,
        check=lambda ledger_bytes, revoked_json: ownership.check_free(
            ledger_bytes, revoked_json, host, identity.names(), shared, now, store.where
        ),
    )
    return certificate_pem(cert), serial
