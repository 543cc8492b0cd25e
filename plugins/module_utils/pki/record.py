# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The issuance record: what node_certificate installed, so a rerun can answer without parsing X.509.

Written beside the certificate as ``<name>.issued.json`` (mode of the key) after every
issuance. It holds SHA-256 hashes of the key, certificate, chain and issuer as installed,
plus the names, subject, usages, key type and expiry of the certificate, the subject that was
asked for (``requested_subject``, None for the default one) and the inventory host it
was issued to. A rerun trusts it only while every hash still matches the files on disk and
the issuer sent now; any edit, any doubt, and the full check with ``cryptography`` runs
instead. Standard library only: this is the path that keeps a run with nothing due close to
the cost of a bare module call.

The record is authenticated: an HMAC-SHA256 over its content, keyed by ``.issued.key`` in
the same directory (32 random bytes, made by this module, mode 0600, owned by the user the
module runs as). Whoever can write the certificate directory but is not that user (a service
account given the files with ``owner``, a local user) cannot read the key, and a key file
they replace is not owned by the module's user, so a forged record (say a foreign CA's
certificate with a record edited to match) is never believed: the full check runs and finds
the foreign issuer.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import stat
from typing import Any, Dict, Optional, Sequence

from .files import FileSpec, atomic_write, read_bytes
from .timeutil import parse_isoformat

# 3: the subject (the certificate's, and the one asked for); older records are not believed, the full check
# runs once and writes a new one
FORMAT = 3
MAC_KEY = ".issued.key"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> Optional[str]:
    try:
        data = read_bytes(path)
    except Exception:  # a link or a directory where a file should be: no hash, so no fast path
        return None
    return None if data is None else sha256_bytes(data)


def issuer_digest(issuer_pem: str) -> str:
    return sha256_bytes(issuer_pem.strip().replace("\r\n", "\n").encode("ascii", "replace"))


def record_path(cert_path: str) -> str:
    base = cert_path[:-4] if cert_path.endswith(".crt") else cert_path
    return base + ".issued.json"


def _mac_key_path(cert_path: str) -> str:
    return os.path.join(os.path.dirname(cert_path), MAC_KEY)


def mac_key(cert_path: str, create: bool = False, dir_owner: int = -1) -> Optional[bytes]:
    """The record key of the certificate's directory, if it is ours (0600, our uid); made anew when asked."""
    path = _mac_key_path(cert_path)
    try:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o600:
            data = read_bytes(path)
            if data is not None and len(data) == 32:
                return data
    except Exception:  # absent, unreadable, or a link planted there: not ours
        pass
    if not create:
        return None
    key = os.urandom(32)
    atomic_write(FileSpec(path, 0o600), key, dir_owner)  # replaces whatever was there, never through a link
    return key


def _mac(key: bytes, data: Dict) -> str:
    body = json.dumps({k: v for k, v in data.items() if k != "mac"}, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()


def build(
    *,
    cert_path: str,
    cert_data: bytes,
    key_data: bytes,
    chain_data: Optional[bytes],
    issuer_pem: str,
    names: Sequence[str],
    usages: Sequence[str],
    key: str,
    not_after: str,
    serial: str,
    fingerprint: str,
    issuer: str,
    host: str = "",
    key_encrypted: bool = False,
    dir_owner: int = -1,
    subject: str = "",
    requested_subject: Optional[Dict[str, Any]] = None,
) -> Dict:
    """The record of what was checked or installed, authenticated with the directory's record key.

    The hashes are of the bytes that were checked (or written), never of whatever is on disk by the
    time the record is written: a file swapped in between does not get a record.
    """
    data = {
        "format": FORMAT,
        "cert_sha256": sha256_bytes(cert_data),
        "key_sha256": sha256_bytes(key_data),
        "chain_sha256": sha256_bytes(chain_data) if chain_data is not None else None,
        "issuer_sha256": issuer_digest(issuer_pem),
        "names": list(names),
        "subject": subject,
        "requested_subject": requested_subject,
        "usages": sorted(usages),
        "key": key,
        "not_after": not_after,
        "serial": serial,
        "fingerprint": fingerprint,
        "issuer": issuer,
        "host": host,
        "key_encrypted": bool(key_encrypted),
    }
    data["mac"] = _mac(mac_key(cert_path, create=True, dir_owner=dir_owner) or b"", data)
    return data


def load(cert_path: str, authenticated: bool = True) -> Optional[Dict]:
    """The record beside ``cert_path``; None when absent, unreadable or (by default) not authenticated."""
    try:
        data = json.loads((read_bytes(record_path(cert_path)) or b"").decode("utf-8"))
    except Exception:  # absent, a link, not JSON: no record
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    if authenticated:
        key = mac_key(cert_path)
        if key is None or not isinstance(data.get("mac"), str) or not hmac.compare_digest(data["mac"], _mac(key, data)):
            return None
    return data


def _attributes_ok(path: str, mode: int, uid: int, gid: int) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(st.st_mode)
        and stat.S_IMODE(st.st_mode) == mode
        and (uid == -1 or st.st_uid == uid)
        and (gid == -1 or st.st_gid == gid)
    )


def still_valid(
    record: Optional[Dict],
    *,
    cert_path: str,
    key_path: str,
    chain_path: Optional[str],
    bundle_path: Optional[str],
    bundle_pem: str,
    issuer_pem: str,
    names: Sequence[str],
    usages: Sequence[str],
    key: str,
    renew_before: datetime.timedelta,
    modes: Dict[str, int],
    uid: int,
    gid: int,
    now: datetime.datetime,
    host: str = "",
    key_encrypted: bool = False,
    requested_subject: Optional[Dict[str, Any]] = None,
) -> bool:
    """True only if the (authenticated) record says the files are exactly what was installed and nothing is due."""
    if not record:
        return False
    if record.get("host", "") != host or bool(record.get("key_encrypted")) != bool(key_encrypted):
        return False
    try:
        not_after = parse_isoformat(record["not_after"])
    except (KeyError, TypeError, ValueError):
        return False
    if not_after - now <= renew_before:
        return False
    if (
        record.get("names") != list(names)
        or record.get("usages") != sorted(usages)
        or record.get("requested_subject") != requested_subject
        or record.get("key") != key
        or record.get("issuer_sha256") != issuer_digest(issuer_pem)
    ):
        return False
    if sha256_file(cert_path) != record.get("cert_sha256") or sha256_file(key_path) != record.get("key_sha256"):
        return False
    if chain_path and sha256_file(chain_path) != record.get("chain_sha256"):
        return False
    if bundle_path:
        try:
            if read_bytes(bundle_path) != bundle_pem.encode("ascii", "replace"):
                return False
        except Exception:  # a link or no file: the full check decides
            return False
    checks = [(key_path, modes["key"]), (cert_path, modes["cert"]), (record_path(cert_path), modes["key"])]
    checks += [(p, modes["cert"]) for p in (chain_path, bundle_path) if p]
    return all(_attributes_ok(path, mode, uid, gid) for path, mode in checks)


def summary(record: Dict) -> Dict:
    return {k: record[k] for k in ("names", "subject", "issuer", "serial", "not_after", "fingerprint") if k in record}
