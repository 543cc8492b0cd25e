#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_trust_bundle
short_description: A trust bundle (CA roots) in a ConfigMap for pods to mount
version_added: 0.2.0
description:
  - Writes the roots of one or more CA directories made by M(securebydefault.pki.cluster_ca) into a ConfigMap key
    (default C(ca.crt)), in the order given, server-side applied. Pods mount it as their trust store; during a CA
    rotation it holds both roots, afterwards only the new one (role C(securebydefault.pki.ca_rotation)).
  - Runs where the CA directories are (usually the controller). Only public certificates are read.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
options:
  name:
    description: Name of the ConfigMap.
    type: str
    required: true
  namespace:
    description: Namespace of the ConfigMap.
    type: str
    required: true
  ca_paths:
    description: CA directories whose roots form the bundle, in this order.
    type: list
    elements: path
    required: true
  key:
    description: Key of the bundle in the ConfigMap.
    type: str
    default: ca.crt
"""

EXAMPLES = r"""
- name: Pods in prod trust the old and the new cluster CA during the rotation
  securebydefault.pki.k8s_trust_bundle:
    name: cluster-trust-bundle
    namespace: prod
    ca_paths: [/srv/pki/prod, /srv/pki/prod-2027]
  delegate_to: localhost
"""

RETURN = r"""
fingerprints:
  description: SHA-256 fingerprints of the roots in the bundle, in order.
  returned: success
  type: list
  elements: str
  sample: ["5F:0A:...:9C", "A1:77:...:03"]
bundle:
  description: The PEM text written.
  returned: success
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import k8s_objects as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC

ARGUMENT_SPEC = dict(
    K8S_CONNECTION_SPEC,
    name=dict(type="str", required=True),
    namespace=dict(type="str", required=True),
    ca_paths=dict(type="list", elements="path", required=True),
    key=dict(type="str", default="ca.crt", no_log=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.ensure_trust_bundle, kube=True)


if __name__ == "__main__":
    main()
