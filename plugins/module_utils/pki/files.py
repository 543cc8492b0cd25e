# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files that are never half-written, never reached through a planted link, never loosened.

Every write is temp file + fsync + rename, with the mode set before any byte lands. Every
read, chmod, chown and copy opens the file itself with ``O_NOFOLLOW`` and acts on that
descriptor, so a symlink planted where a file is expected (by a local user who can write the
directory, or by a compromised service owning it) is an error, never a way to make root touch
another file. Names given by users are checked to be plain file names (no ``/``, no ``..``).
Directories are created level by level with an explicit mode, whatever the umask, and a
directory that another user could write to or swap (it, or any directory above it, is
group/world-writable or owned by someone who is neither root, the running user nor, for the
directory holding the files, the configured owner) is refused before anything is written.

Also the pre-flight checks that let a module fail before it writes anything.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import re
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
            raise PKIError(
                field_prefix + "owner",
                "no such user %r on this host" % owner,
                "create the user first or choose an existing one",
            ) from None
    if group not in (None, ""):
        try:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(str(group)).gr_gid
        except KeyError:
            raise PKIError(
                field_prefix + "group",
                "no such group %r on this host" % group,
                "create the group first or choose an existing one",
            ) from None
    return uid, gid


def parse_mode(mode, field: str) -> int:
    if isinstance(mode, int):
        return mode
    try:
        return int(str(mode), 8)
    except ValueError:
        raise PKIError(field, "%r is not an octal mode" % (mode,), 'quote it, e.g. "0600"') from None


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def plain_name(name: str, field: str) -> str:
    """``name`` if it is a plain file name: no directory part, no ``..``, no control characters."""
    text = str(name)
    if (
        not text
        or text in (".", "..")
        or "/" in text
        or _CONTROL.search(text)
        or text != text.strip()
        or len(text.encode("utf-8")) > 200
    ):
        raise PKIError(
            field,
            "%r is not a plain file name" % (name,),
            "use a name like node or web-server (letters, digits, dots, hyphens), no / or ..",
        )
    return text


def open_nofollow(path: str, flags: int = os.O_RDONLY, field: str = "path", mode: int = 0o600) -> int:
    """An fd for ``path`` itself; a symlink there is a PKIError, a missing file FileNotFoundError.

    A file it creates gets ``mode`` exactly (0600 by default), whatever the umask.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PKIError(
                field,
                "%s is a symbolic link" % path,
                "remove the link; this collection never follows a link it did not create",
            ) from None
        raise
    if flags & os.O_CREAT:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & ~mode:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & mode)
    return fd


def check_key_mode(mode: int, allow_group_readable: bool, field: str = "key_mode") -> None:
    """A private key is never readable by others; by its group only when the user says so by name."""
    if mode & 0o007:
        raise PKIError(
            field,
            "mode %04o lets every user on the host read or change the private key" % mode,
            'use "0600" (or "0640" with group and allow_group_readable_key: true)',
        )
    if mode & 0o070 and not allow_group_readable:
        raise PKIError(
            field,
            "mode %04o lets the group read or change the private key" % mode,
            'use "0600", or set allow_group_readable_key: true if a service group must read it',
        )
    if mode & 0o020:
        raise PKIError(field, "mode %04o lets the group change the private key" % mode, 'use "0640" or "0600"')


def read_bytes(path: str, field: str = "path") -> Optional[bytes]:
    """The content of the regular file ``path`` (None when absent); never follows a link."""
    try:
        fd = open_nofollow(path, os.O_RDONLY | os.O_NONBLOCK, field)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise PKIError(field, "%s is not a regular file" % path, "remove it or choose another path")
        return handle.read()


def trusted_owners(extra_uid: int = -1) -> Tuple[int, ...]:
    """Who may own a directory root writes into: root, the running user, the configured owner."""
    return tuple({0, os.geteuid()} | ({extra_uid} if extra_uid != -1 else set()))


def check_directory_safe(path: str, field: str, owner_uid: int = -1, holds_files: bool = True) -> None:
    """Refuse a directory that someone other than root or the running user could write into or swap.

    Every directory from ``/`` down to ``path`` is checked, because a link or a rename anywhere above
    would redirect what root writes: each must be owned by root or the running user (``path``
    itself may also belong to the configured owner) and must not be writable by its group or by
    others. A world-writable directory with the sticky bit (``/tmp``) may be passed through: others
    cannot rename or replace what we own inside it. A link on the way is followed only if root or
    the running user made it. Parts of ``path`` that do not exist yet are not checked (they will be
    created by ensure_directory, with our modes). With ``holds_files`` false, ``path`` is only a
    directory we create a subdirectory in (mkdir refuses one planted there), so it may be sticky and
    world-writable like the directories above it.
    """
    parts = [p for p in os.path.abspath(path).split("/") if p]
    current = "/"
    for index, part in enumerate(parts):
        current = os.path.join(current, part)
        last = index == len(parts) - 1
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid not in (0, os.geteuid()):
                raise PKIError(
                    field,
                    "%s is a symbolic link owned by uid %d" % (current, st.st_uid),
                    "use the real directory path; links made by other users are never followed",
                )
            check_directory_safe(
                os.path.realpath(current), field, owner_uid if last else -1, holds_files if last else False
            )
            st = os.stat(current)
        if not stat.S_ISDIR(st.st_mode):
            raise PKIError(field, "%s is not a directory" % current, "remove it or choose another path")
        if st.st_uid not in trusted_owners(owner_uid if last else -1):
            raise PKIError(
                field,
                "directory %s is owned by uid %d, not by root or the user running the task" % (current, st.st_uid),
                "chown it to root (or, for the last directory, the configured owner), or choose another path",
            )
        if st.st_mode & 0o022 and ((last and holds_files) or not st.st_mode & stat.S_ISVTX):
            who = "others" if st.st_mode & 0o002 else "its group"
            raise PKIError(
                field,
                "directory %s is writable by %s (mode %04o): another user could plant files or "
                "links in it" % (current, who, stat.S_IMODE(st.st_mode)),
                "chmod go-w %s, or choose another directory" % current,
            )


def check_destination(path: str, field: str, owner_uid: int = -1) -> None:
    """Fail now, before anything is written, if ``path`` cannot be written safely."""
    if not path or not os.path.isabs(path):
        raise PKIError(field, "%r is not an absolute path" % (path,), "give an absolute path")
    if os.path.lexists(path):
        if os.path.islink(path) or not os.path.isfile(path):
            raise PKIError(field, "%s exists and is not a regular file" % path, "remove it or choose another path")
    parent = os.path.dirname(path)
    probe = parent
    while probe and not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    # the configured owner may own the directory that holds the files, never one above it
    check_directory_safe(probe, field, owner_uid if probe == parent else -1, holds_files=probe == parent)
    if not os.path.isdir(probe):
        raise PKIError(
            field, "cannot create %s: %s is not a directory" % (path, probe), "choose a path below a directory"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PKIError(
            field,
            "directory %s is not writable" % probe,
            "choose a writable location, fix its permissions, or become the right user",
        )


def attribute_changes(path: str, spec: FileSpec) -> List[str]:
    """What differs in mode/owner/group of an existing file (a link there is an error)."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise PKIError("path", "%s is not a regular file" % path, "remove it; it is not a file this collection wrote")
    changes = []
    if stat.S_IMODE(st.st_mode) != spec.mode:
        changes.append("mode %04o -> %04o" % (stat.S_IMODE(st.st_mode), spec.mode))
    if spec.uid != -1 and st.st_uid != spec.uid:
        changes.append("owner %d -> %d" % (st.st_uid, spec.uid))
    if spec.gid != -1 and st.st_gid != spec.gid:
        changes.append("group %d -> %d" % (st.st_gid, spec.gid))
    return changes


def apply_attributes(path: str, spec: FileSpec) -> None:
    """chown/chmod the file ``path`` itself, through a descriptor: a link there is refused."""
    fd = open_nofollow(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PKIError("path", "%s is not a regular file" % path, "remove it")
        if st.st_nlink > 1:
            raise PKIError(
                "path",
                "%s has %d hard links: changing its owner or mode would change another file's" % (path, st.st_nlink),
                "remove it; this collection writes each file under one name",
            )
        if spec.uid != -1 or spec.gid != -1:
            os.fchown(fd, spec.uid, spec.gid)
        os.fchmod(fd, spec.mode)
    finally:
        os.close(fd)


def backup_file(path: str) -> Optional[str]:
    """Copy ``path`` beside itself as ``path.<pid>.<stamp>~`` (like Ansible's backup), keeping its mode."""
    data = read_bytes(path)
    if data is None:
        return None
    st = os.lstat(path)
    if st.st_nlink > 1:
        raise PKIError("backup", "%s has %d hard links" % (path, st.st_nlink), "remove the extra links")
    target = "%s.%d.%s~" % (path, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S"))
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), stat.S_IMODE(st.st_mode))
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return target


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_directory(
    path: str, mode: int = 0o755, field: str = "path", owner_uid: int = -1, holds_files: bool = True
) -> None:
    """Create ``path`` and missing parents, each with exactly ``mode`` whatever the umask.

    An existing directory is only checked (check_directory_safe), never re-moded.
    """
    if os.path.isdir(path) and not os.path.islink(path):
        check_directory_safe(path, field, owner_uid, holds_files)
        return
    parent = os.path.dirname(path.rstrip("/"))
    if parent and parent != path:
        ensure_directory(parent, 0o755, field, holds_files=False)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        check_directory_safe(path, field, owner_uid, holds_files)
        return
    os.chmod(path, mode)


def stage_file(spec: FileSpec, data: bytes, dir_owner: int = -1, public: bool = False) -> str:
    """Write ``data`` to a temp file beside ``spec.path`` with final mode/owner; return its path.

    The directory may belong to root, the running user, ``spec.uid`` or ``dir_owner``. A ``public``
    file (a report, nothing secret, nothing read back to decide anything) may go into a sticky
    world-writable directory such as /tmp: the temporary file is created O_EXCL and the rename
    replaces whatever was planted under the name, never following it.
    """
    directory = os.path.dirname(spec.path)
    ensure_directory(directory, owner_uid=dir_owner if dir_owner != -1 else spec.uid, holds_files=not public)
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
    """Rename ``tmp`` over ``path``: a link at ``path`` is replaced, never followed."""
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def atomic_write(spec: FileSpec, data: bytes, dir_owner: int = -1, public: bool = False) -> None:
    commit_staged(stage_file(spec, data, dir_owner, public), spec.path)


def planted_in_shared_directory(path: str) -> bool:
    """Whether ``path`` is a link, FIFO or socket in a sticky world-writable directory (/tmp): something another
    user may have planted under the name of a public file, which the rename of ``atomic_write(public=True)``
    replaces without following it."""
    try:
        parent, entry = os.stat(os.path.dirname(path)), os.lstat(path)
    except OSError:
        return False
    shared = parent.st_mode & stat.S_ISVTX and parent.st_mode & stat.S_IWOTH
    return bool(shared) and (
        stat.S_ISLNK(entry.st_mode) or stat.S_ISFIFO(entry.st_mode) or stat.S_ISSOCK(entry.st_mode)
    )


def read_own_public(path: str, field: str, mode: int, expected_size: int) -> Optional[bytes]:
    """The content of a public file this user wrote at ``path``, to decide whether to write it again.

    None (write it) when it is absent, far larger than it should be (never read whole), or not the file this
    user would have written: owned by someone else, with other hard links, or another mode - a file planted
    with exactly the expected bytes must not be adopted and later edited by whoever planted it.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISREG(st.st_mode) and st.st_size > 4 * expected_size + 65536:
        return None
    data = read_bytes(path, field)
    if data is not None and (st.st_uid != os.geteuid() or st.st_nlink != 1 or stat.S_IMODE(st.st_mode) != mode):
        return None
    return data


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
