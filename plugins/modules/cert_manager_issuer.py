#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: cert_manager_issuer
short_description: A cert-manager Issuer or ClusterIssuer, self-signed or CA (optionally this collection's CA)
version_added: 0.2.0
description:
  - Applies a cert-manager C(Issuer) or C(ClusterIssuer) of type C(selfSigned) or C(ca) server-side and waits
    until it is Ready.
  - For a C(ca) issuer the CA Secret is either left to a cert-manager CA Certificate (O(ca_secret_name) only), or
    filled from a CA directory made by M(securebydefault.pki.cluster_ca) (O(ca_path)), so that the same CA
    signs host certificates (M(securebydefault.pki.node_certificate)) and pod certificates - one trust zone.
  - B(Secure by default) - with O(ca_path) the Secret gets a per-issuer intermediate CA
    (O(ca_secret_holds=intermediate)) - a fresh key made on the CA host, a certificate signed by the CA
    directory's root with path length 0 (it cannot make further CAs) and name constraints no wider than the
    root's (narrowed with O(intermediate_permitted_dns) and friends to what this cluster may sign). The CA's own
    key and the root key stay on the CA host; a leaked Secret signs only within the intermediate's constraints
    until it expires, and replacing it is a rerun. The CA directory must have been made with C(intermediate=true)
    (M(securebydefault.pki.cluster_ca)), whose root has room for it. The intermediate is kept while a third of
    its life is left; pods trust the root (C(ca.crt)).
  - O(ca_secret_holds=signing_ca) puts the CA's own signing key into the Secret, as before 0.4.0; a Secret that
    already holds it is kept (with a warning) until O(replace_ca_secret=true) or O(ca_secret_holds=signing_ca).
  - A CA Secret that already holds a different CA is never overwritten unless O(replace_ca_secret=true).
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
options:
  name:
    description: Name of the issuer.
    type: str
    required: true
  kind:
    description: C(Issuer) (namespaced) or C(ClusterIssuer).
    type: str
    choices: [Issuer, ClusterIssuer]
    default: Issuer
  namespace:
    description: Namespace of an C(Issuer). Not used for a C(ClusterIssuer).
    type: str
  state:
    description: C(absent) deletes the issuer (never the CA Secret).
    type: str
    choices: [present, absent]
    default: present
  type:
    description: C(self_signed) or C(ca).
    type: str
    choices: [self_signed, ca]
    default: self_signed
  ca_secret_name:
    description:
      - For O(type=ca), the C(kubernetes.io/tls) Secret with the CA certificate and key.
      - It lives in O(namespace) for an Issuer and in O(cluster_resource_namespace) for a ClusterIssuer.
    type: str
  ca_path:
    description:
      - Directory of a CA made by M(securebydefault.pki.cluster_ca) on the host this task runs on (usually the
        controller, C(delegate_to=localhost)). Its signing certificate and key are written to O(ca_secret_name).
      - The Secret holds the key of a per-issuer intermediate (default) or of the CA itself (O(ca_secret_holds)),
        readable by anyone who may read Secrets there; restrict RBAC accordingly. The name constraints bind what
        cert-manager signs.
      - Needs the C(cryptography) Python package (to read the CA).
      - The alias C(cluster_ca_path) is deprecated and will be removed in 1.0.0.
    type: path
    aliases: [cluster_ca_path]
  ca_secret:
    description:
      - Instead of O(ca_path) - the Kubernetes Secret that keeps the CA, as
        O(securebydefault.pki.cluster_ca#module:ca_secret) created it (a CA for controllers that do not last). Not to
        be confused with O(ca_secret_name), the Issuer's own Secret that this module fills from it.
      - With O(ca_secret_holds=intermediate) the CA's root key is decrypted in memory to sign the per-issuer
        intermediate and stays in its Secret; only the intermediate's key goes to O(ca_secret_name).
    type: dict
    suboptions:
      namespace:
        description: Namespace of the Secret.
        type: str
        required: true
      name:
        description: Name of the Secret.
        type: str
        required: true
  ca_passphrase:
    description:
      - Passphrase of the CA key in O(ca_path) or O(ca_secret), if it has one.
      - The Secret holds the key unencrypted, as cert-manager needs it.
    type: str
  replace_ca_secret:
    description: Overwrite a CA Secret that holds a different CA. Without it that case fails and nothing is written.
    type: bool
    default: false
  ca_secret_holds:
    description:
      - What O(ca_path) puts into the Secret. C(intermediate) - a per-issuer intermediate signed by the CA's root
        (needs a CA made with C(intermediate=true)). C(signing_ca) - the CA's own signing certificate and key.
    type: str
    choices: [intermediate, signing_ca]
    default: intermediate
    version_added: 0.4.0
  intermediate_permitted_dns:
    description: DNS domains the per-issuer intermediate may sign for, each within the root's; default the root's.
    type: list
    elements: str
    default: []
    version_added: 0.4.0
  intermediate_permitted_ip_ranges:
    description:
      - IP ranges (CIDR) the per-issuer intermediate may sign for, each within the root's; default the root's.
      - C([0.0.0.0/32, "::/128"]) permits no IP address at all (ranges no certificate carries).
    type: list
    elements: str
    default: []
    version_added: 0.4.0
  intermediate_permitted_uri_domains:
    description:
      - URI domains (e.g. a SPIFFE trust domain) it may sign for, each within the root's; default the root's.
      - X.509 constrains only the host of a URI; a SPIFFE ID's path (C(/ns/<namespace>/...)) is not constrained,
        so anyone who can read the Secret can sign any SPIFFE ID of the trust domain.
    type: list
    elements: str
    default: []
    version_added: 0.4.0
  intermediate_valid_for:
    description: Lifetime of a per-issuer intermediate (Go or C(365d) syntax, at least a day; capped by the root's).
    type: str
    default: 365d
    version_added: 0.4.0
  cluster_resource_namespace:
    description: cert-manager's C(--cluster-resource-namespace), where a ClusterIssuer's Secret must live.
    type: str
    default: cert-manager
  wait:
    description: Wait until the issuer is Ready.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 60
seealso:
  - module: securebydefault.pki.cert_manager_certificate
  - module: securebydefault.pki.cluster_ca
"""

EXAMPLES = r"""
- name: A cluster-wide self-signed issuer (to sign CA certificates)
  securebydefault.pki.cert_manager_issuer:
    name: selfsigned
    kind: ClusterIssuer

- name: A CA issuer in namespace prod backed by the Ansible-made cluster CA (made with intermediate=true)
  securebydefault.pki.cert_manager_issuer:
    name: prod-ca
    namespace: prod
    type: ca
    ca_secret_name: prod-ca
    ca_path: /etc/pki/clusters/prod
    ca_passphrase: "{{ vault_prod_ca_passphrase }}"
    # the Secret gets an intermediate that signs only for the cluster's service names
    intermediate_permitted_dns: [svc.cluster.local]
  delegate_to: localhost

- name: A CA issuer on the Secret of a cert-manager CA Certificate
  securebydefault.pki.cert_manager_issuer:
    name: prod-ca
    namespace: prod
    type: ca
    ca_secret_name: prod-ca
"""

RETURN = r"""
issuer:
  description: The issuer as the API server returned it (after the wait, if any).
  returned: state is present
  type: dict
  sample:
    apiVersion: cert-manager.io/v1
    kind: Issuer
    metadata: {name: prod-ca, namespace: prod, generation: 1}
    spec: {ca: {secretName: prod-ca}}
    status: {conditions: [{type: Ready, status: "True", reason: KeyPairVerified, observedGeneration: 1}]}
ready:
  description: Whether the issuer is Ready.
  returned: state is present
  type: bool
  sample: true
ca_secret:
  description: The CA Secret written from O(ca_path) (never the key).
  returned: when ca_path is set
  type: dict
  contains:
    name: {description: Secret name., type: str, returned: always, sample: prod-ca}
    namespace: {description: Secret namespace., type: str, returned: always, sample: prod}
    subject: {description: CA subject., type: str, returned: always, sample: CN=prod CA}
    fingerprint:
      description: SHA-256 fingerprint of the CA certificate.
      type: str
      returned: always
      sample: "5F:0A:...:9C"
    changed: {description: Whether the Secret was (or would be) written., type: bool, returned: always, sample: false}
    intermediate:
      description: Whether the Secret holds a per-issuer intermediate (not the CA's own key).
      type: bool
      returned: always
      sample: true
    not_after:
      description: Expiry of the per-issuer intermediate (UTC).
      type: str
      returned: when intermediate
      sample: "2027-11-30T08:00:00Z"
    renewed_because:
      description: Why a new intermediate was made in this run (none, expiring, other constraints, ...).
      type: str
      returned: when a new intermediate was made
      sample: less than a third of its life is left
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.cert_manager_spec import (
    ISSUER_RULES,
    ISSUER_SPEC,
)
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import CAOptions, run
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC

ARGUMENT_SPEC = dict(K8S_CONNECTION_SPEC, **ISSUER_SPEC)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **ISSUER_RULES)
    if module.params["ca_passphrase"] and not (module.params["ca_path"] or module.params["ca_secret"]):
        module.fail_json(msg="ca_passphrase is the passphrase of the CA in ca_path or ca_secret; set one of them",
                         field="ca_passphrase", fix="set ca_path or ca_secret, or remove ca_passphrase")
    # cryptography reads the Ansible CA; issuers on a cert-manager CA Secret need none
    ansible_ca = bool(module.params["ca_path"] or module.params["ca_secret"])
    run(module, ops.ensure_issuer, kube=True, crypto=ansible_ca, ca=CAOptions() if ansible_ca else None)


if __name__ == "__main__":
    main()
