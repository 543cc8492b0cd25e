#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: cert_manager_ca_rotation
short_description: Rotate the CA of a cert-manager CA Issuer whose CA cert-manager itself issued, in stages
version_added: 0.4.0
description:
  - For the recipe self-signed ClusterIssuer, then a CA C(Certificate), then a CA C(Issuer) on its Secret. When
    cert-manager renews such a CA in place, the Issuer signs with the new key at once while pods still trust the
    old one only (cert-manager issues 2478, 5851 and 8340). This module rotates it in three idempotent stages
    instead, each gated on time and on evidence read from the cluster.
  - V(trust_both) - a second CA Certificate O(new_ca_certificate) is issued, a copy of the old one's spec with its
    own Secret; the trust bundle (O(bundle)) holds the old and the new root.
  - V(switched) - once O(switch_after) has passed and the bundle in the Issuer's namespace holds the new root
    (with trust-manager, in every selected namespace), the Issuer signs with the new CA and every Certificate of
    the Issuer is re-issued from it, waiting for each.
  - V(done) - once O(drop_after) has passed and every Certificate of the Issuer chains to the new CA, the bundle
    holds the new root alone and the old CA Certificate is deleted (its Secret, with the old key, too, unless
    O(delete_old_ca_secret=false)).
  - Each run advances as far as the gates and O(stage) allow. The stage and when it began are recorded in an
    annotation of the Issuer; the gates are always checked against the cluster, so an annotation changed by hand
    cannot skip the evidence (only the waiting time, which whoever may write the Issuer can shorten anyway).
  - The bundle is delivered as M(securebydefault.pki.k8s_trust_bundle) does (O(distribution)), through a
    trust-manager Bundle where trust-manager is installed by default. Pods mount the ConfigMap O(bundle).
  - For an Issuer backed by a CA directory, use the role C(securebydefault.pki.ca_rotation).
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
options:
  namespace:
    description: Namespace of the Issuer.
    type: str
    required: true
  issuer:
    description: Name of the CA Issuer. Its CA Secret must be kept by exactly one CA Certificate in the namespace.
    type: str
    required: true
  new_ca_certificate:
    description: Name of the new CA Certificate and of its Secret (for example the old name with a year).
    type: str
    required: true
  common_name:
    description:
      - Common name of the new CA; default the old one's, so that a role applying the CA Certificate's spec under
        the new name afterwards changes nothing (cert-manager would issue it again, with a new key). The two roots
        then share a subject; clients tell them apart by their key identifiers.
    type: str
  stage:
    description: How far this run may go; V(auto) as far as the gates allow.
    type: str
    choices: [auto, trust_both, switched, done]
    default: auto
  switch_after:
    description: Time in trust_both before switching, so that every pod has reread its bundle (V(0) for none).
    type: str
    default: 1h
  drop_after:
    description: Time in switched before the old root is dropped (V(0) for none).
    type: str
    default: 1h
  force:
    description: Skip the waiting times (never the evidence).
    type: bool
    default: false
  bundle:
    description: Name of the trust bundle ConfigMap (and, with trust-manager, of the Bundle).
    type: str
    default: sbd-pki-trust-bundle
  key:
    description: Key of the bundle in the ConfigMap.
    type: str
    default: ca.crt
  distribution:
    description: How the bundle reaches pods, as in M(securebydefault.pki.k8s_trust_bundle).
    type: str
    choices: [configmap, trust_manager, auto]
    default: auto
  namespace_selector:
    description:
      - With trust-manager, the labels of the namespaces that get the bundle. Unset (and O(namespaces) unset), the
        bundle goes to the Issuer's namespace only.
    type: dict
  namespaces:
    description: With trust-manager, the namespaces that get the bundle (the Issuer's must be one).
    type: list
    elements: str
  trust_namespace:
    description: With trust-manager, its trust namespace.
    type: str
    default: cert-manager
  delete_old_ca_secret:
    description: At V(done), also delete the old CA's Secret, which holds the old private key.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for each thing this run waits for (the new CA, the Issuer, each re-issue, the bundle).
    type: int
    default: 120
notes:
  - Check mode reads everything and reports the stage a run would reach without writing; a stage that needs the
    result of a write (the new CA issued, Certificates re-issued) is not passed in check mode.
  - Tested against a real kube-apiserver with cert-manager and trust-manager, with a TLS client reading the bundle
    and a server using a Certificate of the Issuer handshaking throughout the rotation.
seealso:
  - module: securebydefault.pki.k8s_trust_bundle
  - module: securebydefault.pki.trust_manager_bundle
"""

EXAMPLES = r"""
- name: Rotate the prod namespace's CA (a run per stage, an hour apart, e.g. from a scheduled AWX job)
  securebydefault.pki.cert_manager_ca_rotation:
    namespace: prod
    issuer: cluster-ca
    new_ca_certificate: cluster-ca-2027
  delegate_to: localhost
  register: rotation

- name: Report
  ansible.builtin.debug:
    msg: "{{ rotation.stage }}: {{ rotation.log }}"
"""

RETURN = r"""
stage:
  description: The stage reached (V(trust_both), V(switched) or V(done)).
  returned: success
  type: str
  sample: switched
previous_stage:
  description: The stage before this run (V(none) before the first).
  returned: success
  type: str
  sample: trust_both
old_ca_certificate:
  description: The CA Certificate rotated away from.
  returned: success
  type: str
  sample: cluster-ca
new_ca_certificate:
  description: The CA Certificate rotated to.
  returned: success
  type: str
  sample: cluster-ca-2027
reissued:
  description: Certificates re-issued from the new CA by this run.
  returned: success
  type: list
  elements: str
  sample: [api, web]
log:
  description: What this run did, and which gate stopped it.
  returned: success
  type: list
  elements: str
  sample: ["switched: waiting for switch_after (1h) since 2026-11-30T20:00:00Z"]
new_root_fingerprint:
  description: SHA-256 fingerprint of the new root.
  returned: when the new CA is issued
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager_rotation as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC

ARGUMENT_SPEC = dict(
    K8S_CONNECTION_SPEC,
    namespace=dict(type="str", required=True),
    issuer=dict(type="str", required=True),
    new_ca_certificate=dict(type="str", required=True),
    common_name=dict(type="str"),
    stage=dict(type="str", choices=["auto", "trust_both", "switched", "done"], default="auto"),
    switch_after=dict(type="str", default="1h"),
    drop_after=dict(type="str", default="1h"),
    force=dict(type="bool", default=False),
    bundle=dict(type="str", default="sbd-pki-trust-bundle"),
    key=dict(type="str", default="ca.crt", no_log=False),
    distribution=dict(type="str", choices=["configmap", "trust_manager", "auto"], default="auto"),
    namespace_selector=dict(type="dict"),
    namespaces=dict(type="list", elements="str"),
    trust_namespace=dict(type="str", default="cert-manager"),
    delete_old_ca_secret=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=120),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.rotate_ca_issuer, kube=True)


if __name__ == "__main__":
    main()
