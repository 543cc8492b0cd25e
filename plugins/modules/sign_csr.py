#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sign_csr: sign a node's CSR where the CA lives and record it in the CA's ledger.

The CA key is used here and never leaves this host (a CA in a Kubernetes Secret
is decrypted in memory, never on disk); only the CSR comes in and only the
certificate goes out. The node's key never comes anywhere near.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: sign_csr
short_description: Sign a node's CSR on the CA host, under the CA's policy, and record it in the ledger
version_added: 0.2.0
description:
  - The signing half of M(securebydefault.pki.node_certificate) for a CA that lives on a designated CA host
    (O(ca_path), delegate the task to the CA host) or in a Kubernetes Secret (O(ca_secret), delegate it to a
    host that reaches the API server, usually C(localhost)). It receives the CSR and the approved names that
    node_certificate returned, and returns the certificate.
  - The CA is loaded and checked (passphrase, key match, expiry) before every signature. The CSR must name
    exactly O(names), and the names must be inside the CA's name constraints and wildcard policy. The subject
    is O(subject), never the CSR's. O(valid_for)
    must be within the CA's maximum leaf validity. The signature is appended to the CA's ledger under the
    CA's lock (a Secret is updated only if nobody wrote it since it was read, else read again and the entry
    added again), so parallel jobs signing with one CA are safe. A Secret's ledger is compacted in the same
    update - entries of certificates that expired more than a day ago are dropped, so that it stays under the
    1 MiB a Secret may hold; a write that would still exceed it fails, naming O(ca_secret). A CA directory
    keeps its whole ledger.
  - Every call signs a new certificate. The C(node_certificate) role calls it only when node_certificate
    returned a CSR, so the role as a whole stays idempotent.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
  - securebydefault.pki.k8s.access
  - securebydefault.pki.ca_secret
attributes:
  check_mode:
    support: full
    description: Checks the CA and reports C(changed); signs nothing.
  diff_mode:
    support: none
    description: A new certificate has no before.
options:
  ca_path:
    description:
      - The CA directory on the CA host.
      - Exactly one of O(ca_path) and O(ca_secret) is required.
    type: path
  ca_passphrase:
    description: Passphrase of the CA key. Keep it in Ansible Vault.
    type: str
  csr:
    description: The node's CSR (PEM), as node_certificate returned it.
    type: str
    required: true
  names:
    description: The approved identity, as node_certificate returned it (its C(identity)).
    type: list
    elements: str
    required: true
  usages:
    description: Extended key usages.
    type: list
    elements: str
    choices: [server, client]
    default: [server, client]
  subject:
    description:
      - The certificate's subject; pass the same value as to M(securebydefault.pki.node_certificate), which
        refuses to install a certificate with another subject.
      - Not set (or empty), C(CN=<one of the names>). With O(subject.common_name),
        C(O=<each organization, in order>, CN=<common_name>).
      - O(names) may be empty only with O(subject.common_name) and O(usages=[client]); the certificate then has
        no SubjectAlternativeName extension.
    type: dict
    suboptions:
      common_name:
        description: The common name (CN), at most 64 printable characters without whitespace.
        type: str
      organizations:
        description: Organizations (O), at most 8, no duplicates.
        type: list
        elements: str
  valid_for:
    description: Lifetime of the certificate.
    type: str
    default: 90d
  allow_wildcard:
    description: Accept wildcard names (the CA's policy must allow them too).
    type: bool
    default: false
  host:
    description:
      - Inventory name of the node, recorded in the ledger so that the C(revoke) module can find it.
      - The ledger also decides who holds which name; a name that another live host holds is refused,
        naming both hosts (see O(shared_names)).
    type: str
    default: ""
  shared_names:
    description:
      - Names (DNS names, addresses, URIs) that several hosts may carry at once, such as a service VIP.
      - Any other name belongs to one live host at a time.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Key and CSR on the node (the CA is on ca1)
  securebydefault.pki.node_certificate:
    ca: "{{ cluster_ca_public.public }}"
    path: /etc/pki/cluster-a
  register: request

- name: Sign on the CA host
  securebydefault.pki.sign_csr:
    ca_path: /var/lib/pki/cluster-a
    ca_passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    csr: "{{ request.csr }}"
    names: "{{ request.identity }}"
    host: "{{ inventory_hostname }}"
  delegate_to: ca1.example.internal
  when: request.csr is defined
  register: signed

- name: Sign with the CA kept in a Kubernetes Secret (from the controller)
  securebydefault.pki.sign_csr:
    ca_secret:
      namespace: pki
      name: cluster-a-ca
    ca_passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    csr: "{{ request.csr }}"
    names: "{{ request.identity }}"
    host: "{{ inventory_hostname }}"
  delegate_to: localhost
  when: request.csr is defined
  register: signed

- name: Sign a Kubernetes administrator's client certificate (no names, identity in the subject)
  securebydefault.pki.sign_csr:
    ca_path: /var/lib/pki/kubernetes
    ca_passphrase: "{{ vault_kubernetes_ca_passphrase }}"
    csr: "{{ admin_request.csr }}"
    names: []
    usages: [client]
    subject:
      common_name: kubernetes-admin
      organizations: ["system:masters"]
    host: "{{ inventory_hostname }}"
  delegate_to: ca1.example.internal
  when: admin_request.csr is defined
"""

RETURN = r"""
certificate:
  description: The signed certificate (PEM).
  returned: success, not in check mode
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU...\n-----END CERTIFICATE-----\n"
serial:
  description: Its serial number (hex), as the ledger records it.
  returned: success, not in check mode
  type: str
  sample: 5f3a09c1e2
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import ca as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import CAOptions, run
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import CA_CHOICE, SUBJECT_OPTION, ca_options

ARGUMENT_SPEC = dict(
    ca_options(),
    csr=dict(type="str", required=True),
    names=dict(type="list", elements="str", required=True),
    usages=dict(type="list", elements="str", default=["server", "client"], choices=["server", "client"]),
    subject=SUBJECT_OPTION,
    valid_for=dict(type="str", default="90d"),
    allow_wildcard=dict(type="bool", default=False),
    host=dict(type="str", default=""),
    shared_names=dict(type="list", elements="str", default=[]),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **CA_CHOICE)
    run(module, ops.sign, ca=CAOptions())


if __name__ == "__main__":
    main()
