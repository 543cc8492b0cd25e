# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node_certificate role with node_certificate_subject, through whole Ansible runs: the CA on the
controller (the action signs) and on a CA host (ca_info -> sign_csr -> install), check mode first, a rerun
that changes nothing, openssl as the judge. And the facts guard that keeps a node from choosing a subject.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ansible_collections.securebydefault.pki.tests.system.test_adversarial_playbooks import (
    PASSPHRASE, REPO, ad_hoc, env, recap)
from ansible_collections.securebydefault.pki.tests.unit.pki_helpers import tree

PLAY = """
- hosts: nodes
  gather_facts: false
  tasks:
    - name: What a compromised node can answer to any module call
      fact_liar:
      when: lie | default(false) | bool
    - name: The node_certificate role
      ansible.builtin.include_role:
        name: securebydefault.pki.node_certificate
      vars:
        node_certificate_ca_host: "{{ ca_host }}"
        node_certificate_ca_path: "{{ ca }}"
        node_certificate_ca_passphrase: %s
        node_certificate_path: "{{ base }}/{{ inventory_hostname }}"
        node_certificate_name: admin
        node_certificate_identity_from: []
        node_certificate_usages: [client]
        node_certificate_subject:
          common_name: "admin:{{ inventory_hostname }}"
          organizations: [system:masters]
""" % PASSPHRASE

FACT_LIAR = """#!/usr/bin/python
import json
print(json.dumps({"changed": False, "ansible_facts": {"kubernetes_pki_subject": "system:masters"}}))
"""


@pytest.fixture
def world(tmp_path):
    ca = tmp_path / "ca"
    rc, out = ad_hoc("cluster_ca", {"ca_path": str(ca), "common_name": "subject CA", "ca_passphrase": PASSPHRASE})
    assert rc == 0, out
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "fact_liar.py").write_text(FACT_LIAR)
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[nodes]\nnode1\n[ca_hosts]\nca1\n[all:vars]\nansible_connection=local\n"
                         "ansible_python_interpreter=%s\n" % sys.executable)
    return {"tmp": tmp_path, "ca": ca, "inventory": inventory}


def play(world, ca_host, *extra):
    cmd = ["ansible-playbook", "-i", str(world["inventory"]), str(world["tmp"] / "play.yml"),
           "-e", "ca=%s" % world["ca"], "-e", "base=%s" % (world["tmp"] / "nodes"), "-e", "ca_host=%s" % ca_host]
    proc = subprocess.run(cmd + list(extra), env=env(), capture_output=True, text=True, check=False)
    return proc.stdout + proc.stderr, recap(proc.stdout)


def openssl(*args):
    return subprocess.run(["openssl"] + list(args), capture_output=True, text=True, check=False)


@pytest.mark.parametrize("ca_host", ["localhost", "ca1"])
def test_role_issues_the_subject_without_names_and_converges(world, ca_host):
    nodes = world["tmp"] / "nodes"
    out, result = play(world, ca_host, "--check")
    assert result["node1"]["failed"] == 0 and result["node1"]["changed"] > 0, out
    assert not (nodes / "node1" / "admin.crt").exists(), "check mode wrote a certificate"
    out, result = play(world, ca_host)
    assert result["node1"]["failed"] == 0, out
    cert = str(nodes / "node1" / "admin.crt")
    shown = openssl("x509", "-noout", "-subject", "-nameopt", "RFC2253", "-ext", "subjectAltName", "-in", cert)
    assert "subject=CN=admin:node1,O=system:masters" in shown.stdout, shown.stdout + shown.stderr
    assert "Alternative Name" not in shown.stdout
    verified = openssl("verify", "-x509_strict", "-purpose", "sslclient", "-CAfile",
                       str(nodes / "node1" / "ca-bundle.crt"), cert)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    ledger = (world["ca"] / "ledger.jsonl").read_text()
    assert '"subject":"CN=admin:node1,O=system:masters"' in ledger and '"names":[]' in ledger
    before = tree(world["ca"], nodes)
    out, result = play(world, ca_host)
    assert result["node1"]["failed"] == 0 and result["node1"]["changed"] == 0, out
    out, result = play(world, ca_host, "--check")
    assert result["node1"]["failed"] == 0 and result["node1"]["changed"] == 0, out
    assert tree(world["ca"], nodes) == before


def test_a_node_cannot_bring_its_own_kubernetes_pki_variables(world):
    """kubernetes_pki_* (the kubernetes_pki role's variables) are guarded like this collection's other prefixes."""
    before = tree(world["ca"], world["tmp"] / "nodes")
    out, result = play(world, "localhost", "-e", "lie=true")
    assert result["node1"]["failed"] == 1, out
    assert "reported facts named like this collection's variables" in out and "kubernetes_pki_subject" in out
    assert tree(world["ca"], world["tmp"] / "nodes") == before


def test_both_fact_guards_list_the_same_prefixes():
    def prefixes(path):
        found = re.findall(r"select\('match', '([^']+)'\)", (REPO / path).read_text())
        assert len(found) == 1, path
        return found[0]

    node_guard = prefixes("roles/node_certificate/tasks/main.yml")
    assert node_guard == prefixes("roles/ca_rotation/tasks/guard.yml")
    assert node_guard == prefixes("roles/kubernetes_pki/tasks/plan.yml")
    assert node_guard == prefixes("roles/kubernetes_pki/tasks/rotation.yml")
    assert "|kubernetes_pki|" in node_guard or "|kubernetes_pki)" in node_guard
