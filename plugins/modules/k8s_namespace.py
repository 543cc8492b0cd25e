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
api_calls:
  description: API requests this task made.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.certmanager import check_k8s_name
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import (
    comparable, namespaced_path, without_managed_fields)
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s_support import (
    K8S_CONNECTION_SPEC, require_kubernetes, run_k8s)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError


def main():
    module = AnsibleModule(argument_spec=dict(K8S_CONNECTION_SPEC, name=dict(type="str", required=True),
                                              labels=dict(type="dict")),
                           supports_check_mode=True)
    require_kubernetes(module)
    p = module.params

    def work(session):
        name = check_k8s_name(p["name"], "name")
        if len(name) > 63 or "." in name:
            raise PKIError("name", "%r is not a valid namespace name" % name,
                           "use at most 63 lower-case letters, digits and '-'")
        kube = session.kube
        path = namespaced_path("v1", "namespaces", None, name)
        before = kube.get(path)
        metadata = {"name": name}
        if p["labels"]:
            metadata["labels"] = {str(k): str(v) for k, v in p["labels"].items()}
        after = kube.apply(path, {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata},
                           p["field_manager"], module.check_mode, p["force_conflicts"])
        changed = before is None or comparable(before) != comparable(after)
        result = dict(changed=changed, namespace=without_managed_fields(after), api_calls=kube.calls)
        if changed:
            result["diff"] = dict(before=comparable(before) or {}, after=comparable(after))
        return result

    run_k8s(module, work)


if __name__ == "__main__":
    main()
