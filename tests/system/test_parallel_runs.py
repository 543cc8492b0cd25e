# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several playbook runs signing with one CA at once, and a run killed mid-way.

Hosts are local (connection local, one directory per host) so that twenty of them and four
concurrent ansible-playbook processes fit on this machine; the CA side is exactly what it is
with SSH hosts.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest


PLAY = """
- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Node certificate
      securebydefault.pki.node_certificate:
        ca_path: "{{ ca }}"
        ca_passphrase: parallel-ca-passphrase
        path: "{{ base }}/{{ inventory_hostname }}"
        identity_from: [inventory_hostname]
        force: "{{ force | default(false) }}"
"""


def run_ansible(args, env, **popen):
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


@pytest.fixture
def world(tmp_path):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_LOCALHOST_WARNING="0")
    ca = tmp_path / "ca"
    made = subprocess.run(["ansible", "localhost", "-c", "local", "-i", "localhost,", "-m",
                           "securebydefault.pki.cluster_ca", "-a",
                           json.dumps({"ca_path": str(ca), "common_name": "parallel CA",
                                       "ca_passphrase": "parallel-ca-passphrase", "permitted_dns": ["pki.test"]}),
                           "-e", "ansible_python_interpreter=%s" % sys.executable],
                          env=env, capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    hosts = ["h%02d.pki.test" % i for i in range(1, 26)]
    (tmp_path / "inventory.ini").write_text("\n".join(hosts) + "\n")
    (tmp_path / "play.yml").write_text(PLAY)
    return {"tmp": tmp_path, "ca": ca, "hosts": hosts, "env": env}


def playbook(world, limit, *extra, **popen):
    args = ["ansible-playbook", "-i", str(world["tmp"] / "inventory.ini"), str(world["tmp"] / "play.yml"),
            "--limit", ",".join(limit), "-f", "5", "-e", "ca=%s" % world["ca"], "-e", "base=%s" % world["tmp"],
            "-e", "ansible_python_interpreter=%s" % sys.executable] + list(extra)
    return run_ansible(args, world["env"], **popen)


def ca_digest(ca):
    return {name: hashlib.sha256((ca / name).read_bytes()).hexdigest()
            for name in ("ca.crt", "ca.key", "root.crt", "ca.json")}


def serial(cert):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(cert)], capture_output=True, text=True,
                         check=True).stdout
    return out.strip().split("=")[1].lower().lstrip("0")


def pair_matches(directory):
    cert = subprocess.run(["openssl", "x509", "-noout", "-pubkey", "-in", str(directory / "node.crt")],
                          capture_output=True, text=True, check=True).stdout
    key = subprocess.run(["openssl", "pkey", "-pubout", "-in", str(directory / "node.key")],
                         capture_output=True, text=True, check=True).stdout
    return cert == key


def ledger(ca):
    return [json.loads(line) for line in (ca / "ledger.jsonl").read_text().splitlines() if line.strip()]


def test_four_runs_at_once_against_one_ca(world):
    before = ca_digest(world["ca"])
    groups = [world["hosts"][i:i + 5] for i in range(0, 20, 5)]
    procs = [playbook(world, group) for group in groups]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], "\n".join(o[-3000:] for o in outputs)

    serials = {}
    for host in world["hosts"][:20]:
        directory = world["tmp"] / host
        result = subprocess.run(["openssl", "verify", "-CAfile", str(world["ca"] / "root.crt"),
                                 "-verify_hostname", host, str(directory / "node.crt")],
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert pair_matches(directory)
        serials[host] = serial(directory / "node.crt")
    assert len(set(serials.values())) == 20  # unique serials

    entries = ledger(world["ca"])
    assert len(entries) == 20
    assert sorted(e["host"] for e in entries) == sorted(world["hosts"][:20])
    assert {e["host"]: e["serial"].lstrip("0") for e in entries} == serials  # each exactly once, the right one
    assert all(e["names"] == [e["host"]] and e["not_after"] for e in entries)
    assert ca_digest(world["ca"]) == before  # the CA's own files untouched


def test_a_killed_run_loses_nothing_and_the_next_run_completes(world):
    hosts = world["hosts"][20:25]
    first = playbook(world, hosts)
    assert first.communicate(timeout=300)[0] and first.returncode == 0
    before = ca_digest(world["ca"])
    previous = {h: ((world["tmp"] / h / "node.crt").read_bytes(), (world["tmp"] / h / "node.key").read_bytes())
                for h in hosts}
    issued = len(ledger(world["ca"]))

    # re-issue everything, and SIGKILL the whole run as soon as the first new signature is in the ledger
    killed = playbook(world, hosts, "-e", "force=true", start_new_session=True)
    deadline = time.monotonic() + 120
    while len(ledger(world["ca"])) == issued:
        assert killed.poll() is None and time.monotonic() < deadline, "no signature before the deadline"
        time.sleep(0.01)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=30)

    assert ca_digest(world["ca"]) == before
    changed = 0
    for host in hosts:
        directory = world["tmp"] / host
        assert pair_matches(directory), "%s: key and certificate do not match after the kill" % host
        changed += (directory / "node.crt").read_bytes() != previous[host][0]
    assert changed < len(hosts)  # the kill really interrupted the run

    again = playbook(world, hosts, "-e", "force=true")
    output = again.communicate(timeout=300)[0]
    assert again.returncode == 0, output[-3000:]
    for host in hosts:
        directory = world["tmp"] / host
        assert pair_matches(directory)
        assert (directory / "node.crt").read_bytes() != previous[host][0]
    entries, bad = ledger(world["ca"]), []
    assert len({e["serial"] for e in entries}) == len(entries) and not bad
