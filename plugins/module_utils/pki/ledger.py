# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CA's ledger of issued certificates, and the lock that serializes writers of a CA directory.

``ledger.jsonl`` in the CA directory gets one JSON line per certificate signed:
serial, subject, names, not_after, host, issued_at. Lines are appended under an
exclusive ``flock`` on ``<CA>/.lock`` and fsynced, so concurrent playbook runs
and job slices signing with one CA never lose or interleave entries. A line
torn by a killed process (no newline at the end) is skipped by readers and
reported, never rewritten. Standard library only.

A CA kept in a Kubernetes Secret has the same lines under the Secret's
``ledger.jsonl`` key; ``parse`` and ``appended`` work on those bytes, and the
Secret's resourceVersion takes the place of the lock (k8s/ca_secret.py).

A Secret holds at most 1 MiB, so its ledger is compacted whenever it is written
(``compacted``): the entries of certificates that expired more than
``COMPACT_AFTER`` ago go, every other line stays byte for byte. An expired
certificate holds no name (ownership.py) and is never chosen for revocation
(revocation.py), so nothing that decides reads them. What goes is counted in one
summary line per host, ``{"compacted": N, "host": ..., "not_after": <latest>}``:
the ledger still knows the host (revoke by host stays a no-op, not "unknown
host"), and to a reader of an older release it is one more certificate of that
host, expired and without a serial, which it skips like any expired entry. A CA
directory has no size limit and keeps its whole ledger as its audit trail.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from .files import open_nofollow, read_bytes
from .timeutil import isoformat, parse_isoformat

LEDGER = "ledger.jsonl"
LOCK = ".lock"
# The key of a summary line that stands for the compacted entries of one host.
COMPACTED = "compacted"
# An expired certificate's entry stays this long: a peer whose clock lags still takes the certificate
# for a while, so a revoked one stays on the CRL (and can still be revoked by serial) until then.
COMPACT_AFTER = datetime.timedelta(days=1)


@contextlib.contextmanager
def ca_lock(path: str) -> Iterator[None]:
    """Exclusive lock on a CA directory (blocks until the other writer is done)."""
    fd = open_nofollow(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT, "ca_path")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def line_of(entry: Dict) -> bytes:
    return (json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")


def appended(existing: bytes, entry: Dict) -> bytes:
    """The ledger ``existing`` with ``entry`` added (a torn last line stays torn, on a line of its own)."""
    if existing and not existing.endswith(b"\n"):
        existing += b"\n"
    return existing + line_of(entry)


def append(path: str, entry: Dict, check: Optional[Callable[[bytes], None]] = None) -> None:
    """Append ``entry`` under the CA lock; ``check`` sees the ledger first and may refuse (raise)."""
    line = line_of(entry)
    with ca_lock(path):
        fd = open_nofollow(os.path.join(path, LEDGER), os.O_RDWR | os.O_CREAT | os.O_APPEND, "ca_path")
        try:
            existing = b""
            size = os.fstat(fd).st_size
            while len(existing) < size:
                chunk = os.pread(fd, size - len(existing), len(existing))
                if not chunk:
                    break
                existing += chunk
            if check is not None:
                check(existing)
            # a torn line left by a killed writer must not swallow this one
            if existing and not existing.endswith(b"\n"):
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def read(path: str) -> Tuple[List[Dict], List[int]]:
    """(entries, line numbers that could not be read)."""
    return parse(read_bytes(os.path.join(path, LEDGER), "ca_path") or b"")


def parse(data: bytes) -> Tuple[List[Dict], List[int]]:
    """(entries, line numbers that could not be read) of ledger bytes."""
    entries, bad = [], []
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode("utf-8"))
        except ValueError:
            bad.append(number)
            continue
        if isinstance(entry, dict):
            entries.append(entry)
        else:
            bad.append(number)
    return entries, bad


def expired_before(entry: Dict, cutoff: datetime.datetime) -> bool:
    """The entry (ledger or revocation record) is of a certificate that expired at or before ``cutoff``.

    An entry without a readable not_after is held to be unexpired: the safe side, as in ownership.py.
    """
    if COMPACTED in entry:
        return False
    try:
        return parse_isoformat(entry["not_after"]) <= cutoff
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def _summary_of(entry: Dict) -> Optional[Tuple[str, int, datetime.datetime]]:
    """(host, count, latest not_after) of a summary line this module wrote, or None."""
    count, host = entry.get(COMPACTED), entry.get("host", "")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0 or not isinstance(host, str):
        return None
    try:
        return host, count, parse_isoformat(entry["not_after"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def compacted(data: bytes, now: datetime.datetime) -> Tuple[bytes, int]:
    """(the ledger without the entries of certificates expired before now - COMPACT_AFTER, how many went).

    Every other line is kept as it is, in its order, lines that cannot be read included; the
    entries that go are counted in one summary line per host at the top (merged with the summary
    of an earlier compaction). Nothing to drop: the same bytes.
    """
    cutoff = now - COMPACT_AFTER
    kept: List[bytes] = []
    summaries: Dict[str, Tuple[int, datetime.datetime]] = {}
    dropped = 0
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode("utf-8"))
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            summary = _summary_of(entry) if COMPACTED in entry else None
            if summary is None and expired_before(entry, cutoff):
                host = entry.get("host")
                summary = (host if isinstance(host, str) else "", 1, parse_isoformat(entry["not_after"]))
                dropped += 1
            if summary is not None:
                host, count, not_after = summary
                have_count, have_not_after = summaries.get(host, (0, not_after))
                summaries[host] = (have_count + count, max(have_not_after, not_after))
                continue
        kept.append(raw + b"\n")
    if not dropped:
        return data, 0
    lines = [
        line_of({COMPACTED: count, "host": host, "not_after": isoformat(not_after)})
        for host, (count, not_after) in sorted(summaries.items())
    ]
    return b"".join(lines + kept), dropped
