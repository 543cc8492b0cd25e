#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation and argument spec of the node_certificates action; the work is in plugins/action.

Every node key is made on the node and never leaves it; the CA keys never leave the controller.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: node_certificates
short_description: Several certificates of one host in one task - keys on the node, signed by CAs on the controller
version_added: 0.5.0
description:
  - Does what M(securebydefault.pki.node_certificate) does, for every certificate in O(certificates), with
    its checks and its files, in at most two module runs on the host (one when nothing is due) instead of
    one or two per certificate. Use it where a host needs several certificates, such as a Kubernetes
    control-plane node (role C(kubernetes_pki) does).
  - Every certificate is planned and checked (names against its CA's constraints, subject, usages, the CA's
    passphrase and policy) before the node is touched. Then one run on the node decides, with reasons,
    which are due and makes their keys and CSRs (each key stays on the node); the controller signs each
    CSR with its certificate's CA; one more run on the node installs them, each atomically.
  - Every signature is checked (the CA, its constraints, the owners of each name in its ledger) before the first
    is made; a refused one removes every pending key this run made and signs and installs nothing. An install
    that fails installs no later certificate; those installed before it are complete. Check mode signs nothing.
  - The certificates may come from different CAs (O(certificates[].ca_path)); certificates of one directory
    share its trust bundle, so they must have the same CA roots (and O(trust_also)).
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
  - securebydefault.pki.attributes
  - securebydefault.pki.attributes.files
  - securebydefault.pki.attributes.key
  - securebydefault.pki.node_certificate
notes:
  - Runs as an action plugin; the signing happens on the controller.
  - Works with the node's Python and cryptography 38 or later (Debian 12's python3-cryptography).
seealso:
  - module: securebydefault.pki.node_certificate
  - module: securebydefault.pki.cluster_ca
options:
  path:
    description:
      - Directory on the node for the certificates' files, unless a certificate sets its own O(certificates[].path).
        Created if missing.
      - Certificates of one directory share its C(ca-bundle.crt) (and C(truststore.p12)), so two certificates of one
        directory whose CAs' trust bundles differ are refused.
    type: path
  certificates:
    description:
      - The certificates of this host, each with what sets it apart. An option a certificate does not set is the
        task's (for example O(ca_path), O(dns_names) or O(usages)).
      - Each is issued as M(securebydefault.pki.node_certificate) issues one, with its checks; all of them are
        checked before the node is touched. Two certificates that would share a file (the same directory and name,
        a name ending in C(-fullchain) beside the other, C(ca-bundle) or C(truststore)) are refused, here and
        again on the node as it resolves its directories (links included).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Base name of the files, e.g. C(apiserver) gives C(apiserver.key) and C(apiserver.crt).
        type: str
        required: true
      path:
        description: Directory on the node for this certificate's files (default O(path)).
        type: path
      ca_path:
        description: The CA directory on the controller that signs this certificate (default O(ca_path)).
        type: path
      trust_also:
        description: As O(trust_also), for this certificate (and its directory's bundle).
        type: list
        elements: path
      issuer_chain:
        description: As O(issuer_chain), for this certificate - a chain from this certificate's CA.
        type: str
      dns_names:
        description: As O(dns_names), for this certificate (an empty list is its own choice, not the task's).
        type: list
        elements: str
      ip_addresses:
        description: As O(ip_addresses), for this certificate.
        type: list
        elements: str
      uris:
        description: As O(uris), for this certificate.
        type: list
        elements: str
      spiffe_id:
        description: As O(spiffe_id), for this certificate.
        type: str
      shared_names:
        description: As O(shared_names), for this certificate.
        type: list
        elements: str
      subject:
        description: As O(subject), for this certificate (for example the common name C(system:kube-scheduler)).
        type: dict
        suboptions:
          common_name:
            description: The common name (CN), as O(subject.common_name).
            type: str
          organizations:
            description: Organizations (O), as O(subject.organizations).
            type: list
            elements: str
      usages:
        description: As O(usages), for this certificate.
        type: list
        elements: str
        choices: [server, client]
  ca_path:
    description:
      - CA directory on the controller, as made by M(securebydefault.pki.cluster_ca), that signs every certificate
        which does not name its own O(certificates[].ca_path).
      - Unlike M(securebydefault.pki.node_certificate), a CA on a designated CA host is not supported here.
    type: path
"""

EXAMPLES = r"""
- name: The certificates of a control-plane node, from two CAs, in one task
  securebydefault.pki.node_certificates:
    ca_path: /srv/pki/kubernetes
    ca_passphrase: "{{ vault_kubernetes_ca_passphrase }}"
    path: /etc/kubernetes/pki
    identity_from: []
    valid_for: 90d
    renew_before: 30d
    certificates:
      - name: apiserver
        dns_names: [kubernetes, kubernetes.default, "{{ inventory_hostname }}"]
        ip_addresses: [10.96.0.1, "{{ ansible_host }}"]
        usages: [server]
      - name: apiserver-kubelet-client
        usages: [client]
        subject: {common_name: kube-apiserver-kubelet-client, organizations: ["kubeadm:cluster-admins"]}
      - name: apiserver-etcd-client
        ca_path: /srv/pki/etcd
        path: /etc/kubernetes/pki/etcd
        usages: [client]
        subject: {common_name: kube-apiserver-etcd-client}
  register: control_plane_certificates
  notify: restart what reads a changed certificate

- name: Why each was (re)issued
  ansible.builtin.debug:
    msg: "{{ control_plane_certificates.certificates | items2dict(key_name='name', value_name='reasons') }}"
"""

RETURN = r"""
certificates:
  description:
    - For each certificate, in the order given, what M(securebydefault.pki.node_certificate) returns for one
      (RV(certificates[].reasons), RV(certificates[].identity), RV(certificates[].certificate),
      RV(certificates[].written), RV(certificates[].backups), RV(certificates[].files)), with its
      RV(certificates[].name), RV(certificates[].path) and RV(certificates[].changed).
    - On a failure, every certificate still; those the node did not handle have only RV(certificates[].name),
      RV(certificates[].path), RV(certificates[].changed) and RV(certificates[].files).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The certificate's O(certificates[].name).
      type: str
      returned: always
      sample: apiserver
    path:
      description: Its directory on the node.
      type: str
      returned: always
      sample: /etc/kubernetes/pki
    changed:
      description: Whether anything of this certificate changed (or would, in check mode).
      type: bool
      returned: always
      sample: true
    reasons:
      description: Why it was (or in check mode would be) issued; empty when nothing was due.
      type: list
      elements: str
      returned: success
      sample: ["no certificate yet"]
    identity:
      description: The names it carries.
      type: list
      elements: str
      returned: success
      sample: [kubernetes, kubernetes.default, 10.96.0.1]
    certificate:
      description: Names, subject, issuer, serial (hex), not_after and SHA-256 fingerprint of the certificate on the
        node.
      type: dict
      returned: success
      sample: {serial: 5f3a09c1e2, not_after: "2027-02-20T10:00:00Z"}
    written:
      description: Files written, or that would be written in check mode.
      type: list
      elements: str
      returned: success
      sample: [/etc/kubernetes/pki/apiserver.crt]
    backups:
      description: Backup copies made with O(backup=true).
      type: list
      elements: str
      returned: success
      sample: []
    files:
      description: Paths of its key, cert, chain, bundle, keystore and truststore on the node.
      type: dict
      returned: always
      sample: {key: /etc/kubernetes/pki/apiserver.key, cert: /etc/kubernetes/pki/apiserver.crt}
field:
  description: On failure, the option at fault, with the certificate's position (C(certificates[2].dns_names)).
  returned: failure
  type: str
  sample: certificates[2].dns_names
fix:
  description: On failure, how to fix it.
  returned: failure
  type: str
  sample: "give certificates of different CAs (or trust_also) their own directories"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import (
    NODE_CERTIFICATES_RULES, NODE_CERTIFICATES_SPEC)


def main():
    module = AnsibleModule(argument_spec=NODE_CERTIFICATES_SPEC, supports_check_mode=True, **NODE_CERTIFICATES_RULES)
    module.fail_json(msg="node_certificates runs as an action plugin on the controller; this module file only "
                         "documents it. Make sure the securebydefault.pki collection is installed, not just copied.")


if __name__ == "__main__":
    main()
