#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k8s_service_account_keys: which service-account keys each running kube-apiserver accepts and signs with."""
from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_service_account_keys
short_description: Ask each kube-apiserver which service-account keys it accepts and which one it signs with
version_added: 0.4.0
description:
  - kube-apiserver reads C(--service-account-key-file) and C(--service-account-signing-key-file) only when it starts,
    so a key file on disk is not a key in use. This module asks each apiserver in O(endpoints) what it uses - its
    JWKS (C(/openid/v1/jwks)) for the keys it accepts, the C(kid) of a token it issues through the TokenRequest API
    for the key it signs with - and says whether each does what O(accept) and O(sign_with) ask.
  - The M(securebydefault.pki.kubernetes_pki) role uses it as the live gate of a service-account key rotation - a new
    key signs only once every apiserver accepts it, and an old key is dropped only once no apiserver signs with it.
  - Key ids are Kubernetes' own (base64url of the SHA-256 of the public key's DER SubjectPublicKeyInfo).
  - It changes nothing. A token it asks for (10 minutes, for O(service_account)) is never returned, only its key id.
    An apiserver that cannot be asked is a result (RV(blocked_by)), not a failure.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
options:
  endpoints:
    description: Every apiserver, each as C(https://<address>:<port>) (not the load balancer).
    type: list
    elements: str
    required: true
  bundle_path:
    description: CA bundle that verifies the apiservers' serving certificates.
    type: path
    required: true
  client_cert_path:
    description:
      - Client certificate allowed to read the JWKS and, with O(sign_with), to create tokens for O(service_account).
    type: path
    required: true
  client_key_path:
    description: Its unencrypted key.
    type: path
    required: true
  accept:
    description: PEM public keys (one or several per item) that every endpoint must accept.
    type: list
    elements: str
    default: []
  sign_with:
    description: Endpoint -> the PEM public key it must sign tokens with.
    type: dict
    default: {}
  service_account:
    description: The ServiceAccount tokens are asked for (with O(sign_with)).
    type: dict
    default: {namespace: kube-system, name: default}
    suboptions:
      namespace:
        description: Its namespace.
        type: str
        default: kube-system
      name:
        description: Its name.
        type: str
        default: default
  timeout:
    description: Seconds to wait for each request.
    type: float
    default: 10
attributes:
  check_mode:
    support: full
    description: Asks the same; it never writes anything.
  diff_mode:
    support: none
    description: Nothing changes.
seealso:
  - module: securebydefault.pki.keyring
"""

EXAMPLES = r"""
- name: May cp1 start signing with its new key? Every apiserver must accept it first
  securebydefault.pki.k8s_service_account_keys:
    endpoints: [https://10.0.0.11:6443, https://10.0.0.12:6443]
    bundle_path: ~/.kube/kubernetes/ca-bundle.crt
    client_cert_path: ~/.kube/kubernetes/admin.crt
    client_key_path: ~/.kube/kubernetes/admin.key
    accept: "{{ lookup('ansible.builtin.file', 'sa.pub') }}"
  register: accepted
  failed_when: not accepted.ready
"""

RETURN = r"""
ready:
  description: Every endpoint accepts every key of O(accept) and signs with what O(sign_with) asks.
  returned: success
  type: bool
  sample: false
blocked_by:
  description: What each endpoint does not do yet, or why it could not be asked.
  returned: success
  type: list
  elements: str
  sample: ["https://10.0.0.12:6443 does not accept 3kQ... yet (restart it with the new --service-account-key-file)"]
accept_key_ids:
  description: Key ids of O(accept).
  returned: success
  type: list
  elements: str
  sample: ["3kQz0Jv1mW0m8u3h8Yx6b7l9Gf2sQe1R4T5U6V7W8X9"]
endpoints:
  description: Per endpoint, C(endpoint), C(accepted_key_ids), C(missing_key_ids), C(signing_key_id) and C(error).
  returned: success
  type: list
  elements: dict
  sample: [{endpoint: "https://10.0.0.11:6443", accepted_key_ids: ["3kQ..."], missing_key_ids: [],
            signing_key_id: null, error: null}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import service_account_keys as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run

ARGUMENT_SPEC = dict(
    endpoints=dict(type="list", elements="str", required=True),
    bundle_path=dict(type="path", required=True),
    client_cert_path=dict(type="path", required=True),
    client_key_path=dict(type="path", required=True, no_log=False),
    accept=dict(type="list", elements="str", default=[]),
    sign_with=dict(type="dict", default={}),
    service_account=dict(type="dict", default={"namespace": "kube-system", "name": "default"}, options=dict(
        namespace=dict(type="str", default="kube-system"), name=dict(type="str", default="default"))),
    timeout=dict(type="float", default=10),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.k8s_service_account_keys)


if __name__ == "__main__":
    main()
