# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files that are never half-written: temp file + fsync + rename, mode set before any byte lands.

Also the pre-flight checks that let a module fail before it writes anything.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .errors import PKIError


@dataclass(frozen=True)
class FileSpec:
    """Where a file goes and how it must look on disk; uid/gid -1 means "leave as is"."""

    path: str
    mode: int
    uid: int = -1
    gid: int = -1


def resolve_owner(owner: Optional[str], group: Optional[str], field_prefix: str = "") -> Tuple[int, int]:
    uid = gid = -1
    if owner not in (None, ""):
        try:
            uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(str(owner)).pw_uid
        except KeyError:
            raise PKIError(field_prefix + "owner", "no such user %r on this host" % owner,
                           "create the user first or choose an existing one") from None
    if group not in (None, ""):
        try:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(str(group)).gr_gid
        except KeyError:
            raise PKIError(field_prefix + "group", "no such group %r on this host" % group,
                           "create the group first or choose an existing one") from None
    return uid, gid


def parse_mode(mode, field: str) -> int:
    if isinstance(mode, int):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        raise PKIError(field, "%r is not an octal mode" % (mode,), 'quote it, e.g. "0600"') from None


def read_bytes(path: str) -> Optional[bytes]:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def check_destination(path: str, field: str) -> None:
    """Fail now, before anything is written, if ``path`` cannot be written."""
    if not path or not os.path.isabs(path):
        raise PKIError(field, "%r is not an absolute path" % (path,), "give an absolute path")
    if os.path.lexists(path):
        if os.path.islink(path) or not os.path.isfile(path):
            raise PKIError(field, "%s exists and is not a regular file" % path,
                           "remove it or choose another path")
    parent = os.path.dirname(path)
    probe = parent
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise PKIError(field, "cannot create %s: %s is not a directory" % (path, probe),
                       "choose a path below a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PKIError(field, "directory %s is not writable" % probe,
                       "choose a writable location, fix its permissions, or become the right user")


def attribute_changes(path: str, spec: FileSpec) -> List[str]:
    """What differs in mode/owner/group of an existing file."""
    st = os.stat(path)
    changes = []
    if stat.S_IMODE(st.st_mode) != spec.mode:
        changes.append("mode %04o -> %04o" % (stat.S_IMODE(st.st_mode), spec.mode))
    if spec.uid != -1 and st.st_uid != spec.uid:
        changes.append("owner %d -> %d" % (st.st_uid, spec.uid))
    if spec.gid != -1 and st.st_gid != spec.gid:
        changes.append("group %d -> %d" % (st.st_gid, spec.gid))
    return changes


def apply_attributes(path: str, spec: FileSpec) -> None:
    if spec.uid != -1 or spec.gid != -1:
        os.chown(path, spec.uid, spec.gid)
    os.chmod(path, spec.mode)


def backup_file(path: str) -> Optional[str]:
    """Copy ``path`` beside itself as ``path.<epoch>.<stamp>~`` (like Ansible's backup), keeping its mode."""
    if not os.path.exists(path):
        return None
    target = "%s.%d.%s~" % (path, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S"))
    shutil.copy2(path, target)
    return target


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_directory(path: str, mode: int = 0o755) -> None:
    if not os.path.isdir(path):
        os.makedirs(path, mode)


def stage_file(spec: FileSpec, data: bytes) -> str:
    """Write ``data`` to a temp file beside ``spec.path`` with final mode/owner; return its path."""
    directory = os.path.dirname(spec.path)
    ensure_directory(directory)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(spec.path), dir=directory)
    try:
        os.fchmod(fd, spec.mode)
        if spec.uid != -1 or spec.gid != -1:
            os.fchown(fd, spec.uid, spec.gid)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def commit_staged(tmp: str, path: str) -> None:
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def atomic_write(spec: FileSpec, data: bytes) -> None:
    commit_staged(stage_file(spec, data), spec.path)


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
