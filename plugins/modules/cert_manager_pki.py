#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: cert_manager_pki
short_description: A namespace-scoped CA, its CA Issuer and the service Certificates of each namespace, in one run
version_added: 0.5.0
description:
  - The recipe of the role C(securebydefault.pki.cert_manager_pki) as one module run - the namespaces (with
    O(create_namespaces)); per namespace a CA that may sign only C(<anything>.<namespace>.<domain>) and a CA Issuer on
    it; then the service Certificates (O(certificates)).
  - With O(ca_source=cert_manager) a self-signed ClusterIssuer (O(selfsigned_issuer)) signs a long-lived CA
    Certificate per namespace (O(ca_certificate), ECDSA P-384, a fresh key on every renewal). With
    O(ca_source=cluster_ca) the CA made by M(securebydefault.pki.cluster_ca) backs every CA Issuer through a
    per-namespace intermediate (or its own key, O(ca_secret_holds=signing_ca)); run the task on the CA host then.
  - Each object gets the checks, secure defaults and diff of its own module
    (M(securebydefault.pki.k8s_namespace), M(securebydefault.pki.cert_manager_issuer),
    M(securebydefault.pki.cert_manager_certificates)). Everything that can be checked without the API (options,
    names, durations, constraints) is checked before the first write, and every namespace's Issuers and
    Certificates are read first - an Issuer that M(securebydefault.pki.cert_manager_ca_rotation) switched to a new
    CA is never switched back (set O(ca_certificate) to the new CA Certificate).
  - Everything is applied in the order it is needed - ClusterIssuer, CA Certificates, CA Issuers, service
    Certificates (those of one kind side by side). In a namespace set up from nothing (no CA Certificate, Issuer
    or CA Secret yet) nothing is waited for in between; cert-manager takes each object up as soon as what it
    names is Ready, so the CA and the services' keys are made at the same time. Where any of them exists, the CA
    Certificate is issued and the Issuer Ready before a service Certificate is applied, so none is signed by a
    key the CA is replacing. Each kind is waited for in that order (one list request per namespace and round,
    watched), within one O(wait_timeout); a failure names the first object that is not Ready, and returns what
    was applied.
  - One module run instead of one per object and kind is what keeps a rerun near the cost of the API requests
    themselves (docs/performance.md).
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
options:
  certificates:
    description:
      - The service Certificates - one mapping each with the options of M(securebydefault.pki.cert_manager_certificate)
        (C(name), C(namespace), C(issuer_name), C(dns_names), C(valid_for), ...), as the filter
        C(securebydefault.pki.cert_manager_service_certificates) makes them from the role's services.
      - Their namespaces get a CA and a CA Issuer too.
    type: list
    elements: dict
    default: []
  namespaces:
    description: Namespaces that get a CA and a CA Issuer besides those of O(certificates).
    type: list
    elements: str
    default: []
  create_namespaces:
    description: Create the namespaces that do not exist (otherwise they must exist).
    type: bool
    default: false
  ca_source:
    description: What signs each namespace's CA - cert-manager (a self-signed ClusterIssuer) or the Ansible CA.
    type: str
    choices: [cert_manager, cluster_ca]
    default: cert_manager
  domain:
    description: Services are named C(<service>.<namespace>.<domain>); each namespace's CA may sign only below it.
    type: str
    default: svc.cluster.local
  selfsigned_issuer:
    description: The self-signed ClusterIssuer that signs the CA Certificates (O(ca_source=cert_manager)).
    type: str
    default: sbd-pki-selfsigned
  ca_issuer:
    description: The name of each namespace's CA Issuer (and, with O(ca_source=cluster_ca), of its CA Secret).
    type: str
    default: sbd-pki-cluster-ca
  ca_certificate:
    description:
      - The CA Certificate (and its Secret) each namespace's Issuer signs with (O(ca_source=cert_manager)).
        Unset means O(ca_issuer). After M(securebydefault.pki.cert_manager_ca_rotation), the new CA Certificate.
    type: str
  ca_common_name:
    description: Common name of each CA Certificate, followed by its namespace.
    type: str
    default: cluster CA (cert-manager)
  ca_valid_for:
    description: Lifetime of each CA Certificate.
    type: str
    default: 43800h
  ca_renew_before:
    description: How long before expiry cert-manager renews a CA Certificate.
    type: str
    default: 720h
  ca_permitted_dns:
    description: DNS domains each namespace's CA may sign besides C(<namespace>.<domain>).
    type: list
    elements: str
    default: []
  ca_permitted_ip_ranges:
    description: Address ranges each namespace's CA may sign (none by default).
    type: list
    elements: str
    default: []
  spiffe_trust_domain:
    description: The SPIFFE trust domain whose URIs each namespace's CA may sign.
    type: str
    default: ""
  ca_path:
    description: The CA directory made by M(securebydefault.pki.cluster_ca) (O(ca_source=cluster_ca)).
    type: path
  ca_passphrase:
    description: The passphrase of the CA in O(ca_path).
    type: str
  ca_secret_holds:
    description:
      - With O(ca_source=cluster_ca), what each CA Issuer's Secret holds - a per-namespace intermediate of the
        root (C(intermediate), which needs C(cluster_ca intermediate=true)), or the CA's own signing key.
    type: str
    choices: [intermediate, signing_ca]
    default: intermediate
  wait_timeout:
    description: Seconds to wait, for everything together, until each Issuer and Certificate is Ready.
    type: int
    default: 120
attributes:
  check_mode:
    support: full
    description: Every object is checked and dry-run applied server-side; nothing is stored and nothing is waited for.
  diff_mode:
    support: full
    description: One diff per object that changes (Secrets summarized, never their keys).
notes:
  - Needs the C(kubernetes) Python package, and C(cryptography) with O(ca_source=cluster_ca).
seealso:
  - module: securebydefault.pki.cert_manager_certificates
  - module: securebydefault.pki.cert_manager_issuer
  - module: securebydefault.pki.cert_manager_ca_rotation
"""

EXAMPLES = r"""
- name: A CA per namespace and short-lived service certificates, in one run
  securebydefault.pki.cert_manager_pki:
    create_namespaces: true
    certificates: >-
      {{ [{'name': 'api', 'namespace': 'prod'}, {'name': 'web', 'namespace': 'prod'}]
         | securebydefault.pki.cert_manager_service_certificates({'issuer_name': 'sbd-pki-cluster-ca'}) }}
    wait_timeout: 300

- name: The same with the Ansible cluster CA behind every CA Issuer (per-namespace intermediates)
  securebydefault.pki.cert_manager_pki:
    ca_source: cluster_ca
    ca_path: /srv/pki/prod
    ca_passphrase: "{{ vault_ca_passphrase }}"
    namespaces: [prod]
  delegate_to: pki-ca.example.internal
"""

RETURN = r"""
namespaces:
  description: One result per namespace created or checked (O(create_namespaces)), as
    M(securebydefault.pki.k8s_namespace) returns it.
  returned: always
  type: list
  elements: dict
cluster_issuer:
  description: The self-signed ClusterIssuer, as M(securebydefault.pki.cert_manager_issuer) returns it.
  returned: with ca_source=cert_manager
  type: dict
ca_certificates:
  description: One result per namespace's CA Certificate, as M(securebydefault.pki.cert_manager_certificates).
  returned: always
  type: list
  elements: dict
issuers:
  description: One result per namespace's CA Issuer, as M(securebydefault.pki.cert_manager_issuer) (with C(ca_secret)
    under O(ca_source=cluster_ca)).
  returned: always
  type: list
  elements: dict
certificates:
  description: One result per service Certificate, in order, as M(securebydefault.pki.cert_manager_certificates).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: api, namespace: prod, changed: false, ready: true, revision: 1, secret_name: api}
ready:
  description: Whether every service Certificate is Ready for its current generation.
  returned: always
  type: bool
api_calls:
  description: API requests this run made.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager_pki as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import CAOptions, run
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC

ARGUMENT_SPEC = dict(
    K8S_CONNECTION_SPEC,
    certificates=dict(type="list", elements="dict", default=[]),
    namespaces=dict(type="list", elements="str", default=[]),
    create_namespaces=dict(type="bool", default=False),
    ca_source=dict(type="str", choices=["cert_manager", "cluster_ca"], default="cert_manager"),
    domain=dict(type="str", default="svc.cluster.local"),
    selfsigned_issuer=dict(type="str", default="sbd-pki-selfsigned"),
    ca_issuer=dict(type="str", default="sbd-pki-cluster-ca"),
    ca_certificate=dict(type="str"),
    ca_common_name=dict(type="str", default="cluster CA (cert-manager)"),
    ca_valid_for=dict(type="str", default="43800h"),
    ca_renew_before=dict(type="str", default="720h"),
    ca_permitted_dns=dict(type="list", elements="str", default=[]),
    ca_permitted_ip_ranges=dict(type="list", elements="str", default=[]),
    spiffe_trust_domain=dict(type="str", default=""),
    ca_path=dict(type="path"),
    ca_passphrase=dict(type="str", no_log=True),
    ca_secret_holds=dict(type="str", choices=["intermediate", "signing_ca"], default="intermediate"),
    wait_timeout=dict(type="int", default=120),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("ca_source", "cluster_ca", ["ca_path"])])
    ansible_ca = module.params["ca_source"] == "cluster_ca"
    run(module, ops.ensure_pki, kube=True, crypto=ansible_ca, ca=CAOptions() if ansible_ca else None)


if __name__ == "__main__":
    main()
