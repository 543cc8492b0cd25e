#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_namespace
short_description: Ensure a Kubernetes namespace exists (for the cert_manager_pki role)
version_added: 0.2.0
description:
  - Applies a C(Namespace) server-side so the role M(securebydefault.pki.cert_manager_pki) can place CA Issuers and
    Certificates without a dependency on another collection. It never deletes a namespace.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
options:
  name:
    description: Name of the namespace.
    type: str
    required: true
  labels:
    description: Labels this module manages on the namespace (others are left alone).
    type: dict
"""

EXAMPLES = r"""
- name: The namespace of the Akka services
  securebydefault.pki.k8s_namespace:
    name: akka
    labels:
      app.kubernetes.io/part-of: akka-cluster
"""

RETURN = r"""
namespace:
  description: The namespace as the API server returned it.
  returned: success
  type: dict
  sample:
    apiVersion: v1
    kind: Namespace
    metadata: {name: akka, labels: {app.kubernetes.io/part-of: akka-cluster, kubernetes.io/metadata.name: akka}}
    spec: {finalizers: [kubernetes]}
    status: {phase: Active}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import k8s_objects as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC

ARGUMENT_SPEC = dict(K8S_CONNECTION_SPEC, name=dict(type="str", required=True), labels=dict(type="dict"))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.ensure_namespace, kube=True, crypto=False)


if __name__ == "__main__":
    main()
