#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ca_info: the public side of a CA, read where it lives (a directory on the CA host, or a Kubernetes Secret).

Read-only and public only: certificates, policy and revoked serials. The CA
key is never read, so the result may travel to the controller and the nodes.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: ca_info
short_description: Read a CA's public material on the CA host (issuer, trust bundle, policy, revoked serials)
version_added: 0.2.0
description:
  - Reads the CA made by M(securebydefault.pki.cluster_ca), kept in a directory on the CA host (O(ca_path)) or in a
    Kubernetes Secret (O(ca_secret)). It returns what nodes need to request and trust certificates, and nothing
    secret. The CA key is never opened (in a Secret it is never decoded).
  - With a CA on a designated CA host (not the controller), RV(public) goes to
    M(securebydefault.pki.node_certificate)'s O(securebydefault.pki.node_certificate#module:ca) option, and the
    node's CSR is signed there by M(securebydefault.pki.sign_csr). The C(node_certificate) role does all three
    when C(node_certificate_ca_host) or C(node_certificate_ca_secret) is set.
  - Standard library only for a CA directory.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
  - securebydefault.pki.k8s.access
  - securebydefault.pki.ca_secret.secret
attributes:
  check_mode:
    support: full
    description: Runs normally; it never changes anything.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  ca_path:
    description:
      - The CA directory on the CA host.
      - Exactly one of O(ca_path) and O(ca_secret) is required.
      - The alias C(path) is deprecated and will be removed in 1.0.0.
    type: path
    aliases: [path]
  trust_also:
    description:
      - Further CA directories on the CA host whose roots join the trust bundle (CA rotation, trust both).
      - Only with O(ca_path).
    type: list
    elements: path
    default: []
  trust_also_secrets:
    description:
      - Further CAs kept in Kubernetes Secrets whose roots join the trust bundle (CA rotation, trust both) - what
        M(securebydefault.pki.ca_rotation) returns as RV(securebydefault.pki.ca_rotation#module:trust_also_secrets).
      - Only with O(ca_secret). Their certificates and C(ca.json) are checked against each other; their keys are
        never read.
    type: list
    elements: dict
    default: []
    suboptions:
      namespace:
        description: Namespace of the Secret.
        type: str
        required: true
      name:
        description: Name of the Secret.
        type: str
        required: true
      fingerprint:
        description:
          - The SHA-256 fingerprint its root must have (as M(securebydefault.pki.ca_rotation) returns it); another
            root is refused. Colons and case do not matter.
        type: str
  ca_passphrase:
    aliases: [passphrase]
    description:
      - The CA key's passphrase. With it, C(ca.key) is decrypted here (in memory) and checked to be the key
        of C(ca.crt) before anything is returned, so a certificate pair swapped in by someone who does not
        know the passphrase never reaches a trust bundle.
      - Without it the certificates and C(ca.json) are still checked against each other, but not the key.
      - The alias C(passphrase) is deprecated and will be removed in 1.0.0.
    type: str
"""

EXAMPLES = r"""
- name: Read the CA's public material on the CA host
  securebydefault.pki.ca_info:
    ca_path: /var/lib/pki/cluster-a
  delegate_to: ca1.example.internal
  run_once: true
  register: cluster_ca_public

- name: Read the public material of a CA kept in a Kubernetes Secret
  securebydefault.pki.ca_info:
    ca_secret:
      namespace: pki
      name: cluster-a-ca
  delegate_to: localhost
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
      sample: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU...\n-----END CERTIFICATE-----\n"
    bundle:
      description: PEM trust bundle (the root, plus the roots of O(trust_also)).
      type: str
      sample: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU...\n-----END CERTIFICATE-----\n"
    policy:
      description: The CA's signing policy (maximum leaf validity in seconds, wildcards) and expiry.
      type: dict
      sample: {max_validity: 34300800, allow_wildcard: false, not_after: "2036-11-20T10:00:00Z"}
    revoked_serials:
      description: Serials the CA has revoked.
      type: list
      elements: str
      sample: ["5f3a09c1"]
metadata:
  description: The CA's C(ca.json) (common name, key type, constraints, created, not_after).
  returned: always
  type: dict
  sample: {common_name: cluster-a CA, key_type: ec, created: "2026-11-22T10:00:00Z", not_after: "2036-11-20T10:00:00Z"}
crl:
  description: The CRL the CA published last (PEM), for distribution and the status report.
  returned: when the CA has published one (M(securebydefault.pki.revoke))
  type: str
  sample: "-----BEGIN X509 CRL-----\nMIIBNDCB2wIBATAK...\n-----END X509 CRL-----\n"
location:
  description: "Where the CA is kept: C({path}) or C({secret: {namespace, name}})."
  returned: always
  type: dict
  sample: {path: /var/lib/pki/cluster-a}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import ca as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import CAOptions, run
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import ca_options, pinned_secrets_option

ARGUMENT_SPEC = dict(
    ca_options(legacy=True),
    trust_also=dict(type="list", elements="path", default=[]),
    trust_also_secrets=pinned_secrets_option(),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           mutually_exclusive=[("ca_path", "ca_secret"), ("ca_secret", "trust_also"),
                                               ("ca_path", "trust_also_secrets")],
                           required_one_of=[("ca_path", "ca_secret")])
    run(module, ops.ca_info, ca=CAOptions())


if __name__ == "__main__":
    main()
