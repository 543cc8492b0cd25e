#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: trust_manager_bundle
short_description: A trust-manager Bundle that puts CA roots into every namespace (or those a selector picks)
version_added: 0.4.0
description:
  - Applies a trust-manager C(Bundle) (C(trust.cert-manager.io/v1alpha1)) server-side. trust-manager then writes
    the certificates of its sources into a ConfigMap (and, if asked, a Secret) named like the Bundle in every
    namespace, or in those whose labels match O(namespace_selector); pods mount it as their trust store.
  - Sources are the roots of CA directories made by M(securebydefault.pki.cluster_ca) (O(ca_paths), written into
    the Bundle inline; only public certificates are read) and ConfigMaps or Secrets in the trust namespace
    (O(sources)).
  - Everything is checked before the first write, each error naming its option. The trust-manager API must be
    served; every source must exist and hold at least one certificate; O(namespace_selector) must match at
    least one namespace; the sources together must hold an unexpired CA certificate.
  - With O(wait=true) (the default) the module waits until trust-manager reports the Bundle C(Synced) for its
    current generation and every selected namespace holds a target with the sources' certificates. trust-manager
    may leave out expired and non-CA certificates; any other difference keeps the module waiting.
  - Whoever can write a source ConfigMap or Secret in the trust namespace decides what every namespace trusts.
    Prefer O(ca_paths), and keep write access to the trust namespace as narrow as to a CA Secret.
  - trust-manager overwrites any ConfigMap or Secret of the Bundle's name in a selected namespace. The module
    refuses before writing if one exists that is not already the Bundle's target, unless it is a trust bundle
    ConfigMap of this collection whose certificates the Bundle keeps; a Secret is never taken over. An existing
    Bundle this collection did not make is taken over only with O(force_conflicts=true).
  - Truststore passwords are masked in the returned Bundle and in the diff.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
options:
  name:
    description:
      - Name of the Bundle, and of the ConfigMap and Secret trust-manager writes into each namespace.
    type: str
    required: true
  state:
    description:
      - V(absent) deletes the Bundle. Its targets are owned by it and go with it when the cluster's garbage
        collector runs.
    type: str
    choices: [present, absent]
    default: present
  ca_paths:
    description: CA directories whose roots the Bundle holds (inline), in this order.
    type: list
    elements: path
  sources:
    description: ConfigMaps and Secrets in O(trust_namespace) whose PEM certificates the Bundle holds.
    type: list
    elements: dict
    suboptions:
      kind:
        description: What the source is.
        type: str
        choices: [configmap, secret]
        required: true
      name:
        description: Its name.
        type: str
        required: true
      key:
        description: The key holding PEM certificates.
        type: str
        default: ca.crt
  trust_namespace:
    description:
      - The namespace trust-manager reads sources from (its C(--trust-namespace)).
    type: str
    default: cert-manager
  configmap_key:
    description:
      - Key of the bundle in the target ConfigMap of each namespace. Set to an empty string for no ConfigMap
        target (then O(secret_key) is required).
    type: str
    default: ca.crt
  secret_key:
    description:
      - Key of the bundle in a target Secret of each namespace; no Secret target if unset. trust-manager must run
        with C(--secret-targets-enabled) and may write Secrets.
    type: str
  namespace_selector:
    description:
      - Labels (C(matchLabels)) a namespace must carry to receive the targets. Unset, every namespace does.
    type: dict
  namespaces:
    description:
      - Limit the targets to these namespaces (by their C(kubernetes.io/metadata.name) label, which the API server
        sets); combined with O(namespace_selector) if both are given.
    type: list
    elements: str
  pkcs12:
    description: Also write a PKCS#12 truststore (for Java and others) under its own key into the targets.
    type: dict
    suboptions:
      key:
        description: Key of the truststore.
        type: str
        required: true
      password:
        description: Password of the truststore (stored in the Bundle's spec, readable by whoever reads Bundles).
        type: str
      profile:
        description: PKCS#12 encryption profile.
        type: str
        choices: [LegacyRC2, LegacyDES, Modern2023]
  jks:
    description: Also write a JKS truststore under its own key into the targets.
    type: dict
    suboptions:
      key:
        description: Key of the truststore.
        type: str
        required: true
      password:
        description: Password of the truststore (trust-manager's default is C(changeit)).
        type: str
  wait:
    description: Wait until the Bundle is synced into every selected namespace.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 60
notes:
  - In check mode the apply is a server dry run (trust-manager's validating webhook sees it); nothing is stored.
  - The tests run this module against a real kube-apiserver with trust-manager v0.25.0 and its webhook.
seealso:
  - module: securebydefault.pki.k8s_trust_bundle
"""

EXAMPLES = r"""
- name: Every namespace trusts the cluster CA (ConfigMap cluster-trust, key ca.crt)
  securebydefault.pki.trust_manager_bundle:
    name: cluster-trust
    ca_paths: [/srv/pki/prod]
  delegate_to: localhost

- name: Namespaces labelled trust=prod get the CA and a PKCS#12 truststore for Java
  securebydefault.pki.trust_manager_bundle:
    name: prod-trust
    ca_paths: [/srv/pki/prod]
    sources:
      - {kind: configmap, name: partner-roots, key: roots.pem}
    namespace_selector: {trust: prod}
    pkcs12: {key: truststore.p12, password: "{{ truststore_password }}", profile: Modern2023}
  delegate_to: localhost
"""

RETURN = r"""
namespaces:
  description: The namespaces the Bundle's targets go to (all, or those the selector matches), as listed before.
  returned: state is present
  type: list
  elements: str
  sample: [default, prod]
fingerprints:
  description: SHA-256 fingerprints of the unexpired CA certificates of the sources, sorted.
  returned: state is present
  type: list
  elements: str
  sample: ["5F:0A:...:9C"]
bundle:
  description: The Bundle as the API server returned it (after the wait, if any).
  returned: state is present
  type: dict
synced:
  description: Whether trust-manager reports the Bundle Synced for its current generation.
  returned: state is present
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import trust_manager as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC

ARGUMENT_SPEC = dict(
    K8S_CONNECTION_SPEC,
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    ca_paths=dict(type="list", elements="path"),
    sources=dict(
        type="list",
        elements="dict",
        options=dict(
            kind=dict(type="str", choices=["configmap", "secret"], required=True),
            name=dict(type="str", required=True),
            key=dict(type="str", default="ca.crt", no_log=False),
        ),
    ),
    trust_namespace=dict(type="str", default="cert-manager"),
    configmap_key=dict(type="str", default="ca.crt", no_log=False),
    secret_key=dict(type="str", no_log=False),
    namespace_selector=dict(type="dict"),
    namespaces=dict(type="list", elements="str"),
    pkcs12=dict(
        type="dict",
        options=dict(
            key=dict(type="str", required=True, no_log=False),
            password=dict(type="str", no_log=True),
            profile=dict(type="str", choices=["LegacyRC2", "LegacyDES", "Modern2023"]),
        ),
    ),
    jks=dict(
        type="dict",
        options=dict(
            key=dict(type="str", required=True, no_log=False),
            password=dict(type="str", no_log=True),
        ),
    ),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=60),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.ensure_bundle, kube=True)


if __name__ == "__main__":
    main()
