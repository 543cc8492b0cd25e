#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node side of node_certificate: key, CSR and certificate files on the node.

The private key is generated on the node and never leaves it; this module
returns only a CSR and public information.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: node_certificate_files
short_description: Node side of node_certificate (key, CSR, certificate files)
version_added: "0.1.0"
description:
  - Called by the M(securebydefault.pki.node_certificate) action, twice at most per host.
    Use that action in playbooks; this module cannot sign anything.
  - In stage C(prepare) it validates all destinations, installs the trust bundle (and
    truststore), fixes file modes, and decides with reasons whether a certificate must be
    issued. If so it writes a fresh private key beside the current one as C(<name>.key.pending)
    and returns a CSR. The private key never leaves the node.
  - In stage C(install) it checks the signed certificate against the pending (or current)
    key and the approved names, then replaces key, certificate, full chain and keystore,
    each atomically, and writes the issuance record C(<name>.issued.json) (hashes of what was
    installed; with it a later run that finds nothing due needs no X.509 parsing).
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
  - securebydefault.pki.attributes
  - securebydefault.pki.attributes.files
  - securebydefault.pki.attributes.key
options:
  host:
    description:
      - Inventory name of the host the files belong to, kept in the issuance record; a directory that
        holds another host's certificate is refused.
    type: str
    default: ""
  stage:
    description:
      - Which half of the exchange to run.
      - C(abort) removes a pending key made by a C(prepare) whose CSR the CA refused to sign.
    type: str
    required: true
    choices: [prepare, install, abort]
  path:
    description: Directory on the node for the files.
    type: path
    required: true
  name:
    description: Base name of the files (C(<name>.key), C(<name>.crt), C(<name>-fullchain.crt), C(<name>.p12)).
    type: str
    default: node
  names:
    description: Names and addresses approved by the controller.
    type: list
    elements: str
    default: []
  discover:
    description: Identity sources the node must look up itself because facts were not gathered.
    type: list
    elements: str
    default: []
    choices: [inventory_hostname, hostname, fqdn, ipv4, ipv6]
  issuer:
    description: PEM of the issuing CA certificate, followed by its issuers.
    type: str
    required: true
  bundle:
    description: PEM trust bundle to install as C(ca-bundle.crt).
    type: str
    required: true
  truststore:
    description: Base64 of a Java PKCS#12 truststore made on the controller, installed as C(truststore.p12).
    type: str
  certificate:
    description: PEM of the signed certificate (stage C(install)).
    type: str
  revoked_serials:
    description: Serials (lower-case hex) the CA has revoked; a certificate with one of them is re-issued.
    type: list
    elements: str
    default: []
  allow_wildcard:
    description: Accept wildcard names.
    type: bool
    default: false
  usages:
    description: Extended key usages the certificate must have.
    type: list
    elements: str
    default: [server, client]
    choices: [server, client]
  subject:
    description:
      - The subject the certificate must have, as the controller chose it (see
        M(securebydefault.pki.node_certificate)); not set, C(CN=<one of its names>).
      - A certificate with another common name or set of organizations is re-issued, and a signed certificate
        with another subject is not installed.
    type: dict
    suboptions:
      common_name:
        description: The common name (CN).
        type: str
      organizations:
        description: Organizations (O), in the order they are written.
        type: list
        elements: str
  renew_before:
    description: Re-issue when the certificate expires within this duration.
    type: str
    default: 30d
  key_passphrase:
    description: Passphrase the node key is encrypted with.
    type: str
  regenerate_key:
    description: C(on_renewal) makes a fresh key for every certificate; C(never) keeps a valid key.
    type: str
    default: on_renewal
    choices: [on_renewal, never]
  force:
    description: Re-issue even if nothing is due.
    type: bool
    default: false
  backup:
    description: Keep a timestamped copy of replaced files.
    type: bool
    default: false
  pkcs12_keystore:
    description: Also write C(<name>.p12) with key, certificate and chain.
    type: bool
    default: false
  pkcs12_passphrase:
    description: Passphrase of the PKCS#12 keystore and truststore.
    type: str
"""

EXAMPLES = r"""
# Not used directly; the node_certificate action calls it. A read-only check:
- name: Would the node certificate be re-issued?
  securebydefault.pki.node_certificate_files:
    stage: prepare
    path: /etc/pki/app
    names: [node1.example.internal]
    issuer: "{{ lookup('file', '/srv/ca/ca.crt') }}"
    bundle: "{{ lookup('file', '/srv/ca/root.crt') }}"
  check_mode: true
  register: due
"""

RETURN = r"""
reasons:
  description: Why a certificate must be issued; empty when nothing is due.
  returned: always
  type: list
  elements: str
  sample: ["expires in 3d2h (2026-12-01T00:00:00Z) <= renew_before 30d"]
identity:
  description: The names the certificate carries (or will carry).
  returned: always
  type: list
  elements: str
  sample: [node1.example.internal, 10.0.0.7]
csr:
  description: PEM CSR made with the node's new (or kept) key, when a certificate must be issued.
  returned: stage prepare, when reasons is not empty and not in check mode
  type: str
  sample: "-----BEGIN CERTIFICATE REQUEST-----\nMIIBDzCBtgIBADAh...\n-----END CERTIFICATE REQUEST-----\n"
written:
  description: Files written (or that would be written in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/pki/cluster-a/node.crt]
backups:
  description: Backup copies made.
  returned: always
  type: list
  elements: str
  sample: []
certificate:
  description: Names, subject (RFC 4514), issuer, serial, not_after and fingerprint of the installed certificate.
  returned: always
  type: dict
  sample: {serial: 5f3a09c1e2, not_after: "2027-02-20T10:00:00Z", names: [node1.cluster-a.example]}
discovered:
  description: Facts the node looked up itself (hostname, fqdn, addresses).
  returned: always
  type: dict
  sample: {hostname: node1, fqdn: node1.cluster-a.example, ipv4: [10.20.0.11]}
pending_created:
  description: Whether this run wrote a new C(<name>.key.pending) for the CSR.
  returned: stage prepare
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import node_files as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import NODE_FILES_SPEC


def main():
    module = AnsibleModule(argument_spec=NODE_FILES_SPEC, supports_check_mode=True,
                           required_if=[("stage", "install", ("certificate",)),
                                        ("pkcs12_keystore", True, ("pkcs12_passphrase",))])
    # the quick path needs no cryptography; node_files checks for it before anything is due
    run(module, ops.node_files, crypto=False)


if __name__ == "__main__":
    main()
