# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for engine tests: an independent verifier (openssl) and the issuer PEM a node receives."""
from __future__ import annotations

import subprocess

from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import pem_of


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
