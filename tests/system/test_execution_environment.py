# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""execution-environment.yml is accepted by ansible-builder and agrees with the collection's files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_ansible_builder_creates_the_build_context(tmp_path):
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    tarball = "securebydefault-pki-%s.tar.gz" % galaxy["version"]
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee["additional_build_files"][0]["src"] == tarball, "execution-environment.yml names another version"
    assert yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"][0]["name"].endswith(tarball)

    built = subprocess.run(["ansible-galaxy", "collection", "build", str(ROOT), "--output-path", str(tmp_path)],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (tmp_path / tarball).exists()
    for name in ("execution-environment.yml", "requirements.yml", "requirements.txt", "bindep.txt"):
        shutil.copy(ROOT / name, tmp_path / name)

    created = subprocess.run(["ansible-builder", "create", "-f", "execution-environment.yml", "-c", "context",
                              "--output-filename", "Containerfile"], cwd=tmp_path, capture_output=True, text=True,
                             check=False)
    assert created.returncode == 0, created.stdout + created.stderr
    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text()
    assert 'EE_BASE_IMAGE="quay.io/fedora/fedora:41"' in containerfile and "ansible-core==2.19.14" in containerfile
    build = context / "_build"
    assert "cryptography>=38" in (build / "requirements.txt").read_text()
    assert "kubernetes>=24" in (build / "requirements.txt").read_text()
    assert "openssl" in (build / "bindep.txt").read_text()
    assert (build / "collections" / tarball).exists()
    # the collection's own declaration agrees with the files ansible-builder used
    meta = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    assert (ROOT / "requirements.txt").read_text() == (build / "requirements.txt").read_text()
