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
        description:
          - Further CA directories (made by M(securebydefault.pki.cluster_ca)) whose root joins the node's trust bundle
            (and truststore) beside O(ca_path)'s. The certificate is still signed by O(ca_path) only.
          - This is how a CA rotation trusts both CAs during the overlap (role C(ca_rotation)).
        type: list
        elements: path
      issuer_chain:
        description:
          - PEM certificates the leaf presents after itself (in the full chain and the keystore) instead of its CA's own
            chain - the cross-signed certificate of a CA rotation with
            O(securebydefault.pki.ca_rotation#module:cross_sign) (role C(ca_rotation) sets it while C(switched)).
          - The first one must certify the signing CA's own name and key; anything else is refused before the node is
            touched. Empty - the CA's own chain.
        type: str
      dns_names:
        description: Further DNS names for this node. Wildcards only with O(allow_wildcard).
        type: list
        elements: str
      ip_addresses:
        description: Further IP addresses for this node.
        type: list
        elements: str
      uris:
        description: Further URI SANs.
        type: list
        elements: str
      spiffe_id:
        description: A SPIFFE ID (C(spiffe://trust-domain/path)) to add as URI SAN.
        type: str
      shared_names:
        description:
          - Names (DNS names, addresses, URIs) that several hosts may carry at once, such as a service VIP.
          - Any other name belongs to one live host at a time. A name that the controller knows as another
            inventory host's (its inventory name, C(ansible_host), its cached facts), or that another host
            holds with a live certificate in the CA's ledger, is refused, naming both hosts.
        type: list
        elements: str
      subject:
        description:
          - The certificate's subject, chosen by the controller; the subject in the node's CSR is never taken.
          - Not set (or empty), the subject is C(CN=<one of the certificate's names>), as before this option existed.
          - With O(certificates[].subject.common_name), the subject is
            C(O=<each organization, in the order given>, CN=<common_name>), organizations first as kubeadm writes
            them, e.g. C(CN=system:node:node1, O=system:nodes) for a kubelet or C(CN=kubernetes-admin, O=system:masters)
            for an administrator.
          - With O(certificates[].subject.common_name) and O(usages=[client]) the certificate may have no names at all
            (O(identity_from=[]) and no O(dns_names), O(ip_addresses), O(uris) or O(spiffe_id)); it then has no
            SubjectAlternativeName extension. Any other certificate needs at least one name.
          - A certificate whose common name or set of organizations differs from this is re-issued, with the
            reason C(subject changed). So is one issued to a chosen subject once the option is dropped.
        type: dict
        suboptions:
          common_name:
            description:
              - The common name (CN). At most 64 characters, printable, no whitespace.
              - Required when O(certificates[].subject.organizations) is given.
            type: str
          organizations:
            description: Organizations (O), at most 8, no duplicates, each like O(certificates[].subject.common_name).
            type: list
            elements: str
      usages:
        description: Extended key usages.
        type: list
        elements: str
        choices: [server, client]
  ca_path:
    description:
      - CA directory on the controller, as made by M(securebydefault.pki.cluster_ca), that signs every certificate
        which does not name its own O(certificates[].ca_path).
      - Unlike M(securebydefault.pki.node_certificate), a CA on a designated CA host is not supported here.
    type: path
  ca_passphrase:
    description: Passphrase of the CA key. Keep it in Ansible Vault.
    type: str
  trust_also:
    description:
      - Further CA directories (made by M(securebydefault.pki.cluster_ca)) whose root joins the node's trust bundle
        (and truststore) beside O(ca_path)'s. The certificate is still signed by O(ca_path) only.
      - This is how a CA rotation trusts both CAs during the overlap (role C(ca_rotation)).
    type: list
    elements: path
    default: []
  issuer_chain:
    description:
      - PEM certificates the leaf presents after itself (in the full chain and the keystore) instead of its CA's own
        chain - the cross-signed certificate of a CA rotation with
        O(securebydefault.pki.ca_rotation#module:cross_sign) (role C(ca_rotation) sets it while C(switched)).
      - The first one must certify the signing CA's own name and key; anything else is refused before the node is
        touched. Empty - the CA's own chain.
    type: str
  identity_from:
    description:
      - Which host facts name the node. C(ipv4)/C(ipv6) are the addresses of every
        non-loopback interface (never C(127.0.0.1) or C(::1), never link-local).
      - Names that fall outside the CA's constraints fail the task; drop a source here instead.
    type: list
    elements: str
    choices: [inventory_hostname, hostname, fqdn, ipv4, ipv6]
    default: [inventory_hostname, hostname, fqdn, ipv4, ipv6]
  dns_names:
    description: Further DNS names for this node. Wildcards only with O(allow_wildcard).
    type: list
    elements: str
    default: []
  ip_addresses:
    description: Further IP addresses for this node.
    type: list
    elements: str
    default: []
  uris:
    description: Further URI SANs.
    type: list
    elements: str
    default: []
  spiffe_id:
    description: A SPIFFE ID (C(spiffe://trust-domain/path)) to add as URI SAN.
    type: str
  shared_names:
    description:
      - Names (DNS names, addresses, URIs) that several hosts may carry at once, such as a service VIP.
      - Any other name belongs to one live host at a time. A name that the controller knows as another
        inventory host's (its inventory name, C(ansible_host), its cached facts), or that another host
        holds with a live certificate in the CA's ledger, is refused, naming both hosts.
    type: list
    elements: str
    default: []
  allow_wildcard:
    description: Accept wildcard DNS names. The CA must allow them too.
    type: bool
    default: false
  usages:
    description: Extended key usages.
    type: list
    elements: str
    choices: [server, client]
    default: [server, client]
  subject:
    description:
      - The certificate's subject, chosen by the controller; the subject in the node's CSR is never taken.
      - Not set (or empty), the subject is C(CN=<one of the certificate's names>), as before this option existed.
      - With O(subject.common_name), the subject is C(O=<each organization, in the order given>, CN=<common_name>),
        organizations first as kubeadm writes them, e.g. C(CN=system:node:node1, O=system:nodes) for a kubelet
        or C(CN=kubernetes-admin, O=system:masters) for an administrator.
      - With O(subject.common_name) and O(usages=[client]) the certificate may have no names at all
        (O(identity_from=[]) and no O(dns_names), O(ip_addresses), O(uris) or O(spiffe_id)); it then has no
        SubjectAlternativeName extension. Any other certificate needs at least one name.
      - A certificate whose common name or set of organizations differs from this is re-issued, with the
        reason C(subject changed). So is one issued to a chosen subject once the option is dropped.
    type: dict
    suboptions:
      common_name:
        description:
          - The common name (CN). At most 64 characters, printable, no whitespace.
          - Required when O(subject.organizations) is given.
        type: str
      organizations:
        description: Organizations (O), at most 8, no duplicates, each like O(subject.common_name).
        type: list
        elements: str
  valid_for:
    description: Lifetime of each certificate (C(90d), C(24h), C(1y), seconds). Capped by the CA's policy.
    type: str
    default: 90d
  renew_before:
    description: Re-issue when the certificate expires within this duration. Must be shorter than O(valid_for).
    type: str
    default: 30d
  key_passphrase:
    description: Encrypt the node key with this passphrase.
    type: str
  regenerate_key:
    description: C(on_renewal) makes a fresh key for every certificate; C(never) keeps a valid existing key.
    type: str
    choices: [on_renewal, never]
    default: on_renewal
  force:
    description: Re-issue now even if nothing is due.
    type: bool
    default: false
  backup:
    description: Keep a timestamped copy of the key and certificate being replaced.
    type: bool
    default: false
  pkcs12_keystore:
    description: Also write C(<name>.p12) (key, certificate, chain), made on the node.
    type: bool
    default: false
  pkcs12_truststore:
    description: Also write C(truststore.p12), a Java truststore of the CA bundle, made on the controller.
    type: bool
    default: false
  pkcs12_passphrase:
    description: Passphrase of the keystore and truststore. Required with either.
    type: str
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
