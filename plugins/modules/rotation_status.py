#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: rotation_status
short_description: One report of CAs, node certificates, cert-manager Certificates, keyrings - expiry, stage, next step
version_added: 0.2.0
description:
  - Runs on the controller. Reads the CA directories (O(ca_paths)) and their rotation state files itself, or takes
    CAs read where they live by M(securebydefault.pki.ca_info) (O(cas)),
    takes what the nodes reported (O(nodes), gathered by C(playbooks/rotation_status.yml) with
    M(securebydefault.pki.certificate_info) and the keyrings' metadata), and, with O(kubernetes=true), lists
    cert-manager Certificates and keyring Secrets through the API.
  - Every item gets a status - C(ok), C(due) (inside O(warn_within) of expiry or of a due rotation step),
    C(expired), C(missing) (a CA directory that does not exist yet), C(blocked) (a rotation waiting on
    evidence), C(not_ready) (cert-manager) - and the next action
    with its time, sorted most urgent first. The report is also rendered as Markdown (O(report_path)).
  - A CA that has published a CRL (M(securebydefault.pki.revoke)) gets a C(crl) item. It is C(due) within
    3 days of the CRL's next update and C(expired) after it, because peers that check CRLs then refuse every
    certificate.
  - With O(metrics_path), the same items are also written as Prometheus metrics for node_exporter's textfile
    collector - not-after times, whether renewal is due, CA rotation and keyring stages and when they began.
    See C(docs/monitoring.md) for the names, labels and alert rules.
  - Read-only; never changes anything but the report and metrics files.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
options:
  ca_paths:
    description: CA directories made by M(securebydefault.pki.cluster_ca).
    type: list
    elements: path
    default: []
  cas:
    description:
      - CAs read where they live (a designated CA host, a Kubernetes Secret) - the results of
        M(securebydefault.pki.ca_info), optionally with a C(host) key naming the CA host for the report.
      - Their CA and CRL items are made from the public material alone.
    type: list
    elements: dict
    default: []
  rotation_states:
    description: State files of CA rotations. Unset means C(<CA path>.rotation.json) for each CA that has one.
    type: list
    elements: path
  nodes:
    description:
      - Per node - C(host), C(certificate) (the result of M(securebydefault.pki.certificate_info)) and C(keyrings)
        (a list of C({path, meta}) with the content of each keyring's C(.keyring.json)).
    type: list
    elements: dict
    default: []
  kubernetes:
    description:
      - Also list cert-manager Certificates and keyring Secrets
        (labelled C(app.kubernetes.io/managed-by=securebydefault.pki)), the rotations of CA Issuers
        (M(securebydefault.pki.cert_manager_ca_rotation)) and the rotations between CAs kept in Secrets
        (M(securebydefault.pki.ca_rotation), the new CA Secret's C(rotation.json); its signature is checked by
        M(securebydefault.pki.ca_rotation), which holds the passphrase - here an unsigned or malformed state is
        listed as C(blocked)).
    type: bool
    default: false
  namespaces:
    description: Namespaces to list; empty means all.
    type: list
    elements: str
    default: []
  warn_within:
    description: Items expiring or due within this time are C(due).
    type: str
    default: 30d
  report_path:
    description: Write the Markdown report here (atomically).
    type: path
  metrics_path:
    description:
      - Write the items as Prometheus metrics here (atomically, mode C(0644)), for node_exporter's textfile
        collector - C(securebydefault_pki_certificate_not_after_timestamp_seconds) and
        C(securebydefault_pki_certificate_renewal_due) per CA, node certificate and cert-manager Certificate,
        C(securebydefault_pki_crl_next_update_timestamp_seconds) and C(securebydefault_pki_crl_renewal_due) per CRL,
        C(securebydefault_pki_ca_rotation_stage) and C(securebydefault_pki_keyring_stage) (one series per stage,
        1 for the current one) with C(..._stage_since_timestamp_seconds).
      - Labels are the report's C(kind), C(name) and C(where), and C(host) for items on a node. The file holds
        nothing that depends on the time of the run, so an unchanged state leaves it alone.
      - Must end in C(.prom); its directory and those above it must be owned by root (or the user running the
        task) and not writable by others (a sticky directory like C(/tmp) is accepted).
    type: path
    version_added: 0.3.0
attributes:
  check_mode:
    support: full
    description: Reads everything; writes no report or metrics file, C(changed) says whether it would.
  diff_mode:
    support: none
    description: Nothing to diff.
"""

EXAMPLES = r"""
- name: The report, from what the nodes told
  securebydefault.pki.rotation_status:
    ca_paths: [/srv/pki/prod, /srv/pki/prod-2027]
    nodes:
      - host: node1.prod.example.internal
        certificate: {exists: true, not_after: "2027-02-01T00:00:00Z", issuer: "CN=prod CA", subject: "CN=node1"}
        keyrings: []
    kubernetes: true
    report_path: /srv/pki/status.md
    metrics_path: /var/lib/node_exporter/textfile_collector/securebydefault_pki_status.prom
  delegate_to: localhost
"""

RETURN = r"""
items:
  description: Every item, most urgent first.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: C(ca), C(crl), C(ca_rotation), C(node_certificate), C(keyring), C(cert_manager_certificate) or
        C(k8s_keyring).
      type: str
      sample: node_certificate
    name:
      description: The subject, CA path pair, keyring path or object name.
      type: str
      sample: CN=node1.prod.example.internal
    where:
      description: The host, directory, state file or namespace it was found in.
      type: str
      sample: node1.prod.example.internal
    expires:
      description: Its not-after time (UTC), when it has one.
      type: str
      sample: "2027-02-01T00:00:00Z"
    stage:
      description: The rotation or keyring stage, the cert-manager revision.
      type: str
      sample: trust_both
    stage_since:
      description: When a CA rotation or keyring reached its stage (UTC), if recorded.
      type: str
      sample: "2027-01-10T08:00:00Z"
      version_added: 0.3.0
    status:
      description: C(ok), C(due), C(expired), C(missing), C(blocked) or C(not_ready).
      type: str
      sample: due
    next_action:
      description: What to do next, and with what.
      type: str
      sample: renew (node_certificate)
    next_due:
      description: When the next action is due, if known.
      type: str
      sample: "2027-01-02T00:00:00Z"
    note:
      description: Renewal reasons, the keyring's primary, and the like.
      type: str
      sample: expires within renew_before
summary:
  description: Items per status.
  returned: always
  type: dict
  sample: {ok: 12, due: 1, expired: 0, missing: 0, blocked: 0, not_ready: 0}
report:
  description: The Markdown report.
  returned: always
  type: str
  sample: "# Rotation status (2027-01-01T00:00:00Z)\n\nexpired: 0, missing: 0, blocked: 0, due: 1, ok: 12\n..."
metrics:
  description: The content of O(metrics_path) (Prometheus text format), also in check mode.
  returned: when metrics_path is set
  type: str
  sample: "# HELP securebydefault_pki_ca_rotation_stage Stage of a CA rotation ...\n# TYPE ..."
  version_added: 0.3.0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import status as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC

ARGUMENT_SPEC = dict(
    K8S_CONNECTION_SPEC,
    ca_paths=dict(type="list", elements="path", default=[]),
    cas=dict(type="list", elements="dict", default=[]),
    rotation_states=dict(type="list", elements="path"),
    nodes=dict(type="list", elements="dict", default=[]),
    kubernetes=dict(type="bool", default=False),
    namespaces=dict(type="list", elements="str", default=[]),
    warn_within=dict(type="str", default="30d"),
    report_path=dict(type="path"),
    metrics_path=dict(type="path"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.rotation_status)


if __name__ == "__main__":
    main()
