# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module kubernetes_pki_configs: one host's kubeconfigs and component flag files, in one pass.

Every file is checked (names, flags, destinations) before the first one is written; each is then written
atomically (temp file, fsync, rename) with its mode, never through a link planted at its path, and only if its
content or mode differs, keeping its owner and group. The files name paths, not keys, so --diff shows each
change - of a file found on disk, only one this module wrote (kubeadm's kubeconfigs embed their client keys).
"""

from __future__ import annotations

import os
from typing import Any, Dict

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import files, kubernetes
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError


def _shown(before) -> str:
    """What --diff shows of a file found on disk: only one this module wrote (kubeadm's embed client keys)."""
    if before is None:
        return ""
    old = before.decode("utf-8", "replace")
    return old if old.startswith(kubernetes.CONFIG_HEADER) else "(a file this module did not write: not shown)\n"


def kubernetes_pki_configs(ctx) -> Dict[str, Any]:
    planned = kubernetes.config_files(ctx.params)
    for path, _mode, _text in planned:
        files.check_destination(path, "config_dir")
    changed, diffs = [], []
    for path, mode, text in planned:
        data = text.encode("utf-8")
        before = files.read_bytes(path, "config_dir")
        attributes = files.attribute_changes(path, files.FileSpec(path, mode)) if before is not None else []
        if before == data and not attributes:
            continue
        if ctx.diff:
            note = " (%s)" % ", ".join(attributes) if attributes else ""
            diffs.append({"before_header": path + note, "after_header": path, "before": _shown(before), "after": text})
        if ctx.check_mode:
            changed.append(path)
            continue
        try:
            if before is None:
                files.atomic_write(files.FileSpec(path, mode), data)
            else:
                # a rewritten file keeps its owner and group (an admin may have given it to a component's user)
                st = os.lstat(path)
                spec = files.FileSpec(path, mode, st.st_uid, st.st_gid)
                if before == data:
                    files.apply_attributes(path, spec)
                else:
                    files.atomic_write(spec, data)
        except OSError as exc:
            failure = PKIError("config_dir", "writing %s failed: %s" % (path, exc), "fix the cause, then run again")
            failure.result = {"changed": bool(changed), "changed_files": changed}
            raise failure from exc
        changed.append(path)
    out: Dict[str, Any] = {"changed": bool(changed), "changed_files": changed, "files": [p for p, _m, _t in planned]}
    if ctx.diff:
        out["diff"] = diffs
    return out
