# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The public side of a CA directory, read without ``cryptography``.

node_certificate sends the issuing CA certificate and the trust bundle to
the node on every run; reading them as text keeps a run with nothing due
free of X.509 parsing on the controller. Parsing and every check of the CA
(passphrase, key match, expiry) happen in ca_store.load_ca, before any
signature.

A CA kept elsewhere (a Kubernetes Secret) has the same files under the same
names; the ``*_of`` functions work on such a mapping of name to bytes, and
``where`` says in messages which CA it is.
"""
from __future__ import annotations

import datetime
import json
import os
from typing import Dict, Mapping, Optional, Tuple

from .errors import PKIError
from .timeutil import parse_isoformat

REQUIRED = ("ca.crt", "ca.key", "root.crt")


def check_ca_directory(path: str, field: str = "ca_path") -> None:
    if not os.path.isdir(path):
        raise PKIError(field, "no CA directory at %s" % path, "create the CA first (cluster_ca) or fix the path")
    missing = [n for n in REQUIRED if not os.path.exists(os.path.join(path, n))]
    if missing:
        raise PKIError(field, "CA directory %s is incomplete, missing %s" % (path, ", ".join(missing)),
                       "restore the CA directory from backup")


def check_complete(files: Mapping[str, Optional[bytes]], where: str, field: str, required=REQUIRED) -> None:
    missing = [n for n in required if files.get(n) is None]
    if missing:
        raise PKIError(field, "%s is incomplete, missing %s" % (where, ", ".join(missing)),
                       "restore the CA from backup, or point %s at the CA cluster_ca created" % field)


def read_directory(path: str, names, field: str = "ca_path") -> Dict[str, Optional[bytes]]:
    """The CA directory's files among ``names`` (None for those absent), after checking it is a CA."""
    check_ca_directory(path, field)
    out: Dict[str, Optional[bytes]] = {}
    for name in names:
        try:
            with open(os.path.join(path, name), "rb") as handle:
                out[name] = handle.read()
        except FileNotFoundError:
            out[name] = None
    return out


def public_of(files: Mapping[str, Optional[bytes]], where: str, field: str = "ca_path") -> Tuple[str, str]:
    """(issuer PEM: issuing CA then root if different, trust bundle PEM: the root)."""
    check_complete(files, where, field, ("ca.crt", "root.crt"))
    issuing = (files["ca.crt"] or b"").decode("ascii", "replace")
    root = (files["root.crt"] or b"").decode("ascii", "replace")
    if "-----BEGIN CERTIFICATE-----" not in issuing or "-----BEGIN CERTIFICATE-----" not in root:
        raise PKIError(field, "%s holds no PEM CA certificate" % where, "restore the CA from backup")
    return (issuing if issuing == root else issuing + root), root


def read_public(path: str, field: str = "ca_path") -> Tuple[str, str]:
    """(issuer PEM, trust bundle PEM) of a CA directory."""
    return public_of(read_directory(path, ("ca.crt", "root.crt"), field), path, field)


def metadata_of(data: Optional[bytes], where: str, field: str = "ca_path") -> Dict:
    """ca.json: what the CA was created with and its signing policy ({} when absent)."""
    if data is None:
        return {}
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:
        raise PKIError(field, "ca.json of %s is not valid JSON" % where, "restore it from backup") from None


def read_metadata(path: str, field: str = "ca_path") -> Dict:
    try:
        with open(os.path.join(path, "ca.json"), "rb") as handle:
            return metadata_of(handle.read(), path, field)
    except FileNotFoundError:
        return {}


def read_policy(path: str, field: str = "ca_path") -> Dict:
    """The CA's signing policy and expiry from ca.json ({} for a CA without one)."""
    return policy_of(read_metadata(path, field))


def policy_of(meta: Dict) -> Dict:
    policy = dict(meta.get("policy") or {})
    if meta.get("not_after"):
        policy["not_after"] = meta["not_after"]
    return policy


def check_policy(policy: Dict, valid_for: datetime.timedelta, allow_wildcard: bool, now: datetime.datetime,
                 field: str = "ca_path") -> None:
    """What ca.json lets us refuse before the node is touched; the CA re-checks all of it when signing."""
    not_after = policy.get("not_after")
    if not_after:
        if parse_isoformat(not_after) <= now:
            raise PKIError(field, "CA certificate expired on %s" % not_after,
                           "create a new CA (cluster_ca with a new path, or rotate the CA) and re-issue")
    limit = policy.get("max_leaf_validity")
    if limit is not None and valid_for.total_seconds() > int(limit):
        raise PKIError("valid_for", "%ds exceeds the CA's maximum leaf validity of %ds"
                       % (valid_for.total_seconds(), int(limit)),
                       "shorten valid_for, or raise max_leaf_validity on the CA")
    if allow_wildcard and not policy.get("allow_wildcard", False):
        raise PKIError("allow_wildcard", "the CA's policy refuses wildcard names",
                       "name each host explicitly, or create the CA with allow_wildcard: true")
