# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # The options of a node certificate that node_certificate and node_certificates (for each of its
    # certificates, unless the certificate sets its own) share.
    DOCUMENTATION = r"""
options:
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
      - The first one must certify the signing CA's own name and key, and each one after it must be a CA that
        issued the one before; anything else is refused before the node is touched. Empty - the CA's own chain.
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
