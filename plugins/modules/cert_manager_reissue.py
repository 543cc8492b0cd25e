#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: cert_manager_reissue
short_description: Re-issue every cert-manager Certificate of an issuer that is not yet signed by a given CA
version_added: 0.2.0
description:
  - Lists the Certificates in O(namespace) whose C(issuerRef) is O(issuer_name), and for each whose Secret does not
    hold a certificate signed by the CA in O(ca_path), asks cert-manager to issue again (the C(Issuing) condition, as
    C(cmctl renew) does) and waits for the new revision, Ready, signed by that CA.
  - Idempotent - Certificates already signed by the CA are left alone, so a rerun after a CA switch does nothing.
    In check mode it only reports which would be re-issued.
  - Returns each Certificate's current certificate as evidence for the C(ca_rotation) stage machine.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
options:
  namespace:
    description: Namespace of the Certificates.
    type: str
    required: true
  issuer_name:
    description: The issuer whose Certificates are re-issued.
    type: str
    required: true
  issuer_kind:
    description: Kind of the issuer.
    type: str
    choices: [Issuer, ClusterIssuer]
    default: Issuer
  ca_path:
    description:
      - CA directory (M(securebydefault.pki.cluster_ca)) the certificates must be signed by.
      - Exactly one of O(ca_path) and O(ca_secret) is required.
    type: path
  ca_secret:
    description:
      - The Kubernetes Secret that keeps that CA instead (O(securebydefault.pki.cluster_ca#module:ca_secret)); only
        its public certificates are read.
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
  bundle_configmap:
    description: A trust bundle ConfigMap (M(securebydefault.pki.k8s_trust_bundle)) to report as evidence too.
    type: str
  wait_timeout:
    description: Seconds to wait for each new revision.
    type: int
    default: 120
"""

EXAMPLES = r"""
- name: After switching the prod CA Issuer to the new CA, re-issue what it signed
  securebydefault.pki.cert_manager_reissue:
    namespace: prod
    issuer_name: prod-ca
    ca_path: /srv/pki/prod-2027
  delegate_to: localhost
"""

RETURN = r"""
certificates:
  description: One entry per Certificate of the issuer - name, revision, and whether this run re-issued it.
  returned: success
  type: list
  elements: dict
  contains:
    name: {description: Name of the Certificate., type: str, returned: always, sample: orders}
    revision: {description: Its issuance revision after this run., type: int, returned: always, sample: 3}
    reissued:
      description: Whether this run re-issued it (or would, in check mode).
      type: bool
      returned: always
      sample: true
  sample: [{name: orders, revision: 3, reissued: true}, {name: billing, revision: 2, reissued: false}]
reissued:
  description: Names of the Certificates re-issued (or that would be, in check mode).
  returned: success
  type: list
  elements: str
  sample: [orders]
evidence:
  description:
    - C(host) (C(k8s:<namespace>/<name>)), C(certificate) and C(bundle) per Certificate,
      for M(securebydefault.pki.ca_rotation).
  returned: success
  type: list
  elements: dict
  contains:
    host:
      description: The Certificate as C(k8s:<namespace>/<name>).
      type: str
      returned: always
      sample: k8s:prod/orders
    certificate:
      description: The PEM certificate in its Secret's C(tls.crt).
      type: str
      returned: always
      sample: "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
    bundle:
      description: The trust bundle of O(bundle_configmap), empty without it.
      type: str
      returned: always
      sample: ""
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import CAOptions, run
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import CA_CHOICE, secret_option
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC

ARGUMENT_SPEC = dict(
    K8S_CONNECTION_SPEC,
    namespace=dict(type="str", required=True),
    issuer_name=dict(type="str", required=True),
    issuer_kind=dict(type="str", choices=["Issuer", "ClusterIssuer"], default="Issuer"),
    ca_path=dict(type="path"),
    ca_secret=secret_option(),
    bundle_configmap=dict(type="str"),
    wait_timeout=dict(type="int", default=120),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **CA_CHOICE)
    run(module, ops.reissue, kube=True, ca=CAOptions())


if __name__ == "__main__":
    main()
