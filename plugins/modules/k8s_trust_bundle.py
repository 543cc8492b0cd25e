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
bundle:
  description: The PEM text written.
  returned: success
  type: str
api_calls:
  description: API requests this task made.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.certmanager import check_k8s_name
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import (
    MANAGED_BY, comparable, namespaced_path)
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s_support import (
    K8S_CONNECTION_SPEC, require_kubernetes, run_k8s)
from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import require_cryptography
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError


def bundle_of(paths):
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import fingerprint, load_certificate
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import read_public

    roots, prints = [], []
    for path in paths:
        root = read_public(path, "ca_paths")[1]
        digest = fingerprint(load_certificate(root, "ca_paths"))
        if digest not in prints:
            roots.append(root if root.endswith("\n") else root + "\n")
            prints.append(digest)
    return "".join(roots), prints


def main():
    module = AnsibleModule(argument_spec=dict(
        K8S_CONNECTION_SPEC,
        name=dict(type="str", required=True),
        namespace=dict(type="str", required=True),
        ca_paths=dict(type="list", elements="path", required=True),
        key=dict(type="str", default="ca.crt", no_log=False),
    ), supports_check_mode=True)
    require_kubernetes(module)
    require_cryptography(module)
    p = module.params

    def work(session):
        name = check_k8s_name(p["name"], "name")
        namespace = check_k8s_name(p["namespace"], "namespace")
        if not p["ca_paths"]:
            raise PKIError("ca_paths", "is empty", "list at least one CA directory")
        pem, prints = bundle_of(p["ca_paths"])
        kube = session.kube
        path = namespaced_path("v1", "configmaps", namespace, name)
        before = kube.get(path)
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": dict(MANAGED_BY)},
                "data": {p["key"]: pem}}
        after = kube.apply(path, body, p["field_manager"], module.check_mode, p["force_conflicts"])
        changed = before is None or comparable(before) != comparable(after)
        result = dict(changed=changed, fingerprints=prints, bundle=pem, api_calls=kube.calls)
        if changed:
            result["diff"] = dict(before=((before or {}).get("data") or {}).get(p["key"], ""), after=pem,
                                  before_header="ConfigMap %s/%s" % (namespace, name),
                                  after_header="ConfigMap %s/%s" % (namespace, name))
        return result

    run_k8s(module, work)


if __name__ == "__main__":
    main()
