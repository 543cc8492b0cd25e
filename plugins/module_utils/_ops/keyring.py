# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The use case of a keyring in a directory on a host (module keyring).

The stages and gates are ``pki.keyring`` (shared with the Secret keyring of
``_ops.k8s_keyring``); the files, their journal and their modes are
``pki.keyring_files``; options and the result shape are ``keyring_support``.
"""

from __future__ import annotations

from typing import Any, Dict

from ansible_collections.securebydefault.pki.plugins.module_utils.keyring_support import (
    check_encoding,
    diff_of,
    gates_from,
    plan_step,
    result_of,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import keyring as kr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import keyring_files as kf
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import (
    check_key_mode,
    parse_mode,
    resolve_owner,
)


def directory_keyring(ctx) -> Dict[str, Any]:
    """Module keyring: finish a killed run's step, then take at most one step and fix file attributes."""
    p, path = ctx.params, ctx.params["path"]
    kf.check_directory(path)
    gates = gates_from(p)
    key_mode = parse_mode(p["key_mode"], "key_mode")
    check_key_mode(key_mode, p["allow_group_readable_key"])
    public_mode = parse_mode(p["public_mode"], "public_mode")
    uid, gid = resolve_owner(p["owner"], p["group"])
    check_encoding(p)
    extra = {}
    if not ctx.check_mode and kf.read_meta(path).get("transition"):
        extra["recovered"] = kf.recover(path)
    meta = kf.read_meta(path)
    if ctx.check_mode and meta.get("transition"):
        raise PKIError(
            "path",
            "%s holds an unfinished step of a killed run" % path,
            "run once without check mode to finish or undo it",
        )
    ring = kr.parse(kf.read_entries(path), p["kind"], meta, path)
    plan = plan_step(ring, p, gates)
    fixes = kf.attribute_fixes(path, plan.before, key_mode, public_mode, uid, gid) if ring.ids else {}
    changed = plan.changed or bool(fixes) or plan.after.meta != meta or bool(extra)
    result = dict(result_of(plan), changed=changed, **extra)
    if fixes:
        result["attribute_changes"] = fixes
    if changed:
        result["diff"] = diff_of(plan, path)
        if not ctx.check_mode:
            kf.apply(path, plan, key_mode, public_mode, uid, gid)
    return result
