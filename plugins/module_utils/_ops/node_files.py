# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node side of a node certificate (module node_certificate_files, called by the node_certificate action).

Standard library only until something is due: the issuance record answers a run with nothing due (the quick
path); only then is cryptography imported (``pki.node``).
"""

from __future__ import annotations

import base64
import os
from typing import Any, Dict

from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import require_cryptography
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import node_file_names
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import files as fs
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import record
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import (
    build_identity,
    parse_subject,
    requested_names,
)
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
        found,
        cert_path=paths["cert"],
        key_path=paths["key"],
        chain_path=paths["chain"],
        bundle_path=paths["bundle"],
        bundle_pem=params["bundle"],
        issuer_pem=params["issuer"],
        names=identity.names(),
        usages=params["usages"],
        key=validate_key_spec(KeySpec(params["key_type"], params["key_size"])).describe(),
        renew_before=parse_duration(params["renew_before"], "renew_before"),
        modes={
            "key": fs.parse_mode(params["key_mode"], "key_mode"),
            "cert": fs.parse_mode(params["cert_mode"], "cert_mode"),
        },
        uid=uid,
        gid=gid,
        now=utcnow(),
        host=params["host"],
        key_encrypted=bool(params["key_passphrase"]),
        requested_subject=parse_subject(params["subject"], "subject").describe(),
    ):
        return None
    return dict(
        changed=False,
        reasons=[],
        identity=identity.names(),
        written=[],
        backups=[],
        certificate=record.summary(found),
        discovered=discovered,
    )


def build_request(node, params, names, check_mode):
    uid, gid = fs.resolve_owner(params["owner"], params["group"])
    key_mode = fs.parse_mode(params["key_mode"], "key_mode")
    cert_mode = fs.parse_mode(params["cert_mode"], "cert_mode")
    paths = paths_of(params)

    def spec(kind, mode):
        return fs.FileSpec(paths[kind], mode, uid, gid)

    truststore = params["truststore"]
    return node.NodeRequest(
        key=spec("key", key_mode),
        cert=spec("cert", cert_mode),
        chain=spec("chain", cert_mode),
        bundle=spec("bundle", cert_mode),
        bundle_pem=params["bundle"],
        names=names,
        discover=[],
        issuer_pem=params["issuer"],
        key_spec=KeySpec(params["key_type"], params["key_size"]),
        key_passphrase=params["key_passphrase"],
        regenerate_key=params["regenerate_key"],
        allow_wildcard=params["allow_wildcard"],
        renew_before=parse_duration(params["renew_before"], "renew_before"),
        usages=params["usages"],
        subject=parse_subject(params["subject"], "subject"),
        force=params["force"],
        backup=params["backup"],
        revoked_serials=params["revoked_serials"],
        keystore=spec("keystore", key_mode) if params["pkcs12_keystore"] else None,
        truststore=spec("truststore", cert_mode) if truststore else None,
        truststore_der=base64.b64decode(truststore) if truststore else None,
        pkcs12_passphrase=params["pkcs12_passphrase"],
        keystore_alias=params["name"],
        check_mode=check_mode,
        host=params["host"],
        allow_group_readable_key=params["allow_group_readable_key"],
    )


def node_files(ctx) -> Dict[str, Any]:
    """Module node_certificate_files: one stage (prepare, install, abort) of a node certificate on the node."""
    params = ctx.params
    parse_subject(params["subject"], "subject")  # a bad subject fails before anything is read or written
    names, discovered = requested_names(params["names"], params["discover"])
    quick = quick_result(params, names, discovered)
    if quick is not None:
        return quick
    require_cryptography(ctx.module)
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import node

    request = build_request(node, params, names, ctx.check_mode)
    if params["stage"] == "prepare":
        result = node.prepare(request)
        result.discovered = discovered
    elif params["stage"] == "abort":
        result = node.abort(request)
    elif ctx.check_mode:
        return dict(
            changed=True,
            reasons=[],
            identity=list(request.names),
            written=[],
            backups=[],
            certificate={},
            discovered={},
        )
    else:
        result = node.install(request, params["certificate"])
    out = result.as_dict()
    if ctx.diff:
        out["diff"] = {"before": result.before, "after": result.after}
    return out
