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
import hashlib
import hmac
import json
import os
import re
import stat
from typing import Dict, Mapping, Optional, Tuple

from .errors import PKIError
from .files import FileSpec, atomic_write, read_bytes
from .timeutil import MAX_DURATION_SECONDS, parse_isoformat

REQUIRED = ("ca.crt", "ca.key", "root.crt")


PRIVATE_KEYS = ("ca.key", "root.key")


def check_ca_directory(path: str, field: str = "ca_path") -> None:
    """A CA directory that exists, is complete, and that nobody but its owner can read or write."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise PKIError(field, "%s is a symbolic link" % path, "point %s at the CA directory itself" % field)
    if st is None or not stat.S_ISDIR(st.st_mode):
        raise PKIError(field, "no CA directory at %s" % path, "create the CA first (cluster_ca) or fix the path")
    if st.st_uid != os.geteuid():
        raise PKIError(
            field,
            "CA directory %s is owned by uid %d, not by the user running the task (uid %d)"
            % (path, st.st_uid, os.geteuid()),
            "run as the CA's owner (become_user), or chown -R the CA directory to that user",
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise PKIError(
            field,
            "CA directory %s is open to other users (mode %04o)" % (path, stat.S_IMODE(st.st_mode)),
            "chmod 0700 %s and check who copied or changed the CA" % path,
        )
    missing = [n for n in REQUIRED if not os.path.lexists(os.path.join(path, n))]
    if missing:
        raise PKIError(
            field,
            "CA directory %s is incomplete, missing %s" % (path, ", ".join(missing)),
            "restore the CA directory from backup",
        )
    for name in PRIVATE_KEYS:
        try:
            key = os.lstat(os.path.join(path, name))
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(key.st_mode):
            raise PKIError(field, "%s/%s is not a regular file" % (path, name), "restore it from backup")
        if key.st_uid != os.geteuid() or stat.S_IMODE(key.st_mode) & 0o077:
            raise PKIError(
                field,
                "%s/%s is readable or writable by other users (mode %04o, uid %d)"
                % (path, name, stat.S_IMODE(key.st_mode), key.st_uid),
                "chmod 0600 and chown it to the CA's owner; treat the key as exposed and rotate the CA "
                "if anyone else could read it",
            )


def check_complete(files: Mapping[str, Optional[bytes]], where: str, field: str, required=REQUIRED) -> None:
    missing = [n for n in required if files.get(n) is None]
    if missing:
        raise PKIError(
            field,
            "%s is incomplete, missing %s" % (where, ", ".join(missing)),
            "restore the CA from backup, or point %s at the CA cluster_ca created" % field,
        )


def read_directory(path: str, names, field: str = "ca_path") -> Dict[str, Optional[bytes]]:
    """The CA directory's files among ``names`` (None for those absent), after checking it is a CA."""
    check_ca_directory(path, field)
    return {name: read_bytes(os.path.join(path, name), field) for name in names}


def public_of(files: Mapping[str, Optional[bytes]], where: str, field: str = "ca_path") -> Tuple[str, str]:
    """(issuer PEM: issuing CA then root if different, trust bundle PEM: the root)."""
    check_complete(files, where, field, ("ca.crt", "root.crt"))
    issuing = single_certificate(files["ca.crt"] or b"", "ca.crt", where, field)
    root = single_certificate(files["root.crt"] or b"", "root.crt", where, field)
    return (issuing if issuing == root else issuing + root), root


_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\r?\n?")


def single_certificate(data: bytes, name: str, where: str, field: str) -> str:
    """The one PEM certificate of a CA file, as text; anything more (a second root appended) is refused.

    What is checked (the first certificate, parsed) is then exactly what is handed out.
    """
    text = data.decode("ascii", "replace")
    blocks = _PEM_CERTIFICATE.findall(text)
    if len(blocks) != 1 or text.count("-----BEGIN") != 1 or text.replace(blocks[0], "").strip():
        raise PKIError(
            field,
            "%s of %s must hold exactly one PEM certificate and nothing else (found %d)"
            % (name, where, text.count("-----BEGIN")),
            "restore the CA's files from backup; a certificate added to a CA file would be trusted by every node",
        )
    return blocks[0] if blocks[0].endswith("\n") else blocks[0] + "\n"


def read_public(path: str, field: str = "ca_path") -> Tuple[str, str]:
    """(issuer PEM, trust bundle PEM) of a CA directory whose certificates and ca.json agree.

    Parses X.509 (imports cryptography): for CAs whose passphrase is not at hand (trust_also).
    """
    from .ca_store import DirectoryStore, public_in

    return public_in(DirectoryStore(path, field))


# The stamp that lets a rerun skip X.509 parsing: a MAC, keyed by the CA passphrase, over the
# hashes of the CA files a full check (ca_store.check_consistent) found to belong together.
STAMP = ".verified.json"
STAMPED = ("ca.crt", "root.crt", "ca.key", "ca.json")
_STAMP_ROUNDS = 4096  # at least what protects ca.key itself (PKCS#8 PBKDF2, 2048)


def _stamp_mac(files: Mapping[str, Optional[bytes]], passphrase: str) -> str:
    digest = hashlib.sha256()
    for name in STAMPED:
        data = files.get(name)
        digest.update(b"%s:%d:" % (name.encode(), -1 if data is None else len(data)))
        digest.update(hashlib.sha256(data or b"").digest())
    key = hashlib.pbkdf2_hmac("sha256", passphrase.encode("utf-8"), b"securebydefault.pki/ca-stamp/v1", _STAMP_ROUNDS)
    return hmac.new(key, digest.digest(), hashlib.sha256).hexdigest()


def verified_public(
    path: str, passphrase: Optional[str], field: str = "ca_path", write_stamp: bool = True
) -> Tuple[str, str]:
    """(issuer PEM, trust bundle PEM) of a CA directory whose files were checked against each other.

    The full check (root <-> intermediate <-> decrypted key <-> ca.json) runs whenever the
    files differ from those the last full check stamped; the stamp is a MAC keyed by the CA
    passphrase, so whoever swaps a file cannot write a stamp for it. A CA without a passphrase
    is checked in full on every call.
    """
    files = read_directory(path, STAMPED + (STAMP,), field)
    public = public_of(files, path, field)
    if passphrase:
        mac = _stamp_mac(files, passphrase)
        try:
            stamped = json.loads((files.get(STAMP) or b"{}").decode("utf-8")).get("mac", "")
        except (ValueError, AttributeError):
            stamped = ""
        if isinstance(stamped, str) and hmac.compare_digest(stamped, mac):
            return public
    from .ca_store import load_ca_from

    load_ca_from(files, path, passphrase, field, check=False)
    if passphrase and write_stamp:
        atomic_write(
            FileSpec(os.path.join(path, STAMP), 0o600),
            (json.dumps({"mac": _stamp_mac(files, passphrase)}) + "\n").encode("ascii"),
        )
    return public


def metadata_of(data: Optional[bytes], where: str, field: str = "ca_path") -> Dict:
    """ca.json: what the CA was created with and its signing policy ({} when absent)."""
    if data is None:
        return {}
    try:
        meta = json.loads(data.decode("utf-8"))
    except ValueError:
        raise PKIError(field, "ca.json of %s is not valid JSON" % where, "restore it from backup") from None
    problem = _metadata_problem(meta)
    if problem:
        raise PKIError(
            field,
            "ca.json of %s is not what cluster_ca writes: %s" % (where, problem),
            "restore ca.json from backup; never edit it by hand",
        ) from None
    return meta


def _metadata_problem(meta) -> Optional[str]:
    if not isinstance(meta, dict):
        return "not a JSON object"
    policy = meta.get("policy", {})
    if not isinstance(policy, dict):
        return "policy is not an object"
    limit = policy.get("max_leaf_validity", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_DURATION_SECONDS:
        return "policy.max_leaf_validity is not a number of seconds"
    if not isinstance(policy.get("allow_wildcard", False), bool):
        return "policy.allow_wildcard is not true or false"
    if "not_after" in meta:
        try:
            parse_isoformat(meta["not_after"])
        except (TypeError, ValueError, AttributeError):
            return "not_after is not a timestamp"
    for key in ("common_name", "key"):
        if key in meta and not isinstance(meta[key], str):
            return "%s is not a string" % key
    return None


def read_metadata(path: str, field: str = "ca_path") -> Dict:
    return metadata_of(read_bytes(os.path.join(path, "ca.json"), field), path, field)


def read_policy(path: str, field: str = "ca_path") -> Dict:
    """The CA's signing policy and expiry from ca.json ({} for a CA without one)."""
    return policy_of(read_metadata(path, field))


def policy_of(meta: Dict) -> Dict:
    policy = dict(meta.get("policy") or {})
    if meta.get("not_after"):
        policy["not_after"] = meta["not_after"]
    return policy


def check_policy(
    policy: Dict,
    valid_for: datetime.timedelta,
    allow_wildcard: bool,
    now: datetime.datetime,
    field: str = "ca_path",
    renew_before: Optional[datetime.timedelta] = None,
) -> None:
    """What ca.json lets us refuse before the node is touched; the CA re-checks all of it when signing."""
    not_after = policy.get("not_after")
    if not_after:
        if parse_isoformat(not_after) <= now:
            raise PKIError(
                field,
                "CA certificate expired on %s" % not_after,
                "create a new CA (cluster_ca with a new path, or rotate the CA) and re-issue",
            )
        if renew_before is not None and parse_isoformat(not_after) - now <= renew_before:
            raise PKIError(
                "renew_before",
                "the CA expires on %s, within renew_before: every certificate it signs "
                "would be due for renewal at once, and every run would re-issue it" % not_after,
                "rotate the CA (securebydefault.pki.ca_rotation) now, or shorten renew_before",
            )
    limit = policy.get("max_leaf_validity")
    if limit is not None and valid_for.total_seconds() > int(limit):
        raise PKIError(
            "valid_for",
            "%ds exceeds the CA's maximum leaf validity of %ds" % (valid_for.total_seconds(), int(limit)),
            "shorten valid_for, or raise max_leaf_validity on the CA",
        )
    if allow_wildcard and not policy.get("allow_wildcard", False):
        raise PKIError(
            "allow_wildcard",
            "the CA's policy refuses wildcard names",
            "name each host explicitly, or create the CA with allow_wildcard: true",
        )
