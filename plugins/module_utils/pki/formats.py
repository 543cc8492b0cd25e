# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PKCS#12 keystores and Java truststores.

Keystores (they hold the node's key) are made on the node and work with
cryptography 38. Java only trusts certificates in a PKCS#12 file that carry
its trust attribute, which ``serialize_java_truststore`` (cryptography >= 45)
writes, so truststores (public data) are made on the controller.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
except ImportError:  # modules report it through _ops.runner.require_cryptography()
    pass

from .bundle import fingerprint
from .errors import PKIError
from .keys import public_key_der


def _encryption(passphrase: str):
    password = passphrase.encode("utf-8")
    builder = getattr(serialization.PrivateFormat.PKCS12, "encryption_builder", None)
    if builder is None:  # pragma: no cover - cryptography < 38
        return serialization.BestAvailableEncryption(password)
    # AES-256 + SHA-256 MAC: readable by Java 11.0.12+/17, OpenSSL 1.1+ and 3.
    return (
        builder()
        .kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password)
    )


def keystore(key, cert: x509.Certificate, chain: Sequence[x509.Certificate], passphrase: str, alias: str) -> bytes:
    if not passphrase:
        raise PKIError(
            "pkcs12_passphrase", "a PKCS#12 keystore needs a passphrase", "set pkcs12_passphrase (from Ansible Vault)"
        )
    return pkcs12.serialize_key_and_certificates(
        alias.encode("utf-8"), key, cert, list(chain) or None, _encryption(passphrase)
    )


def truststore(cas: Sequence[x509.Certificate], passphrase: str, alias_prefix: str = "ca") -> bytes:
    if not hasattr(pkcs12, "serialize_java_truststore"):
        raise PKIError(
            "pkcs12_truststore_path",
            "this Python's cryptography cannot write a Java truststore",
            "run on a controller with cryptography >= 45",
        )
    entries = [
        pkcs12.PKCS12Certificate(c, ("%s-%d" % (alias_prefix, i + 1)).encode("ascii")) for i, c in enumerate(cas)
    ]
    return pkcs12.serialize_java_truststore(entries, _encryption(passphrase))


def read_pkcs12(data: bytes, passphrase: str):
    """(key, cert, additional certs) or None when it cannot be read with this passphrase."""
    try:
        loaded = pkcs12.load_key_and_certificates(data, passphrase.encode("utf-8"))
    except Exception:  # wrong passphrase or damaged file: either way it must be rewritten
        return None
    return loaded


def keystore_matches(
    data: Optional[bytes], passphrase: str, key, cert: x509.Certificate, chain: Sequence[x509.Certificate]
) -> bool:
    if not data:
        return False
    loaded = read_pkcs12(data, passphrase)
    if loaded is None:
        return False
    have_key, have_cert, have_extra = loaded
    if have_key is None or have_cert is None or public_key_der(have_key) != public_key_der(key):
        return False
    return fingerprint(have_cert) == fingerprint(cert) and [fingerprint(c) for c in have_extra or []] == [
        fingerprint(c) for c in chain
    ]


def truststore_fingerprints(data: Optional[bytes], passphrase: str) -> Optional[List[str]]:
    if not data:
        return None
    loaded = read_pkcs12(data, passphrase)
    if loaded is None:
        return None
    return sorted(fingerprint(c) for c in loaded[2] or [])
