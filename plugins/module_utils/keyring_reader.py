# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a keyring (the rotating-secret convention) as a consumer: standard library only.

Copy this one file into a Python service. A keyring is a directory (or a
Kubernetes Secret mounted as a volume) of entries ``<id>.<part>``; the entries
of the id in use end in ``.primary``::

    from keyring_reader import KeyringReader

    keys = KeyringReader("/etc/app/session-keys", reload_every=30)
    token = sign(keys.current().primary["key"])          # sign/encrypt with the primary
    for key_id, parts in keys.current().all():            # verify/decrypt with any id
        ...

Dot files (the writer's metadata and temp files, kubelet's ``..data``) are
ignored. A directory caught mid-change, or in an invalid state, keeps the last
good snapshot (``KeyringReader``) or raises ``KeyringError`` (``load``).
"""
from __future__ import annotations

import os
import re
import threading
import time

ENTRY = re.compile(r"^(r[1-9][0-9]*)\.([a-z]+)(\.primary)?$")


class KeyringError(Exception):
    """The directory does not hold a valid keyring."""


class Snapshot:
    """One consistent view: the primary id, and every id with its parts."""

    def __init__(self, primary_id, keys):
        self.primary_id = primary_id
        self.keys = keys  # id -> {part: bytes}

    @property
    def primary(self):
        return self.keys[self.primary_id]

    def all(self):
        """Every id, primary first, then newest to oldest."""
        order = sorted(self.keys, key=lambda k: (k != self.primary_id, -int(k[1:])))
        return [(key_id, self.keys[key_id]) for key_id in order]

    def get(self, key_id):
        return self.keys.get(key_id)


def load(path):
    """Read every entry under ``path``; raise KeyringError unless it is a valid keyring."""
    keys, primaries, parts_of = {}, set(), {}
    try:
        names = os.listdir(path)
    except OSError as exc:
        raise KeyringError("cannot read keyring %s: %s" % (path, exc)) from None
    for name in names:
        if name.startswith("."):
            continue
        match = ENTRY.match(name)
        if not match:
            continue  # not ours (kubelet's symlinks are dot files; anything else is ignored)
        key_id, part, primary = match.group(1), match.group(2), bool(match.group(3))
        try:
            with open(os.path.join(path, name), "rb") as handle:
                keys.setdefault(key_id, {})[part] = handle.read()
        except OSError as exc:
            raise KeyringError("cannot read %s: %s" % (os.path.join(path, name), exc)) from None
        parts_of.setdefault(key_id, set()).add(part)
        if primary:
            primaries.add(key_id)
    if len(primaries) != 1:
        raise KeyringError("keyring %s has %d primary ids; expected exactly one" % (path, len(primaries)))
    expected = parts_of[next(iter(primaries))]
    for key_id, parts in parts_of.items():
        if parts != expected:
            raise KeyringError("keyring %s: %s has parts %s, expected %s"
                               % (path, key_id, sorted(parts), sorted(expected)))
    return Snapshot(next(iter(primaries)), keys)


class KeyringReader:
    """A keyring reread at most every ``reload_every`` seconds; keeps the last good snapshot."""

    def __init__(self, path, reload_every=30.0):
        self.path = path
        self.reload_every = reload_every
        self._lock = threading.Lock()
        self._snapshot = load(path)  # the first read must succeed
        self._loaded = time.monotonic()
        self.last_error = None

    def current(self):
        with self._lock:
            if time.monotonic() - self._loaded >= self.reload_every:
                self._loaded = time.monotonic()
                try:
                    self._snapshot = load(self.path)
                    self.last_error = None
                except KeyringError as exc:
                    self.last_error = exc
            return self._snapshot
