# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private keys: generation, loading, PEM output, strength checks.

Which keys are allowed is decided in keyspec.py; nothing weaker is ever
generated or accepted.
"""

from __future__ import annotations

from typing import Optional

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
except ImportError:  # modules report it through _ops.runner.require_cryptography()
    pass

from .errors import PKIError
from .keyspec import KeySpec, validate_key_spec  # noqa: F401 - re-exported for callers


def generate_private_key(spec: KeySpec):
    spec = validate_key_spec(spec)
    if spec.type == "ec":
        curve = ec.SECP256R1() if spec.effective_size == 256 else ec.SECP384R1()
        return ec.generate_private_key(curve)
    if spec.type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.effective_size)
    return ed25519.Ed25519PrivateKey.generate()


def spec_of_key(key) -> KeySpec:
    """The KeySpec an existing private or public key satisfies."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return KeySpec("ec", key.curve.key_size)
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return KeySpec("rsa", key.key_size)
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return KeySpec("ed25519")
    return KeySpec(type(key).__name__)


def check_public_key_strength(public_key, field: str) -> None:
    """Refuse keys of a kind or size this collection never accepts (e.g. in a CSR)."""
    spec = spec_of_key(public_key)
    try:
        validate_key_spec(spec, field)
    except PKIError as exc:
        raise PKIError(
            field,
            "key %s is not acceptable (%s)" % (spec.describe(), exc.problem),
            "use an EC P-256/P-384, RSA 2048-4096 or Ed25519 key",
        ) from None


def pem_damage(data: bytes) -> Optional[str]:
    """Why ``data`` is not one whole PEM block (truncated, cut, bad base64), or None."""
    import base64
    import binascii
    import re

    match = re.search(rb"-----BEGIN ([A-Z ]+)-----\s*(.*?)-----END \1-----", data, re.S)
    if match is None:
        return "it has no complete PEM block (truncated?)"
    body = re.sub(rb"^[A-Za-z-]+:.*$", b"", match.group(2), flags=re.M)  # legacy Proc-Type/DEK-Info headers
    try:
        der = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        return "its base64 body is damaged"
    if len(der) < 2 or der[0] != 0x30:
        return "its content is not a DER structure"
    length, offset = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        offset = 2 + count
        length = int.from_bytes(der[2:offset], "big")
    if offset + length != len(der):
        return "its content is %d bytes where its header announces %d (truncated or damaged)" % (
            len(der),
            offset + length,
        )
    return None


def load_private_key(data: bytes, passphrase: Optional[str], field: str):
    """Load a PEM private key, turning every failure into a PKIError naming ``field``."""
    password = passphrase.encode("utf-8") if passphrase else None
    damage = pem_damage(data)
    if damage:
        raise PKIError(
            field,
            "the file is not a readable PEM private key: %s" % damage,
            "restore the key from backup, or remove the file to have a new key generated",
        )
    try:
        return serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:
        text = str(exc)
        if "not encrypted" in text:
            raise PKIError(
                field,
                "the key is not encrypted but a passphrase was given",
                "remove the passphrase option, or re-encrypt the key",
            ) from None
        raise PKIError(
            field, "the key is encrypted and no passphrase was given", "set the passphrase option for this key"
        ) from None
    except ValueError as exc:
        if password is not None and b"ENCRYPTED" in data[:64]:
            raise PKIError(
                field,
                "the passphrase does not decrypt the key (wrong passphrase?)",
                "supply the passphrase the key was created with",
            ) from None
        raise PKIError(
            field,
            "the file is not a readable PEM private key (%s)" % (exc,),
            "restore the key from backup, or remove the file to have a new key generated",
        ) from None
    except Exception as exc:  # cryptography raises library-specific errors for garbage input
        raise PKIError(
            field,
            "the file is not a readable PEM private key (%s)" % (exc,),
            "restore the key from backup, or remove the file to have a new key generated",
        ) from None


def private_key_pem(key, passphrase: Optional[str] = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def public_key_der(key) -> bytes:
    """SubjectPublicKeyInfo DER of a private or public key: the thing to compare."""
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def signature_hash_for(key):
    """Hash to sign with: none for Ed25519, SHA-384 for P-384, SHA-256 otherwise."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def sign_data(key, data: bytes) -> bytes:
    """A signature of ``data`` by a private key (RSA PKCS#1 v1.5 with SHA-256, ECDSA with SHA-256, Ed25519)."""
    if isinstance(key, rsa.RSAPrivateKey):
        from cryptography.hazmat.primitives.asymmetric import padding  # pylint: disable=import-outside-toplevel

        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    return key.sign(data)


def signed_by(public, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` (sign_data's) over ``data`` was made by the key of ``public``."""
    try:
        if isinstance(public, rsa.RSAPublicKey):
            from cryptography.hazmat.primitives.asymmetric import padding  # pylint: disable=import-outside-toplevel

            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, data)
        else:
            return False
    except Exception:  # InvalidSignature, or a signature of another algorithm: not made by this key
        return False
    return True
