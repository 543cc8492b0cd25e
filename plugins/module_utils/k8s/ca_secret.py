# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A CA kept in one Kubernetes Secret, for controllers that do not last (AWX/Tower execution environments).

The Secret holds the files a CA directory would hold, under the same names
(``ca.crt``, ``ca.key``, ``root.crt``, ``root.key``, ``ca.json``,
``ledger.jsonl``, ``revoked.json``, ``crl.pem``); ``ca.key`` stays encrypted
with the CA passphrase, so reading the Secret is not enough to sign. The key
is decrypted in memory by the task that signs and never written to disk.

Writers are serialized by the API server instead of a file lock: every write
is a PUT carrying the resourceVersion that was read, so a concurrent writer
makes it fail with 409 Conflict and it is redone from the Secret as it is now.
Two job slices that sign at once therefore both land in the ledger, and a
revocation never loses a signature recorded meanwhile. A Secret is written
whole or not at all, so a killed run cannot tear it. Creation is a POST,
which fails if another run created the CA first; that CA is then used.

Secrets are limited to 1 MiB (MAX_SECRET_SIZE, the sum of the data values) and a
ledger line takes ~300 bytes, so the ledger is compacted at every signature: the
entries of certificates that expired more than a day ago go (ledger.compacted), as
do their revocations when a revoke run publishes the CRL (revocation.plan). The
limit then bounds the certificates unexpired at once (about 3000), not the
signatures ever made. A write that would still exceed it fails before it is sent,
naming ``ca_secret`` and the fix (shorter validity, or a CA directory, which has
no limit and keeps its whole ledger).
"""
from __future__ import annotations

import base64
from typing import Dict, Iterable, Optional, Tuple

from ..pki import ledger
from ..pki.ca_store import CA_FILES, Change
from ..pki.errors import PKIError
from ..pki.timeutil import utcnow
from .client import Kube, namespaced_path, secret_where
from .labels import CA_LABEL, MANAGED_BY
from .objects import ATTEMPTS, UNREAD, write_with_retry

__all__ = ["ATTEMPTS", "CA_LABEL", "MAX_SECRET_SIZE", "SecretStore"]

# What the API server accepts in one Secret: the decoded data values together (corev1.MaxSecretSize).
MAX_SECRET_SIZE = 1024 * 1024


class SecretStore:
    """The CA in Secret ``namespace``/``name``; same interface as ca_store.DirectoryStore."""

    size_limit = MAX_SECRET_SIZE

    def __init__(self, kube: Kube, namespace: str, name: str, field: str = "ca_secret",
                 dry_run: bool = False) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.field = field
        self.dry_run = dry_run
        self.where = secret_where(namespace, name)
        self.path = namespaced_path("v1", "secrets", namespace, name)
        self.conflicts = 0  # how many writes were redone after another writer's
        # The Secret as this task last read it: an update tries it first instead of reading again
        # (signing reads the CA, then records), and a 409 says when it is stale.
        self._last_read: Optional[Dict] = None

    # -- reading
    def _get(self) -> Optional[Dict]:
        secret = self.kube.get(self.path)
        if secret is not None and CA_LABEL not in ((secret.get("metadata") or {}).get("labels") or {}):
            raise PKIError(self.field, "%s exists but is not a CA this collection keeps (no label %s)"
                           % (self.where, CA_LABEL),
                           "choose another Secret name; an existing Secret is never taken over")
        return secret

    def _files(self, secret: Dict, names: Iterable[str]) -> Dict[str, Optional[bytes]]:
        data = secret.get("data") or {}
        try:
            return {n: (base64.b64decode(data[n]) if n in data else None) for n in names}
        except ValueError:
            raise PKIError(self.field, "%s holds data that is not base64" % self.where,
                           "restore the Secret from backup") from None

    def exists(self) -> bool:
        return self._get() is not None

    def read(self, names: Iterable[str] = CA_FILES) -> Dict[str, Optional[bytes]]:
        return self._read(names)[0]

    def _read(self, names: Iterable[str]) -> Tuple[Dict[str, Optional[bytes]], Dict]:
        secret = self._get()
        if secret is None:
            raise PKIError(self.field, "there is no CA in %s" % self.where,
                           "create it first (cluster_ca with secret), or fix the namespace/name")
        self._last_read = secret
        return self._files(secret, names), secret

    # -- writing (the namespace and RBAC are checked by the API server, a dry run in check mode)
    def create(self, files: Dict[str, bytes]) -> bool:
        """POST a new Secret; False when another run created it first (load that one instead)."""
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "labels": dict(MANAGED_BY, **{CA_LABEL: "true"})},
                "data": {n: base64.b64encode(v).decode("ascii") for n, v in files.items()}}
        status, reply = self.kube.request("POST", namespaced_path("v1", "secrets", self.namespace), body=body,
                                          query={"dryRun": "All"} if self.dry_run else None)
        if status == 409:
            return False
        if status == 404:
            raise PKIError(self.field, "cannot create %s: %s" % (self.where, (reply or {}).get("message")),
                           "create the namespace %s first" % self.namespace)
        self.kube.check(status, reply, "create", self.path, self.field)
        return True

    def update(self, change: Change, names: Iterable[str] = CA_FILES) -> Dict[str, bytes]:
        """Read, apply ``change``, PUT with the resourceVersion read; on 409 start again from the new Secret."""
        names = tuple(names)
        written: Dict[str, bytes] = {}

        def modify(secret: Optional[Dict]) -> Optional[Dict]:
            nonlocal written
            if secret is None:
                raise PKIError(self.field, "there is no CA in %s" % self.where,
                               "create it first (cluster_ca with secret), or fix the namespace/name")
            written = change(self._files(secret, names))
            if not written:
                return None
            body = dict(secret)
            body["data"] = dict(secret.get("data") or {})
            for name, value in written.items():
                body["data"][name] = base64.b64encode(value).decode("ascii")
            self._check_size(body["data"])
            return body

        first, self._last_read = (self._last_read if self._last_read is not None else UNREAD), None
        outcome = write_with_retry(self.kube, self.path, modify, self.dry_run, self.field, self.where,
                                   read=self._get, first=first, attempts=ATTEMPTS)
        self.conflicts += outcome.conflicts
        if outcome.written:
            self._last_read = None if self.dry_run else outcome.obj  # the Secret as it is now
        return written

    def _check_size(self, data: Dict[str, str]) -> None:
        """Refuse a Secret the API server would refuse, before it is sent, saying what fills it."""
        # the decoded size of canonical base64, without decoding it
        sizes = {name: len(value) * 3 // 4 - value[-2:].count("=") for name, value in data.items()}
        total = sum(sizes.values())
        if total <= self.size_limit:
            return
        largest = sorted(sizes.items(), key=lambda item: -item[1])[:3]
        raise PKIError(self.field,
                       "%s would hold %d bytes, more than the %d bytes the API server accepts in a Secret (%s)"
                       % (self.where, total, self.size_limit, ", ".join("%s %d" % item for item in largest)),
                       "the ledger and the revocation record keep only certificates that are unexpired or expired "
                       "for less than a day, so fewer may be unexpired at once: sign them for a shorter valid_for, "
                       "split the hosts over several CAs, or keep this CA in a directory on a CA host (ca_path), "
                       "which has no size limit")

    def record(self, entry: Dict, check=None) -> None:
        """Append a signature to the Secret's compacted ledger (re-appended to the newer ledger after a conflict).

        ``check(ledger, revoked.json)`` sees the Secret as read for each attempt and may refuse.
        The entries of certificates that expired more than ledger.COMPACT_AFTER ago are dropped
        in the same write (ledger.compacted), so the ledger holds what is unexpired, not every
        signature ever made.
        """
        def change(files):
            existing = files.get(ledger.LEDGER) or b""
            if check is not None:
                check(existing, files.get("revoked.json"))
            return {ledger.LEDGER: ledger.appended(ledger.compacted(existing, utcnow())[0], entry)}

        self.update(change, (ledger.LEDGER, "revoked.json"))
