# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import keys
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import format_duration, parse_duration


@pytest.mark.parametrize("spec, kind, size", [
    (keys.KeySpec(), ec.EllipticCurvePrivateKey, 256),
    (keys.KeySpec("ec", 384), ec.EllipticCurvePrivateKey, 384),
    (keys.KeySpec("rsa", 2048), rsa.RSAPrivateKey, 2048),
    (keys.KeySpec("ed25519"), ed25519.Ed25519PrivateKey, None),
])
def test_generate_each_allowed_kind(spec, kind, size):
    key = keys.generate_private_key(spec)
    assert isinstance(key, kind)
    assert keys.spec_of_key(key) == keys.validate_key_spec(spec)
    if size:
        actual = key.curve.key_size if isinstance(key, ec.EllipticCurvePrivateKey) else key.key_size
        assert actual == size


@pytest.mark.parametrize("spec, field, words", [
    (keys.KeySpec("rsa", 1024), "key_size", "below the minimum"),
    (keys.KeySpec("rsa", 8192), "key_size", "multiple of 256"),
    (keys.KeySpec("ec", 521), "key_size", "256 (P-256) and 384"),
    (keys.KeySpec("dsa"), "key_type", "unknown key type"),
])
def test_weak_or_unknown_keys_refused(spec, field, words):
    with pytest.raises(PKIError) as err:
        keys.validate_key_spec(spec)
    assert err.value.field == field
    assert words in str(err.value)
    assert "Fix:" in str(err.value)


def test_passphrase_roundtrip_and_wrong_passphrase():
    key = keys.generate_private_key(keys.KeySpec())
    pem = keys.private_key_pem(key, "s3cret")
    assert b"ENCRYPTED" in pem
    loaded = keys.load_private_key(pem, "s3cret", "ca_key")
    assert keys.public_key_der(loaded) == keys.public_key_der(key)
    with pytest.raises(PKIError, match="passphrase does not decrypt") as err:
        keys.load_private_key(pem, "wrong", "ca_key")
    assert err.value.field == "ca_key"
    with pytest.raises(PKIError, match="no passphrase was given"):
        keys.load_private_key(pem, None, "ca_key")
    with pytest.raises(PKIError, match="not encrypted but a passphrase"):
        keys.load_private_key(keys.private_key_pem(key), "extra", "ca_key")


def test_corrupted_key_is_named():
    pem = keys.private_key_pem(keys.generate_private_key(keys.KeySpec()))
    broken = pem[:60] + b"AAAA" + pem[64:]
    with pytest.raises(PKIError, match="not a readable PEM private key") as err:
        keys.load_private_key(broken, None, "key_path")
    assert err.value.field == "key_path"


def test_csr_key_strength_check():
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(PKIError, match="not acceptable"):
        keys.check_public_key_strength(weak.public_key(), "csr")
    keys.check_public_key_strength(ec.generate_private_key(ec.SECP256R1()).public_key(), "csr")


@pytest.mark.parametrize("text, seconds", [
    ("24h", 86400), ("30d", 30 * 86400), ("1y", 365 * 86400), ("1d12h", 36 * 3600), (3600, 3600), ("90", 90),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text, "valid_for").total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5d", "0", True, "5d garbage"])
def test_parse_duration_rejects(text):
    with pytest.raises(PKIError) as err:
        parse_duration(text, "renew_before")
    assert err.value.field == "renew_before"


def test_format_duration():
    assert format_duration(datetime.timedelta(days=3, hours=4, minutes=5)) == "3d4h"
    assert format_duration(datetime.timedelta(minutes=45)) == "45m"
    assert format_duration(datetime.timedelta(days=-2)) == "-2d"


@pytest.mark.parametrize("spec", [keys.KeySpec(), keys.KeySpec("ec", 384), keys.KeySpec("rsa", 2048),
                                  keys.KeySpec("ed25519")])
def test_a_signature_verifies_with_its_key_only_and_over_its_data_only(spec):
    key, other = keys.generate_private_key(spec), keys.generate_private_key(spec)
    signature = keys.sign_data(key, b"state")
    assert keys.signed_by(key.public_key(), signature, b"state")
    assert not keys.signed_by(key.public_key(), signature, b"state2")
    assert not keys.signed_by(other.public_key(), signature, b"state")
    assert not keys.signed_by(key.public_key(), b"", b"state")
