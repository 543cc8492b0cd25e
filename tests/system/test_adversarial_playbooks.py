# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attacks through whole Ansible runs: a node that lies about its names, hostile options, check mode.

Hosts are local (connection local, one directory per host). A compromised node is played by a
Python interpreter for that host whose ``socket.gethostname``/``getfqdn`` lie (a sitecustomize
on its PYTHONPATH): exactly what the node module would report if its host were taken over.
Every refusal is checked for its message and for leaving the CA and the nodes' files
byte-for-byte as they were. Engine-level attacks are in tests/unit/.../test_adversarial.py.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.securebydefault.pki.tests.unit.pki_helpers import tree

REPO = Path(__file__).resolve().parents[2]
PASSPHRASE = "adversarial-ca-passphrase"

PLAY = """
- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Node certificate
      securebydefault.pki.node_certificate:
        ca_path: "{{ ca }}"
        ca_passphrase: %s
        path: "{{ base }}/{{ inventory_hostname }}"
        identity_from: "{{ sources | default(['inventory_hostname']) }}"
        dns_names: "{{ extra_dns | default([]) }}"
        ip_addresses: "{{ extra_ips | default([]) }}"
        shared_names: "{{ shared | default([]) }}"
""" % PASSPHRASE

LIAR = """
import os, socket
if os.environ.get("LIE_HOSTNAME"):
    socket.gethostname = lambda: os.environ["LIE_HOSTNAME"]
if os.environ.get("LIE_FQDN"):
    socket.getfqdn = lambda name="": os.environ["LIE_FQDN"]
"""


def env():
    return dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_HOST_KEY_CHECKING="0",
                ANSIBLE_INVENTORY_UNPARSED_WARNING="0")


def recap(output):
    found = {h: dict(zip(("ok", "changed", "failed"), map(int, (ok, ch, fa)))) for h, ok, ch, fa in re.findall(
        r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output, re.M)}
    assert found, output
    return found


def ad_hoc(module, args, check=False):
    cmd = ["ansible", "localhost", "-c", "local", "-i", "localhost,", "-m", "securebydefault.pki." + module,
           "-a", json.dumps(args), "-e", "ansible_python_interpreter=%s" % sys.executable]
    proc = subprocess.run(cmd + (["--check"] if check else []), env=env(), capture_output=True, text=True,
                          check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture
def world(tmp_path):
    ca = tmp_path / "ca"
    rc, out = ad_hoc("cluster_ca", {"ca_path": str(ca), "common_name": "adversarial CA", "ca_passphrase": PASSPHRASE})
    assert rc == 0, out
    liar = tmp_path / "liar"
    liar.mkdir()
    (liar / "sitecustomize.py").write_text(LIAR)
    (tmp_path / "play.yml").write_text(PLAY)
    return {"tmp": tmp_path, "ca": ca, "liar": liar}


def inventory(world, node1_lies=None, node2_host="10.9.9.2"):
    """node1, node2, node3 (local); node1's interpreter lies when asked to."""
    lines = ["[pki_nodes]"]
    interpreter = sys.executable
    if node1_lies:
        wrapper = world["tmp"] / "lying-python"
        exports = " ".join("%s=%s" % (k, v) for k, v in node1_lies.items())
        wrapper.write_text("#!/bin/sh\nPYTHONPATH=%s %s exec %s \"$@\"\n" % (world["liar"], exports, interpreter))
        wrapper.chmod(0o755)
        interpreter = str(wrapper)
    lines.append("node1 ansible_python_interpreter=%s" % interpreter)
    lines.append("node2 ansible_host=%s ansible_python_interpreter=%s" % (node2_host, sys.executable))
    lines.append("node3 ansible_python_interpreter=%s" % sys.executable)
    path = world["tmp"] / "inventory.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def play(world, limit, inv, *extra):
    cmd = ["ansible-playbook", "-i", str(inv), str(world["tmp"] / "play.yml"), "--limit", limit,
           "-e", "ca=%s" % world["ca"], "-e", "base=%s" % (world["tmp"] / "nodes")]
    for item in extra:
        cmd += ["-e", json.dumps(item)]
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, check=False)
    return proc.stdout + proc.stderr, recap(proc.stdout)


def deployed(world):
    """node1 and node2 with honest certificates (node2 also carries node2.pki.test)."""
    inv = inventory(world)
    out, result = play(world, "node1", inv)
    assert result["node1"]["failed"] == 0, out
    out, result = play(world, "node2", inv, {"extra_dns": ["node2.pki.test"]})
    assert result["node2"]["failed"] == 0, out
    return inv


def test_node_lying_about_its_hostname_gets_nothing(world):
    deployed(world)
    lying = inventory(world, {"LIE_HOSTNAME": "node2"})
    before = tree(world["ca"], world["tmp"] / "nodes")
    out, result = play(world, "node1", lying, {"sources": ["inventory_hostname", "hostname"]})
    assert result["node1"]["failed"] == 1
    assert "another host's names: node2 (inventory host node2)" in out
    assert tree(world["ca"], world["tmp"] / "nodes") == before


def test_node_lying_about_its_fqdn_hits_the_ledger(world):
    deployed(world)
    lying = inventory(world, {"LIE_FQDN": "node2.pki.test"})
    before = tree(world["ca"], world["tmp"] / "nodes")
    out, result = play(world, "node1", lying, {"sources": ["inventory_hostname", "fqdn"]})
    assert result["node1"]["failed"] == 1
    assert "node2.pki.test (held by node2)" in out
    assert tree(world["ca"], world["tmp"] / "nodes") == before


def test_dns_names_of_another_inventory_host_are_refused(world):
    inv = deployed(world)
    before = tree(world["ca"], world["tmp"] / "nodes")
    out, result = play(world, "node1", inv, {"extra_dns": ["node3"]})
    assert result["node1"]["failed"] == 1 and "node3 (inventory host node3)" in out
    assert tree(world["ca"], world["tmp"] / "nodes") == before


def test_address_of_another_inventory_host_is_refused(world):
    inv = deployed(world)
    before = tree(world["ca"], world["tmp"] / "nodes")
    out, result = play(world, "node1", inv, {"extra_ips": ["10.9.9.2"]})
    assert result["node1"]["failed"] == 1 and "10.9.9.2 (inventory host node2)" in out
    assert tree(world["ca"], world["tmp"] / "nodes") == before


def test_first_issuance_cannot_take_a_ledger_name_even_for_a_new_host(world):
    inv = deployed(world)
    before = tree(world["ca"])
    out, result = play(world, "node3", inv, {"extra_dns": ["node2.pki.test"]})
    assert result["node3"]["failed"] == 1 and "node2.pki.test (held by node2)" in out
    assert tree(world["ca"]) == before
    assert not (world["tmp"] / "nodes" / "node3" / "node.key").exists()
    assert not (world["tmp"] / "nodes" / "node3" / "node.key.pending").exists()


def test_shared_names_are_shared(world):
    inv = inventory(world)
    for host in ("node1", "node2"):
        out, result = play(world, host, inv, {"extra_dns": ["vip.pki.test"], "shared": ["vip.pki.test"]})
        assert result[host]["failed"] == 0, out


@pytest.mark.parametrize("args,match", [
    ({"name": "../escape"}, "not a plain file name"),
    ({"name": "sub/dir"}, "not a plain file name"),
    ({"key_mode": "0644"}, "every user on the host"),
    ({"key_mode": "0640"}, "allow_group_readable_key"),
    ({"dns_names": ["evil\n.pki.test"]}, "control character"),
    ({"uris": ["https://a.pki.test/\ninjected"]}, "control character"),
    ({"valid_for": "99999999999999y"}, "longer than 100 years"),
])
def test_hostile_options_fail_before_anything_is_written(world, args, match):
    base = world["tmp"] / "nodes" / "n"
    before = tree(world["ca"], world["tmp"])
    rc, out = ad_hoc("node_certificate", dict({"ca_path": str(world["ca"]), "ca_passphrase": PASSPHRASE,
                                               "path": str(base), "identity_from": [],
                                               "dns_names": ["n.pki.test"]}, **args))
    assert rc != 0 and re.search(match, out), out
    assert tree(world["ca"], world["tmp"]) == before


def test_keyring_refuses_a_world_readable_key_mode(tmp_path):
    rc, out = ad_hoc("keyring", {"path": str(tmp_path / "ring"), "kind": "symmetric", "key_mode": "0644"})
    assert rc != 0 and "key_mode" in out and "every user" in out, out
    assert not (tmp_path / "ring").exists()


def test_trust_bundle_refuses_a_leaf(world):
    nodes = world["tmp"] / "nodes"
    inv = inventory(world)
    play(world, "node1", inv)
    leaf = (nodes / "node1" / "node.crt").read_text()
    dest = world["tmp"] / "bundle.pem"
    rc, out = ad_hoc("trust_bundle", {"path": str(dest), "certificates": [leaf]})
    assert rc != 0 and "not a CA certificate" in out, out
    assert not dest.exists()


def test_new_ca_needs_a_real_passphrase(tmp_path):
    rc, out = ad_hoc("cluster_ca", {"ca_path": str(tmp_path / "ca"), "common_name": "weak", "ca_passphrase": "x"})
    assert rc != 0 and "at least 10 characters" in out, out
    assert not (tmp_path / "ca").exists()


def test_changed_organization_of_an_existing_ca_is_not_ignored(world):
    before = tree(world["ca"])
    rc, out = ad_hoc("cluster_ca", {"ca_path": str(world["ca"]), "common_name": "adversarial CA",
                                    "ca_passphrase": PASSPHRASE, "organization": "Someone Else"})
    assert rc != 0 and "organization" in out, out
    assert tree(world["ca"]) == before


def test_swapped_root_is_never_pushed_to_nodes(world):
    inv = deployed(world)
    rc, out = ad_hoc("cluster_ca", {"ca_path": str(world["tmp"] / "evil"), "common_name": "adversarial CA",
                                    "ca_passphrase": PASSPHRASE})
    assert rc == 0, out
    (world["ca"] / "root.crt").write_bytes((world["tmp"] / "evil" / "root.crt").read_bytes())
    before = tree(world["ca"], world["tmp"] / "nodes")
    out, result = play(world, "node1", inv)
    assert result["node1"]["failed"] == 1 and "do not belong together" in out, out
    assert tree(world["ca"], world["tmp"] / "nodes") == before


def test_ca_info_with_the_passphrase_catches_a_coherent_swap(world):
    """ca.crt and root.crt replaced by one self-signed certificate of the same name: only the key tells."""
    rc, out = ad_hoc("cluster_ca", {"ca_path": str(world["tmp"] / "evil"), "common_name": "adversarial CA",
                                    "ca_passphrase": "some-other-passphrase"})
    assert rc == 0, out
    for name in ("ca.crt", "root.crt"):
        (world["ca"] / name).write_bytes((world["tmp"] / "evil" / name).read_bytes())
    before = tree(world["ca"])
    rc, out = ad_hoc("ca_info", {"ca_path": str(world["ca"]), "ca_passphrase": PASSPHRASE})
    assert rc != 0 and "ca.key does not match" in out, out
    assert tree(world["ca"]) == before


# ---------------------------------------------------------------- check mode of every shipped playbook

def demo(tmp_path, playbook, *extra, check=False):
    root = tmp_path / "demo"
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"pki_ca_passphrase": "demo-check-passphrase"}))
    cmd = ["ansible-playbook", "-i", str(REPO / "playbooks" / "inventory" / "demo" / "hosts.yml"),
           "-e", "@%s" % secrets, str(REPO / "playbooks" / playbook)] + list(extra) + (["--check"] if check else [])
    proc = subprocess.run(cmd, env=dict(env(), PKI_DEMO_ROOT=str(root)), capture_output=True, text=True,
                          check=False)
    return proc.stdout + proc.stderr, recap(proc.stdout)


@pytest.mark.parametrize("playbook,extra", [("site.yml", []), ("decommission.yml", []),
                                            ("rotation_status.yml", ["-e", "status_report=/dev/null"])])
def test_shipped_playbooks_pass_check_mode_fresh_and_deployed(tmp_path, playbook, extra):
    root = tmp_path / "demo"
    root.mkdir(mode=0o700)
    out, result = demo(tmp_path, playbook, *extra, check=True)
    assert all(r["failed"] == 0 for r in result.values()), out
    assert list(root.iterdir()) == [], "check mode wrote %s" % list(root.iterdir())
    out, result = demo(tmp_path, "site.yml")
    assert all(r["failed"] == 0 for r in result.values()), out
    before = tree(root)
    out, result = demo(tmp_path, playbook, *extra, check=True)
    assert all(r["failed"] == 0 for r in result.values()), out
    if playbook == "site.yml":
        assert all(r["changed"] == 0 for r in result.values()), out
    assert tree(root) == before


# ---------------------------------------------------------------- the controller's view of what a node reports

def action():
    from ansible_collections.securebydefault.pki.plugins.action import node_certificate

    return node_certificate


ALL = ["hostname", "fqdn", "ipv4", "ipv6"]


@pytest.mark.parametrize("prepared,discover,match", [
    ({"identity": ["node1", "node2"], "discovered": {"hostname": "node1"}}, ALL, "did not discover: \\['node2'\\]"),
    ({"identity": ["node1", "10.0.0.9"], "discovered": {"addresses": []}}, ALL, "did not discover"),
    # facts were gathered (nothing to discover): what the node reports anyway is not taken
    ({"identity": ["node1", "evil.example"], "discovered": {"hostname": "evil.example"}}, [], "did not discover"),
    ({"identity": ["node1", "login.example.com"], "discovered": {"addresses": ["login.example.com"]}}, ALL,
     "are not IP addresses"),
    ({"identity": ["node1", "spiffe://example.com/sa/db"], "discovered": {"fqdn": "spiffe://example.com/sa/db"}},
     ALL, "are not DNS names"),
    ({"identity": ["node1", "::ffff:a00:5"], "discovered": {"addresses": ["::ffff:10.0.0.5"]}}, ALL,
     "IPv4 address written as IPv6"),
    ({"identity": ["node1", "fd00::5"], "discovered": {"addresses": ["fd00::5"]}}, ["ipv4"], "not asked for"),
    ({"identity": ["node1"], "discovered": ["node1"]}, ALL, "not a mapping"),
    ({"identity": ["node1"], "discovered": {"addresses": "10.0.0.1"}}, ALL, "not a list"),
    ({"identity": ["node1", "x\ny"], "discovered": {"hostname": "x\ny"}}, ALL, "control character"),
])
def test_node_reports_are_rebuilt_not_believed(prepared, discover, match):
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

    with pytest.raises(PKIError, match=match):
        action().vetted_identity(["node1"], prepared, {"allow_wildcard": False}, discover)


def test_honest_node_report_is_rebuilt_to_the_same_identity():
    reported = {"identity": ["10.0.0.1", "node1", "node1.pki.test"],
                "discovered": {"fqdn": "node1.pki.test", "addresses": ["10.0.0.1"]}}
    identity = action().vetted_identity(["node1"], reported, {"allow_wildcard": False}, ALL)
    assert identity.names() == ["node1", "node1.pki.test", "10.0.0.1"]


ROLE_PLAY = """
- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: What a compromised node can answer to any module call
      fact_liar:
      when: lie | default(false) | bool
    - name: The node_certificate role, with its CA set in the inventory
      ansible.builtin.include_role:
        name: securebydefault.pki.node_certificate
      vars:
        node_certificate_path: "{{ base }}/{{ inventory_hostname }}"
        node_certificate_identity_from: [inventory_hostname]
"""

FACT_LIAR = """#!/usr/bin/python
import json
print(json.dumps({"changed": False,
                  "ansible_facts": {"node_certificate_ca_path": "%s", "node_certificate_ca_passphrase": ""}}))
"""


def test_a_node_cannot_choose_the_ca_through_its_facts(world):
    """Facts override inventory variables (INJECT_FACTS_AS_VARS): a node that answers a module call with a fact
    named node_certificate_ca_path would have the controller sign with a CA of its choice (here another zone's
    CA, its key unencrypted). The role refuses, naming the host and the facts, before anything is signed."""
    other = world["tmp"] / "other-zone-ca"
    rc, out = ad_hoc("cluster_ca", {"ca_path": str(other), "common_name": "other zone", "encrypt_key": False})
    assert rc == 0, out
    (world["tmp"] / "library").mkdir()
    (world["tmp"] / "library" / "fact_liar.py").write_text(FACT_LIAR % other)
    (world["tmp"] / "role.yml").write_text(ROLE_PLAY)
    inv = world["tmp"] / "inventory.ini"
    inv.write_text("[pki_nodes]\nnode1 ansible_python_interpreter=%s node_certificate_ca_path=%s "
                   "node_certificate_ca_passphrase=%s\n" % (sys.executable, world["ca"], PASSPHRASE))

    def run(*extra):
        cmd = ["ansible-playbook", "-i", str(inv), str(world["tmp"] / "role.yml"),
               "-e", "base=%s" % (world["tmp"] / "nodes")] + list(extra)
        proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, check=False)
        return proc.stdout + proc.stderr, recap(proc.stdout)

    before = tree(world["ca"], other, world["tmp"] / "nodes")
    out, result = run("-e", "lie=true")
    assert result["node1"]["failed"] == 1, out
    assert "node1 reported facts named like this collection's variables" in out
    assert "node_certificate_ca_path" in out and "node_certificate_ca_passphrase" in out
    assert tree(world["ca"], other, world["tmp"] / "nodes") == before
    # control: the same node without the lie gets its certificate from the inventory's CA
    out, result = run()
    assert result["node1"]["failed"] == 0, out
    issued = (world["tmp"] / "nodes" / "node1" / "node.crt").read_text()
    rc, out = ad_hoc("certificate_info", {"path": str(world["tmp"] / "nodes" / "node1" / "node.crt")})
    assert "adversarial CA" in out and "other zone" not in out and issued
