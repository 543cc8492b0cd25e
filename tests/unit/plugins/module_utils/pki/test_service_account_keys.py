# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key ids as Kubernetes computes them, and the survey's refusals (the live behaviour is in tests/k8s)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import service_account_keys as sak
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError


def public_pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_key_id_is_base64url_sha256_of_the_der_public_key_as_openssl_sees_it(tmp_path):
    pem = public_pem(ec.generate_private_key(ec.SECP256R1()))
    (tmp_path / "k.pem").write_text(pem)
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", str(tmp_path / "k.pem"), "-outform", "DER"],
                         capture_output=True, check=True).stdout
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
    assert sak.key_id(pem) == expected and "=" not in expected


def test_several_keys_in_one_file_are_split_and_garbage_is_refused():
    one, two = (public_pem(ec.generate_private_key(ec.SECP256R1())) for index in range(2))
    found = sak.split_public_keys(one + two)
    assert [sak.key_id(k) for k in found] == [sak.key_id(one), sak.key_id(two)]
    with pytest.raises(PKIError) as err:
        sak.key_id("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "accept")
    assert err.value.field == "accept"


def test_the_kid_of_a_token_header():
    header = base64.urlsafe_b64encode(json.dumps({"alg": "ES256", "kid": "abc_-1"}).encode()).decode().rstrip("=")
    assert sak.token_key_id(header + ".e30.sig") == "abc_-1"
    assert sak.token_key_id("not-base64!.x.y") is None


@pytest.mark.parametrize("endpoint", ["http://10.0.0.1:6443", "https://10.0.0.1:6443/api", "10.0.0.1:6443"])
def test_an_endpoint_that_is_not_an_apiserver_url_is_refused_before_any_connection(endpoint):
    with pytest.raises(PKIError) as err:
        sak.survey([endpoint], "/nonexistent", "/nonexistent", "/nonexistent")
    assert err.value.field == "endpoints[0]"


def test_a_signer_that_is_not_an_endpoint_is_refused():
    pem = public_pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(PKIError) as err:
        sak.survey(["https://10.0.0.1:6443"], "/x", "/x", "/x", sign_with={"https://10.0.0.2:6443": pem})
    assert err.value.field == "sign_with"


def test_an_apiserver_that_cannot_be_asked_blocks(tmp_path):
    # a port nothing listens on: a result that holds the gate, not a crash
    result = sak.survey(["https://127.0.0.1:1"], "/nonexistent-bundle", "/x", "/x", timeout=1)
    assert result["ready"] is False and "cannot be asked" in result["blocked_by"][0]
