# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Use case of the k8s_service_account_keys module: ask each apiserver which keys it accepts and signs with."""

from __future__ import annotations

from typing import Any, Dict

from ..pki import service_account_keys
from ..pki.errors import PKIError


def k8s_service_account_keys(ctx) -> Dict[str, Any]:
    """It only reads (the token it asks for is dropped after its key id is read); check mode asks the same."""
    params = ctx.params
    public_keys = []
    for index, text in enumerate(params["accept"]):
        found = service_account_keys.split_public_keys(text)
        if not found:
            raise PKIError("accept[%d]" % index, "holds no PEM public key", "give the keyring's .public entries")
        public_keys += found
    result = service_account_keys.survey(
        params["endpoints"],
        params["bundle_path"],
        params["client_cert_path"],
        params["client_key_path"],
        accept=public_keys,
        sign_with=params["sign_with"],
        service_account=(params["service_account"]["namespace"], params["service_account"]["name"]),
        timeout=params["timeout"],
    )
    result["accept_key_ids"] = sorted({service_account_keys.key_id(pem) for pem in public_keys})
    return dict(changed=False, **result)
