#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: cert_manager_certificates
short_description: Many cert-manager Certificates in one run - checked, applied server-side, waited for together
version_added: 0.4.0
description:
  - The bulk form of M(securebydefault.pki.cert_manager_certificate) - each item of O(certificates) takes its
    options and gets the same checks, secure defaults, check mode and diff.
  - Every item is checked (options, names, durations, that its issuer and keystore password Secrets exist) and
    read before the first write, so bad input anywhere leaves every Certificate untouched; an error names the item,
    e.g. C(certificates[7].dns_names).
  - All Certificates are then applied server-side, and waited for together - one list request per namespace and
    round instead of one module run and one wait per Certificate.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
options:
  certificates:
    description:
      - One mapping per Certificate with the options of M(securebydefault.pki.cert_manager_certificate)
        (C(name), C(namespace), C(issuer_name), C(dns_names), C(valid_for), C(state), C(renew), ...), without the
        connection options, O(wait) and O(wait_timeout), which apply to all.
      - A Certificate may be listed once.
    type: list
    elements: dict
    required: true
  wait:
    description: Wait until every Certificate is Ready for its current generation.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for all of them together.
    type: int
    default: 120
attributes:
  check_mode:
    support: full
    description: Every item is checked and dry-run applied server-side; nothing is stored and nothing is waited for.
  diff_mode:
    support: full
    description: One diff per Certificate that changes.
seealso:
  - module: securebydefault.pki.cert_manager_certificate
"""

EXAMPLES = r"""
- name: A short-lived certificate for every service of the namespace
  securebydefault.pki.cert_manager_certificates:
    certificates:
      - name: api
        namespace: prod
        issuer_name: prod-ca
        dns_names: [api.prod.svc.cluster.local]
        valid_for: 24h
        renew_before: 16h
      - name: web
        namespace: prod
        issuer_name: prod-ca
        dns_names: [web.prod.svc.cluster.local]
        valid_for: 24h
        renew_before: 16h
    wait_timeout: 300
"""

RETURN = r"""
certificates:
  description: One result per item, in order - what M(securebydefault.pki.cert_manager_certificate) returns, plus its
    C(name) and C(namespace).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: api, namespace: prod, changed: true, ready: true, revision: 1, secret_name: api,
       password_secrets_created: []}
ready:
  description:
    - Whether every Certificate (not deleted) is Ready for its current generation with its issuance recorded
      (C(status.revision)).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.cert_manager_spec import WAIT_SPEC
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC

ARGUMENT_SPEC = dict(
    K8S_CONNECTION_SPEC,
    certificates=dict(type="list", elements="dict", required=True),
    **WAIT_SPEC,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.ensure_certificates, kube=True, crypto=False)


if __name__ == "__main__":
    main()
