# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node side of a node certificate (module node_certificate_files, called by the node_certificate action).

Standard library only until something is due: the issuance record answers a run with nothing due (the quick
path); only then is cryptography imported (``pki.node``).
"""

from __future__ import annotations

import base64
import os
from typing import Any, Callable, Dict, List, Optional

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


class _Item:
    """One certificate of node_certificates_files, as node_files expects its context."""

    def __init__(self, ctx, params) -> None:
        self.module = ctx.module
        self.params = params
        self.check_mode = ctx.check_mode
        self.diff = ctx.diff


def _item_params(ctx, index: int, item) -> Dict[str, Any]:
    """certificates[index] checked against node_certificate_files' options, with the stage and passphrases of
    the call (they are options of the call, never of an item: an item's values are not masked in logs)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import NODE_FILES_SPEC
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

    where = "certificates[%d]" % index
    if not isinstance(item, dict):
        raise PKIError(where, "is not a mapping", "give each certificate as a mapping of its options")
    secret = sorted(set(item) & {"stage", "key_passphrase", "pkcs12_passphrase"})
    if secret:
        raise PKIError(
            "%s.%s" % (where, secret[0]),
            "is an option of the whole call, not of one certificate",
            "give it once, beside certificates",
        )
    merged = dict(
        item,
        stage=ctx.params["stage"],
        key_passphrase=ctx.params["key_passphrase"],
        pkcs12_passphrase=ctx.params["pkcs12_passphrase"],
    )
    validation = ArgumentSpecValidator(NODE_FILES_SPEC).validate(merged)
    if validation.error_messages:
        raise PKIError(where, "; ".join(validation.error_messages), "fix the options of that certificate")
    params = validation.validated_parameters
    if params["stage"] == "install" and not params["certificate"]:
        raise PKIError(where + ".certificate", "is missing in stage install", "pass each signed certificate")
    return params


def check_apart(certificates, resolve: Callable[[str], str], seen_by: str) -> None:
    """No file of one certificate is a file of another (a name like ``a-fullchain`` beside ``a``, or ``ca-bundle``),
    and the certificates of one directory bring one trust (bundle, truststore), which they share.

    ``certificates``: (path, name, with a keystore, trust) each; ``resolve`` turns a directory into the one it is
    (the controller normalises the path as written, the node resolves links); ``seen_by`` says which did.
    """
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

    owner: Dict[str, int] = {}
    trusts: Dict[str, tuple] = {}
    for index, (path, name, keystore, trust) in enumerate(certificates):
        directory = resolve(path)
        names = node_file_names(name)
        record_file = os.path.basename(record.record_path(names["cert"]))
        own = [names["key"], names["key"] + ".pending", names["cert"], names["chain"], record_file]
        for fname in own + ([names["keystore"]] if keystore else []):
            file_path = os.path.join(directory, fname)
            if file_path in owner or fname in (names["bundle"], names["truststore"]):
                other = "certificates[%d]" % owner[file_path] if file_path in owner else "the directory's trust bundle"
                raise PKIError(
                    "certificates[%d].name" % index,
                    "its file %s is also a file of %s" % (file_path, other),
                    "give each certificate its own name (not one ending in -fullchain of another, nor ca-bundle or "
                    "truststore) or its own path",
                )
            owner[file_path] = index
        first = trusts.setdefault(directory, (index, trust))
        if first[1] != trust:
            raise PKIError(
                "certificates[%d].path" % index,
                "%s is (as %s resolves it) the directory %s of certificates[%d], whose trust bundle differs (its "
                "ca-bundle.crt holds one bundle)" % (path, seen_by, directory, first[0]),
                "give certificates of different CAs (or trust_also) their own directories, and no link between them",
            )


def in_certificate(index: int, function, *args):
    """``function(*args)`` for certificates[index]: an error names that certificate (unless it already names one)."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

    try:
        return function(*args)
    except PKIError as exc:
        if exc.field.startswith("certificates["):
            raise
        raise exc.within("certificates[%d]" % index) from None


def _check_before_writing(node, item) -> None:
    """What prepare refuses before it writes (destinations, owner of the directory, names), without writing."""
    names, _discovered = requested_names(item.params["names"], item.params["discover"])
    request = build_request(node, item.params, names, item.check_mode)
    node.check_destinations(request)
    node.check_owner_of_path(request)
    node.desired_identity(request, node.NodeResult())


def node_files_many(ctx) -> Dict[str, Any]:
    """Module node_certificates_files: one stage of several node certificates on this node, in one call.

    Every certificate's options, files and (in prepare) destinations and names are checked before the first file
    is touched. A prepare that fails on one certificate removes the pending keys it made for the others; an
    install that fails on one installs no later one and removes their pending keys (each installed certificate is
    complete: its files are replaced atomically, one by one).
    """
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

    items = [_Item(ctx, _item_params(ctx, index, item)) for index, item in enumerate(ctx.params["certificates"])]
    check_apart(
        [
            (
                i.params["path"],
                i.params["name"],
                i.params["pkcs12_keystore"],
                (i.params["bundle"], i.params["truststore"]),
            )
            for i in items
        ],
        os.path.realpath,
        "this node",
    )
    stage = ctx.params["stage"]
    quick: List[Optional[Dict[str, Any]]] = [None] * len(items)
    if stage == "prepare":  # read-only checks of every certificate first; nothing due needs no cryptography
        for index, item in enumerate(items):
            quick[index] = in_certificate(index, _quick_of, item)
        due = [index for index, answer in enumerate(quick) if answer is None]
        if due:
            require_cryptography(ctx.module)
            from ansible_collections.securebydefault.pki.plugins.module_utils.pki import node

            for index in due:
                in_certificate(index, _check_before_writing, node, items[index])
    results: List[Dict[str, Any]] = []
    for index, item in enumerate(items):
        try:
            results.append(quick[index] if quick[index] is not None else node_files(item))
        except Exception as exc:  # pylint: disable=broad-except  # an OSError too: take back the pending keys
            cleaned = _abort(ctx, items[:index] if stage == "prepare" else items[index:], results)
            if isinstance(exc, PKIError):
                failure = exc.within("certificates[%d]" % index)
            else:
                failure = PKIError(
                    "certificates[%d]" % index,
                    "%s: %s" % (type(exc).__name__, exc),
                    "fix what the error names on this node, then run again",
                )
            failure.result = {"certificates": results, "index": index, "written": cleaned}
            raise failure from None
    return {"changed": any(r["changed"] for r in results), "certificates": results}


def _quick_of(item) -> Optional[Dict[str, Any]]:
    names, discovered = requested_names(item.params["names"], item.params["discover"])
    parse_subject(item.params["subject"], "subject")
    return quick_result(item.params, names, discovered)


def _abort(ctx, items, results) -> List[str]:
    """Remove the pending keys of ``items`` that this call (prepare) or the action's prepare made (install);
    each on its own, so one that cannot be removed does not keep the others."""
    removed: List[str] = []
    if ctx.check_mode:
        return removed
    for index, item in enumerate(items):
        made = results[index].get("pending_created") if ctx.params["stage"] == "prepare" else True
        if not made:
            continue
        try:
            removed.extend(node_files(_Item(ctx, dict(item.params, stage="abort"))).get("written", []))
        except Exception as exc:  # pylint: disable=broad-except
            removed.append("%s.pending (not removed: %s)" % (paths_of(item.params)["key"], exc))
    return removed
