#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation and argument spec of the node_certificate action; the work is in plugins/action.

The node's private key never leaves the node; the CA key never leaves the CA host.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: node_certificate
short_description: One task per host - key on the node, certificate from the cluster CA, installed atomically
version_added: "0.1.0"
description:
  - Ensures the node's private key B(on the node) (it never leaves the node), builds the node's
    identity from facts (inventory name, hostname, FQDN, addresses of non-loopback interfaces)
    plus names you add, decides with reasons whether a certificate must be (re)issued, has the
    CSR signed by the CA made by M(securebydefault.pki.cluster_ca) on the controller, and installs
    certificate, full chain and trust bundle atomically, optionally with a PKCS#12 keystore and
    Java truststore.
  - "Files below O(path): C(<name>.key) (0600), C(<name>.crt), C(<name>-fullchain.crt) (leaf and
    intermediates), C(ca-bundle.crt) (trust anchors), C(<name>.p12), C(truststore.p12)."
  - A certificate is re-issued when it expires within O(renew_before), a name was added or
    removed, the key does not match, the CA changed, the key algorithm, the usages or the subject changed,
    or O(force=true). A fresh key is made for every certificate unless O(regenerate_key=never).
    The reasons are returned.
  - If facts were gathered they are used; otherwise the node looks up its hostname, FQDN and
    interface addresses itself in the same call, so C(gather_facts) is not needed.
  - A run with nothing due is one module call on the node; an issuance is two.
  - The CA is on the controller (O(ca_path), the default) or on a designated CA host. In the second case
    this task gets the CA's public material in O(ca) (from M(securebydefault.pki.ca_info) on the CA host) and
    returns RV(csr) when a certificate is due. M(securebydefault.pki.sign_csr) signs it on the CA host, and a
    second call with O(certificate) installs it. The C(node_certificate) role does this when
    C(node_certificate_ca_host) is set. Either way the CA key never leaves the CA host.
  - Every name is checked against the CA's name constraints and wildcard policy before anything is written.
  - The subject is chosen here, never taken from the node's CSR - C(CN=<one of the names>) by default, or
    O(subject) for client identities that are read from the subject, such as Kubernetes users and nodes.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
  - securebydefault.pki.attributes
  - securebydefault.pki.attributes.files
  - securebydefault.pki.attributes.key
  - securebydefault.pki.node_certificate
notes:
  - Runs as an action plugin; with O(ca_path) the signing happens on the controller.
  - Works with the node's Python and cryptography 38 or later (Debian 12's python3-cryptography).
seealso:
  - module: securebydefault.pki.cluster_ca
  - module: securebydefault.pki.certificate_info
options:
  ca_path:
    description:
      - CA directory on the controller, as made by M(securebydefault.pki.cluster_ca).
      - Exactly one of O(ca_path) and O(ca) is required.
    type: path
  ca:
    description:
      - The public material of a CA on a designated CA host, the RV(securebydefault.pki.ca_info#module:public)
        result of M(securebydefault.pki.ca_info) run there.
      - When a certificate is due and O(certificate) is not given, the task returns RV(csr) and RV(identity)
        for M(securebydefault.pki.sign_csr), and keeps the new key pending on the node.
    type: dict
  certificate:
    description:
      - With O(ca), the certificate M(securebydefault.pki.sign_csr) signed for the CSR this task returned. It is
        installed if it matches the pending key and the identity, and refused otherwise.
    type: str
  path:
    description: Directory on the node for key, certificate, chain, bundle and keystores. Created if missing.
    type: path
    required: true
  name:
    description: Base name of the files, e.g. C(node) gives C(node.key) and C(node.crt).
    type: str
    default: node
"""

EXAMPLES = r"""
- name: Certificate for every node, named by its facts, for servers and clients (mTLS)
  securebydefault.pki.node_certificate:
    ca_path: /srv/pki/cluster-a
    ca_passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    path: /etc/pki/cluster-a
  notify: node certificate changed

- name: Server-only certificate with a SPIFFE ID, short-lived, for a Java service
  securebydefault.pki.node_certificate:
    ca_path: /srv/pki/cluster-a
    ca_passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    path: /etc/kafka/tls
    name: kafka
    owner: kafka
    group: kafka
    identity_from: [fqdn, ipv4]
    spiffe_id: "spiffe://cluster-a.example.internal/kafka/{{ inventory_hostname }}"
    usages: [server]
    valid_for: 7d
    renew_before: 2d
    pkcs12_keystore: true
    pkcs12_truststore: true
    pkcs12_passphrase: "{{ vault_kafka_store_passphrase }}"
  register: kafka_cert

- name: Show why it was (re)issued
  ansible.builtin.debug:
    var: kafka_cert.reasons

- name: A kubelet's client certificate, the identity Kubernetes' Node authorizer expects
  securebydefault.pki.node_certificate:
    ca_path: /srv/pki/kubernetes
    ca_passphrase: "{{ vault_kubernetes_ca_passphrase }}"
    path: /var/lib/kubelet/pki
    name: kubelet-client
    identity_from: []
    usages: [client]
    subject:
      common_name: "system:node:{{ inventory_hostname }}"
      organizations: ["system:nodes"]

# The CA on a designated CA host (the node_certificate role does these four steps itself
# when node_certificate_ca_host is set)
- name: The CA's public material, read on the CA host
  securebydefault.pki.ca_info:
    path: /var/lib/pki/cluster-a
  delegate_to: ca1.example.internal
  run_once: true
  register: cluster_ca_public

- name: Key and CSR on the node
  securebydefault.pki.node_certificate:
    ca: "{{ cluster_ca_public.public }}"
    path: /etc/pki/cluster-a
  register: request

- name: Signed on the CA host
  securebydefault.pki.sign_csr:
    ca_path: /var/lib/pki/cluster-a
    ca_passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    csr: "{{ request.csr }}"
    names: "{{ request.identity }}"
    host: "{{ inventory_hostname }}"
  delegate_to: ca1.example.internal
  when: request.csr is defined
  register: signed

- name: Installed on the node
  securebydefault.pki.node_certificate:
    ca: "{{ cluster_ca_public.public }}"
    certificate: "{{ signed.certificate }}"
    path: /etc/pki/cluster-a
  when: request.csr is defined
"""

RETURN = r"""
csr:
  description: The node's CSR (PEM) for M(securebydefault.pki.sign_csr) on the CA host.
  returned: with O(ca) and without O(certificate), when a certificate is due (not in check mode)
  type: str
  sample: "-----BEGIN CERTIFICATE REQUEST-----\nMIIBDzCBtgIBADAh...\n-----END CERTIFICATE REQUEST-----\n"
signing_required:
  description: True when RV(csr) waits to be signed on the CA host.
  returned: when RV(csr) is returned
  type: bool
  sample: true
reasons:
  description: Why a certificate was (or in check mode would be) issued; empty when nothing was due.
  returned: always
  type: list
  elements: str
  sample: ["expires in 20d1h (2027-01-01T00:00:00Z) <= renew_before 30d", "name 10.0.0.9 missing from certificate"]
identity:
  description: The names the certificate carries (empty for a client certificate named by its O(subject) alone).
  returned: success
  type: list
  elements: str
  sample: [node1, node1.example.internal, 10.0.0.7]
certificate:
  description:
    - Names, subject (RFC 4514), issuer, serial (hex), not_after and SHA-256 fingerprint of the certificate on the
      node.
  returned: success
  type: dict
  sample: {serial: 5f3a09c1e2, not_after: "2027-02-20T10:00:00Z", names: [node1.cluster-a.example],
           subject: "CN=node1.cluster-a.example"}
files:
  description: Paths of key, cert, chain, bundle, keystore and truststore on the node.
  returned: always
  type: dict
  sample: {key: /etc/pki/a/node.key, cert: /etc/pki/a/node.crt, bundle: /etc/pki/a/ca-bundle.crt}
written:
  description: Files written, or that would be written in check mode.
  returned: success
  type: list
  elements: str
  sample: [/etc/pki/cluster-a/node.crt, /etc/pki/cluster-a/node-fullchain.crt]
backups:
  description: Backup copies made with O(backup=true).
  returned: success
  type: list
  elements: str
  sample: [/etc/pki/cluster-a/node.crt.2026-11-22@10:00:00~]
field:
  description: On failure, the option at fault.
  returned: failure
  type: str
  sample: dns_names[0]
fix:
  description: On failure, how to fix it.
  returned: failure
  type: str
  sample: "list the host names explicitly, or set allow_wildcard: true if you really need a wildcard"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import NODE_CERTIFICATE_SPEC


def main():
    module = AnsibleModule(argument_spec=NODE_CERTIFICATE_SPEC, supports_check_mode=True)
    module.fail_json(msg="node_certificate runs as an action plugin on the controller; this module file only "
                         "documents it. Make sure the securebydefault.pki collection is installed, not just copied.")


if __name__ == "__main__":
    main()
