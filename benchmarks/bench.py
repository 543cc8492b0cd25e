"""Times ansible-playbook runs over N local hosts (connection local, one directory per host).

Three plays over the same inventory, each in a fresh work directory:
  ping      ansible.builtin.ping - the floor: one module call per host
  this      securebydefault.pki.node_certificate - one task per host
  recipe    community.crypto's own-CA recipe: openssl_privatekey -> openssl_csr_pipe ->
            stat -> slurp -> x509_certificate_pipe (ownca, on the controller) -> copy
            (only when the certificate changed, as community.crypto's own examples write it)
Like with like: both make EC P-256 node keys (node_certificate's default key_type ec, size 256)
and sign with the same CA, whose key is encrypted with a passphrase (checked).
Each is run twice: the first run issues, the rerun must change nothing (checked).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.join(HERE, "..", "docs", "performance.md")
FORKS = 8
PASSPHRASE = "benchmark-passphrase"

PING = """
- hosts: nodes
  gather_facts: false
  tasks:
    - ansible.builtin.ping:
"""

THIS = """
- hosts: nodes
  gather_facts: false
  tasks:
    - securebydefault.pki.node_certificate:
        ca_path: "{{ ca_path }}"
        ca_passphrase: "{{ ca_passphrase }}"
        path: "{{ work }}/{{ inventory_hostname }}"
        identity_from: [inventory_hostname]
"""

RECIPE = """
- hosts: nodes
  gather_facts: false
  tasks:
    - community.crypto.openssl_privatekey:  # node_certificate's default key: EC P-256
        path: "{{ work }}/{{ inventory_hostname }}/node.key"
        type: ECC
        curve: secp256r1
    - community.crypto.openssl_csr_pipe:
        privatekey_path: "{{ work }}/{{ inventory_hostname }}/node.key"
        common_name: "{{ inventory_hostname }}"
        subject_alt_name: ["DNS:{{ inventory_hostname }}"]
        extended_key_usage: [serverAuth, clientAuth]
      register: csr
      changed_when: false  # a pipe module writes nothing but always reports changed
    - ansible.builtin.stat:
        path: "{{ work }}/{{ inventory_hostname }}/node.crt"
      register: existing
    - ansible.builtin.slurp:
        src: "{{ work }}/{{ inventory_hostname }}/node.crt"
      register: existing_cert
      when: existing.stat.exists
    - community.crypto.x509_certificate_pipe:
        content: "{{ (existing_cert.content | b64decode) if existing.stat.exists else omit }}"
        csr_content: "{{ csr.csr }}"
        provider: ownca
        ownca_path: "{{ ca_path }}/ca.crt"
        ownca_privatekey_path: "{{ ca_path }}/ca.key"
        ownca_privatekey_passphrase: "{{ ca_passphrase }}"
        ownca_not_after: +90d
      delegate_to: localhost
      register: cert
    - ansible.builtin.copy:
        content: "{{ cert.certificate }}"
        dest: "{{ work }}/{{ inventory_hostname }}/node.crt"
        mode: "0644"
      when: cert is changed  # x509_certificate_pipe returns the existing certificate unchanged while it fits
"""

CA = """
- hosts: localhost
  gather_facts: false
  tasks:
    - securebydefault.pki.cluster_ca:
        ca_path: "{{ ca_path }}"
        common_name: benchmark CA
        ca_passphrase: "{{ ca_passphrase }}"
"""


def inventory(n: int, path: str) -> None:
    lines = ["nodes:", "  hosts:"]
    lines += ["    node%03d.bench.internal:" % i for i in range(n)]
    lines += ["  vars:", "    ansible_connection: local", "    ansible_python_interpreter: %s" % sys.executable]
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def play(base: str, name: str, text: str, inv: str, extra: dict) -> tuple:
    path = os.path.join(base, name + ".yml")
    with open(path, "w") as handle:
        handle.write(text)
    env = dict(os.environ, ANSIBLE_FORKS=str(FORKS), ANSIBLE_HOST_KEY_CHECKING="False",
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_NOCOLOR="1")
    start = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "-i", inv, path, "-e", json.dumps(extra)], env=env,
                          capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise SystemExit("%s failed" % name)
    recap = proc.stdout[proc.stdout.rfind("PLAY RECAP"):]
    changed = {host: int(count) for host, count in re.findall(r"^(\S+)\s*: ok=\d+\s+changed=(\d+)", recap, re.M)}
    return elapsed, changed


def measure(n: int) -> dict:
    base = tempfile.mkdtemp(prefix="sbd-bench-%d-" % n)
    try:
        inv = os.path.join(base, "inventory.yml")
        inventory(n, inv)
        ca_path = os.path.join(base, "ca")
        extra = {"ca_path": ca_path, "ca_passphrase": PASSPHRASE}
        play(base, "ca", CA, inv, extra)
        with open(os.path.join(ca_path, "ca.key")) as handle:
            if "ENCRYPTED" not in handle.read():
                raise SystemExit("the CA key both sides sign with must be encrypted with a passphrase")
        row = {"n": n}
        row["ping"] = play(base, "ping", PING, inv, dict(extra, work=base))[0]
        for name, text in (("this", THIS), ("recipe", RECIPE)):
            work = os.path.join(base, name)
            os.makedirs(work)
            for host in range(n):
                os.makedirs(os.path.join(work, "node%03d.bench.internal" % host))
            first, changed_first = play(base, name, text, inv, dict(extra, work=work))
            rerun, changed_rerun = play(base, name, text, inv, dict(extra, work=work))
            hosts = ["node%03d.bench.internal" % host for host in range(n)]
            unchanged = [h for h in hosts if changed_first.get(h, 0) == 0]
            rechanged = [h for h in hosts if changed_rerun.get(h, 1) != 0]
            if unchanged or rechanged:
                raise SystemExit("%s: first run left %d of %d hosts unchanged, rerun changed (or missed) %d"
                                 % (name, len(unchanged), n, len(rechanged)))
            check_node_key(os.path.join(work, hosts[0]), name)
            row[name + "_first"], row[name + "_rerun"] = first, rerun
        return row
    finally:
        shutil.rmtree(base, ignore_errors=True)


def check_node_key(directory: str, name: str) -> None:
    """Both sides must have made the same kind of node key: EC P-256."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    keys = [f for f in os.listdir(directory) if f.endswith(".key") and not f.startswith(".")]
    if len(keys) != 1:
        raise SystemExit("%s: expected one node key in %s, found %s" % (name, directory, keys))
    with open(os.path.join(directory, keys[0]), "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SystemExit("%s: node key %s is not EC P-256" % (name, keys[0]))


def crypto_version() -> str:
    import cryptography
    return cryptography.__version__


def table(rows: list) -> str:
    out = ["| hosts | ping | node_certificate first | rerun | recipe first | rerun "
           "| first: recipe / this | rerun: recipe / this | first: this / ping | rerun: this / ping |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append("| %d | %.1f s | %.1f s | %.1f s | %.1f s | %.1f s | %.1f× | %.1f× | %.2f× | %.2f× |" % (
            r["n"], r["ping"], r["this_first"], r["this_rerun"], r["recipe_first"], r["recipe_rerun"],
            r["recipe_first"] / r["this_first"], r["recipe_rerun"] / r["this_rerun"],
            r["this_first"] / r["ping"], r["this_rerun"] / r["ping"]))
    return "\n".join(out)


def main(argv):
    sizes = [int(a) for a in argv] or [10, 50, 200]
    rows = []
    for n in sizes:
        row = measure(n)
        print(json.dumps(row), flush=True)
        rows.append(row)
    core = subprocess.run(["ansible", "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    stamp = time.strftime("%Y-%m-%d")
    body = ("<!-- benchmark:start -->\nMeasured %s on %d cores, %s, forks=%d, connection local, "
            "Python %s with cryptography %s on controller and hosts.\n\n%s\n<!-- benchmark:end -->"
            % (stamp, os.cpu_count(), core, FORKS, sys.version.split()[0], crypto_version(), table(rows)))
    empty = "# Performance\n\n<!-- benchmark:start -->\n<!-- benchmark:end -->\n"
    text = open(DOC).read() if os.path.exists(DOC) else empty
    text = re.sub(r"<!-- benchmark:start -->.*<!-- benchmark:end -->", lambda _m: body, text, flags=re.S)
    with open(DOC, "w") as handle:
        handle.write(text)
    print(table(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
