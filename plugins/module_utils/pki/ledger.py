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
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from .files import open_nofollow, read_bytes

LEDGER = "ledger.jsonl"
LOCK = ".lock"


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
