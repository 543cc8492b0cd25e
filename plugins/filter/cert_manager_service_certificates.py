# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: cert_manager_service_certificates
short_description: The cert_manager_certificates items of the cert_manager_pki role's services
version_added: 0.4.0
description:
  - Turns the role's C(cert_manager_pki_services) (name and namespace, optional overrides) into the items of
    M(securebydefault.pki.cert_manager_certificates) in one step on the controller - one Python call for all
    services instead of one templated loop item each.
  - Each service gets C(<name>.<namespace>.<domain>) as common name and first DNS name, its SPIFFE ID when a trust
    domain is set, a fresh ECDSA P-256 key at every issuance, the role's lifetime, renewal and usages unless the
    service overrides them, and a PKCS#12 or JKS keystore with a generated password when asked.
options:
  _input:
    description: The services, each a mapping with C(name) and C(namespace).
    type: list
    elements: dict
    required: true
  settings:
    description:
      - C(domain), C(issuer_name), C(spiffe_trust_domain), C(usages), C(valid_for), C(renew_before).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: The role's Certificates
  securebydefault.pki.cert_manager_certificates:
    certificates: >-
      {{ services | securebydefault.pki.cert_manager_service_certificates({
           'domain': 'svc.cluster.local', 'issuer_name': 'sbd-pki-cluster-ca', 'spiffe_trust_domain': '',
           'usages': ['server auth', 'client auth', 'digital signature'], 'valid_for': '24h',
           'renew_before': '16h'}) }}
"""

RETURN = r"""
_value:
  description: One item per service, with the options of M(securebydefault.pki.cert_manager_certificate).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

SETTINGS = ("domain", "issuer_name", "spiffe_trust_domain", "usages", "valid_for", "renew_before")


def cert_manager_service_certificates(services, settings):
    missing = [key for key in SETTINGS if key not in (settings or {})]
    if missing:
        raise AnsibleFilterError("cert_manager_service_certificates: settings lack %s" % ", ".join(missing))
    items = []
    for index, service in enumerate(services or []):
        if not isinstance(service, dict) or not service.get("name") or not service.get("namespace"):
            raise AnsibleFilterError(
                "cert_manager_pki_services[%d]: give each service a name and a namespace" % index)
        name, namespace = str(service["name"]), str(service["namespace"])
        fqdn = "%s.%s.%s" % (name, namespace, settings["domain"])
        uris = list(service.get("uris") or [])
        if settings["spiffe_trust_domain"]:
            uris.insert(0, "spiffe://%s/ns/%s/sa/%s" % (settings["spiffe_trust_domain"], namespace, name))
        item = {
            "name": name,
            "namespace": namespace,
            "secret_name": service.get("secret_name") or name + "-tls",
            "issuer_name": settings["issuer_name"],
            "issuer_kind": "Issuer",
            "common_name": fqdn,
            "dns_names": [fqdn] + list(service.get("dns_names") or []),
            "uris": uris,
            "usages": service.get("usages") or settings["usages"],
            "valid_for": service.get("valid_for") or service.get("duration") or settings["valid_for"],
            "renew_before": service.get("renew_before") or settings["renew_before"],
            "private_key": {"algorithm": "ECDSA", "size": 256, "rotation_policy": "Always"},
            "secret_labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "securebydefault.pki"},
            "revision_history_limit": service.get("revision_history_limit", 3),
        }
        if service.get("ip_addresses"):
            item["ip_addresses"] = list(service["ip_addresses"])
        store = {"password_secret_name": name + "-keystore-password", "create_password_secret": True}
        if service.get("pkcs12"):
            item["keystores"] = {"pkcs12": dict(store, profile="Modern2023")}
        elif service.get("jks"):
            item["keystores"] = {"jks": store}
        if service.get("reloader"):
            item["secret_annotations"] = {"reloader.stakater.com/match": "true"}
        items.append(item)
    return items


class FilterModule:
    def filters(self):
        return {"cert_manager_service_certificates": cert_manager_service_certificates}
