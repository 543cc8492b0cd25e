# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two ways this collection writes an object, each in one place.

``ensure``: read, apply server-side, compare what a user manages, diff — for
every object that is applied (Namespaces, ConfigMaps, Issuers, Certificates,
CA Secrets of Issuers). Check mode is the server's dry run.

``write_with_retry``: read, modify, PUT with the resourceVersion read (POST
when absent); on 409 Conflict read again and redo the change, a bounded
number of times — for every Secret whose content depends on what it held
(CA Secrets, keyring Secrets), so a concurrent writer is never overwritten and
never makes the task fail.

Depends on nothing but a ``Kube``-like object (``get``/``apply``/``delete``/
``request``/``check``), so tests run on an in-memory API.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from ..pki.errors import PKIError
from .client import comparable
from .options import DEFAULT_FIELD_MANAGER

# Writes redone after another writer's before the task gives up.
ATTEMPTS = 25
# "not read yet" (None means "read: absent").
UNREAD = object()


@dataclass
class Applied:
    """An object before and after a write (after is None when deleted); ``changed`` by what a user manages."""

    before: Optional[Dict]
    after: Optional[Dict]
    changed: bool

    def diff(self, header: Optional[str] = None, show: Callable[[Optional[Dict]], Any] = comparable) -> Dict:
        """The --diff entry: ``show`` of both sides (by default spec/data, labels and annotations)."""
        before, after = show(self.before), show(self.after)
        out = {"before": {} if before is None else before, "after": {} if after is None else after}
        if header:
            out.update(before_header=header, after_header=header)
        return out


def ensure(kube, path: str, body: Dict, params: Dict, dry_run: bool, field: str = "name",
           force: Optional[bool] = None, before: Any = UNREAD, skip_unchanged: bool = False) -> Applied:
    """Apply ``body`` at ``path`` server-side (field manager and force from the module options) and compare.

    ``before``: the object as already read by the caller (None: absent), so it is not read twice.
    ``skip_unchanged``: no request at all when ``before`` already is ``body`` (what a user manages of it, see
    ``comparable``) and this field manager applied it: the apply would change nothing (a rerun of many objects).
    """
    if before is UNREAD:
        before = kube.get(path)
    manager = params.get("field_manager") or DEFAULT_FIELD_MANAGER
    if skip_unchanged and before is not None and comparable(before) == comparable(body) and applied_by(before, manager):
        return Applied(before, before, False)
    after = kube.apply(path, body, manager, dry_run, bool(params.get("force_conflicts")) if force is None else force,
                       field=field)
    return Applied(before, after, before is None or comparable(before) != comparable(after))


def applied_by(obj: Dict, manager: str) -> bool:
    """Whether ``manager`` holds fields of ``obj`` by a server-side apply (its managedFields)."""
    fields = (obj.get("metadata") or {}).get("managedFields") or []
    return any(isinstance(f, dict) and f.get("manager") == manager and f.get("operation") == "Apply" for f in fields)


def delete(kube, path: str, dry_run: bool) -> Applied:
    """Delete the object at ``path`` if it is there."""
    before = kube.get(path)
    if before is None:
        return Applied(None, None, False)
    kube.delete(path, dry_run)
    return Applied(before, None, True)


@dataclass
class Written:
    """The outcome of ``write_with_retry``: the object as stored (or as read, if nothing was written)."""

    obj: Optional[Dict]
    written: bool
    conflicts: int


def collection_path(path: str) -> str:
    """.../secrets/name -> .../secrets (where a POST creates the object)."""
    return path.rsplit("/", 1)[0]


def write_with_retry(kube, path: str, change: Callable[[Optional[Dict]], Optional[Dict]], dry_run: bool,
                     field: str, where: str, read: Optional[Callable[[], Optional[Dict]]] = None,
                     first: Any = UNREAD, attempts: int = ATTEMPTS) -> Written:
    """Read, ``change(current)`` -> the whole new object or None (nothing to write), write it conditionally.

    An existing object is PUT with the resourceVersion read, an absent one POSTed; a 409 (someone wrote or
    created it meanwhile) starts again from a fresh read. ``read`` replaces ``kube.get(path)`` (e.g. to check
    the object is ours); ``first`` is an object the caller already read, tried before reading again.
    """
    read = read or (lambda: kube.get(path))
    query = {"dryRun": "All"} if dry_run else None
    conflicts = 0
    for attempt in range(attempts):
        current = read() if first is UNREAD else first
        first = UNREAD
        body = change(current)
        if body is None:
            return Written(current, False, conflicts)
        body = json.loads(json.dumps(body))
        metadata = body.setdefault("metadata", {})
        metadata.pop("managedFields", None)
        if current is None:
            metadata.pop("resourceVersion", None)
            status, reply = kube.request("POST", collection_path(path), body=body, query=query)
        else:
            # the precondition: the write fails with 409 if the object changed since it was read
            metadata["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
            status, reply = kube.request("PUT", path, body=body, query=query)
        if status != 409:
            if status == 404 and current is None:
                raise PKIError(field, "cannot create %s: %s" % (where, (reply or {}).get("message")),
                               "create its namespace first")
            kube.check(status, reply, "write", path, field)
            return Written(reply, True, conflicts)
        conflicts += 1
        time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # let the other writer finish
    raise PKIError(field, "%s was changed by other writers %d times in a row" % (where, attempts),
                   "run the task again; it starts from the object as it is then")
