#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""revoke: decommission hosts on the CA host - revoke their certificates and publish the CRL.

Runs where the CA lives (delegate it to the CA host; for a CA in a Kubernetes
Secret, to a host that reaches the API server). The CA key signs the CRL
here and never leaves this host; only the CRL (public) is returned, for
distribution to the nodes. Certificates are found in the CA's ledger, so a
host is revoked by its inventory name.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: revoke
short_description: Revoke a host's certificates (by inventory host or serial) and publish the CA's CRL
version_added: 0.2.0
description:
  - Runs on the CA host (delegate it there; by default the controller). Looks up every certificate
    the CA signed for each of O(hosts) in the CA's ledger (C(ledger.jsonl)), plus any O(serials),
    records them as revoked in C(revoked.json) and publishes a CRL (C(crl.pem)) signed by the issuing
    CA key, with a CRL number that only grows and the CA's authority key identifier.
  - A CA kept in a Kubernetes Secret (O(ca_secret)) keeps the same three files as keys of the Secret. The
    record and the CRL are written in one update that the API server accepts only if nobody changed the
    Secret since it was read; otherwise the decision is made again from the Secret as it is now.
  - Idempotent. A revoked certificate stays revoked, and a run with nothing new leaves the CRL
    alone until its next update is within O(crl_renew_before). So a scheduled run with no
    O(hosts) keeps the CRL fresh. Peers that check CRLs refuse every certificate once the CRL
    they hold has expired.
  - Expired certificates of a host are not listed, because peers refuse them anyway. For a CA in a Secret,
    which may hold at most 1 MiB, revocations of certificates that expired more than a day ago are dropped
    from C(revoked.json) and the CRL is published again without them; a CA directory keeps every revocation.
  - Unknown hosts and serials are errors, so a typo never looks like a decommissioning. Everything
    is checked before anything is written. The record and the CRL are written under the CA's lock,
    the same lock that signing takes, each file atomically.
  - The CRL is returned as RV(crl) for distribution (see the C(revoke) role, which installs it on
    every node). M(securebydefault.pki.node_certificate) re-issues a certificate whose serial the CA
    has revoked. M(securebydefault.pki.certificate_info) reports a certificate that a CRL lists as
    revoked.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
  - securebydefault.pki.k8s.access
  - securebydefault.pki.ca_secret
attributes:
  check_mode:
    support: full
    description: Reports what would be revoked and whether a CRL would be published; writes nothing.
  diff_mode:
    support: full
    description: Shows the revoked serials and the CRL number before and after.
options:
  ca_path:
    description:
      - The CA directory on the CA host, as created by M(securebydefault.pki.cluster_ca).
      - Exactly one of O(ca_path) and O(ca_secret) is required.
    type: path
  ca_passphrase:
    description: Passphrase of the CA key, which signs the CRL. Keep it in Ansible Vault.
    type: str
  hosts:
    description:
      - Inventory names of the hosts to decommission. Every unexpired certificate the ledger lists
        for them is revoked.
    type: list
    elements: str
    default: []
  serials:
    description:
      - Serial numbers (hex, as M(securebydefault.pki.certificate_info) reports them; colons and C(0x)
        are accepted) of single certificates to revoke.
    type: list
    elements: str
    default: []
  allow_unlisted:
    description: Revoke O(serials) the ledger does not list (certificates signed before the ledger existed).
    type: bool
    default: false
  reason:
    description: RFC 5280 reason recorded for the certificates revoked by this run.
    type: str
    choices: [unspecified, key_compromise, affiliation_changed, superseded, cessation_of_operation,
              privilege_withdrawn]
    default: cessation_of_operation
  crl_valid_for:
    description: Time from a CRL's publication to its next update.
    type: str
    default: 7d
  crl_renew_before:
    description: Publish a fresh CRL when the current one's next update is this close.
    type: str
    default: 3d
"""

EXAMPLES = r"""
- name: Decommission node7 (its certificates are revoked, the CRL is published)
  securebydefault.pki.revoke:
    ca_path: /var/lib/pki/cluster-a
    ca_passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    hosts: [node7.cluster-a.example]
  delegate_to: localhost
  run_once: true
  register: revocation

- name: Revoke one certificate whose key leaked
  securebydefault.pki.revoke:
    ca_path: /var/lib/pki/cluster-a
    ca_passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    serials: ["5f:3a:09:c1:7e:22:90:4b"]
    reason: key_compromise
  delegate_to: localhost
  run_once: true

- name: Keep the CRL fresh (scheduled; revokes nothing)
  securebydefault.pki.revoke:
    ca_path: /var/lib/pki/cluster-a
    ca_passphrase: "{{ vault_cluster_a_ca_passphrase }}"
  delegate_to: localhost
  run_once: true
  register: revocation

- name: Decommission node7 with the CA kept in a Kubernetes Secret
  securebydefault.pki.revoke:
    ca_secret:
      namespace: pki
      name: cluster-a-ca
    ca_passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    hosts: [node7.cluster-a.example]
  delegate_to: localhost
  run_once: true
  register: revocation

- name: Install the CRL on every node
  ansible.builtin.copy:
    content: "{{ revocation.crl }}"
    dest: /etc/pki/cluster-a/crl.pem
    mode: "0644"
"""

RETURN = r"""
revoked:
  description: Certificates revoked by this run (empty when nothing was new).
  returned: always
  type: list
  elements: dict
  sample: [{"serial": "5f3a09c1", "host": "node7.cluster-a.example", "subject": "CN=node7.cluster-a.example",
            "names": ["node7.cluster-a.example"], "not_after": "2027-02-21T10:00:00Z",
            "revoked_at": "2026-11-23T10:00:00Z", "reason": "cessation_of_operation"}]
revoked_serials:
  description: Every serial the CA has revoked, after this run.
  returned: always
  type: list
  elements: str
  sample: ["5f3a09c1"]
crl:
  description: The CRL as PEM, for distribution to the nodes. In check mode with a change due, the CRL now on disk.
  returned: when a CRL exists (or, outside check mode, was published)
  type: str
  sample: "-----BEGIN X509 CRL-----\nMIIBNDCB2wIBATAK...\n-----END X509 CRL-----\n"
crl_path:
  description: Where the CRL is on the CA host.
  returned: with O(ca_path)
  type: str
  sample: /srv/pki/cluster-a/crl.pem
crl_number:
  description: The CRL number (after this run).
  returned: always
  type: int
  sample: 4
next_update:
  description: When the published CRL must be replaced (UTC).
  returned: when a CRL exists
  type: str
  sample: "2026-11-30T10:00:00Z"
reasons:
  description:
    - Why the record or the CRL changed, e.g. C(revoking 5f3a09c1 (node7)) or
      C(the CRL's next update ... is within crl_renew_before 3d).
  returned: always
  type: list
  elements: str
  sample: ["revoking 5f3a09c1 (node7)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import ca as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import CAOptions, run
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import CA_CHOICE, ca_options
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.revocation import (
    DEFAULT_CRL_RENEW_BEFORE,
    REASONS,
)

ARGUMENT_SPEC = dict(
    ca_options(),
    hosts=dict(type="list", elements="str", default=[]),
    serials=dict(type="list", elements="str", default=[]),
    allow_unlisted=dict(type="bool", default=False),
    reason=dict(type="str", default="cessation_of_operation", choices=list(REASONS)),
    crl_valid_for=dict(type="str", default="7d"),
    crl_renew_before=dict(type="str", default=DEFAULT_CRL_RENEW_BEFORE),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **CA_CHOICE)
    run(module, ops.revoke, ca=CAOptions())


if __name__ == "__main__":
    main()
