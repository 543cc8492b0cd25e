#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""certificate_info: read-only inspection of a certificate on a host.

Never writes anything and never reads a private key's secret beyond checking
that it matches the certificate.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: certificate_info
short_description: Inspect a host's certificate - names, issuer, expiry, chain validity, renewal reasons
version_added: "0.1.0"
description:
  - Reads a PEM certificate file (leaf first, optionally followed by its chain) on the host and reports
    its names, issuer, validity, key, usages, whether its chain verifies against a trust bundle, whether
    a private key matches it, and the reasons it would be renewed.
  - Read-only; C(changed) is always C(false).
author: securebydefault.pki contributors (@securebydefault)
attributes:
  check_mode:
    support: full
    description: Runs normally; it never changes anything.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  path:
    description: Certificate file (PEM). Further certificates in it are treated as the chain.
    type: path
    required: true
  bundle_path:
    description: Trust bundle (PEM) to verify the chain against, e.g. the C(ca-bundle.crt) node_certificate installs.
    type: path
  chain_path:
    description: Intermediates (PEM) in a separate file, e.g. a C(-fullchain.crt).
    type: path
  key_path:
    description: Private key to check against the certificate.
    type: path
  key_passphrase:
    description: Passphrase of O(key_path).
    type: str
  renew_before:
    description: Window for the expiry reason.
    type: str
    default: 30d
  names:
    description: Names the certificate should carry; differences become renewal reasons.
    type: list
    elements: str
  crl_path:
    description:
      - A CRL (PEM or DER), e.g. the C(crl.pem) the C(revoke) role installs. Its signature is checked against
        the certificate's issuer from O(chain_path) or O(bundle_path). A certificate it lists is reported as
        revoked, and that becomes a renewal reason.
    type: path
    version_added: 0.2.0
"""

EXAMPLES = r"""
- name: Inspect the node certificate
  securebydefault.pki.certificate_info:
    path: /etc/pki/cluster-a/node.crt
    chain_path: /etc/pki/cluster-a/node-fullchain.crt
    bundle_path: /etc/pki/cluster-a/ca-bundle.crt
    key_path: /etc/pki/cluster-a/node.key
    names: ["{{ ansible_facts.fqdn }}"]
  register: info

- name: Fail early if it does not chain to the cluster CA
  ansible.builtin.assert:
    that: [info.chain_valid, info.key_matches, not info.renewal_reasons]
    fail_msg: "{{ info.chain_error }} {{ info.renewal_reasons }}"

- name: Is this host's certificate revoked?
  securebydefault.pki.certificate_info:
    path: /etc/pki/cluster-a/node.crt
    bundle_path: /etc/pki/cluster-a/ca-bundle.crt
    crl_path: /etc/pki/cluster-a/crl.pem
  register: revocation_info
"""

RETURN = r"""
exists:
  description: Whether the certificate file exists. All other keys are missing when it does not.
  returned: always
  type: bool
subject:
  description: Subject DN.
  returned: when exists
  type: str
issuer:
  description: Issuer DN.
  returned: when exists
  type: str
names:
  description: DNS names, IP addresses and URIs in the certificate.
  returned: when exists
  type: list
  elements: str
serial:
  description: Serial number in hex.
  returned: when exists
  type: str
not_before:
  description: Start of validity, UTC.
  returned: when exists
  type: str
not_after:
  description: End of validity, UTC.
  returned: when exists
  type: str
expires_in_seconds:
  description: Seconds until expiry (negative when expired).
  returned: when exists
  type: int
fingerprint:
  description: SHA-256 fingerprint.
  returned: when exists
  type: str
key:
  description: Key algorithm and size, e.g. C(ec/256).
  returned: when exists
  type: str
usages:
  description: Extended key usages (C(server), C(client)).
  returned: when exists
  type: list
  elements: str
is_ca:
  description: Whether it is a CA certificate.
  returned: when exists
  type: bool
chain_valid:
  description: Whether the chain verifies against O(bundle_path) (signatures, validity, CA flags, name constraints).
  returned: when exists and bundle_path is set
  type: bool
chain_error:
  description: Why the chain does not verify; empty when it does.
  returned: when exists and bundle_path is set
  type: str
key_matches:
  description: Whether O(key_path) holds the certificate's private key.
  returned: when exists and key_path is set
  type: bool
renewal_reasons:
  description: Why node_certificate would re-issue it (expiry window, names, key mismatch, chain, revoked).
  returned: when exists
  type: list
  elements: str
revoked:
  description: Whether the CRL in O(crl_path) lists the certificate.
  returned: when exists, crl_path is set and the CRL's signature verifies
  type: bool
revocation:
  description: When and why the certificate was revoked.
  returned: when revoked
  type: dict
  sample: {"revoked_at": "2026-11-23T10:00:00Z", "reason": "cessation_of_operation"}
crl:
  description: The CRL's number, issuer, this and next update, and how many serials it lists.
  returned: when exists and crl_path is set
  type: dict
crl_error:
  description: Why the CRL cannot be relied on (unknown issuer, bad signature, expired); empty when it can.
  returned: when exists and crl_path is set
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import fail_pki, require_cryptography

try:
    from cryptography import x509

    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import usages_of
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import fingerprint, load_certificates
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import read_bytes
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import (
        build_identity, identity_of_certificate)
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.inspection import (
        renewal_reasons, verify_chain)
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import load_private_key, spec_of_key
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import revocation
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import (
        isoformat, not_valid_after, not_valid_before, parse_duration, utcnow)
except ImportError:
    PKIError = ValueError  # require_cryptography() reports the missing library


def _read_certs(path, field):
    data = read_bytes(path)
    if data is None:
        raise PKIError(field, "%s does not exist" % path, "check the path")
    return load_certificates(data, field)


def _check_revocation(info, crl_path, leaf, issuers, now):
    data = read_bytes(crl_path)
    if data is None:
        raise PKIError("crl_path", "%s does not exist" % crl_path, "install the CRL first (the revoke role does)")
    crl = revocation.load_crl(data, "crl_path")
    info["crl"] = revocation.crl_summary(crl)
    if not issuers:
        info["crl_error"] = "no issuer certificate to check the CRL's signature with"
        return []
    signed, error = revocation.check_crl(crl, issuers, now)
    info["crl_error"] = error or ""
    if not signed:
        return []
    found = revocation.revocation_of(crl, leaf)
    info["revoked"] = found is not None
    if found is None:
        return []
    info["revocation"] = found
    return ["revoked on %s (%s) per the CRL" % (found["revoked_at"], found["reason"])]


def inspect(params):
    data = read_bytes(params["path"])
    if data is None:
        return {"exists": False}
    certs = load_certificates(data, "path")
    if not certs:
        raise PKIError("path", "%s holds no PEM certificate" % params["path"], "point it at a PEM certificate")
    leaf, chain = certs[0], certs[1:]
    if params["chain_path"]:
        chain += [c for c in _read_certs(params["chain_path"], "chain_path") if c != leaf]
    now = utcnow()
    try:
        is_ca = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    info = {"exists": True, "subject": leaf.subject.rfc4514_string(), "issuer": leaf.issuer.rfc4514_string(),
            "names": identity_of_certificate(leaf).names(), "serial": "%x" % leaf.serial_number,
            "not_before": isoformat(not_valid_before(leaf)), "not_after": isoformat(not_valid_after(leaf)),
            "expires_in_seconds": int((not_valid_after(leaf) - now).total_seconds()),
            "fingerprint": fingerprint(leaf), "key": spec_of_key(leaf.public_key()).describe(),
            "usages": usages_of(leaf), "is_ca": bool(is_ca)}
    key = None
    if params["key_path"]:
        key_data = read_bytes(params["key_path"])
        if key_data is None:
            raise PKIError("key_path", "%s does not exist" % params["key_path"], "check the path")
        key = load_private_key(key_data, params["key_passphrase"], "key_path")
    identity = build_identity(params["names"], "names", allow_wildcard=True) if params["names"] else None
    reasons = renewal_reasons(leaf, private_key=key, identity=identity,
                              renew_before=parse_duration(params["renew_before"], "renew_before"), now=now)
    if key is not None:
        info["key_matches"] = "private key does not match certificate" not in reasons
    roots = []
    if params["bundle_path"]:
        roots = _read_certs(params["bundle_path"], "bundle_path")
        error = verify_chain(leaf, chain, roots, now)
        info["chain_valid"] = error is None
        info["chain_error"] = error or ""
        if error:
            reasons.append("chain does not verify: %s" % error)
    if params["crl_path"]:
        reasons += _check_revocation(info, params["crl_path"], leaf, chain + roots, now)
    info["renewal_reasons"] = reasons
    return info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            bundle_path=dict(type="path"),
            chain_path=dict(type="path"),
            key_path=dict(type="path"),
            key_passphrase=dict(type="str", no_log=True),
            renew_before=dict(type="str", default="30d"),
            names=dict(type="list", elements="str"),
            crl_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    require_cryptography(module)
    try:
        info = inspect(module.params)
    except PKIError as exc:
        fail_pki(module, exc)
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
