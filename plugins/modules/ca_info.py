#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ca_info: the public side of a CA directory, read on the CA host.

Read-only and public only: certificates, policy and revoked serials. The CA
key is never read, so the result may travel to the controller and the nodes.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: ca_info
short_description: Read a CA's public material on the CA host (issuer, trust bundle, policy, revoked serials)
version_added: 0.2.0
description:
  - Reads the CA directory made by M(securebydefault.pki.cluster_ca) on the CA host. It returns what nodes need
    to request and trust certificates, and nothing secret. The CA key is never opened.
  - With a CA on a designated CA host (not the controller), RV(public) goes to
    M(securebydefault.pki.node_certificate)'s O(securebydefault.pki.node_certificate#module:ca) option, and the
    node's CSR is signed there by M(securebydefault.pki.sign_csr). The C(node_certificate) role does all three
    when C(node_certificate_ca_host) is set.
  - Standard library only.
author: securebydefault.pki contributors (@securebydefault)
attributes:
  check_mode:
    support: full
    description: Runs normally; it never changes anything.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  path:
    description: The CA directory on the CA host.
    type: path
    required: true
  trust_also:
    description: Further CA directories on the CA host whose roots join the trust bundle (CA rotation, trust both).
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Read the CA's public material on the CA host
  securebydefault.pki.ca_info:
    path: /var/lib/pki/cluster-a
  delegate_to: ca1.example.internal
  run_once: true
  register: cluster_ca_public
"""

RETURN = r"""
public:
  description: What node_certificate's C(ca) option takes.
  returned: always
  type: dict
  contains:
    issuer:
      description: PEM of the issuing CA certificate, followed by the root when they differ.
      type: str
    bundle:
      description: PEM trust bundle (the root, plus the roots of O(trust_also)).
      type: str
    policy:
      description: The CA's signing policy (maximum leaf validity in seconds, wildcards) and expiry.
      type: dict
    revoked_serials:
      description: Serials the CA has revoked.
      type: list
      elements: str
metadata:
  description: The CA's C(ca.json) (common name, key type, constraints, created, not_after).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import fail_pki
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import (
    read_metadata, read_policy, read_public)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.revocation import revoked_serials


def read(params):
    issuer, bundle = read_public(params["path"], "path")
    for other in params["trust_also"]:
        root = read_public(other, "trust_also")[1]
        if root not in bundle:
            bundle += root
    return {"public": {"issuer": issuer, "bundle": bundle, "policy": read_policy(params["path"], "path"),
                       "revoked_serials": revoked_serials(params["path"])},
            "metadata": read_metadata(params["path"], "path")}


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True),
                                              trust_also=dict(type="list", elements="path", default=[])),
                           supports_check_mode=True)
    try:
        result = read(module.params)
    except PKIError as exc:
        fail_pki(module, exc)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
