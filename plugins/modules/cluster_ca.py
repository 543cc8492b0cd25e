#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cluster_ca: ensure a scoped certificate authority on the CA host, or in a Kubernetes Secret.

The CA key is created here, encrypted at rest unless the user opts out, and
never leaves this host (or, for a Secret, is written only into that Secret).
An existing CA is never overwritten.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_ca
short_description: Ensure a per-cluster (or per-service) certificate authority with name constraints
version_added: "0.1.0"
description:
  - Creates a root CA (and optionally an intermediate that does the issuing) in O(ca_path) on the
    CA host, by default the controller. The directory is created in one atomic rename, so a CA
    is either complete or absent.
  - The CA key is encrypted with O(ca_passphrase); an unencrypted key needs O(encrypt_key=false)
    explicitly.
  - X.509 name constraints (O(permitted_dns), O(permitted_ip_ranges), O(permitted_uri_domains),
    O(excluded_dns), O(excluded_ip_ranges)) scope the CA; M(securebydefault.pki.node_certificate)
    refuses any name outside them before anything is written, and TLS peers enforce them too.
  - An existing CA is loaded and checked (passphrase, key matches certificate, not expired). If it
    differs from the options in something only a new CA can change (name, key, constraints) the
    task fails with the differences, unless O(on_mismatch=keep). Signing policy
    (O(max_leaf_validity), O(allow_wildcard)) is updated in place.
  - Never replaces or deletes an existing CA. Rotating a CA is a staged process (trust both,
    switch, drop old), not an option of this module.
  - For controllers that do not last (AWX/Tower execution environments) the CA can be kept in a Kubernetes
    Secret instead (O(ca_secret)). The Secret holds the files of a CA directory as its keys, the CA key still
    encrypted with O(ca_passphrase). It is created in one request (two runs racing both end with the same CA) and
    only ever changed by updates that the API server refuses if the Secret changed since it was read. A Secret
    that exists without this collection's label is never taken over. Check mode is the API server's dry run.
    M(securebydefault.pki.ca_info), M(securebydefault.pki.sign_csr) and M(securebydefault.pki.revoke) take the
    same Secret; the roles take it as C(cluster_ca_secret), C(node_certificate_ca_secret) and C(revoke_ca_secret).
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
  - securebydefault.pki.attributes
  - securebydefault.pki.attributes.key
  - securebydefault.pki.k8s.access
  - securebydefault.pki.ca_secret.secret
options:
  ca_path:
    description:
      - Directory of the CA on the CA host. Created with mode 0700.
      - Exactly one of O(ca_path) and O(ca_secret) is required.
      - The alias C(path) is deprecated and will be removed in 1.0.0.
    type: path
    aliases: [path]
  common_name:
    description: Subject common name of the CA, e.g. C(cluster-a CA).
    type: str
    required: true
  organization:
    description: Optional organization in the subject.
    type: str
  ca_passphrase:
    description:
      - Passphrase that encrypts the CA key(s). Keep it in Ansible Vault.
      - A new CA needs at least 10 characters; an existing CA is loaded with the passphrase it has.
      - The alias C(passphrase) is deprecated and will be removed in 1.0.0.
    type: str
    aliases: [passphrase]
  encrypt_key:
    description: Set to C(false) to store the CA key unencrypted (e.g. for throw-away test CAs).
    type: bool
    default: true
  valid_for:
    description: Lifetime of the CA certificate(s).
    type: str
    default: 3650d
  intermediate:
    description: Create a root and an intermediate; the intermediate issues, the root is the trust anchor.
    type: bool
    default: false
  permitted_dns:
    description: DNS subtrees the CA may issue for; C(example.internal) permits it and every name below.
    type: list
    elements: str
    default: []
  permitted_ip_ranges:
    description: IP networks the CA may issue for (CIDR).
    type: list
    elements: str
    default: []
  permitted_uri_domains:
    description: URI hosts (e.g. SPIFFE trust domains) the CA may issue for; a leading dot permits subdomains.
    type: list
    elements: str
    default: []
  excluded_dns:
    description: DNS subtrees the CA must never issue for.
    type: list
    elements: str
    default: []
  excluded_ip_ranges:
    description: IP networks the CA must never issue for.
    type: list
    elements: str
    default: []
  max_leaf_validity:
    description: Longest lifetime the CA signs for a leaf.
    type: str
    default: 397d
  allow_wildcard:
    description: Whether the CA signs wildcard names at all.
    type: bool
    default: false
  warn_before:
    description: Warn when the CA expires within this duration.
    type: str
    default: 180d
  on_mismatch:
    description: What to do when the existing CA differs from the options in a way only a new CA can change.
    type: str
    choices: [fail, keep]
    default: fail
"""

EXAMPLES = r"""
- name: A CA for cluster A, scoped to its domain and network
  securebydefault.pki.cluster_ca:
    ca_path: /srv/pki/cluster-a
    common_name: cluster-a CA
    ca_passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    permitted_dns: [cluster-a.example.internal]
    permitted_ip_ranges: [10.20.0.0/16]
    permitted_uri_domains: [cluster-a.example.internal]
  delegate_to: localhost
  run_once: true
  register: cluster_a_ca

- name: Root kept aside, an intermediate that issues, ed25519 keys
  securebydefault.pki.cluster_ca:
    ca_path: /srv/pki/payments
    common_name: payments issuing CA
    ca_passphrase: "{{ vault_payments_ca_passphrase }}"
    intermediate: true
    key_type: ed25519
    max_leaf_validity: 30d
  delegate_to: localhost
  run_once: true

- name: A CA kept in a Kubernetes Secret, for an AWX execution environment that forgets its files
  securebydefault.pki.cluster_ca:
    ca_secret:
      namespace: pki
      name: cluster-a-ca
    common_name: cluster-a CA
    ca_passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    permitted_dns: [cluster-a.example.internal]
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
certificate:
  description: PEM of the issuing CA certificate.
  returned: success, not in check mode when the CA does not exist yet
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU...\n-----END CERTIFICATE-----\n"
root_certificate:
  description: PEM of the root (trust anchor) to distribute.
  returned: success, not in check mode when the CA does not exist yet
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU...\n-----END CERTIFICATE-----\n"
fingerprint:
  description: SHA-256 fingerprint of the issuing CA certificate.
  returned: success, not in check mode when the CA does not exist yet
  type: str
  sample: "4F:2A:...:9C"
not_after:
  description: Expiry of the CA (the earlier of root and intermediate), UTC.
  returned: success, not in check mode when the CA does not exist yet
  type: str
  sample: "2036-11-20T10:00:00Z"
subject:
  description: Subject of the issuing CA.
  returned: success, not in check mode when the CA does not exist yet
  type: str
  sample: CN=cluster-a CA
constraints:
  description: Name constraints in the CA certificate.
  returned: success, not in check mode when the CA does not exist yet
  type: dict
  sample: {permitted_dns: [cluster-a.example.internal], permitted_ip_ranges: [10.20.0.0/16]}
reasons:
  description: What was (or would be) done and why; differences from the options when kept.
  returned: always
  type: list
  elements: str
  sample: ["no CA in /srv/pki/cluster-a yet"]
path:
  description: The CA directory.
  returned: with O(ca_path)
  type: str
  sample: /srv/pki/cluster-a
location:
  description: "Where the CA is kept: C({path}) or C({secret: {namespace, name}})."
  returned: always
  type: dict
  sample: {path: /srv/pki/cluster-a}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import ca as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import CAOptions, run
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import CA_CHOICE, KEY_OPTIONS, ca_options
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import DEFAULT_MAX_LEAF_VALIDITY

ARGUMENT_SPEC = dict(
    ca_options(legacy=True),
    common_name=dict(type="str", required=True),
    organization=dict(type="str"),
    encrypt_key=dict(type="bool", default=True),
    valid_for=dict(type="str", default="3650d"),
    intermediate=dict(type="bool", default=False),
    permitted_dns=dict(type="list", elements="str", default=[]),
    permitted_ip_ranges=dict(type="list", elements="str", default=[]),
    permitted_uri_domains=dict(type="list", elements="str", default=[]),
    excluded_dns=dict(type="list", elements="str", default=[]),
    excluded_ip_ranges=dict(type="list", elements="str", default=[]),
    max_leaf_validity=dict(type="str", default="%dd" % DEFAULT_MAX_LEAF_VALIDITY.days),
    allow_wildcard=dict(type="bool", default=False),
    warn_before=dict(type="str", default="180d"),
    on_mismatch=dict(type="str", default="fail", choices=["fail", "keep"]),
    **KEY_OPTIONS,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **CA_CHOICE)
    run(module, ops.ensure_ca, ca=CAOptions())


if __name__ == "__main__":
    main()
