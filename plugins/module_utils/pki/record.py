# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The issuance record: what node_certificate installed, so a rerun can answer without parsing X.509.

Written beside the certificate as ``<name>.issued.json`` (mode of the key) after every
issuance. It holds SHA-256 hashes of the key, certificate, chain and issuer as installed,
plus the names, usages, key type and expiry of the certificate. A rerun trusts it only
while every hash still matches the files on disk and the issuer sent now; any edit, any
doubt, and the full check with ``cryptography`` runs instead. Standard library only: this
is the path that keeps a run with nothing due close to the cost of a bare module call.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
from typing import Dict, Optional, Sequence

from .timeutil import parse_isoformat

FORMAT = 1


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            return sha256_bytes(handle.read())
    except OSError:
        return None


def issuer_digest(issuer_pem: str) -> str:
    return sha256_bytes(issuer_pem.strip().replace("\r\n", "\n").encode("ascii", "replace"))


def record_path(cert_path: str) -> str:
    base = cert_path[:-4] if cert_path.endswith(".crt") else cert_path
    return base + ".issued.json"


def build(*, cert_path: str, key_path: str, chain_path: Optional[str], issuer_pem: str, names: Sequence[str],
          usages: Sequence[str], key: str, not_after: str, serial: str, fingerprint: str, issuer: str) -> Dict:
    return {"format": FORMAT, "cert_sha256": sha256_file(cert_path), "key_sha256": sha256_file(key_path),
            "chain_sha256": sha256_file(chain_path) if chain_path else None,
            "issuer_sha256": issuer_digest(issuer_pem), "names": list(names), "usages": sorted(usages),
            "key": key, "not_after": not_after, "serial": serial, "fingerprint": fingerprint, "issuer": issuer}


def load(cert_path: str) -> Optional[Dict]:
    try:
        with open(record_path(cert_path), "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def _attributes_ok(path: str, mode: int, uid: int, gid: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (stat.S_IMODE(st.st_mode) == mode and (uid == -1 or st.st_uid == uid)
            and (gid == -1 or st.st_gid == gid))


def still_valid(record: Optional[Dict], *, cert_path: str, key_path: str, chain_path: Optional[str],
                bundle_path: Optional[str], bundle_pem: str, issuer_pem: str, names: Sequence[str],
                usages: Sequence[str], key: str, renew_before: datetime.timedelta,
                modes: Dict[str, int], uid: int, gid: int, now: datetime.datetime) -> bool:
    """True only if the files are exactly what was installed and nothing is due."""
    if not record:
        return False
    try:
        not_after = parse_isoformat(record["not_after"])
    except (KeyError, TypeError, ValueError):
        return False
    if not_after - now <= renew_before:
        return False
    if (record.get("names") != list(names) or record.get("usages") != sorted(usages) or record.get("key") != key
            or record.get("issuer_sha256") != issuer_digest(issuer_pem)):
        return False
    if sha256_file(cert_path) != record.get("cert_sha256") or sha256_file(key_path) != record.get("key_sha256"):
        return False
    if chain_path and sha256_file(chain_path) != record.get("chain_sha256"):
        return False
    if bundle_path:
        try:
            with open(bundle_path, "rb") as handle:
                if handle.read() != bundle_pem.encode("ascii", "replace"):
                    return False
        except OSError:
            return False
    checks = [(key_path, modes["key"]), (cert_path, modes["cert"]), (record_path(cert_path), modes["key"])]
    checks += [(p, modes["cert"]) for p in (chain_path, bundle_path) if p]
    return all(_attributes_ok(path, mode, uid, gid) for path, mode in checks)


def summary(record: Dict) -> Dict:
    return {k: record[k] for k in ("names", "issuer", "serial", "not_after", "fingerprint") if k in record}
