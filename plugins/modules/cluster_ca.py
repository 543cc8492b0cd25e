#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cluster_ca: ensure a scoped certificate authority on the CA host, or in a Kubernetes Secret.

The CA key is created here, encrypted at rest unless the user opts out, and
never leaves this host (or, for a Secret, is written only into that Secret).
An existing CA is never overwritten.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_ca
short_description: Ensure a per-cluster (or per-service) certificate authority with name constraints
version_added: "0.1.0"
description:
  - Creates a root CA (and optionally an intermediate that does the issuing) in O(path) on the
    CA host, by default the controller. The directory is created in one atomic rename, so a CA
    is either complete or absent.
  - The CA key is encrypted with O(passphrase); an unencrypted key needs O(encrypt_key=false)
    explicitly.
  - X.509 name constraints (O(permitted_dns), O(permitted_ip_ranges), O(permitted_uri_domains),
    O(excluded_dns), O(excluded_ip_ranges)) scope the CA; M(securebydefault.pki.node_certificate)
    refuses any name outside them before anything is written, and TLS peers enforce them too.
  - An existing CA is loaded and checked (passphrase, key matches certificate, not expired). If it
    differs from the options in something only a new CA can change (name, key, constraints) the
    task fails with the differences, unless O(on_mismatch=keep). Signing policy
    (O(max_leaf_validity), O(allow_wildcard)) is updated in place.
  - Never replaces or deletes an existing CA. Rotating a CA is a staged process (trust both,
    switch, drop old), not an option of this module.
  - For controllers that do not last (AWX/Tower execution environments) the CA can be kept in a Kubernetes
    Secret instead (O(secret)). The Secret holds the files of a CA directory as its keys, the CA key still
    encrypted with O(passphrase). It is created in one request (two runs racing both end with the same CA) and
    only ever changed by updates that the API server refuses if the Secret changed since it was read. A Secret
    that exists without this collection's label is never taken over. Check mode is the API server's dry run.
    M(securebydefault.pki.ca_info), M(securebydefault.pki.sign_csr) and M(securebydefault.pki.revoke) take the
    same Secret; the roles take it as C(cluster_ca_secret), C(node_certificate_ca_secret) and C(revoke_ca_secret).
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.attributes
  - securebydefault.pki.attributes.key
  - securebydefault.pki.k8s.access
  - securebydefault.pki.ca_secret.secret
options:
  path:
    description:
      - Directory of the CA on the CA host. Created with mode 0700.
      - Exactly one of O(path) and O(secret) is required.
    type: path
  common_name:
    description: Subject common name of the CA, e.g. C(cluster-a CA).
    type: str
    required: true
  organization:
    description: Optional organization in the subject.
    type: str
  passphrase:
    description:
      - Passphrase that encrypts the CA key(s). Keep it in Ansible Vault.
      - A new CA needs at least 10 characters; an existing CA is loaded with the passphrase it has.
    type: str
  encrypt_key:
    description: Set to C(false) to store the CA key unencrypted (e.g. for throw-away test CAs).
    type: bool
    default: true
  valid_for:
    description: Lifetime of the CA certificate(s).
    type: str
    default: 3650d
  intermediate:
    description: Create a root and an intermediate; the intermediate issues, the root is the trust anchor.
    type: bool
    default: false
  permitted_dns:
    description: DNS subtrees the CA may issue for; C(example.internal) permits it and every name below.
    type: list
    elements: str
    default: []
  permitted_ip_ranges:
    description: IP networks the CA may issue for (CIDR).
    type: list
    elements: str
    default: []
  permitted_uri_domains:
    description: URI hosts (e.g. SPIFFE trust domains) the CA may issue for; a leading dot permits subdomains.
    type: list
    elements: str
    default: []
  excluded_dns:
    description: DNS subtrees the CA must never issue for.
    type: list
    elements: str
    default: []
  excluded_ip_ranges:
    description: IP networks the CA must never issue for.
    type: list
    elements: str
    default: []
  max_leaf_validity:
    description: Longest lifetime the CA signs for a leaf.
    type: str
    default: 397d
  allow_wildcard:
    description: Whether the CA signs wildcard names at all.
    type: bool
    default: false
  warn_before:
    description: Warn when the CA expires within this duration.
    type: str
    default: 180d
  on_mismatch:
    description: What to do when the existing CA differs from the options in a way only a new CA can change.
    type: str
    choices: [fail, keep]
    default: fail
"""

EXAMPLES = r"""
- name: A CA for cluster A, scoped to its domain and network
  securebydefault.pki.cluster_ca:
    path: /srv/pki/cluster-a
    common_name: cluster-a CA
    passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    permitted_dns: [cluster-a.example.internal]
    permitted_ip_ranges: [10.20.0.0/16]
    permitted_uri_domains: [cluster-a.example.internal]
  delegate_to: localhost
  run_once: true
  register: cluster_a_ca

- name: Root kept aside, an intermediate that issues, ed25519 keys
  securebydefault.pki.cluster_ca:
    path: /srv/pki/payments
    common_name: payments issuing CA
    passphrase: "{{ vault_payments_ca_passphrase }}"
    intermediate: true
    key_type: ed25519
    max_leaf_validity: 30d
  delegate_to: localhost
  run_once: true

- name: A CA kept in a Kubernetes Secret, for an AWX execution environment that forgets its files
  securebydefault.pki.cluster_ca:
    secret:
      namespace: pki
      name: cluster-a-ca
    common_name: cluster-a CA
    passphrase: "{{ vault_cluster_a_ca_passphrase }}"
    permitted_dns: [cluster-a.example.internal]
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
certificate:
  description: PEM of the issuing CA certificate.
  returned: success, not in check mode when the CA does not exist yet
  type: str
root_certificate:
  description: PEM of the root (trust anchor) to distribute.
  returned: success, not in check mode when the CA does not exist yet
  type: str
fingerprint:
  description: SHA-256 fingerprint of the issuing CA certificate.
  returned: success, not in check mode when the CA does not exist yet
  type: str
  sample: "4F:2A:...:9C"
not_after:
  description: Expiry of the CA (the earlier of root and intermediate), UTC.
  returned: success, not in check mode when the CA does not exist yet
  type: str
  sample: "2036-11-20T10:00:00Z"
subject:
  description: Subject of the issuing CA.
  returned: success, not in check mode when the CA does not exist yet
  type: str
constraints:
  description: Name constraints in the CA certificate.
  returned: success, not in check mode when the CA does not exist yet
  type: dict
reasons:
  description: What was (or would be) done and why; differences from the options when kept.
  returned: always
  type: list
  elements: str
path:
  description: The CA directory.
  returned: with O(path)
  type: str
location:
  description: "Where the CA is kept: C({path}) or C({secret: {namespace, name}})."
  returned: always
  type: dict
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.ca_location import (
    CA_SECRET_OPTION, K8S_ACCESS_SPEC, location_of, run_with_ca)
from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import require_cryptography

try:
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ca_store
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import (
        NameConstraintsSpec, SigningPolicy)
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import certificate_pem
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, validate_key_spec
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import (
        format_duration, parse_duration)
except ImportError:
    PKIError = ValueError  # require_cryptography() reports the missing library


MIN_PASSPHRASE = 10


def settings_from(params):
    if params["encrypt_key"] and not params["passphrase"]:
        raise PKIError("passphrase", "the CA key is encrypted at rest and no passphrase was given",
                       "set passphrase (from Ansible Vault), or set encrypt_key: false to opt out explicitly")
    if not params["encrypt_key"] and params["passphrase"]:
        raise PKIError("passphrase", "given together with encrypt_key: false", "drop one of the two")
    common_name = params["common_name"].strip()
    if not common_name:
        raise PKIError("common_name", "must not be empty", "name the CA, e.g. 'cluster-a CA'")
    constraints = NameConstraintsSpec.parse(params["permitted_dns"], params["permitted_ip_ranges"],
                                            params["permitted_uri_domains"], params["excluded_dns"],
                                            params["excluded_ip_ranges"])
    return ca_store.CASettings(
        common_name=common_name, key_spec=validate_key_spec(KeySpec(params["key_type"], params["key_size"])),
        valid_for=parse_duration(params["valid_for"], "valid_for"), constraints=constraints,
        intermediate=params["intermediate"], organization=params["organization"],
        policy=SigningPolicy(max_validity=parse_duration(params["max_leaf_validity"], "max_leaf_validity"),
                             allow_wildcard=params["allow_wildcard"]))


def ensure(module, store):
    params = module.params
    where = store.where
    settings = settings_from(params)
    passphrase = params["passphrase"] if params["encrypt_key"] else None
    result = {"changed": False, "reasons": [], "location": location_of(params, "path", "secret")}
    if params["path"]:
        result["path"] = params["path"]
    if not store.exists():
        if passphrase is not None and len(passphrase) < MIN_PASSPHRASE:
            raise PKIError("passphrase", "a new CA key needs a passphrase of at least %d characters (got %d)"
                           % (MIN_PASSPHRASE, len(passphrase)),
                           "generate one, e.g. openssl rand -base64 24, and keep it in Ansible Vault")
        if store.create(ca_store.build_ca_files(settings, passphrase)):
            result.update(changed=True, reasons=["no CA in %s yet" % where])
            if module._diff:
                result["diff"] = {"before": {}, "after": {"common_name": settings.common_name,
                                                          "constraints": settings.constraints.describe()}}
            if module.check_mode:
                return result
        # else another run created the CA between our look and our create: check that one like any other
    files = store.read(ca_store.LOAD_FILES)
    ca = ca_store.load_ca_from(files, where, passphrase, field=store.field, passphrase_field="passphrase")
    if not result["changed"]:
        differences = ca_store.settings_differences(ca, settings)
        if differences and params["on_mismatch"] == "fail":
            raise PKIError(store.field, "the CA in %s differs from the options: %s" % (where, "; ".join(differences)),
                           "a CA cannot be changed in place: restore the options, create a new CA elsewhere "
                           "and rotate to it, or set on_mismatch: keep")
        for difference in differences:
            module.warn("CA in %s kept although it differs: %s" % (where, difference))
        result["reasons"].extend("kept: %s" % d for d in differences)
        meta = ca_store.metadata_of(files["ca.json"], where, store.field)
        policy_changes = ca_store.policy_differences(meta, settings)
        if policy_changes:
            result["changed"] = True
            result["reasons"].extend("policy %s" % c for c in policy_changes)
            new_meta = ca_store.update_metadata_policy(meta, settings)
            if module._diff:
                result["diff"] = {"before": meta.get("policy", {}), "after": json.loads(new_meta)["policy"]}
            # only the policy of ca.json changes; the rest is taken as it is now
            store.update(lambda now: {"ca.json": ca_store.update_metadata_policy(
                ca_store.metadata_of(now["ca.json"], where, store.field), settings)}, ("ca.json",))
    left = ca_store.expires_in(ca)
    if left <= parse_duration(params["warn_before"], "warn_before"):
        module.warn("CA in %s expires in %s: plan a CA rotation now" % (where, format_duration(left)))
    summary = ca_store.ca_summary(ca, where)
    result.update(certificate=certificate_pem(ca.certificate), root_certificate=certificate_pem(ca.root),
                  fingerprint=summary["fingerprint"], not_after=summary["not_after"], subject=summary["subject"],
                  constraints=summary["constraints"])
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            K8S_ACCESS_SPEC,
            path=dict(type="path"),
            secret=CA_SECRET_OPTION,
            common_name=dict(type="str", required=True),
            organization=dict(type="str"),
            passphrase=dict(type="str", no_log=True),
            encrypt_key=dict(type="bool", default=True),
            key_type=dict(type="str", default="ec", choices=["ec", "rsa", "ed25519"]),
            key_size=dict(type="int"),
            valid_for=dict(type="str", default="3650d"),
            intermediate=dict(type="bool", default=False),
            permitted_dns=dict(type="list", elements="str", default=[]),
            permitted_ip_ranges=dict(type="list", elements="str", default=[]),
            permitted_uri_domains=dict(type="list", elements="str", default=[]),
            excluded_dns=dict(type="list", elements="str", default=[]),
            excluded_ip_ranges=dict(type="list", elements="str", default=[]),
            max_leaf_validity=dict(type="str", default="397d"),
            allow_wildcard=dict(type="bool", default=False),
            warn_before=dict(type="str", default="180d"),
            on_mismatch=dict(type="str", default="fail", choices=["fail", "keep"]),
        ),
        mutually_exclusive=[("path", "secret")],
        required_one_of=[("path", "secret")],
        supports_check_mode=True,
    )
    require_cryptography(module)
    run_with_ca(module, "path", "secret", lambda store: ensure(module, store), dry_run=module.check_mode)


if __name__ == "__main__":
    main()
