#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""trust_bundle: install CA certificates as a bundle file and, optionally, into the system trust store.

Handles public certificates only; it never sees a private key.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: trust_bundle
short_description: Install one or more CA certificates as a trust bundle (and into the system trust store)
version_added: "0.1.0"
description:
  - Writes the given CA certificates, de-duplicated and in the given order, as one PEM bundle file,
    atomically. Expired CAs are dropped unless O(drop_expired=false).
  - With O(system_store=true) also places the bundle in the operating system's trust anchors
    (C(/usr/local/share/ca-certificates) with C(update-ca-certificates) on Debian/Ubuntu,
    C(/etc/pki/ca-trust/source/anchors) with C(update-ca-trust) on RHEL-like systems).
  - Several bundles can hold several CAs at once, which is how a CA rotation keeps old and new
    trusted during the overlap.
author: securebydefault.pki contributors (@securebydefault)
attributes:
  check_mode:
    support: full
    description: Reports what would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the CA fingerprints before and after.
options:
  path:
    description: The bundle file to write.
    type: path
    required: true
  certificates:
    description: PEM CA certificates; each item may hold several. Required with O(state=present).
    type: list
    elements: str
  state:
    description: C(present) writes the bundle, C(absent) removes the file and the system store entry.
    type: str
    choices: [present, absent]
    default: present
  drop_expired:
    description: Leave expired CA certificates out of the bundle.
    type: bool
    default: true
  system_store:
    description: Also install the bundle as system trust anchors and refresh the system store.
    type: bool
    default: false
  store_name:
    description: File name (without extension) in the system trust store.
    type: str
    default: securebydefault-pki
  owner:
    description: Owner of the bundle file.
    type: str
  group:
    description: Group of the bundle file.
    type: str
  mode:
    description: Mode of the bundle file.
    type: raw
    default: "0644"
  backup:
    description: Keep a timestamped copy of a replaced bundle.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Trust the cluster CA (and, during a rotation, its successor)
  securebydefault.pki.trust_bundle:
    path: /etc/pki/cluster-a/ca-bundle.crt
    certificates:
      - "{{ lookup('ansible.builtin.file', '/srv/pki/cluster-a/root.crt') }}"
    system_store: true

- name: Stop trusting it
  securebydefault.pki.trust_bundle:
    path: /etc/pki/cluster-a/ca-bundle.crt
    state: absent
    system_store: true
"""

RETURN = r"""
fingerprints:
  description: SHA-256 fingerprints of the CAs in the bundle, in order.
  returned: always
  type: list
  elements: str
dropped:
  description: Subjects of expired CAs left out.
  returned: always
  type: list
  elements: str
system_store_path:
  description: Where the bundle was placed in the system trust store.
  returned: when system_store is true
  type: str
backup_file:
  description: Backup copy of the replaced bundle.
  returned: when backup is true and the bundle was replaced
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import fail_pki, require_cryptography

try:
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import files as fs
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import (
        fingerprint, is_ca_certificate, load_certificates, merge_bundle, pem_of)
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import not_valid_after, utcnow
except ImportError:
    PKIError = ValueError  # require_cryptography() reports the missing library

# (anchor directory, file extension, refresh command) per OS family, first existing wins.
SYSTEM_STORES = [
    ("/usr/local/share/ca-certificates", ".crt", ["update-ca-certificates"]),
    ("/etc/pki/ca-trust/source/anchors", ".pem", ["update-ca-trust", "extract"]),
]


def system_store(module):
    for directory, ext, command in SYSTEM_STORES:
        if os.path.isdir(directory) and module.get_bin_path(command[0]):
            return os.path.join(directory, module.params["store_name"] + ext), command
    raise PKIError("system_store", "no supported system trust store found (ca-certificates or ca-trust)",
                   "install the ca-certificates package, or set system_store: false")


def fingerprints_of(data):
    if not data:
        return []
    return [fingerprint(c) for c in load_certificates(data, "path")]


def run(module):
    params = module.params
    path = params["path"]
    uid, gid = fs.resolve_owner(params["owner"], params["group"])
    spec = fs.FileSpec(path, fs.parse_mode(params["mode"], "mode"), uid, gid)
    store = system_store(module) if params["system_store"] else None
    current = fs.read_bytes(path)
    result = {"changed": False, "dropped": [], "fingerprints": []}
    if params["state"] == "absent":
        targets = [p for p in [path] + ([store[0]] if store else []) if os.path.exists(p)]
        result["changed"] = bool(targets)
        result["diff"] = {"before": {"fingerprints": fingerprints_of(current)}, "after": {"fingerprints": []}}
        if targets and not module.check_mode:
            for target in targets:
                fs.remove_quietly(target)
            if store and store[0] in targets:
                module.run_command(store[1], check_rc=True)
        return result
    if not params["certificates"]:
        raise PKIError("certificates", "no CA certificate given", "list at least one PEM CA certificate")
    certs = []
    for index, item in enumerate(params["certificates"]):
        found = load_certificates(item, "certificates[%d]" % index)
        if not found:
            raise PKIError("certificates[%d]" % index, "no PEM certificate in this item",
                           "pass the PEM text, e.g. with lookup('ansible.builtin.file', ...)")
        for cert in found:
            if not is_ca_certificate(cert):
                raise PKIError("certificates[%d]" % index, "%s is not a CA certificate (no basicConstraints CA:TRUE "
                               "with keyCertSign): a leaf is never a trust anchor" % cert.subject.rfc4514_string(),
                               "pass the CA's root (root.crt, or the ca-bundle.crt node_certificate installs), "
                               "not a server or client certificate")
        certs.extend(found)
    now = utcnow()
    kept = merge_bundle(certs, drop_expired=params["drop_expired"], now=now)
    result["dropped"] = sorted({c.subject.rfc4514_string() for c in certs if not_valid_after(c) <= now
                                and params["drop_expired"]})
    if not kept:
        raise PKIError("certificates", "every CA given has expired", "pass a valid CA certificate")
    data = pem_of(kept).encode("ascii")
    result["fingerprints"] = [fingerprint(c) for c in kept]
    result["diff"] = {"before": {"fingerprints": fingerprints_of(current)},
                      "after": {"fingerprints": result["fingerprints"]}}
    fs.check_destination(path, "path")
    targets = [(spec, current)]
    if store:
        result["system_store_path"] = store[0]
        store_spec = fs.FileSpec(store[0], 0o644)
        fs.check_destination(store[0], "system_store")
        targets.append((store_spec, fs.read_bytes(store[0])))
    refresh = False
    for target, existing in targets:
        if existing != data:
            result["changed"] = True
            refresh = refresh or target is not spec
            if not module.check_mode:
                if params["backup"] and existing is not None and target is spec:
                    result["backup_file"] = fs.backup_file(path)
                fs.atomic_write(target, data)
        elif fs.attribute_changes(target.path, target):
            result["changed"] = True
            if not module.check_mode:
                fs.apply_attributes(target.path, target)
    if refresh and not module.check_mode:
        module.run_command(store[1], check_rc=True)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            certificates=dict(type="list", elements="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            drop_expired=dict(type="bool", default=True),
            system_store=dict(type="bool", default=False),
            store_name=dict(type="str", default="securebydefault-pki"),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw", default="0644"),
            backup=dict(type="bool", default=False),
        ),
        required_if=[("state", "present", ("certificates",))],
        supports_check_mode=True,
    )
    require_cryptography(module)
    try:
        result = run(module)
    except PKIError as exc:
        fail_pki(module, exc)
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
