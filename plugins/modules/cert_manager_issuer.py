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
    filled from a CA directory made by M(securebydefault.pki.cluster_ca) (O(cluster_ca_path)), so that the same CA
    signs host certificates (M(securebydefault.pki.node_certificate)) and pod certificates - one trust zone.
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
  cluster_ca_path:
    description:
      - Directory of a CA made by M(securebydefault.pki.cluster_ca) on the host this task runs on (usually the
        controller, C(delegate_to=localhost)). Its signing certificate and key are written to O(ca_secret_name).
      - The CA key then also lives in that Secret, readable by anyone who may read Secrets there; restrict RBAC
        accordingly. The CA's name constraints still bind what cert-manager signs.
    type: path
  ca_passphrase:
    description:
      - Passphrase of the CA key in O(cluster_ca_path), if it has one.
      - The Secret holds the key unencrypted, as cert-manager needs it.
    type: str
  replace_ca_secret:
    description: Overwrite a CA Secret that holds a different CA. Without it that case fails and nothing is written.
    type: bool
    default: false
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

- name: A CA issuer in namespace prod backed by the Ansible-made cluster CA
  securebydefault.pki.cert_manager_issuer:
    name: prod-ca
    namespace: prod
    type: ca
    ca_secret_name: prod-ca
    cluster_ca_path: /etc/pki/clusters/prod
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
ready:
  description: Whether the issuer is Ready.
  returned: state is present
  type: bool
ca_secret:
  description: The CA Secret written from O(cluster_ca_path) (never the key).
  returned: when cluster_ca_path is set
  type: dict
  contains:
    name: {description: Secret name., type: str, returned: always}
    namespace: {description: Secret namespace., type: str, returned: always}
    subject: {description: CA subject., type: str, returned: always}
    fingerprint: {description: SHA-256 fingerprint of the CA certificate., type: str, returned: always}
    changed: {description: Whether the Secret was (or would be) written., type: bool, returned: always}
api_calls:
  description: API requests this task made.
  returned: always
  type: int
"""

import base64

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import certmanager as cm
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import (
    MANAGED_BY, comparable, namespaced_path, without_managed_fields)
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s_support import (
    K8S_CONNECTION_SPEC, connect, require_kubernetes)
from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import (
    fail_pki, require_cryptography)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

ARGUMENT_SPEC = dict(
    K8S_CONNECTION_SPEC,
    name=dict(type="str", required=True),
    kind=dict(type="str", choices=["Issuer", "ClusterIssuer"], default="Issuer"),
    namespace=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    type=dict(type="str", choices=["self_signed", "ca"], default="self_signed"),
    ca_secret_name=dict(type="str", no_log=False),
    cluster_ca_path=dict(type="path"),
    ca_passphrase=dict(type="str", no_log=True),
    replace_ca_secret=dict(type="bool", default=False),
    cluster_resource_namespace=dict(type="str", default="cert-manager"),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=60),
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ca_secret_data(path, passphrase):
    """tls.crt (signing CA, then its root if it is an intermediate), tls.key (PKCS#8, clear), ca.crt (root)."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import describe, pem_of
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import load_ca
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import private_key_pem

    ca = load_ca(path, passphrase, field="cluster_ca_path", passphrase_field="ca_passphrase")
    chain = [ca.certificate] + list(ca.chain) + ([ca.root] if ca.root != ca.certificate else [])
    data = {"tls.crt": _b64(pem_of(chain).encode()), "tls.key": _b64(private_key_pem(ca.key)),
            "ca.crt": _b64(pem_of([ca.root]).encode())}
    info = describe(ca.certificate)
    return data, {"subject": info["subject"], "fingerprint": info["fingerprint"]}


def _secret_summary(obj):
    """What --diff shows of a CA Secret: the certificate, never the key."""
    if obj is None:
        return {}
    data = obj.get("data") or {}
    return {"metadata": {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"]},
            "type": obj.get("type"), "tls.crt": base64.b64decode(data.get("tls.crt", "")).decode(errors="replace"),
            "tls.key": "(hidden)" if data.get("tls.key") else None}


def _apply_ca_secret(module, kube, namespace, result):
    p = module.params
    require_cryptography(module)
    data, info = ca_secret_data(p["cluster_ca_path"], p["ca_passphrase"])
    path = namespaced_path("v1", "secrets", namespace, p["ca_secret_name"])
    before = kube.get(path)
    if before is not None:
        old = (before.get("data") or {}).get("tls.crt")
        if old and old != data["tls.crt"] and not p["replace_ca_secret"]:
            raise PKIError("ca_secret_name", "Secret %s/%s already holds a different CA certificate"
                           % (namespace, p["ca_secret_name"]),
                           "choose another ca_secret_name, or set replace_ca_secret: true after saving the old "
                           "key (everything that CA signed stops being trusted by pods that trust only the new one)")
    body = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": p["ca_secret_name"], "namespace": namespace,
                         "labels": dict(MANAGED_BY)},
            "data": data}
    after = kube.apply(path, body, p["field_manager"], module.check_mode, p["force_conflicts"], field="ca_secret_name")
    changed = before is None or comparable(before) != comparable(after)
    result["ca_secret"] = dict(info, name=p["ca_secret_name"], namespace=namespace, changed=changed)
    if changed:
        result["changed"] = True
        result["diff"].append(dict(before_header="Secret %s/%s" % (namespace, p["ca_secret_name"]),
                                   before=_secret_summary(before), after=_secret_summary(after)))


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("kind", "Issuer", ["namespace"]), ("type", "ca", ["ca_secret_name"])],
                           required_by={"cluster_ca_path": "ca_secret_name", "ca_passphrase": "cluster_ca_path"})
    require_kubernetes(module)
    p = module.params
    result = dict(changed=False, api_calls=0, diff=[])
    kube = None
    cluster = p["kind"] == "ClusterIssuer"
    try:
        cm.check_k8s_name(p["name"], "name")
        namespace = None if cluster else cm.check_k8s_name(p["namespace"], "namespace")
        if p["cluster_ca_path"] and p["type"] != "ca":
            raise PKIError("cluster_ca_path", "only applies to type ca", "set type: ca, or remove cluster_ca_path")
        spec = cm.issuer_spec(p) if p["state"] == "present" else None
        kube = connect(module)
        plural = "clusterissuers" if cluster else "issuers"
        kube.require_api(cm.API_VERSION, plural, "cert-manager")
        path = namespaced_path(cm.API_VERSION, plural, namespace, p["name"])
        if p["state"] == "absent":
            before = kube.get(path)
            if before is not None:
                kube.delete(path, module.check_mode)
                result["changed"] = True
                result["diff"].append(dict(before=comparable(before), after={}))
            result["api_calls"] = kube.calls
            module.exit_json(**result)

        if p["cluster_ca_path"]:
            secret_namespace = p["cluster_resource_namespace"] if cluster else namespace
            _apply_ca_secret(module, kube, secret_namespace, result)

        before = kube.get(path)
        metadata = {"name": p["name"]}
        if namespace:
            metadata["namespace"] = namespace
        body = {"apiVersion": cm.API_VERSION, "kind": p["kind"], "metadata": metadata, "spec": spec}
        after = kube.apply(path, body, p["field_manager"], module.check_mode, p["force_conflicts"])
        if before is None or comparable(before) != comparable(after):
            result["changed"] = True
            result["diff"].append(dict(before_header="%s %s" % (p["kind"], p["name"]),
                                       before=comparable(before) or {}, after=comparable(after)))
        if p["wait"] and not module.check_mode:
            # A CA Secret that was just replaced must be re-read by cert-manager: wait for that generation.
            done, after = kube.wait(path, cm.is_ready, p["wait_timeout"])
            if not done:
                cond = cm.condition(after, "Ready") or {}
                result.update(issuer=without_managed_fields(after), ready=False, api_calls=kube.calls)
                raise PKIError("wait_timeout", "%s %s not Ready after %ss: %s" % (
                    p["kind"], p["name"], p["wait_timeout"], cond.get("message") or "no Ready condition yet"),
                    "check the CA Secret (ca_secret_name) and cert-manager's log, or raise wait_timeout")
        result.update(issuer=without_managed_fields(after), ready=cm.is_ready(after), api_calls=kube.calls)
        for note in kube.notes:
            module.warn(note)
        module.exit_json(**result)
    except PKIError as exc:
        if kube is not None:
            result["api_calls"] = kube.calls
        fail_pki(module, exc, **{k: v for k, v in result.items() if k not in ("changed", "diff")})
    finally:
        if kube is not None:
            kube.close()


if __name__ == "__main__":
    main()
