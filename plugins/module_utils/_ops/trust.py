# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The use case of a trust bundle on a host (module trust_bundle): CA certificates only, atomically written."""

from __future__ import annotations

import os
from typing import Any, Dict

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import files as fs
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import (
    fingerprint,
    is_ca_certificate,
    load_certificates,
    merge_bundle,
    pem_of,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import not_valid_after, utcnow

# (anchor directory, file extension, refresh command) per OS family, first existing wins.
SYSTEM_STORES = [
    ("/usr/local/share/ca-certificates", ".crt", ["update-ca-certificates"]),
    ("/etc/pki/ca-trust/source/anchors", ".pem", ["update-ca-trust", "extract"]),
]


def system_store(module, store_name):
    for directory, ext, command in SYSTEM_STORES:
        if os.path.isdir(directory) and module.get_bin_path(command[0]):
            return os.path.join(directory, store_name + ext), command
    raise PKIError(
        "system_store",
        "no supported system trust store found (ca-certificates or ca-trust)",
        "install the ca-certificates package, or set system_store: false",
    )


def fingerprints_of(data):
    if not data:
        return []
    return [fingerprint(c) for c in load_certificates(data, "path")]


def trust_bundle(ctx) -> Dict[str, Any]:
    """Module trust_bundle: the PEM bundle file (and the system trust store) holding exactly these CAs."""
    params, module = ctx.params, ctx.module
    path = params["path"]
    uid, gid = fs.resolve_owner(params["owner"], params["group"])
    spec = fs.FileSpec(path, fs.parse_mode(params["mode"], "mode"), uid, gid)
    store = system_store(module, params["store_name"]) if params["system_store"] else None
    current = fs.read_bytes(path)
    result = {"changed": False, "dropped": [], "fingerprints": []}
    if params["state"] == "absent":
        targets = [p for p in [path] + ([store[0]] if store else []) if os.path.exists(p)]
        result["changed"] = bool(targets)
        result["diff"] = {"before": {"fingerprints": fingerprints_of(current)}, "after": {"fingerprints": []}}
        if targets and not ctx.check_mode:
            for target in targets:
                fs.remove_quietly(target)
            if store and store[0] in targets:
                module.run_command(store[1], check_rc=True)
        if not ctx.diff:
            result.pop("diff")
        return result
    if not params["certificates"]:
        raise PKIError("certificates", "no CA certificate given", "list at least one PEM CA certificate")
    certs = []
    for index, item in enumerate(params["certificates"]):
        found = load_certificates(item, "certificates[%d]" % index)
        if not found:
            raise PKIError(
                "certificates[%d]" % index,
                "no PEM certificate in this item",
                "pass the PEM text, e.g. with lookup('ansible.builtin.file', ...)",
            )
        for cert in found:
            if not is_ca_certificate(cert):
                raise PKIError(
                    "certificates[%d]" % index,
                    "%s is not a CA certificate (no basicConstraints CA:TRUE "
                    "with keyCertSign): a leaf is never a trust anchor" % cert.subject.rfc4514_string(),
                    "pass the CA's root (root.crt, or the ca-bundle.crt node_certificate installs), "
                    "not a server or client certificate",
                )
        certs.extend(found)
    now = utcnow()
    kept = merge_bundle(certs, drop_expired=params["drop_expired"], now=now)
    result["dropped"] = sorted(
        {c.subject.rfc4514_string() for c in certs if not_valid_after(c) <= now and params["drop_expired"]}
    )
    if not kept:
        raise PKIError("certificates", "every CA given has expired", "pass a valid CA certificate")
    data = pem_of(kept).encode("ascii")
    result["fingerprints"] = [fingerprint(c) for c in kept]
    result["diff"] = {
        "before": {"fingerprints": fingerprints_of(current)},
        "after": {"fingerprints": result["fingerprints"]},
    }
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
            if not ctx.check_mode:
                if params["backup"] and existing is not None and target is spec:
                    result["backup_file"] = fs.backup_file(path)
                fs.atomic_write(target, data)
        elif fs.attribute_changes(target.path, target):
            result["changed"] = True
            if not ctx.check_mode:
                fs.apply_attributes(target.path, target)
    if refresh and not ctx.check_mode:
        module.run_command(store[1], check_rc=True)
    if not ctx.diff:
        result.pop("diff", None)
    return result
