#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: cert_manager_certificate
short_description: A cert-manager Certificate, secure by default, applied server-side and waited for
version_added: 0.2.0
description:
  - Creates, updates or deletes a cert-manager C(Certificate) and by default waits until cert-manager has
    issued it (Ready for the current generation).
  - Defaults are those of a short-lived service certificate - an ECDSA P-256 key made afresh at every issuance
    (rotationPolicy C(Always)), and renewal after a third of the lifetime (C(renewBeforePercentage) 67).
    Wildcard names are refused unless O(allow_wildcard=true); names follow the same rules as host certificates
    (M(securebydefault.pki.node_certificate)), e.g. a wildcard needs at least three labels (C(*.prod.example)).
  - Everything is checked before a request is sent - durations, renew_before against valid_for, names, key
    sizes, that the issuer exists and that keystore password Secrets exist - so bad input leaves existing
    resources untouched.
  - O(renew=true) asks cert-manager to issue again now (as C(cmctl renew) does) and waits for the new revision.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
options:
  name:
    description: Name of the Certificate.
    type: str
    required: true
  namespace:
    description: Namespace of the Certificate and its Secret.
    type: str
    required: true
  state:
    description: C(absent) deletes the Certificate (cert-manager leaves its Secret in place).
    type: str
    choices: [present, absent]
    default: present
  secret_name:
    description: Secret that receives C(tls.crt), C(tls.key) and C(ca.crt). Defaults to O(name).
    type: str
  issuer_name:
    description: The Issuer or ClusterIssuer that signs. Required with O(state=present).
    type: str
  issuer_kind:
    description: Kind of O(issuer_name).
    type: str
    choices: [Issuer, ClusterIssuer]
    default: Issuer
  issuer_group:
    description: API group of the issuer; other groups (external issuers) are not checked for existence.
    type: str
    default: cert-manager.io
  common_name:
    description: Subject common name. Prefer O(dns_names); clients ignore the CN when SANs are present.
    type: str
  dns_names:
    description: DNS names. Wildcards are refused unless O(allow_wildcard=true).
    type: list
    elements: str
  ip_addresses:
    description: IP addresses.
    type: list
    elements: str
  uris:
    description: URIs, e.g. a SPIFFE ID C(spiffe://cluster.local/ns/prod/sa/web).
    type: list
    elements: str
  email_addresses:
    description: E-mail addresses.
    type: list
    elements: str
  subject_organizations:
    description: Organizations (O) of the subject.
    type: list
    elements: str
  allow_wildcard:
    description:
      - Allow C(*.) names in O(dns_names) (as the leftmost label of a name with at least three labels).
      - The alias C(allow_wildcards) is deprecated and will be removed in 1.0.0.
    type: bool
    default: false
    aliases: [allow_wildcards]
  usages:
    description:
      - Key usages in cert-manager's words, e.g. C(server auth), C(client auth), C(digital signature).
      - Unset means cert-manager's default (digital signature, key encipherment, server auth).
    type: list
    elements: str
  is_ca:
    description: Issue a CA certificate (for a CA Issuer).
    type: bool
    default: false
  valid_for:
    description:
      - Lifetime of each issued certificate (cert-manager's C(duration)); at least C(1h).
      - Either cert-manager's Go duration syntax (C(24h), C(1h30m), C(2160h)) or the syntax of C(valid_for) in
        M(securebydefault.pki.node_certificate) (C(90d), C(2w), C(1y)), which is converted to hours
        (C(90d) becomes C(2160h)).
      - The alias C(duration) is deprecated and will be removed in 1.0.0.
    type: str
    default: 24h
    aliases: [duration]
  renew_before:
    description:
      - Renew this long before expiry (at least C(5m), shorter than O(valid_for)); same syntax as O(valid_for).
    type: str
  renew_before_percentage:
    description:
      - Renew when this share of the lifetime is left (1-99). Used when O(renew_before) is unset;
        unset too means 67, i.e. renew after a third of the lifetime (24h -> renewed after 8h).
    type: int
  private_key:
    description: The private key cert-manager makes.
    type: dict
    suboptions:
      algorithm:
        description: Key algorithm.
        type: str
        choices: [ECDSA, RSA, Ed25519]
        default: ECDSA
      size:
        description: 256/384/521 for ECDSA (default 256), 2048-8192 for RSA (default 3072); none for Ed25519.
        type: int
      encoding:
        description: Encoding of C(tls.key).
        type: str
        choices: [PKCS1, PKCS8]
        default: PKCS1
      rotation_policy:
        description: C(Always) makes a fresh key at every issuance; C(Never) reuses the Secret's key.
        type: str
        choices: [Always, Never]
        default: Always
  name_constraints:
    description: X.509 name constraints of a CA certificate (O(is_ca=true)).
    type: dict
    suboptions:
      critical:
        description: Mark the extension critical.
        type: bool
        default: true
      permitted:
        description: Names the CA may sign for.
        type: dict
        suboptions:
          dns_domains: {description: DNS domains., type: list, elements: str}
          ip_ranges: {description: CIDR ranges., type: list, elements: str}
          email_addresses: {description: E-mail domains or addresses., type: list, elements: str}
          uri_domains: {description: URI domains., type: list, elements: str}
      excluded:
        description: Names the CA may not sign for.
        type: dict
        suboptions:
          dns_domains: {description: DNS domains., type: list, elements: str}
          ip_ranges: {description: CIDR ranges., type: list, elements: str}
          email_addresses: {description: E-mail domains or addresses., type: list, elements: str}
          uri_domains: {description: URI domains., type: list, elements: str}
  keystores:
    description:
      - Java keystores cert-manager adds to the Secret
        (C(keystore.p12)/C(truststore.p12), C(keystore.jks)/C(truststore.jks)).
    type: dict
    suboptions:
      pkcs12:
        description: A PKCS#12 keystore and truststore.
        type: dict
        suboptions:
          create: {description: Create the keystore., type: bool, default: true}
          password_secret_name: {description: Secret (same namespace) holding the password., type: str}
          password_secret_key: {description: Key of the password in that Secret., type: str, default: password}
          create_password_secret:
            description: Create the password Secret with a random password if it does not exist (never changed later).
            type: bool
            default: false
          profile:
            description: PKCS#12 encryption profile; C(Modern2023) is AES-based, the others are for old Java.
            type: str
            choices: [LegacyRC2, LegacyDES, Modern2023]
      jks:
        description: A JKS keystore and truststore.
        type: dict
        suboptions:
          create: {description: Create the keystore., type: bool, default: true}
          password_secret_name: {description: Secret (same namespace) holding the password., type: str}
          password_secret_key: {description: Key of the password in that Secret., type: str, default: password}
          create_password_secret:
            description: Create the password Secret with a random password if it does not exist (never changed later).
            type: bool
            default: false
          alias: {description: Alias of the key entry., type: str}
  secret_labels:
    description: Labels cert-manager puts on the Secret (C(secretTemplate)).
    type: dict
  secret_annotations:
    description:
      - Annotations cert-manager puts on the Secret, e.g. C(reloader.stakater.com/match=true) so that
        Stakater Reloader restarts the pods that mount it when the certificate is renewed.
    type: dict
  revision_history_limit:
    description: CertificateRequests to keep per Certificate.
    type: int
  wait:
    description: Wait until the Certificate is Ready for its current generation (and after O(renew), at a new revision).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 120
  renew:
    description: Issue again now (a new key with rotationPolicy Always). Always reports a change.
    type: bool
    default: false
notes:
  - Needs cert-manager's CRDs in the cluster; a clear error names the missing API otherwise.
  - In check mode the apply is a server dry run; O(wait) and O(renew) are skipped.
seealso:
  - module: securebydefault.pki.cert_manager_issuer
  - name: the cert_manager_pki role
    description: Self-signed ClusterIssuer, CA per namespace and 24h service certificates in one role.
    link: https://github.com/securebydefault/pki/blob/main/docs/kubernetes.md
"""

EXAMPLES = r"""
- name: A 24h service certificate, renewed after 8h, new key each time
  securebydefault.pki.cert_manager_certificate:
    name: orders
    namespace: prod
    issuer_name: prod-ca
    dns_names: [orders.prod.svc.cluster.local, orders.prod.svc]
    uris: [spiffe://cluster.local/ns/prod/sa/orders]
    usages: [server auth, client auth, digital signature]
    valid_for: 24h
    renew_before: 16h
    secret_annotations:
      reloader.stakater.com/match: "true"

- name: A Java service gets a PKCS#12 keystore too
  securebydefault.pki.cert_manager_certificate:
    name: akka-seed
    namespace: prod
    issuer_name: prod-ca
    dns_names: [akka-seed.prod.svc.cluster.local]
    keystores:
      pkcs12:
        password_secret_name: akka-keystore-password
        profile: Modern2023

- name: Re-issue now
  securebydefault.pki.cert_manager_certificate:
    name: orders
    namespace: prod
    issuer_name: prod-ca
    dns_names: [orders.prod.svc.cluster.local, orders.prod.svc]
    uris: [spiffe://cluster.local/ns/prod/sa/orders]
    usages: [server auth, client auth, digital signature]
    valid_for: 24h
    renew_before: 16h
    renew: true
"""

RETURN = r"""
certificate:
  description: The Certificate as the API server returned it (after the wait, if any); absent when deleted.
  returned: state is present
  type: dict
  sample:
    apiVersion: cert-manager.io/v1
    kind: Certificate
    metadata: {name: orders, namespace: prod, generation: 1, resourceVersion: "4711"}
    spec: {secretName: orders, duration: 24h0m0s, renewBefore: 16h0m0s, dnsNames: [orders.prod.svc.cluster.local]}
    status:
      revision: 1
      notAfter: "2026-05-02T10:00:00Z"
      conditions: [{type: Ready, status: "True", reason: Ready, observedGeneration: 1}]
spec:
  description: The spec this module applied.
  returned: state is present
  type: dict
  sample:
    secretName: orders
    issuerRef: {name: prod-ca, kind: Issuer, group: cert-manager.io}
    dnsNames: [orders.prod.svc.cluster.local]
    duration: 24h
    renewBefore: 16h
    privateKey: {algorithm: ECDSA, size: 256, rotationPolicy: Always, encoding: PKCS1}
ready:
  description:
    - Whether the Certificate is Ready for its current generation and cert-manager has recorded its issuance
      (C(status.revision)); O(wait) waits for both.
  returned: state is present
  type: bool
  sample: true
revision:
  description: cert-manager's issuance revision (C(status.revision)); it increases at every issuance.
  returned: state is present
  type: int
  sample: 2
secret_name:
  description: The Secret holding the issued certificate and key.
  returned: state is present
  type: str
  sample: orders
password_secrets_created:
  description: Keystore password Secrets this task created (O(keystores.pkcs12.create_password_secret)).
  returned: state is present
  type: list
  elements: str
  sample: [akka-seed-keystore-password]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.cert_manager_spec import (
    CERTIFICATE_SPEC, WAIT_SPEC)
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC

ARGUMENT_SPEC = dict(K8S_CONNECTION_SPEC, **CERTIFICATE_SPEC, **WAIT_SPEC)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "present", ["issuer_name"])])
    run(module, ops.ensure_certificate, kube=True, crypto=False)


if __name__ == "__main__":
    main()
