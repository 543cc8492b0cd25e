# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A keyring in a directory: one file per entry, times in ``.keyring.json``.

Each stage is applied as a journaled transition: the metadata file first
records what is about to happen (names only, never material), then the
files are written, renamed or removed, then the record is cleared. A run
killed in between is finished (renames, removals) or undone (new material
that no consumer may use yet) by the next run, so no state ever has a
half-written key in use. Dot files (the metadata, temp files) are not
entries; consumers skip them too.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Dict, Optional, Tuple

from .errors import PKIError
from .files import (
    FileSpec,
    apply_attributes,
    atomic_write,
    check_directory_safe,
    ensure_directory,
    fsync_dir,
    read_bytes,
    remove_quietly,
)
from .keyring import SECRET_PARTS, ENTRY, Keyring, Plan

META = ".keyring.json"


def check_directory(path: str, field: str = "path") -> None:
    if not path or not os.path.isabs(path):
        raise PKIError(field, "%r is not an absolute path" % (path,), "give an absolute directory path")
    if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):
        raise PKIError(field, "%s exists and is not a directory" % path, "choose a directory for the keyring")
    probe = path
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    check_directory_safe(probe, field)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PKIError(field, "%s is not writable" % probe, "run as a user who may write there (become: true)")


def read_meta(path: str) -> Dict:
    data = read_bytes(os.path.join(path, META), "path")
    if data is None:
        return {}
    try:
        meta = json.loads(data.decode("utf-8"))
    except ValueError:
        return {}  # unreadable times restart the gates; the entries are the truth
    return meta if isinstance(meta, dict) else {}


def read_entries(path: str, field: str = "path") -> Dict[str, bytes]:
    entries = {}
    if not os.path.isdir(path):
        return entries
    for name in sorted(os.listdir(path)):
        if name.startswith("."):
            continue
        full = os.path.join(path, name)
        if os.path.islink(full) or not os.path.isfile(full):
            raise PKIError(field, "%s is not a regular file" % full, "a keyring directory holds only its entry files")
        entries[name] = read_bytes(full, field) or b""
    return entries


def _journal(meta: Dict, path: str) -> Optional[Dict]:
    """The unfinished transition, if any, after checking it names only entries of this keyring."""
    journal = meta.get("transition")
    if not journal:
        return None
    names = []
    try:
        names += list(journal.get("write", [])) + list(journal.get("remove", []))
        for pair in journal.get("rename", []):
            src, dst = pair
            names += [src, dst]
    except (TypeError, ValueError, AttributeError):
        names.append(None)
    bad = [n for n in names if not isinstance(n, str) or not ENTRY.match(n)]
    if bad:
        raise PKIError(
            "path",
            "the unfinished transition in %s names %r, which is not an entry of this keyring"
            % (os.path.join(path, META), bad[0]),
            "someone edited the record: check the directory, then remove the transition from %s by hand" % META,
        )
    return journal


def recover(path: str) -> Optional[str]:
    """Finish or undo a transition a killed run left behind; returns what was done."""
    meta = read_meta(path)
    journal = _journal(meta, path)
    if not journal:
        return None
    for name in journal.get("write", []):  # new material: not in use yet, undo
        if ENTRY.match(name):
            remove_quietly(os.path.join(path, name))
    for src, dst in journal.get("rename", []):  # promotion: finish
        if os.path.exists(os.path.join(path, src)) and not os.path.exists(os.path.join(path, dst)):
            os.rename(os.path.join(path, src), os.path.join(path, dst))
    for name in journal.get("remove", []):  # retirement: finish
        remove_quietly(os.path.join(path, name))
    fsync_dir(path)
    if journal.get("write"):
        _write_meta(path, journal.get("meta_before") or {})
        return "undid the unfinished %s of %s" % (journal.get("action"), journal.get("id"))
    _write_meta(path, journal.get("meta_after") or {})
    return "finished the interrupted %s of %s" % (journal.get("action"), journal.get("id"))


def _write_meta(path: str, meta: Dict) -> None:
    atomic_write(
        FileSpec(os.path.join(path, META), 0o644), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    )


def mode_for(part: str, key_mode: int, public_mode: int) -> int:
    return key_mode if part in SECRET_PARTS else public_mode


def attribute_fixes(path: str, ring: Keyring, key_mode: int, public_mode: int, uid: int, gid: int) -> Dict[str, str]:
    """Entries whose mode/owner differ from what is asked."""
    fixes = {}
    for name in ring.names():
        part = ENTRY.match(name).group(2)
        st = os.lstat(os.path.join(path, name))
        want = mode_for(part, key_mode, public_mode)
        problems = []
        if stat.S_IMODE(st.st_mode) != want:
            problems.append("mode %04o -> %04o" % (stat.S_IMODE(st.st_mode), want))
        if uid != -1 and st.st_uid != uid:
            problems.append("owner %d -> %d" % (st.st_uid, uid))
        if gid != -1 and st.st_gid != gid:
            problems.append("group %d -> %d" % (st.st_gid, gid))
        if problems:
            fixes[name] = ", ".join(problems)
    return fixes


def _transition(before: Keyring, after: Keyring) -> Tuple[Dict[str, bytes], list, list]:
    new = after.entries()
    writes, renames, removes = {}, [], []
    for number, parts in after.ids.items():
        if number not in before.ids:
            for part in parts:
                name = "r%d.%s%s" % (number, part, ".primary" if number == after.primary else "")
                writes[name] = new[name]
            continue
        for part in parts:
            was = "r%d.%s%s" % (number, part, ".primary" if number == before.primary else "")
            now = "r%d.%s%s" % (number, part, ".primary" if number == after.primary else "")
            if was != now:
                renames.append((was, now))
    for number, parts in before.ids.items():
        if number not in after.ids:
            removes += ["r%d.%s%s" % (number, part, ".primary" if number == before.primary else "") for part in parts]
    # promotion: the new primary first, so there is never a moment without one
    renames.sort(key=lambda pair: 0 if pair[1].endswith(".primary") else 1)
    return writes, renames, removes


def apply(path: str, plan: Plan, key_mode: int, public_mode: int, uid: int = -1, gid: int = -1) -> None:
    """Write the plan step by step, each step journaled."""
    ensure_directory(path, 0o755)
    before = plan.before
    for step, after in zip(plan.steps, plan.states):
        writes, renames, removes = _transition(before, after)
        journal = {
            "action": step.action,
            "id": step.id,
            "write": sorted(writes),
            "rename": renames,
            "remove": removes,
            "meta_before": before.meta,
            "meta_after": after.meta,
        }
        _write_meta(path, dict(before.meta, transition=journal))
        for name, content in writes.items():
            part = ENTRY.match(name).group(2)
            atomic_write(FileSpec(os.path.join(path, name), mode_for(part, key_mode, public_mode), uid, gid), content)
        for src, dst in renames:
            os.rename(os.path.join(path, src), os.path.join(path, dst))
        for name in removes:
            remove_quietly(os.path.join(path, name))
        fsync_dir(path)
        _write_meta(path, after.meta)
        before = after
    if plan.after.meta != read_meta(path):
        _write_meta(path, plan.after.meta)
    for name in plan.after.names():
        part = ENTRY.match(name).group(2)
        apply_attributes(
            os.path.join(path, name),
            FileSpec(os.path.join(path, name), mode_for(part, key_mode, public_mode), uid, gid),
        )
