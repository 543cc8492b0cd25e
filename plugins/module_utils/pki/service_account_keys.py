# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which service-account keys a running kube-apiserver accepts and signs with, asked over HTTPS.

kube-apiserver reads --service-account-key-file and its signing key only when it starts, so a
key file on disk is not a key in use. What it accepts is its JWKS (/openid/v1/jwks); what it
signs with is the ``kid`` of a token it issues through the TokenRequest API. Key ids are
Kubernetes' own: base64url (no padding) of the SHA-256 of the public key's DER
SubjectPublicKeyInfo (pkg/serviceaccount/jwt.go, keyIDFromPublicKey).

Only the endpoints given are contacted, with the client certificate given; a token asked for
is never returned or logged, only its key id.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import ssl
from typing import Dict, List, Optional, Sequence
from urllib.parse import urlsplit

from .errors import PKIError


def key_id(public_pem: str, field: str = "public_keys") -> str:
    """Kubernetes' key id of a PEM public key (or of the public half of nothing else)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(public_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise PKIError(field, "not a PEM public key (%s)" % exc, "give the keyring's .public entries") from None
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode("ascii").rstrip("=")


def split_public_keys(text: str) -> List[str]:
    """Every PEM public key in ``text`` (a file of several, as --service-account-key-file reads it)."""
    marker = "-----END PUBLIC KEY-----"
    return [part.strip() + "\n" + marker + "\n" for part in text.split(marker)[:-1]]


def token_key_id(token: str) -> Optional[str]:
    header = token.split(".")[0]
    try:
        data = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except ValueError:
        return None
    kid = data.get("kid") if isinstance(data, dict) else None
    return kid if isinstance(kid, str) else None


def check_endpoint(endpoint: str, field: str = "endpoints") -> tuple:
    parts = urlsplit(endpoint)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise PKIError(
            field,
            "%r is not an https://host:port URL of an apiserver" % endpoint,
            "give each apiserver as https://<address>:<port>",
        )
    return parts.hostname, parts.port or 443


class Apiserver:
    """One kube-apiserver, reached with a client certificate and a CA bundle."""

    def __init__(self, endpoint: str, bundle_path: str, cert_path: str, key_path: str, timeout: float):
        self.endpoint = endpoint
        self.host, self.port = check_endpoint(endpoint)
        self.context = ssl.create_default_context(cafile=bundle_path)
        self.context.load_cert_chain(cert_path, key_path)
        self.timeout = timeout

    def _request(self, method: str, path: str, body: Optional[dict] = None) -> dict:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=self.timeout)
        try:
            # the JWKS is served as application/jwk-set+json, and nothing else is accepted for it
            headers = {"Accept": "application/jwk-set+json, application/json"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        if response.status not in (200, 201):
            raise OSError("HTTP %d from %s%s" % (response.status, self.endpoint, path))
        return json.loads(payload)

    def accepted_key_ids(self) -> List[str]:
        jwks = self._request("GET", "/openid/v1/jwks")
        return sorted(str(k.get("kid")) for k in jwks.get("keys") or [] if isinstance(k, dict) and k.get("kid"))

    def signing_key_id(self, namespace: str, name: str) -> Optional[str]:
        reply = self._request(
            "POST",
            "/api/v1/namespaces/%s/serviceaccounts/%s/token" % (namespace, name),
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}},
        )
        return token_key_id(str((reply.get("status") or {}).get("token") or ""))


def survey(
    endpoints: Sequence[str],
    bundle_path: str,
    cert_path: str,
    key_path: str,
    accept: Sequence[str] = (),
    sign_with: Optional[Dict[str, str]] = None,
    service_account: Sequence[str] = ("kube-system", "default"),
    timeout: float = 10.0,
) -> dict:
    """Per endpoint: the key ids it accepts and signs with, and whether it does what ``accept``/``sign_with`` ask.

    ``accept``: PEM public keys every endpoint must accept. ``sign_with``: endpoint -> the PEM public key it
    must sign with. ``blocked_by`` lists, per endpoint, what it does not do yet (or why it could not be asked).
    """
    for index, endpoint in enumerate(endpoints):
        check_endpoint(endpoint, "endpoints[%d]" % index)
    wanted = {key_id(pem, "accept"): pem for pem in accept}
    signers = {endpoint: key_id(pem, "sign_with") for endpoint, pem in (sign_with or {}).items()}
    unknown = sorted(set(signers) - set(endpoints))
    if unknown:
        raise PKIError("sign_with", "%s are not in endpoints" % unknown, "name each signer among the endpoints")
    results, blocked = [], []
    for endpoint in endpoints:
        entry: dict = {"endpoint": endpoint, "accepted_key_ids": [], "signing_key_id": None, "error": None}
        try:
            server = Apiserver(endpoint, bundle_path, cert_path, key_path, timeout)
            entry["accepted_key_ids"] = server.accepted_key_ids()
            if endpoint in signers:
                entry["signing_key_id"] = server.signing_key_id(*service_account)
        except (OSError, ssl.SSLError, ValueError, http.client.HTTPException) as exc:
            entry["error"] = "%s: %s" % (type(exc).__name__, exc)
            blocked.append("%s: cannot be asked (%s)" % (endpoint, entry["error"]))
            results.append(entry)
            continue
        entry["missing_key_ids"] = sorted(set(wanted) - set(entry["accepted_key_ids"]))
        if entry["missing_key_ids"]:
            blocked.append(
                "%s does not accept %s yet (restart it with the new --service-account-key-file)"
                % (endpoint, ", ".join(entry["missing_key_ids"]))
            )
        if endpoint in signers and entry["signing_key_id"] != signers[endpoint]:
            blocked.append(
                "%s signs with %s, not %s yet (restart it with the new --service-account-signing-key-file)"
                % (endpoint, entry["signing_key_id"], signers[endpoint])
            )
        results.append(entry)
    return {"endpoints": results, "blocked_by": blocked, "ready": not blocked}
