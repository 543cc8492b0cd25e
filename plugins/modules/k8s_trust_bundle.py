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
  - With O(distribution=trust_manager) (or V(auto) where trust-manager is installed) the roots go into a
    trust-manager C(Bundle) of the same name instead, which writes the ConfigMap (same name, same key) into every
    namespace, or into those O(namespace_selector) picks; see M(securebydefault.pki.trust_manager_bundle) for the
    checks it makes first. Pods mount the same ConfigMap either way.
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
    description:
      - CA directories whose roots form the bundle, in this order.
      - At least one of O(ca_paths) and O(ca_secrets) is required.
    type: list
    elements: path
    default: []
  ca_secrets:
    description:
      - CAs kept in Kubernetes Secrets (O(securebydefault.pki.cluster_ca#module:ca_secret)) whose roots follow those
        of O(ca_paths), in this order. Only their public certificates are read.
    type: list
    elements: dict
    default: []
    suboptions:
      namespace:
        description: Namespace of the Secret.
        type: str
        required: true
      name:
        description: Name of the Secret.
        type: str
        required: true
      fingerprint:
        description:
          - The SHA-256 fingerprint its root must have (as M(securebydefault.pki.ca_rotation) returns it); another
            root is refused. Colons and case do not matter.
        type: str
  key:
    description: Key of the bundle in the ConfigMap.
    type: str
    default: ca.crt
  distribution:
    description:
      - V(configmap) writes the ConfigMap in O(namespace) only.
      - V(trust_manager) applies a trust-manager Bundle named O(name) (cluster-wide) and waits until its
        ConfigMap is in every selected namespace, which must include O(namespace); it fails if trust-manager is
        not installed.
      - V(auto) uses trust-manager where its API is served, the ConfigMap otherwise.
    type: str
    choices: [configmap, trust_manager, auto]
    default: configmap
    version_added: 0.4.0
  namespace_selector:
    description:
      - With trust-manager, the labels (C(matchLabels)) of the namespaces that receive the ConfigMap; unset, every
        namespace does. Refused without trust-manager.
    type: dict
    version_added: 0.4.0
  namespaces:
    description:
      - With trust-manager, limit the ConfigMap to these namespaces (it must include O(namespace)); combined with
        O(namespace_selector) if both are given. Refused without trust-manager.
    type: list
    elements: str
    version_added: 0.4.0
  trust_namespace:
    description: With trust-manager, the namespace it reads sources from (its C(--trust-namespace)).
    type: str
    default: cert-manager
    version_added: 0.4.0
  wait_timeout:
    description: With trust-manager, seconds to wait until the Bundle reaches every selected namespace.
    type: int
    default: 60
    version_added: 0.4.0
"""

EXAMPLES = r"""
- name: Pods in prod trust the old and the new cluster CA during the rotation
  securebydefault.pki.k8s_trust_bundle:
    name: cluster-trust-bundle
    namespace: prod
    ca_paths: [/srv/pki/prod, /srv/pki/prod-2027]
  delegate_to: localhost

- name: The same through trust-manager, for every namespace labelled trust=prod
  securebydefault.pki.k8s_trust_bundle:
    name: prod-trust-bundle
    namespace: prod
    ca_paths: [/srv/pki/prod]
    distribution: trust_manager
    namespace_selector: {trust: prod}
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
distribution:
  description: How the bundle was delivered (V(configmap) or V(trust_manager)).
  returned: success
  type: str
  sample: trust_manager
  version_added: 0.4.0
namespaces:
  description: With trust-manager, the namespaces holding the ConfigMap.
  returned: when distribution is trust_manager
  type: list
  elements: str
  sample: [default, prod]
  version_added: 0.4.0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import k8s_objects as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import pinned_secrets_option
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC

ARGUMENT_SPEC = dict(
    K8S_CONNECTION_SPEC,
    name=dict(type="str", required=True),
    namespace=dict(type="str", required=True),
    ca_paths=dict(type="list", elements="path", default=[]),
    ca_secrets=pinned_secrets_option(),
    key=dict(type="str", default="ca.crt", no_log=False),
    distribution=dict(type="str", choices=["configmap", "trust_manager", "auto"], default="configmap"),
    namespace_selector=dict(type="dict"),
    namespaces=dict(type="list", elements="str"),
    trust_namespace=dict(type="str", default="cert-manager"),
    wait_timeout=dict(type="int", default=60),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.ensure_trust_bundle, kube=True)


if __name__ == "__main__":
    main()
