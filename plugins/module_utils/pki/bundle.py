# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PEM certificate lists and trust bundles: split, fingerprint, merge, drop expired."""

from __future__ import annotations

import datetime
import re
from typing import Iterable, List, Optional

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
except ImportError:  # modules report it through _ops.runner.require_cryptography()
    pass

from .errors import PKIError
from .timeutil import not_valid_after, utcnow

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.S)


def load_certificates(data, field: str) -> List[x509.Certificate]:
    """Every certificate in a PEM text (cryptography 38 has no multi-certificate loader)."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    blocks = _PEM_CERT.findall(raw)
    certs = []
    for index, block in enumerate(blocks):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError as exc:
            raise PKIError(
                field,
                "certificate #%d is not valid PEM (%s)" % (index + 1, exc),
                "supply PEM certificates as written by cluster_ca",
            ) from None
    return certs


def is_ca_certificate(cert: x509.Certificate) -> bool:
    """basicConstraints CA:TRUE and, where keyUsage is present, keyCertSign: something that may anchor trust."""
    try:
        if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        return False
    try:
        return bool(cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)
    except x509.ExtensionNotFound:
        return True


def load_certificate(data, field: str) -> x509.Certificate:
    certs = load_certificates(data, field)
    if not certs:
        raise PKIError(field, "no PEM certificate found", "supply a PEM certificate")
    return certs[0]


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def pem_of(certs: Iterable[x509.Certificate]) -> str:
    return "".join(certificate_pem(c) for c in certs)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint, colon-separated upper-case hex (as openssl and keytool print it)."""
    return ":".join("%02X" % b for b in cert.fingerprint(hashes.SHA256()))


def merge_bundle(
    certs: Iterable[x509.Certificate], drop_expired: bool = True, now: Optional[datetime.datetime] = None
) -> List[x509.Certificate]:
    """De-duplicated CA list in the given order, without expired CAs unless asked to keep them."""
    now = now or utcnow()
    seen, out = set(), []
    for cert in certs:
        fp = fingerprint(cert)
        if fp in seen or (drop_expired and not_valid_after(cert) <= now):
            continue
        seen.add(fp)
        out.append(cert)
    return out


def describe(cert: x509.Certificate) -> dict:
    return {
        "subject": cert.subject.rfc4514_string(),
        "fingerprint": fingerprint(cert),
        "not_after": not_valid_after(cert).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
