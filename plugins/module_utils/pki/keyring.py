# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rotating-secret convention (keyring) as a state machine.

A keyring is a set of entries (files in a directory, or keys of one Kubernetes
Secret) named ``<id>.<part>``; the entries of the id in use carry the suffix
``.primary``. Ids are ``r1``, ``r2``, ... Rotation moves through

    single    r1.key.primary
    added     r1.key.primary, r2.key          (r2 distributed, not yet used)
    promoted  r1.key, r2.key.primary          (r2 in use, r1 still accepted)
    single    r2.key.primary                  (r1 retired)

This module is pure: it reads a mapping of entry names to bytes plus the
metadata (when each stage was reached) and returns the next mapping and
metadata. Storage back ends (files, Secrets) apply the result. The entries
are the truth; metadata only carries times, so a lost or stale metadata
record restarts the gates (later, never earlier). Every refusal is a PKIError
naming the option and the fix, raised before anything is written.
"""

from __future__ import annotations

import base64
import datetime
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .errors import PKIError
from .timeutil import isoformat, parse_isoformat, format_duration

KINDS: Dict[str, Tuple[str, ...]] = {
    "symmetric": ("key",),
    "password": ("password",),
    "ec": ("private", "public"),
    "rsa": ("private", "public"),
    "ed25519": ("private", "public"),
}
SECRET_PARTS = ("key", "password", "private")
# The step each stage of a rotation waits for.
NEXT_STEP = {"added": "promote", "promoted": "retire"}
# Kinds made with cryptography; symmetric keys and passwords need only the standard library.
KEY_PAIR_KINDS = ("ec", "rsa", "ed25519")
ENTRY = re.compile(r"^r([1-9][0-9]*)\.([a-z]+)(\.primary)?$")
STAGES = ("empty", "single", "added", "promoted")
META_VERSION = 1
HISTORY = 20


@dataclass
class Keyring:
    """A parsed, valid keyring."""

    kind: str
    ids: Dict[int, Dict[str, bytes]]  # id number -> part -> content
    primary: Optional[int]
    meta: Dict = field(default_factory=dict)

    @property
    def stage(self) -> str:
        if not self.ids:
            return "empty"
        if len(self.ids) == 1:
            return "single"
        other = [n for n in self.ids if n != self.primary][0]
        return "added" if other > self.primary else "promoted"

    @property
    def pending(self) -> Optional[int]:
        """The id added but not yet primary (stage added)."""
        others = [n for n in self.ids if n != self.primary]
        return others[0] if others and others[0] > self.primary else None

    @property
    def previous(self) -> Optional[int]:
        """The id still accepted after a promotion (stage promoted)."""
        others = [n for n in self.ids if n != self.primary]
        return others[0] if others and others[0] < self.primary else None

    def entries(self) -> Dict[str, bytes]:
        out = {}
        for number, parts in self.ids.items():
            suffix = ".primary" if number == self.primary else ""
            for part, content in parts.items():
                out["r%d.%s%s" % (number, part, suffix)] = content
        return out

    def names(self) -> List[str]:
        return sorted(self.entries())


def entry_name(number: int, part: str, primary: bool) -> str:
    return "r%d.%s%s" % (number, part, ".primary" if primary else "")


def parse(entries: Dict[str, bytes], kind: str, meta: Optional[Dict], where: str, field_name: str = "path") -> Keyring:
    """Validate entries against the convention; a hand-edited invalid state is refused, never repaired."""
    if kind not in KINDS:
        raise PKIError("kind", "unknown kind %r" % kind, "use one of %s" % ", ".join(KINDS))
    meta = dict(meta or {})
    recorded = meta.get("kind")
    if entries and recorded and recorded != kind:
        raise PKIError(
            "kind",
            "%s holds a %s keyring, not %s" % (where, recorded, kind),
            "use kind: %s, or another location for the new keyring" % recorded,
        )
    ids: Dict[int, Dict[str, bytes]] = {}
    primary_flags: Dict[int, set] = {}
    for name, content in entries.items():
        match = ENTRY.match(name)
        if not match:
            raise PKIError(
                field_name,
                "%s holds %r, which is not <id>.<part>[.primary]" % (where, name),
                "remove or move it; a keyring holds only its own entries (e.g. r1.key.primary)",
            )
        number, part, primary = int(match.group(1)), match.group(2), bool(match.group(3))
        if part not in KINDS[kind]:
            raise PKIError(
                field_name,
                "%s: %r is not a part of a %s keyring (parts: %s)" % (where, name, kind, ", ".join(KINDS[kind])),
                "remove it or fix kind",
            )
        if part in ids.get(number, {}):
            raise PKIError(
                field_name,
                "%s has both r%d.%s and r%d.%s.primary" % (where, number, part, number, part),
                "keep exactly one of them (the .primary one if r%d is in use)" % number,
            )
        ids.setdefault(number, {})[part] = content
        primary_flags.setdefault(number, set()).add(primary)
    for number, parts in ids.items():
        missing = [p for p in KINDS[kind] if p not in parts]
        if missing:
            raise PKIError(
                field_name,
                "%s: r%d lacks its %s" % (where, number, ", ".join(missing)),
                "restore the missing part from backup, or remove every r%d entry" % number,
            )
        if len(primary_flags[number]) != 1:
            raise PKIError(
                field_name,
                "%s: some parts of r%d are marked .primary and others are not" % (where, number),
                "mark all parts of the id in use .primary, and no others",
            )
        if not parts[KINDS[kind][0]]:
            raise PKIError(
                field_name, "%s: r%d.%s is empty" % (where, number, KINDS[kind][0]), "restore it from backup"
            )
    primaries = [n for n, flags in primary_flags.items() if True in flags]
    if ids and len(primaries) != 1:
        raise PKIError(
            field_name,
            "%s has %s primary ids (%s); exactly one must be primary"
            % (
                where,
                "no" if not primaries else len(primaries),
                ", ".join("r%d" % n for n in sorted(primaries)) or "none",
            ),
            "rename the entries so that exactly the id in use ends in .primary",
        )
    if len(ids) > 2:
        raise PKIError(
            field_name,
            "%s holds %d ids (%s); a keyring holds at most two"
            % (where, len(ids), ", ".join("r%d" % n for n in sorted(ids))),
            "retire the ids no consumer uses any more",
        )
    return Keyring(kind=kind, ids=ids, primary=primaries[0] if primaries else None, meta=meta)


# ---------------------------------------------------------------- material


def generate(kind: str, size: Optional[int], encoding: str) -> Dict[str, bytes]:
    """New material for one id."""
    if kind == "symmetric":
        size = size or 32
        if size < 16 or size > 1024:
            raise PKIError(
                "size", "a symmetric key of %d bytes is refused" % size, "use 16 to 1024 bytes (32 = 256 bits)"
            )
        raw = os.urandom(size)
        if encoding == "base64":
            raw = base64.b64encode(raw) + b"\n"
        elif encoding == "hex":
            raw = raw.hex().encode() + b"\n"
        return {"key": raw}
    if kind == "password":
        length = size or 32
        if length < 16 or length > 1024:
            raise PKIError("size", "a password of %d characters is refused" % length, "use 16 to 1024 characters")
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        return {"password": "".join(secrets.choice(alphabet) for _index in range(length)).encode()}
    # key pairs: imported here so symmetric keys and passwords need no cryptography
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # pylint: disable=import-outside-toplevel

    if kind == "ec":
        curves = {256: ec.SECP256R1, 384: ec.SECP384R1, 521: ec.SECP521R1}
        if (size or 256) not in curves:
            raise PKIError("size", "EC size %s is not 256, 384 or 521" % size, "use 256 or 384")
        key = ec.generate_private_key(curves[size or 256]())
    elif kind == "rsa":
        size = size or 3072
        if size < 2048 or size > 8192 or size % 256:
            raise PKIError("size", "RSA size %d is refused" % size, "use 3072 or 4096 (2048 at least)")
        key = rsa.generate_private_key(public_exponent=65537, key_size=size)
    else:
        if size:
            raise PKIError("size", "ed25519 keys have no size", "remove size")
        key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"private": private, "public": public}


# ------------------------------------------------------------------ stages


@dataclass
class Gates:
    promote_after: datetime.timedelta = datetime.timedelta(0)
    retire_after: datetime.timedelta = datetime.timedelta(0)
    rotate_every: Optional[datetime.timedelta] = None


@dataclass
class Step:
    action: str  # create, add, promote, retire
    id: str
    at: str


@dataclass
class Plan:
    """Where a request leads: the new keyring, the steps taken, and what comes next."""

    before: Keyring
    after: Keyring
    steps: List[Step]
    states: List[Keyring]  # the keyring after each step, for back ends that apply step by step
    next_action: Optional[str]
    next_due: Optional[str]

    @property
    def changed(self) -> bool:
        return bool(self.steps)


def stage_time(ring: Keyring, stage: str, now: datetime.datetime) -> datetime.datetime:
    """When the keyring reached its current stage; unknown (lost metadata) counts as now."""
    times = ring.meta.get("stage_times") or {}
    value = times.get(stage)
    if value and ring.meta.get("stage") == stage:
        try:
            return parse_isoformat(value)
        except ValueError:
            pass
    return now


def _with_stage(ring: Keyring, stage: str, now: datetime.datetime, step: Step) -> Keyring:
    meta = dict(ring.meta)
    meta["version"] = META_VERSION
    meta["kind"] = ring.kind
    times = dict(meta.get("stage_times") or {})
    times[stage] = isoformat(now)
    meta["stage_times"] = times
    meta["stage"] = stage
    meta["primary"] = "r%d" % ring.primary if ring.primary else None
    history = list(meta.get("history") or [])
    history.append({"action": step.action, "id": step.id, "at": step.at})
    meta["history"] = history[-HISTORY:]
    return Keyring(kind=ring.kind, ids=ring.ids, primary=ring.primary, meta=meta)


def _refresh_meta(ring: Keyring, now: datetime.datetime) -> Keyring:
    """Metadata that disagrees with the entries (lost, stale, edited) restarts the current stage's clock."""
    stage = ring.stage
    if (
        ring.meta.get("stage") == stage
        and (ring.meta.get("stage_times") or {}).get(stage)
        and ring.meta.get("primary") == ("r%d" % ring.primary if ring.primary else None)
    ):
        return ring
    meta = dict(ring.meta)
    meta.update(
        version=META_VERSION, kind=ring.kind, stage=stage, primary="r%d" % ring.primary if ring.primary else None
    )
    times = dict(meta.get("stage_times") or {})
    times[stage] = isoformat(now)
    meta["stage_times"] = times
    return Keyring(kind=ring.kind, ids=ring.ids, primary=ring.primary, meta=meta)


def create(ring: Keyring, material: Dict[str, bytes], now: datetime.datetime) -> Tuple[Keyring, Step]:
    step = Step("create", "r1", isoformat(now))
    return _with_stage(Keyring(ring.kind, {1: material}, 1, ring.meta), "single", now, step), step


def add(ring: Keyring, material: Dict[str, bytes], now: datetime.datetime) -> Tuple[Keyring, Step]:
    if ring.stage != "single":
        raise PKIError(
            "state",
            "cannot add a key in stage %s (%s)" % (ring.stage, ", ".join(ring.names())),
            "finish the rotation in progress first (state: promoted, then retired)",
        )
    number = max(ring.ids) + 1
    ids = dict(ring.ids)
    ids[number] = material
    step = Step("add", "r%d" % number, isoformat(now))
    return _with_stage(Keyring(ring.kind, ids, ring.primary, ring.meta), "added", now, step), step


def promote(ring: Keyring, gates: Gates, now: datetime.datetime, force: bool = False) -> Tuple[Keyring, Step]:
    if ring.stage != "added":
        if ring.stage == "single":
            raise PKIError(
                "state",
                "there is no pending key to promote (only r%d, already primary)" % ring.primary,
                "add a key first (state: added), or use state: rotated",
            )
        raise PKIError("state", "cannot promote in stage %s" % ring.stage, "use state: rotated")
    since = stage_time(ring, "added", now)
    due = since + gates.promote_after
    if now < due and not force:
        raise PKIError(
            "promote_after",
            "r%d was added at %s; promotion is allowed from %s (in %s)"
            % (ring.pending, isoformat(since), isoformat(due), format_duration(due - now)),
            "wait until then so every consumer has the new key, or set force: true",
        )
    new = ring.pending
    step = Step("promote", "r%d" % new, isoformat(now))
    return _with_stage(Keyring(ring.kind, ring.ids, new, ring.meta), "promoted", now, step), step


def retire(
    ring: Keyring, gates: Gates, now: datetime.datetime, force: bool = False, key_id: Optional[str] = None
) -> Tuple[Keyring, Step]:
    if key_id is not None and ring.primary and key_id == "r%d" % ring.primary:
        raise PKIError(
            "retire_id",
            "%s is the primary key%s; retiring it would leave nothing to use"
            % (key_id, " and the only one" if len(ring.ids) == 1 else ""),
            "rotate first (state: added, promoted), then retire the old id",
        )
    if ring.stage != "promoted":
        if ring.stage == "added":
            raise PKIError(
                "state",
                "r%d is still primary and r%d is not yet promoted; nothing can be retired"
                % (ring.primary, ring.pending),
                "promote first (state: promoted)",
            )
        raise PKIError(
            "state",
            "there is no old key to retire (only r%d)" % ring.primary,
            "nothing to do; start a rotation with state: added",
        )
    if key_id is not None and key_id != "r%d" % ring.previous:
        raise PKIError(
            "retire_id",
            "%s is not in this keyring (%s)" % (key_id, ", ".join(ring.names())),
            "give r%d, the previous key" % ring.previous,
        )
    since = stage_time(ring, "promoted", now)
    due = since + gates.retire_after
    if now < due and not force:
        raise PKIError(
            "retire_after",
            "r%d was promoted at %s; r%d may be retired from %s (in %s)"
            % (ring.primary, isoformat(since), ring.previous, isoformat(due), format_duration(due - now)),
            "wait until everything made with the old key has expired, or set force: true",
        )
    old = ring.previous
    ids = {n: parts for n, parts in ring.ids.items() if n != old}
    step = Step("retire", "r%d" % old, isoformat(now))
    return _with_stage(Keyring(ring.kind, ids, ring.primary, ring.meta), "single", now, step), step


def next_due(ring: Keyring, gates: Gates, now: datetime.datetime) -> Tuple[Optional[str], Optional[str]]:
    stage = ring.stage
    if stage == "empty":
        return "create", isoformat(now)
    if stage == "added":
        return NEXT_STEP[stage], isoformat(stage_time(ring, "added", now) + gates.promote_after)
    if stage == "promoted":
        return NEXT_STEP[stage], isoformat(stage_time(ring, "promoted", now) + gates.retire_after)
    if gates.rotate_every is not None:
        return "add", isoformat(stage_time(ring, "single", now) + gates.rotate_every)
    return None, None


def plan(
    ring: Keyring,
    state: str,
    gates: Gates,
    now: datetime.datetime,
    make,
    force: bool = False,
    retire_id: Optional[str] = None,
) -> Plan:
    """Apply a requested state. `make()` returns new material; it is called only when a key is created."""
    before = ring
    ring = _refresh_meta(ring, now) if ring.ids else ring
    steps: List[Step] = []
    states: List[Keyring] = []

    def do(result):
        nonlocal ring
        ring, step = result
        steps.append(step)
        states.append(ring)

    if ring.stage == "empty":
        if state in ("promoted", "retired"):
            raise PKIError("state", "the keyring does not exist yet", "create it first (state: present)")
        do(create(ring, make(), now))
    if state == "added" and ring.stage == "single" and not (steps and steps[-1].action == "create"):
        do(add(ring, make(), now))
    elif state == "added" and ring.stage == "promoted":
        add(ring, {}, now)  # raises: a rotation is in progress
    elif state == "promoted" and ring.stage != "promoted":
        do(promote(ring, gates, now, force))
    elif state == "retired" and (ring.stage != "single" or retire_id is not None):
        if retire_id is not None and ring.stage == "single" and retire_id != "r%d" % ring.primary:
            pass  # already gone: nothing to do
        else:
            do(retire(ring, gates, now, force, retire_id))
    elif state == "rotated":
        while True:
            stage = ring.stage
            if stage == "single":
                if steps:
                    break  # one rotation (or the creation) per run
                if gates.rotate_every is None or now < stage_time(ring, "single", now) + gates.rotate_every:
                    break
                do(add(ring, make(), now))
            elif stage == "added":
                if now < stage_time(ring, "added", now) + gates.promote_after and not force:
                    break
                do(promote(ring, gates, now, force=True))
            elif stage == "promoted":
                if now < stage_time(ring, "promoted", now) + gates.retire_after and not force:
                    break
                do(retire(ring, gates, now, force=True))
            else:
                break
    action, due = next_due(ring, gates, now)
    return Plan(before=before, after=ring, steps=steps, states=states, next_action=action, next_due=due)


def describe(ring: Keyring) -> Dict:
    """What results and reports show: never the material."""
    return {
        "kind": ring.kind,
        "stage": ring.stage,
        "primary": "r%d" % ring.primary if ring.primary else None,
        "ids": ["r%d" % n for n in sorted(ring.ids)],
        "entries": ring.names(),
        "stage_since": (ring.meta.get("stage_times") or {}).get(ring.meta.get("stage") or ""),
    }
