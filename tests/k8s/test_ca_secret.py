# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A CA kept in a Kubernetes Secret (for controllers that do not last), on the real API server.

Nodes here are local (connection local, one directory per host) so that four concurrent
ansible-playbook runs fit on this machine; what is under test is the CA side: the Secret,
its conditional updates and the ledger in it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.ca_secret import CA_LABEL, SecretStore
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import Kube
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ledger

PASSPHRASE = "secret-ca-passphrase"
ROLE_PLAY = """
- hosts: all
  connection: local
  gather_facts: false
  roles:
    - role: securebydefault.pki.node_certificate
      vars:
        node_certificate_ca_secret: {namespace: "{{ ns }}", name: cluster-ca}
        node_certificate_ca_passphrase: %s
        node_certificate_path: "{{ base }}/{{ inventory_hostname }}"
        node_certificate_identity_from: [inventory_hostname]
        node_certificate_force: "{{ force | default(false) }}"
""" % PASSPHRASE


def ca_args(namespace, **extra):
    args = {"ca_secret": {"namespace": namespace, "name": "cluster-ca"}, "common_name": "secret CA",
            "ca_passphrase": PASSPHRASE, "permitted_dns": ["pki.test"]}
    args.update(extra)
    return args


def secret_files(api_client, namespace, name="cluster-ca"):
    secret = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}, secret


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True, check=False)


def test_cluster_ca_in_a_secret_converges_and_refuses_what_it_must(api_client, run_module, namespace, tmp_path):
    checked = run_module("cluster_ca", ca_args(namespace), check=True, diff=True)
    assert checked["changed"] and checked["location"] == {"secret": {"namespace": namespace, "name": "cluster-ca"}}
    with pytest.raises(client.ApiException) as missing:  # check mode is the server's dry run: nothing stored
        client.CoreV1Api(api_client).read_namespaced_secret("cluster-ca", namespace)
    assert missing.value.status == 404

    made = run_module("cluster_ca", ca_args(namespace))
    assert made["changed"] and made["reasons"] == ["no CA in Secret %s/cluster-ca yet" % namespace]
    files, secret = secret_files(api_client, namespace)
    assert secret.metadata.labels[CA_LABEL] == "true"
    assert b"ENCRYPTED PRIVATE KEY" in files["ca.key"]  # the Secret alone is not enough to sign
    assert sorted(files) == ["ca.crt", "ca.json", "ca.key", "root.crt"]
    (tmp_path / "root.pem").write_bytes(files["root.crt"])
    text = openssl("x509", "-noout", "-text", "-in", str(tmp_path / "root.pem")).stdout
    assert "Permitted:" in text and "DNS:pki.test" in text and "CA:TRUE" in text
    assert made["certificate"].encode() == files["ca.crt"]

    for check in (False, True):  # again, then check mode again: unchanged
        again = run_module("cluster_ca", ca_args(namespace), check=check)
        assert not again["changed"], again
        assert again["fingerprint"] == made["fingerprint"]
    assert secret_files(api_client, namespace)[1].metadata.resource_version == secret.metadata.resource_version

    # a policy change rewrites ca.json only, with the Secret's other keys byte-identical
    policy = run_module("cluster_ca", ca_args(namespace, max_leaf_validity="30d"), diff=True)
    assert policy["changed"] and "policy max_leaf_validity" in policy["reasons"][0]
    after = secret_files(api_client, namespace)[0]
    assert json.loads(after["ca.json"])["policy"]["max_leaf_validity"] == 30 * 86400
    assert {k: v for k, v in after.items() if k != "ca.json"} == {k: v for k, v in files.items() if k != "ca.json"}

    before = secret_files(api_client, namespace)[1].metadata.resource_version
    wrong = run_module("cluster_ca", ca_args(namespace, ca_passphrase="not-the-passphrase"))
    assert wrong["_status"] == "FAILED!" and wrong["field"] == "ca_passphrase"
    other = run_module("cluster_ca", ca_args(namespace, common_name="another CA", max_leaf_validity="30d"))
    assert other["_status"] == "FAILED!" and other["field"] == "ca_secret" and "common_name" in other["msg"]
    assert secret_files(api_client, namespace)[1].metadata.resource_version == before

    # a Secret this collection did not make is never taken over
    client.CoreV1Api(api_client).create_namespaced_secret(namespace, {"metadata": {"name": "app"},
                                                                      "data": {"k": "dg=="}})
    taken = run_module("cluster_ca", dict(ca_args(namespace), ca_secret={"namespace": namespace, "name": "app"}))
    assert taken["_status"] == "FAILED!" and taken["field"] == "ca_secret" and CA_LABEL in taken["msg"]
    assert secret_files(api_client, namespace, "app")[0] == {"k": b"v"}
    nowhere = run_module("cluster_ca", dict(ca_args(namespace), ca_secret={"namespace": "no-such-ns", "name": "ca"}))
    assert nowhere["_status"] == "FAILED!" and nowhere["field"] == "ca_secret" and "namespace" in nowhere["fix"]
    both = run_module("cluster_ca", dict(ca_args(namespace), ca_path=str(tmp_path / "ca")))
    assert both["_status"] == "FAILED!" and "mutually exclusive" in both["msg"]
    assert not (tmp_path / "ca").exists()


def test_a_write_that_lost_the_race_is_redone_on_the_newer_secret(control_plane, run_module, namespace):
    """The conditional update itself: a writer whose read is stale gets 409 and appends to the newer ledger."""
    assert run_module("cluster_ca", ca_args(namespace))["changed"]
    kube = Kube(kubeconfig=str(control_plane.kubeconfig))
    try:
        slow, fast = SecretStore(kube, namespace, "cluster-ca"), SecretStore(kube, namespace, "cluster-ca")
        attempts = []

        def append_slowly(files):
            attempts.append(len(ledger.parse(files.get(ledger.LEDGER) or b"")[0]))
            if len(attempts) == 1:  # another writer lands between our read and our write
                fast.record({"serial": "f1", "host": "fast"})
            return {ledger.LEDGER: ledger.appended(files.get(ledger.LEDGER) or b"", {"serial": "51", "host": "slow"})}

        slow.update(append_slowly, (ledger.LEDGER,))
        assert attempts == [0, 1] and slow.conflicts == 1 and fast.conflicts == 0
        entries, torn = ledger.parse(slow.read((ledger.LEDGER,))[ledger.LEDGER])
        # signing reads the CA, then records: the record is one PUT on the Secret just read, no second GET
        calls = kube.calls
        slow.record({"serial": "52", "host": "slow"})
        assert kube.calls - calls == 1 and slow.conflicts == 1
        # and a record after another writer's is a 409, a fresh read and the PUT again
        fast.record({"serial": "f2", "host": "fast"})
        calls = kube.calls
        slow.record({"serial": "53", "host": "slow"})
        assert kube.calls - calls == 3 and slow.conflicts == 2
        final = ledger.parse(fast.read((ledger.LEDGER,))[ledger.LEDGER])[0]
        assert [e["serial"] for e in final] == ["f1", "51", "52", "f2", "53"]
    finally:
        kube.close()
    assert [e["host"] for e in entries] == ["fast", "slow"] and torn == []


def run_playbook(tmp_path, env, hosts, namespace, *extra, **popen):
    return subprocess.Popen(["ansible-playbook", "-i", str(tmp_path / "inventory.ini"), str(tmp_path / "play.yml"),
                             "--limit", ",".join(hosts), "-f", "4", "-e", "ns=%s" % namespace,
                             "-e", "base=%s" % tmp_path, "-e", "ansible_python_interpreter=%s" % sys.executable,
                             *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def serial_of(path: Path) -> str:
    out = openssl("x509", "-noout", "-serial", "-in", str(path)).stdout
    return out.strip().split("=")[1].lower().lstrip("0")


def test_four_playbooks_and_a_revocation_at_once_against_one_secret_ca(api_client, control_plane, run_module,
                                                                       namespace, tmp_path):
    assert run_module("cluster_ca", ca_args(namespace))["changed"]
    before = secret_files(api_client, namespace)[0]
    hosts = ["h%02d.pki.test" % i for i in range(1, 17)]
    (tmp_path / "inventory.ini").write_text("\n".join(hosts) + "\n")
    (tmp_path / "play.yml").write_text(ROLE_PLAY)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", **control_plane.env())

    # h01 first, alone, so that a revocation of it can race the four runs below
    first = run_playbook(tmp_path, env, hosts[:1], namespace)
    assert first.wait() == 0, first.stdout.read()[-4000:]
    h01_serial = serial_of(tmp_path / hosts[0] / "node.crt")
    slices = [hosts[1 + i::4] for i in range(4)]
    runs = [run_playbook(tmp_path, env, part, namespace) for part in slices]
    revoked = run_module("revoke", {"ca_secret": {"namespace": namespace, "name": "cluster-ca"},
                                    "ca_passphrase": PASSPHRASE, "hosts": [hosts[0]]})
    outputs = [r.communicate()[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0, 0, 0], "\n".join(o[-3000:] for o in outputs)
    assert revoked["changed"] and [e["serial"] for e in revoked["revoked"]] == [h01_serial], revoked
    assert "crl_path" not in revoked

    files = secret_files(api_client, namespace)[0]
    for name in ("ca.crt", "ca.key", "root.crt", "ca.json"):
        assert files[name] == before[name], name  # the CA itself is untouched
    entries, torn = ledger.parse(files[ledger.LEDGER])
    assert torn == []
    assert sorted(e["host"] for e in entries) == hosts  # each host exactly once: nothing lost, nothing doubled
    serials = [serial_of(tmp_path / h / "node.crt") for h in hosts]
    assert len(set(serials)) == len(hosts)
    assert sorted(e["serial"] for e in entries) == sorted(serials)
    (tmp_path / "root.pem").write_bytes(files["root.crt"])
    (tmp_path / "crl.pem").write_bytes(files["crl.pem"])
    assert revoked["crl"].encode() == files["crl.pem"]
    for host in hosts:
        plain = openssl("verify", "-CAfile", str(tmp_path / "root.pem"), str(tmp_path / host / "node.crt"))
        assert plain.returncode == 0, plain.stdout + plain.stderr
        crl = openssl("verify", "-crl_check", "-CAfile", str(tmp_path / "root.pem"), "-CRLfile",
                      str(tmp_path / "crl.pem"), str(tmp_path / host / "node.crt"))
        assert (crl.returncode == 0) == (host != hosts[0]), (host, crl.stdout + crl.stderr)
        assert not (tmp_path / host / "ca.key").exists()

    # a rerun changes nothing and signs nothing; then h01, revoked, is re-issued and recorded once more
    rerun = run_playbook(tmp_path, env, hosts[1:], namespace)
    out = rerun.communicate()[0]
    assert rerun.returncode == 0 and "changed=0" in out and "changed=1" not in out, out[-3000:]
    reissue = run_playbook(tmp_path, env, hosts[:1], namespace, "-v")
    out = reissue.communicate()[0]
    assert reissue.returncode == 0 and "was revoked by the CA" in out, out[-3000:]
    entries = ledger.parse(secret_files(api_client, namespace)[0][ledger.LEDGER])[0]
    assert len(entries) == len(hosts) + 1 and [e["host"] for e in entries].count(hosts[0]) == 2
    assert serial_of(tmp_path / hosts[0] / "node.crt") != h01_serial

    # the status report reads the CA where it lives: its expiry and its CRL, from the Secret
    (tmp_path / "nodes.ini").write_text("[pki_nodes]\n%s ansible_connection=local\n" % hosts[1])
    report = tmp_path / "status.md"
    extra = {"pki_ca_secret": {"namespace": namespace, "name": "cluster-ca"}, "pki_node_path": str(tmp_path / hosts[1]),
             "status_report": str(report), "ansible_python_interpreter": sys.executable}
    status = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "nodes.ini"),
                             str(Path(__file__).resolve().parents[2] / "playbooks" / "rotation_status.yml"),
                             "-e", json.dumps(extra)], env=env, capture_output=True, text=True, check=False)
    assert status.returncode == 0, status.stdout[-4000:] + status.stderr[-2000:]
    rows = [line for line in report.read_text().splitlines() if line.startswith("| ok |")]
    where = "localhost:Secret %s/cluster-ca" % namespace
    assert any("| ca | CN=secret CA |" in r and where in r for r in rows), report.read_text()
    assert any("| crl | CRL 1 (1 revoked) |" in r and where in r for r in rows), report.read_text()
    assert any("| node_certificate |" in r and hosts[1] in r for r in rows), report.read_text()


def pair_matches(directory: Path) -> bool:
    cert = openssl("x509", "-noout", "-pubkey", "-in", str(directory / "node.crt")).stdout
    key = openssl("pkey", "-pubout", "-in", str(directory / "node.key")).stdout
    return bool(cert) and cert == key


def test_a_run_killed_while_signing_from_the_secret_loses_nothing(api_client, control_plane, run_module, namespace,
                                                                  tmp_path):
    assert run_module("cluster_ca", ca_args(namespace))["changed"]
    hosts = ["k%02d.pki.test" % i for i in range(1, 7)]
    (tmp_path / "inventory.ini").write_text("\n".join(hosts) + "\n")
    (tmp_path / "play.yml").write_text(ROLE_PLAY)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", **control_plane.env())
    first = run_playbook(tmp_path, env, hosts, namespace)
    assert first.wait() == 0, first.stdout.read()[-3000:]
    ca_before = secret_files(api_client, namespace)[0]
    previous = {h: (tmp_path / h / "node.crt").read_bytes() for h in hosts}

    def signed():
        return len(ledger.parse(secret_files(api_client, namespace)[0][ledger.LEDGER])[0])

    # re-issue everything, and SIGKILL the whole run as soon as its first signature is in the Secret
    killed = run_playbook(tmp_path, env, hosts, namespace, "-e", "force=true", start_new_session=True)
    deadline = time.monotonic() + 120
    while signed() == len(hosts):
        assert killed.poll() is None and time.monotonic() < deadline, "no signature before the deadline"
        time.sleep(0.02)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=30)

    after = secret_files(api_client, namespace)[0]
    assert {k: after[k] for k in ("ca.crt", "ca.key", "root.crt", "ca.json")} == \
        {k: ca_before[k] for k in ("ca.crt", "ca.key", "root.crt", "ca.json")}
    assert ledger.parse(after[ledger.LEDGER])[1] == []  # no torn entry: a Secret is written whole
    for host in hosts:
        assert pair_matches(tmp_path / host), "%s: key and certificate do not match after the kill" % host
    assert sum((tmp_path / h / "node.crt").read_bytes() != previous[h] for h in hosts) < len(hosts)

    again = run_playbook(tmp_path, env, hosts, namespace, "-e", "force=true")
    out = again.communicate()[0]
    assert again.returncode == 0, out[-3000:]
    entries = ledger.parse(secret_files(api_client, namespace)[0][ledger.LEDGER])[0]
    assert len({e["serial"] for e in entries}) == len(entries)
    for host in hosts:
        assert pair_matches(tmp_path / host) and (tmp_path / host / "node.crt").read_bytes() != previous[host]
        assert serial_of(tmp_path / host / "node.crt") in {e["serial"] for e in entries}
