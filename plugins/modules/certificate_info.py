#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_info: read-only inspection of a certificate on a host.

Writes nothing but, when asked to, a Prometheus metrics file; never reads a private
key's secret beyond checking that it matches the certificate.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: certificate_info
short_description: Inspect a host's certificate - names, issuer, expiry, chain validity, renewal reasons
version_added: "0.1.0"
description:
  - Reads a PEM certificate file (leaf first, optionally followed by its chain) on the host and reports
    its names, issuer, validity, key, usages, whether its chain verifies against a trust bundle, whether
    a private key matches it, and the reasons it would be renewed.
  - Read-only; C(changed) is C(false), except that with O(metrics_path) it writes the certificate's
    not-after time and whether it needs renewal as Prometheus metrics for node_exporter's textfile
    collector, and C(changed) says whether that file changed. See C(docs/monitoring.md).
author: securebydefault.pki contributors (@securebydefault)
attributes:
  check_mode:
    support: full
    description: Runs normally; writes no metrics file, C(changed) says whether it would.
  diff_mode:
    support: none
    description: Nothing to diff.
extends_documentation_fragment:
  - securebydefault.pki.requirements
options:
  path:
    description: Certificate file (PEM). Further certificates in it are treated as the chain.
    type: path
    required: true
  bundle_path:
    description: Trust bundle (PEM) to verify the chain against, e.g. the C(ca-bundle.crt) node_certificate installs.
    type: path
  chain_path:
    description: Intermediates (PEM) in a separate file, e.g. a C(-fullchain.crt).
    type: path
  key_path:
    description: Private key to check against the certificate.
    type: path
  key_passphrase:
    description: Passphrase of O(key_path).
    type: str
  renew_before:
    description: Window for the expiry reason.
    type: str
    default: 30d
  names:
    description: Names the certificate should carry; differences become renewal reasons.
    type: list
    elements: str
  crl_path:
    description:
      - A CRL (PEM or DER), e.g. the C(crl.pem) the C(revoke) role installs. Its signature is checked against
        the certificate's issuer from O(chain_path) or O(bundle_path). A certificate it lists is reported as
        revoked, and that becomes a renewal reason.
    type: path
    version_added: 0.2.0
  metrics_path:
    description:
      - Write Prometheus metrics of the certificate here, atomically, mode C(0644) - the series
        C(securebydefault_pki_certificate_not_after_timestamp_seconds) (Unix time) and
        C(securebydefault_pki_certificate_renewal_due) (1 when RV(renewal_reasons) is not empty or the file
        does not exist), with the labels C(kind) (C(node_certificate) or C(ca)), C(path) (O(path)) and
        O(metrics_labels).
      - Must end in C(.prom) and be in the directory of node_exporter's C(--collector.textfile.directory);
        that directory and those above it must be owned by root (or the user running the task) and not
        writable by others.
      - The file holds nothing that depends on the time of the run, so a rerun on an unchanged certificate
        leaves it alone. Seconds until expiry are derived in PromQL with C(time()).
    type: path
    version_added: 0.3.0
  metrics_labels:
    description:
      - Constant labels added to every series of O(metrics_path), e.g. C(host) and C(cluster). Names follow
        Prometheus (letters, digits, underscores, not starting with C(__)); C(kind) and C(path) are set by the
        module.
      - The alert rules in C(docs/monitoring/alerts.yml) match a node's series by C(host).
    type: dict
    version_added: 0.3.0
"""

EXAMPLES = r"""
- name: Inspect the node certificate
  securebydefault.pki.certificate_info:
    path: /etc/pki/cluster-a/node.crt
    chain_path: /etc/pki/cluster-a/node-fullchain.crt
    bundle_path: /etc/pki/cluster-a/ca-bundle.crt
    key_path: /etc/pki/cluster-a/node.key
    names: ["{{ ansible_facts.fqdn }}"]
  register: info

- name: Fail early if it does not chain to the cluster CA
  ansible.builtin.assert:
    that: [info.chain_valid, info.key_matches, not info.renewal_reasons]
    fail_msg: "{{ info.chain_error }} {{ info.renewal_reasons }}"

- name: Is this host's certificate revoked?
  securebydefault.pki.certificate_info:
    path: /etc/pki/cluster-a/node.crt
    bundle_path: /etc/pki/cluster-a/ca-bundle.crt
    crl_path: /etc/pki/cluster-a/crl.pem
  register: revocation_info

- name: Expiry for Prometheus (node_exporter's textfile collector)
  securebydefault.pki.certificate_info:
    path: /etc/pki/cluster-a/node.crt
    renew_before: 30d
    metrics_path: /var/lib/node_exporter/textfile_collector/securebydefault_pki.prom
    metrics_labels:
      host: "{{ inventory_hostname }}"
      cluster: cluster-a
"""

RETURN = r"""
exists:
  description: Whether the certificate file exists. All other keys are missing when it does not.
  returned: always
  type: bool
  sample: true
subject:
  description: Subject DN.
  returned: when exists
  type: str
  sample: CN=node1.cluster-a.example
issuer:
  description: Issuer DN.
  returned: when exists
  type: str
  sample: CN=cluster-a CA
names:
  description: DNS names, IP addresses and URIs in the certificate.
  returned: when exists
  type: list
  elements: str
  sample: [node1.cluster-a.example, node1, 10.20.0.11]
serial:
  description: Serial number in hex.
  returned: when exists
  type: str
  sample: 5f3a09c1e2
not_before:
  description: Start of validity, UTC.
  returned: when exists
  type: str
  sample: "2026-11-22T09:55:00Z"
not_after:
  description: End of validity, UTC.
  returned: when exists
  type: str
  sample: "2027-02-20T10:00:00Z"
expires_in_seconds:
  description: Seconds until expiry (negative when expired).
  returned: when exists
  type: int
  sample: 7689600
fingerprint:
  description: SHA-256 fingerprint.
  returned: when exists
  type: str
  sample: "4F:2A:...:9C"
key:
  description: Key algorithm and size, e.g. C(ec/256).
  returned: when exists
  type: str
  sample: EC P-256
usages:
  description: Extended key usages (C(server), C(client)).
  returned: when exists
  type: list
  elements: str
  sample: [server, client]
is_ca:
  description: Whether it is a CA certificate.
  returned: when exists
  type: bool
  sample: false
chain_valid:
  description: Whether the chain verifies against O(bundle_path) (signatures, validity, CA flags, name constraints).
  returned: when exists and bundle_path is set
  type: bool
  sample: true
chain_error:
  description: Why the chain does not verify; empty when it does.
  returned: when exists and bundle_path is set
  type: str
  sample: ""
key_matches:
  description: Whether O(key_path) holds the certificate's private key.
  returned: when exists and key_path is set
  type: bool
  sample: true
renewal_reasons:
  description: Why node_certificate would re-issue it (expiry window, names, key mismatch, chain, revoked).
  returned: when exists
  type: list
  elements: str
  sample: ["expires within renew_before (30 days)"]
revoked:
  description: Whether the CRL in O(crl_path) lists the certificate.
  returned: when exists, crl_path is set and the CRL's signature verifies
  type: bool
  sample: false
revocation:
  description: When and why the certificate was revoked.
  returned: when revoked
  type: dict
  sample: {"revoked_at": "2026-11-23T10:00:00Z", "reason": "cessation_of_operation"}
crl:
  description: The CRL's number, issuer, this and next update, and how many serials it lists.
  returned: when exists and crl_path is set
  type: dict
  sample: {crl_number: 3, next_update: "2026-12-07T10:00:00Z", revoked_count: 1}
crl_error:
  description: Why the CRL cannot be relied on (unknown issuer, bad signature, expired); empty when it can.
  returned: when exists and crl_path is set
  type: str
  sample: ""
metrics:
  description: The content of O(metrics_path) (Prometheus text format), also in check mode.
  returned: when metrics_path is set
  type: str
  sample: "# HELP securebydefault_pki_certificate_not_after_timestamp_seconds End of validity ...\n# TYPE ..."
  version_added: 0.3.0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import certificate_info as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    bundle_path=dict(type="path"),
    chain_path=dict(type="path"),
    key_path=dict(type="path"),
    key_passphrase=dict(type="str", no_log=True),
    renew_before=dict(type="str", default="30d"),
    names=dict(type="list", elements="str"),
    crl_path=dict(type="path"),
    metrics_path=dict(type="path"),
    metrics_labels=dict(type="dict"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.certificate_info)


if __name__ == "__main__":
    main()
