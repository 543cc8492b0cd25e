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
    description: CA directory (M(securebydefault.pki.cluster_ca)) the certificates must be signed by.
    type: path
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
reissued:
  description: Names of the Certificates re-issued (or that would be, in check mode).
  returned: success
  type: list
  elements: str
evidence:
  description:
    - C(host) (C(k8s:<namespace>/<name>)), C(certificate) and C(bundle) per Certificate,
      for M(securebydefault.pki.ca_rotation).
  returned: success
  type: list
  elements: dict
api_calls:
  description: API requests this task made.
  returned: always
  type: int
"""

import base64

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import certmanager as cm
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import namespaced_path
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s_support import (
    K8S_CONNECTION_SPEC, require_kubernetes, run_k8s)
from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import require_cryptography
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError


def signed_by(pem, issuer):
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import verify_signed_by
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificate
    try:
        return verify_signed_by(load_certificate(pem, "tls.crt"), issuer)
    except PKIError:
        return False


def tls_crt(kube, namespace, secret_name):
    secret = kube.get(namespaced_path("v1", "secrets", namespace, secret_name))
    data = ((secret or {}).get("data") or {}).get("tls.crt")
    return base64.b64decode(data).decode(errors="replace") if data else ""


def main():
    module = AnsibleModule(argument_spec=dict(
        K8S_CONNECTION_SPEC,
        namespace=dict(type="str", required=True),
        issuer_name=dict(type="str", required=True),
        issuer_kind=dict(type="str", choices=["Issuer", "ClusterIssuer"], default="Issuer"),
        ca_path=dict(type="path", required=True),
        bundle_configmap=dict(type="str"),
        wait_timeout=dict(type="int", default=120),
    ), supports_check_mode=True)
    require_kubernetes(module)
    require_cryptography(module)
    p = module.params

    def work(session):
        # pylint: disable=import-outside-toplevel
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificate
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import read_public
        namespace = cm.check_k8s_name(p["namespace"], "namespace")
        issuing_pem = read_public(p["ca_path"], "ca_path")[0]
        issuer = load_certificate(issuing_pem, "ca_path")
        kube = session.kube
        kube.require_api(cm.API_VERSION, "certificates", "cert-manager")
        listing = kube.get(namespaced_path(cm.API_VERSION, "certificates", namespace)) or {}
        bundle = ""
        if p["bundle_configmap"]:
            configmap = kube.get(namespaced_path("v1", "configmaps", namespace, p["bundle_configmap"])) or {}
            bundle = (configmap.get("data") or {}).get("ca.crt", "")
        mine = [c for c in listing.get("items") or []
                if (c.get("spec") or {}).get("issuerRef", {}).get("name") == p["issuer_name"]
                and (c.get("spec") or {}).get("issuerRef", {}).get("kind", "Issuer") == p["issuer_kind"]]
        pems = {c["metadata"]["name"]: tls_crt(kube, namespace, c["spec"]["secretName"]) for c in mine}
        due = [c for c in mine if not signed_by(pems[c["metadata"]["name"]], issuer)]
        reissue = {c["metadata"]["name"] for c in due}
        report = [{"name": c["metadata"]["name"], "revision": (c.get("status") or {}).get("revision"),
                   "reissued": c["metadata"]["name"] in reissue} for c in mine]
        if not module.check_mode:
            for cert in due:
                path = namespaced_path(cm.API_VERSION, "certificates", namespace, cert["metadata"]["name"])
                cm.request_issuing(kube, path, cert, "Re-issued by securebydefault.pki after a CA switch")

            def reissued(obj, old, name):
                """Ready at a higher revision, and its Secret now signed by the CA (kept for the evidence)."""
                if not (cm.is_ready(obj) and (obj.get("status") or {}).get("revision", 0) > old):
                    return False
                pems[name] = tls_crt(kube, namespace, obj["spec"]["secretName"])
                return signed_by(pems[name], issuer)

            for cert, entry in zip(mine, report):
                if not entry["reissued"]:
                    continue
                name = cert["metadata"]["name"]
                path = namespaced_path(cm.API_VERSION, "certificates", namespace, name)
                old = (cert.get("status") or {}).get("revision") or 0
                done, now = kube.wait(path, lambda o, old=old, name=name: reissued(o, old, name), p["wait_timeout"])
                if not done:
                    raise PKIError("wait_timeout", "Certificate %s/%s was not re-issued by the new CA within %ss"
                                   % (namespace, name, p["wait_timeout"]),
                                   "check that issuer %s uses the new CA Secret and is Ready" % p["issuer_name"])
                entry["revision"] = (now.get("status") or {}).get("revision")
        evidence = [{"host": "k8s:%s/%s" % (namespace, c["metadata"]["name"]),
                     "certificate": pems[c["metadata"]["name"]], "bundle": bundle} for c in mine]
        return dict(changed=bool(due), certificates=report,
                    reissued=[c["metadata"]["name"] for c in due], evidence=evidence, api_calls=kube.calls)

    run_k8s(module, work)


if __name__ == "__main__":
    main()
