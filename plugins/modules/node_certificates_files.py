#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node side of node_certificates: node_certificate_files for several certificates in one call.

Every private key is generated on the node and never leaves it; this module
returns only CSRs and public information.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: node_certificates_files
short_description: Node side of node_certificates (keys, CSRs and certificate files of several certificates)
version_added: 0.5.0
description:
  - Called by the M(securebydefault.pki.node_certificates) action, twice at most per host and run.
    Use that action in playbooks; this module cannot sign anything.
  - Does what M(securebydefault.pki.node_certificate_files) does, for every certificate in O(certificates), in
    order, in one module run. Every certificate's options are checked before the first file is touched.
  - A C(prepare) that fails on one certificate removes the pending keys it made for the others; an
    C(install) that fails on one installs no later one and removes their pending keys. Each installed
    certificate is complete (its files are replaced atomically).
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
  - securebydefault.pki.attributes
options:
  stage:
    description:
      - Which half of the exchange to run, for every certificate (see M(securebydefault.pki.node_certificate_files)).
    type: str
    required: true
    choices: [prepare, install, abort]
  certificates:
    description:
      - The certificates, each a mapping of the options of M(securebydefault.pki.node_certificate_files)
        but O(stage), O(key_passphrase) and O(pkcs12_passphrase), which are options of the whole call
        (an item's values are not masked in logs, so no secret goes there).
      - Two certificates that would share a file (as this node resolves their C(path) and C(name), links
        included), or one directory's certificates with different trust bundles, are refused.
    type: list
    elements: dict
    required: true
  key_passphrase:
    description: Passphrase every node key of this call is encrypted with.
    type: str
  pkcs12_passphrase:
    description: Passphrase of the PKCS#12 keystores and truststores of this call.
    type: str
"""

EXAMPLES = r"""
# Not used directly; the node_certificates action calls it. A read-only check of two certificates:
- name: Would either certificate be re-issued?
  securebydefault.pki.node_certificates_files:
    stage: prepare
    certificates:
      - path: /etc/pki/app
        name: server
        names: [node1.example.internal]
        usages: [server]
        issuer: "{{ lookup('file', '/srv/ca/ca.crt') }}"
        bundle: "{{ lookup('file', '/srv/ca/root.crt') }}"
      - path: /etc/pki/app
        name: client
        names: [node1.example.internal]
        usages: [client]
        issuer: "{{ lookup('file', '/srv/ca/ca.crt') }}"
        bundle: "{{ lookup('file', '/srv/ca/root.crt') }}"
  check_mode: true
  register: due
"""

RETURN = r"""
certificates:
  description:
    - What M(securebydefault.pki.node_certificate_files) returns, for each certificate, in the order given.
    - On a failure, those handled before the one that failed.
  returned: always
  type: list
  elements: dict
  sample: [{changed: false, reasons: [], identity: [node1.example.internal], written: [], backups: [],
            certificate: {serial: 5f3a09c1e2}, discovered: {}, pending_created: false}]
index:
  description: Which certificate failed (its position in O(certificates)).
  returned: failure
  type: int
  sample: 2
written:
  description: Pending keys removed after a failure.
  returned: failure
  type: list
  elements: str
  sample: ["/etc/pki/app/client.key.pending (removed)"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import node_files as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import NODE_FILES_MANY_SPEC


def main():
    module = AnsibleModule(argument_spec=NODE_FILES_MANY_SPEC, supports_check_mode=True)
    # the quick path needs no cryptography; node_files checks for it before anything is due
    run(module, ops.node_files_many, crypto=False)


if __name__ == "__main__":
    main()
