#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node side of node_certificate: key, CSR and certificate files on the node.

The private key is generated on the node and never leaves it; this module
returns only a CSR and public information.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: node_certificate_files
short_description: Node side of node_certificate (key, CSR, certificate files)
version_added: "0.1.0"
description:
  - Called by the M(securebydefault.pki.node_certificate) action, twice at most per host.
    Use that action in playbooks; this module cannot sign anything.
  - In stage C(prepare) it validates all destinations, installs the trust bundle (and
    truststore), fixes file modes, and decides with reasons whether a certificate must be
    issued. If so it writes a fresh private key beside the current one as C(<name>.key.pending)
    and returns a CSR. The private key never leaves the node.
  - In stage C(install) it checks the signed certificate against the pending (or current)
    key and the approved names, then replaces key, certificate, full chain and keystore,
    each atomically, and writes the issuance record C(<name>.issued.json) (hashes of what was
    installed; with it a later run that finds nothing due needs no X.509 parsing).
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.attributes
  - securebydefault.pki.attributes.files
  - securebydefault.pki.attributes.key
options:
  host:
    description:
      - Inventory name of the host the files belong to, kept in the issuance record; a directory that
        holds another host's certificate is refused.
    type: str
    default: ""
  stage:
    description:
      - Which half of the exchange to run.
      - C(abort) removes a pending key made by a C(prepare) whose CSR the CA refused to sign.
    type: str
    required: true
    choices: [prepare, install, abort]
  path:
    description: Directory on the node for the files.
    type: path
    required: true
  name:
    description: Base name of the files (C(<name>.key), C(<name>.crt), C(<name>-fullchain.crt), C(<name>.p12)).
    type: str
    default: node
  names:
    description: Names and addresses approved by the controller.
    type: list
    elements: str
    default: []
  discover:
    description: Identity sources the node must look up itself because facts were not gathered.
    type: list
    elements: str
    default: []
    choices: [inventory_hostname, hostname, fqdn, ipv4, ipv6]
  issuer:
    description: PEM of the issuing CA certificate, followed by its issuers.
    type: str
    required: true
  bundle:
    description: PEM trust bundle to install as C(ca-bundle.crt).
    type: str
    required: true
  truststore:
    description: Base64 of a Java PKCS#12 truststore made on the controller, installed as C(truststore.p12).
    type: str
  certificate:
    description: PEM of the signed certificate (stage C(install)).
    type: str
  revoked_serials:
    description: Serials (lower-case hex) the CA has revoked; a certificate with one of them is re-issued.
    type: list
    elements: str
    default: []
  allow_wildcard:
    description: Accept wildcard names.
    type: bool
    default: false
  usages:
    description: Extended key usages the certificate must have.
    type: list
    elements: str
    default: [server, client]
    choices: [server, client]
  renew_before:
    description: Re-issue when the certificate expires within this duration.
    type: str
    default: 30d
  key_passphrase:
    description: Passphrase the node key is encrypted with.
    type: str
  regenerate_key:
    description: C(on_renewal) makes a fresh key for every certificate; C(never) keeps a valid key.
    type: str
    default: on_renewal
    choices: [on_renewal, never]
  force:
    description: Re-issue even if nothing is due.
    type: bool
    default: false
  backup:
    description: Keep a timestamped copy of replaced files.
    type: bool
    default: false
  pkcs12_keystore:
    description: Also write C(<name>.p12) with key, certificate and chain.
    type: bool
    default: false
  pkcs12_passphrase:
    description: Passphrase of the PKCS#12 keystore and truststore.
    type: str
"""

EXAMPLES = r"""
# Not used directly; the node_certificate action calls it. A read-only check:
- name: Would the node certificate be re-issued?
  securebydefault.pki.node_certificate_files:
    stage: prepare
    path: /etc/pki/app
    names: [node1.example.internal]
    issuer: "{{ lookup('file', '/srv/ca/ca.crt') }}"
    bundle: "{{ lookup('file', '/srv/ca/root.crt') }}"
  check_mode: true
  register: due
"""

RETURN = r"""
reasons:
  description: Why a certificate must be issued; empty when nothing is due.
  returned: always
  type: list
  elements: str
  sample: ["expires in 3d2h (2026-12-01T00:00:00Z) <= renew_before 30d"]
identity:
  description: The names the certificate carries (or will carry).
  returned: always
  type: list
  elements: str
  sample: [node1.example.internal, 10.0.0.7]
csr:
  description: PEM CSR made with the node's new (or kept) key, when a certificate must be issued.
  returned: stage prepare, when reasons is not empty and not in check mode
  type: str
written:
  description: Files written (or that would be written in check mode).
  returned: always
  type: list
  elements: str
backups:
  description: Backup copies made.
  returned: always
  type: list
  elements: str
certificate:
  description: Names, issuer, serial, not_after and fingerprint of the installed certificate.
  returned: always
  type: dict
discovered:
  description: Facts the node looked up itself (hostname, fqdn, addresses).
  returned: always
  type: dict
pending_created:
  description: Whether this run wrote a new C(<name>.key.pending) for the CSR.
  returned: stage prepare
  type: bool
"""

import base64
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import NODE_FILES_SPEC, node_file_names
from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import fail_pki, require_cryptography
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import files as fs
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import record
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity, requested_names
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keyspec import KeySpec, validate_key_spec
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_duration, utcnow


def paths_of(params):
    names = node_file_names(params["name"])
    return {kind: os.path.join(params["path"], fname) for kind, fname in names.items()}


def quick_result(params, names, discovered):
    """The answer when the issuance record proves nothing is due; None means: do the full check.

    Standard library only, so a run with nothing due never imports cryptography.
    """
    if params["stage"] != "prepare" or params["force"] or params["pkcs12_keystore"] or params["truststore"]:
        return None
    identity = build_identity(names, "names", params["allow_wildcard"])
    uid, gid = fs.resolve_owner(params["owner"], params["group"])
    paths = paths_of(params)
    found = record.load(paths["cert"])
    if found and found.get("serial") in params["revoked_serials"]:
        return None
    if not record.still_valid(
            found, cert_path=paths["cert"], key_path=paths["key"], chain_path=paths["chain"],
            bundle_path=paths["bundle"], bundle_pem=params["bundle"], issuer_pem=params["issuer"],
            names=identity.names(), usages=params["usages"],
            key=validate_key_spec(KeySpec(params["key_type"], params["key_size"])).describe(),
            renew_before=parse_duration(params["renew_before"], "renew_before"),
            modes={"key": fs.parse_mode(params["key_mode"], "key_mode"),
                   "cert": fs.parse_mode(params["cert_mode"], "cert_mode")},
            uid=uid, gid=gid, now=utcnow(), host=params["host"], key_encrypted=bool(params["key_passphrase"])):
        return None
    return dict(changed=False, reasons=[], identity=identity.names(), written=[], backups=[],
                certificate=record.summary(found), discovered=discovered)


def build_request(node, params, names, check_mode):
    uid, gid = fs.resolve_owner(params["owner"], params["group"])
    key_mode = fs.parse_mode(params["key_mode"], "key_mode")
    cert_mode = fs.parse_mode(params["cert_mode"], "cert_mode")
    paths = paths_of(params)

    def spec(kind, mode):
        return fs.FileSpec(paths[kind], mode, uid, gid)

    truststore = params["truststore"]
    return node.NodeRequest(
        key=spec("key", key_mode), cert=spec("cert", cert_mode), chain=spec("chain", cert_mode),
        bundle=spec("bundle", cert_mode), bundle_pem=params["bundle"],
        names=names, discover=[], issuer_pem=params["issuer"],
        key_spec=KeySpec(params["key_type"], params["key_size"]), key_passphrase=params["key_passphrase"],
        regenerate_key=params["regenerate_key"], allow_wildcard=params["allow_wildcard"],
        renew_before=parse_duration(params["renew_before"], "renew_before"), usages=params["usages"],
        force=params["force"], backup=params["backup"], revoked_serials=params["revoked_serials"],
        keystore=spec("keystore", key_mode) if params["pkcs12_keystore"] else None,
        truststore=spec("truststore", cert_mode) if truststore else None,
        truststore_der=base64.b64decode(truststore) if truststore else None,
        pkcs12_passphrase=params["pkcs12_passphrase"], keystore_alias=params["name"],
        check_mode=check_mode, host=params["host"], allow_group_readable_key=params["allow_group_readable_key"])


def main():
    module = AnsibleModule(argument_spec=NODE_FILES_SPEC, supports_check_mode=True,
                           required_if=[("stage", "install", ("certificate",)),
                                        ("pkcs12_keystore", True, ("pkcs12_passphrase",))])
    try:
        names, discovered = requested_names(module.params["names"], module.params["discover"])
        quick = quick_result(module.params, names, discovered)
        if quick is not None:
            module.exit_json(**quick)
        require_cryptography(module)
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki import node

        request = build_request(node, module.params, names, module.check_mode)
        if module.params["stage"] == "prepare":
            result = node.prepare(request)
            result.discovered = discovered
        elif module.params["stage"] == "abort":
            result = node.abort(request)
        else:
            if module.check_mode:
                module.exit_json(changed=True, reasons=[], identity=list(request.names), written=[],
                                 backups=[], certificate={}, discovered={})
            result = node.install(request, module.params["certificate"])
    except PKIError as exc:
        fail_pki(module, exc)
    out = result.as_dict()
    if module._diff:
        out["diff"] = {"before": result.before, "after": result.after}
    module.exit_json(**out)


if __name__ == "__main__":
    main()
