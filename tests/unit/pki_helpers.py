# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for engine tests: an independent verifier (openssl), the issuer PEM a node receives, a node
request with the usual file layout, and a snapshot of files to prove that nothing changed."""
from __future__ import annotations

import os
import stat
import subprocess

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import files as fs
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import certificate_pem, pem_of


def openssl_verify(leaf_pem: str, roots_pem: str, tmp_path, untrusted_pem: str = "", extra=()):
    """Run `openssl verify`; returns (ok, output). Independent of the code under test."""
    (tmp_path / "v-leaf.pem").write_text(leaf_pem)
    (tmp_path / "v-roots.pem").write_text(roots_pem)
    args = ["openssl", "verify", "-x509_strict", "-CAfile", str(tmp_path / "v-roots.pem")]
    if untrusted_pem:
        (tmp_path / "v-untrusted.pem").write_text(untrusted_pem)
        args += ["-untrusted", str(tmp_path / "v-untrusted.pem")]
    args += list(extra) + [str(tmp_path / "v-leaf.pem")]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    return proc.returncode == 0, proc.stdout + proc.stderr


def openssl_ok(*args, **kwargs) -> bool:
    return openssl_verify(*args, **kwargs)[0]


def issuer_pem(ca) -> str:
    """The issuer PEM node_certificate passes to a node: issuing CA, its chain, then the root."""
    return pem_of([ca.certificate] + ca.chain + ([ca.root] if ca.root != ca.certificate else []))


def request_for(ca, base, names, **kwargs):
    """A NodeRequest for the usual files below ``base`` (node.key, node.crt, ...), trusting ``ca``."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import node

    base = str(base)
    defaults = dict(
        key=fs.FileSpec(os.path.join(base, "node.key"), 0o600), cert=fs.FileSpec(os.path.join(base, "node.crt"), 0o644),
        chain=fs.FileSpec(os.path.join(base, "node-fullchain.crt"), 0o644),
        bundle=fs.FileSpec(os.path.join(base, "ca-bundle.crt"), 0o644), bundle_pem=certificate_pem(ca.root),
        names=names, issuer_pem=issuer_pem(ca))
    defaults.update(kwargs)
    return node.NodeRequest(**defaults)


def tree(*paths):
    """Everything about the files below ``paths``: type, mode, owner, bytes or link target."""
    out = {}
    for top in map(str, paths):
        if not os.path.lexists(top):
            out[top] = None
            continue
        walk = [(top, [], [])] if not os.path.isdir(top) or os.path.islink(top) else os.walk(top)
        for root, dirs, names in walk:
            for entry in [root] + [os.path.join(root, n) for n in dirs + names]:
                st = os.lstat(entry)
                if stat.S_ISLNK(st.st_mode):
                    content = "-> " + os.readlink(entry)
                elif stat.S_ISREG(st.st_mode):
                    with open(entry, "rb") as handle:
                        content = handle.read()
                else:
                    content = "dir"
                out[entry] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, content)
    return out
