# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rotation of a CA kept in a Kubernetes Secret (issue #16), under live mutual TLS.

The CA is kept in a Secret of the real API server (as for an AWX controller that does not last), and so is
the new one; the state of the rotation lives in the new CA's Secret. Nodes are local (connection local, one
directory per host). Node n1 runs a TLS server that serves its node.crt and trusts its ca-bundle.crt for
client certificates, reloading them when they change on disk (as a service reloaded by a handler would);
node n2 runs a client that presents its own certificate and trusts its own bundle, reloaded the same way,
and handshakes all the time. Through trust both -> switched -> done no handshake may fail; at the end the
old root is refused both ways. n1's endpoint is also the rotation's live gate, probed from the CA host
with a client certificate of the new CA (the new CA's key read from its Secret).
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from kubernetes import client

PASSPHRASE = "secret-ca-passphrase"
NEW_PASSPHRASE = "another-passphrase"  # each CA its own: the role must pick the right one in every stage
SERVER, CLIENT = "n1.pki.test", "n2.pki.test"

NODES_PLAY = """
- hosts: all
  connection: local
  gather_facts: false
  roles:
    - role: securebydefault.pki.node_certificate
      vars:
        node_certificate_ca_secret: {namespace: "{{ ns }}", name: zone-ca}
        node_certificate_ca_passphrase: %s
        node_certificate_path: "{{ base }}/{{ inventory_hostname }}"
        node_certificate_identity_from: [inventory_hostname]
""" % PASSPHRASE

ROTATION_PLAY = """
- hosts: all
  connection: local
  gather_facts: false
  roles:
    - role: securebydefault.pki.ca_rotation
      vars:
        ca_rotation_old_ca_secret: {namespace: "{{ ns }}", name: zone-ca}
        ca_rotation_new_ca_secret: {namespace: "{{ ns }}", name: zone-ca-2}
        ca_rotation_old_ca_passphrase: %s
        ca_rotation_new_ca_passphrase: %s
        ca_rotation_new_ca: {common_name: zone CA 2, permitted_dns: [pki.test], permitted_ip_ranges: [127.0.0.0/8]}
        ca_rotation_switch_after: 0s
        ca_rotation_drop_after: 0s
        node_certificate_path: "{{ base }}/{{ inventory_hostname }}"
        node_certificate_identity_from: [inventory_hostname]
""" % (PASSPHRASE, NEW_PASSPHRASE)


def files_of(directory: Path, cert: str = "node.crt"):
    return tuple((directory / name).read_bytes() for name in (cert, "node.key", "ca-bundle.crt"))


def context_of(files, server: bool) -> ssl.SSLContext:
    """A context that presents node.crt/node.key and verifies the peer against ca-bundle.crt."""
    cert, key, bundle = files
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=bundle.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL if server else ssl.CERT_REQUIRED
    # memory files: the key never touches the disk a second time (Linux; a private tmpfs elsewhere)
    fd = os.memfd_create("node")
    try:
        os.write(fd, cert + key)
        ctx.load_cert_chain("/proc/self/fd/%d" % fd)
    finally:
        os.close(fd)
    return ctx


class Reloading:
    """A TLS context rebuilt when the node's files change, and kept when they do not load (a pair mid-write)."""

    def __init__(self, directory: Path, server: bool, cert: str = "node.crt") -> None:
        self.directory, self.server, self.cert = directory, server, cert
        self.files = files_of(directory, cert)
        self.ctx = context_of(self.files, server)
        self.reloads = 0

    def current(self) -> ssl.SSLContext:
        try:
            files = files_of(self.directory, self.cert)
            if files != self.files:
                self.ctx, self.files = context_of(files, self.server), files
                self.reloads += 1
        except (OSError, ssl.SSLError, ValueError):
            pass  # a service keeps what it serves when a reload fails
        return self.ctx


class Live:
    """n1 serves, n2 handshakes all the time; every handshake's outcome is recorded."""

    def __init__(self, base: Path, client_too: bool = True, served: str = "node.crt") -> None:
        self.roles = 2 if client_too else 1
        self.server = Reloading(base / SERVER, server=True, cert=served)
        self.client = Reloading(base / CLIENT, server=False, cert=served)  # a client presents its chain too
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.5)
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.ok, self.failures, self.threads, self.peers = 0, [], [], set()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                continue
            try:
                with self.server.current().wrap_socket(conn, server_side=True) as tls:
                    # a client without a certificate (the node's own tls_probe) is told so; n2 always has one
                    peer = tls.getpeercert()
                    if peer:
                        self.peers.add(dict(item[0] for item in peer["subject"]).get("commonName"))
                    tls.sendall(b"ok" if peer else b"no")
            except (OSError, ssl.SSLError):
                conn.close()  # the client records the failure

    def _client(self):
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    with self.client.current().wrap_socket(sock, server_hostname=SERVER) as tls:
                        assert tls.recv(2) == b"ok"
                self.ok += 1
            except (OSError, ssl.SSLError, AssertionError) as exc:
                self.failures.append("%s: %r" % (time.strftime("%H:%M:%S"), exc))
            self.stop.wait(0.05)

    def __enter__(self):
        self.threads = [threading.Thread(target=t, daemon=True) for t in (self._serve, self._client)[:self.roles]]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(10)
        self.listener.close()


def playbook(tmp_path, env, play, namespace, *extra):
    (tmp_path / "play.yml").write_text(play)
    return subprocess.run(["ansible-playbook", "-i", str(tmp_path / "inventory.ini"), str(tmp_path / "play.yml"),
                           "-e", "ns=%s" % namespace, "-e", "base=%s" % tmp_path,
                           "-e", "ansible_python_interpreter=%s" % sys.executable, *extra],
                          env=env, capture_output=True, text=True, check=False)


def serving_at(base: Path, port: int) -> None:
    """The inventory: n1 serves at 127.0.0.1:``port``, an address its certificate carries."""
    (base / "inventory.ini").write_text(
        "%s node_certificate_ip_addresses='[\"127.0.0.1\"]' node_certificate_endpoints='[\"127.0.0.1:%d\"]' "
        "node_certificate_endpoint_server_name=%s\n%s\n" % (SERVER, port, SERVER, CLIENT))


def why(run) -> str:
    """What a failed run says: its fatal lines, then its end."""
    lines = run.stdout.splitlines()
    fatal = [line for line in lines if line.startswith(("fatal:", "failed:")) or "FAILED!" in line]
    return "\n".join(fatal)[-6000:] + "\n...\n" + "\n".join(lines[-15:]) + "\n" + run.stderr[-2000:]


def secret_data(api_client, namespace, name):
    secret = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def refused(port: int, client_files, trust: bytes) -> bool:
    """Whether a handshake with n1's server fails for a client presenting ``client_files`` and trusting ``trust``."""
    ctx = context_of((client_files[0], client_files[1], trust), server=False)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            with ctx.wrap_socket(sock, server_hostname=SERVER) as tls:
                return tls.recv(2) != b"ok"
    except (OSError, ssl.SSLError):
        return True


def test_a_ca_kept_in_a_secret_rotates_without_a_failed_handshake(
        api_client, control_plane, run_module, namespace, tmp_path):
    made = run_module("cluster_ca", {"ca_secret": {"namespace": namespace, "name": "zone-ca"}, "common_name": "zone CA",
                                     "ca_passphrase": PASSPHRASE, "permitted_dns": ["pki.test"],
                                     "permitted_ip_ranges": ["127.0.0.0/8"]})
    assert made["changed"], made
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", **control_plane.env())
    (tmp_path / "inventory.ini").write_text("%s\n%s\n" % (SERVER, CLIENT))
    first = playbook(tmp_path, env, NODES_PLAY, namespace)
    assert first.returncode == 0, why(first)
    old_root = secret_data(api_client, namespace, "zone-ca")["root.crt"]
    old_client = files_of(tmp_path / CLIENT)

    with Live(tmp_path) as live:
        # n1 serves at 127.0.0.1:port, a name its certificate carries: its node tasks and the rotation's live
        # gates probe it there
        serving_at(tmp_path, live.port)
        again = playbook(tmp_path, env, NODES_PLAY, namespace)  # n1's certificate gets its address
        assert again.returncode == 0, why(again)
        started = playbook(tmp_path, env, ROTATION_PLAY, namespace, "-e", "ca_rotation_stage=trust_both")
        assert started.returncode == 0, why(started)
        recorded = secret_data(api_client, namespace, "zone-ca-2")
        assert json.loads(recorded["rotation.json"])["stage"] == "trust_both"
        on_disk = {host: files_of(tmp_path / host) for host in (SERVER, CLIENT)}
        # check mode would go on (no time gates here), and stores nothing: not the state, not the nodes' files
        checked = playbook(tmp_path, env, ROTATION_PLAY, namespace, "--check")
        assert checked.returncode == 0, why(checked)
        assert secret_data(api_client, namespace, "zone-ca-2") == recorded
        assert {host: files_of(tmp_path / host) for host in (SERVER, CLIENT)} == on_disk
        rotated = playbook(tmp_path, env, ROTATION_PLAY, namespace)
        assert rotated.returncode == 0, why(rotated)
        time.sleep(1)  # a few more handshakes on what the rotation left
    assert live.failures == [], live.failures[:10]
    # the live gates probed n1 with a client certificate of the new CA, its key read from the Secret
    assert "securebydefault.pki rotation probe" in live.peers, live.peers
    assert live.ok > 20 and live.server.reloads >= 2 and live.client.reloads >= 2, (live.ok, live.server.reloads)

    new = secret_data(api_client, namespace, "zone-ca-2")
    state = json.loads(new["rotation.json"])
    assert state["stage"] == "done" and state["new_ca_secret"] == {"namespace": namespace, "name": "zone-ca-2"}
    assert not list(tmp_path.rglob("*.rotation.json"))  # no state on the controller's disk
    for host in (SERVER, CLIENT):
        assert (tmp_path / host / "ca-bundle.crt").read_bytes() == new["root.crt"]
        assert old_root not in (tmp_path / host / "ca-bundle.crt").read_bytes()

    # the old root is refused both ways: n1 serves a certificate it cannot verify, and refuses n2's old certificate
    with Live(tmp_path, client_too=False) as live:
        assert refused(live.port, files_of(tmp_path / CLIENT), old_root)
        assert refused(live.port, old_client, new["root.crt"])
        assert not refused(live.port, files_of(tmp_path / CLIENT), new["root.crt"])

        # a rerun at done changes nothing (n1's endpoint, probed again, is served)
        serving_at(tmp_path, live.port)
        rerun = playbook(tmp_path, env, ROTATION_PLAY, namespace)
        assert rerun.returncode == 0, why(rerun)
        assert "changed=0" in rerun.stdout and "changed=1" not in rerun.stdout, why(rerun)


def rotate_in_secret(plane, tmp_path, extra, api_client, namespace):
    """One run of the ca_rotation role (no nodes); the stage recorded in the new CA's Secret, and changed=N."""
    (tmp_path / "rotate.yml").write_text(ISSUER_PLAY)
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", **plane.env())
    proc = subprocess.run(["ansible-playbook", "-i", "localhost,", str(tmp_path / "rotate.yml"),
                           "-e", "@%s" % (tmp_path / "vars.json"),
                           "-e", "ansible_python_interpreter=%s" % sys.executable],
                          capture_output=True, text=True, env=env, check=False)
    recap = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", proc.stdout)
    assert recap and recap.group(3) == "0", why(proc)
    state = json.loads(secret_data(api_client, namespace, "zone-ca-2")["rotation.json"])
    return state["stage"], int(recap.group(2))


ISSUER_PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: securebydefault.pki.ca_rotation
"""


def test_a_ca_issuer_backed_by_a_ca_kept_in_a_secret_rotates_without_a_failed_handshake(
        api_client, control_plane, run_module, tmp_path):
    """(c) of issue #16: the Ansible CA kept in a Secret backs a CA Issuer; pods trust a trust-manager Bundle."""
    from test_trust_rotation import Live as PodLive, handshake  # pylint: disable=import-outside-toplevel

    core = client.CoreV1Api(api_client)
    label = "sec-" + uuid.uuid4().hex[:6]
    ca_ns, server_ns, client_ns = ("ts-%s-%s" % (role, uuid.uuid4().hex[:6]) for role in ("ca", "srv", "cli"))
    core.create_namespace({"metadata": {"name": ca_ns}})
    for name in (server_ns, client_ns):
        core.create_namespace({"metadata": {"name": name, "labels": {"sbd-trust": label}}})
    old, new = {"namespace": ca_ns, "name": "zone-ca"}, {"namespace": ca_ns, "name": "zone-ca-2"}
    assert run_module("cluster_ca", {"ca_secret": old, "common_name": "secret CA 1", "ca_passphrase": PASSPHRASE,
                                     "intermediate": True, "permitted_dns": ["svc.cluster.local"]})["changed"]
    issuer = run_module("cert_manager_issuer", {"name": "zone", "namespace": server_ns, "type": "ca",
                                                "ca_secret_name": "zone-ca", "ca_secret": old,
                                                "ca_passphrase": PASSPHRASE})
    assert issuer["ready"] and issuer["ca_secret"]["intermediate"], issuer
    # the Issuer's Secret holds a per-issuer intermediate; the root key stays in the CA's Secret
    issuer_secret = core.read_namespaced_secret("zone-ca", server_ns).data
    root_key = secret_data(api_client, ca_ns, "zone-ca")["root.key"]
    assert b"ENCRYPTED" in root_key and base64.b64decode(issuer_secret["tls.key"]) != root_key
    server_name = "api.%s.svc.cluster.local" % server_ns
    assert run_module("cert_manager_certificate", {"name": "api", "namespace": server_ns, "issuer_name": "zone",
                                                   "dns_names": [server_name]})["ready"]
    bundle_name = "trust-" + label
    first = run_module("k8s_trust_bundle", {"name": bundle_name, "namespace": server_ns, "ca_secrets": [old],
                                            "distribution": "auto", "namespace_selector": {"sbd-trust": label}})
    assert first["distribution"] == "trust_manager" and first["namespaces"] == sorted([server_ns, client_ns]), first
    secret = core.read_namespaced_secret("api", server_ns)
    old_pair = base64.b64decode(secret.data["tls.crt"]) + base64.b64decode(secret.data["tls.key"])

    extra = {"ca_rotation_nodes": False, "ca_rotation_old_ca_secret": old, "ca_rotation_new_ca_secret": new,
             "ca_rotation_old_ca_passphrase": PASSPHRASE, "ca_rotation_new_ca_passphrase": NEW_PASSPHRASE,
             "ca_rotation_new_ca": {"common_name": "secret CA 2", "intermediate": True,
                                    "permitted_dns": ["svc.cluster.local"]},
             "ca_rotation_switch_after": "0", "ca_rotation_drop_after": "0", "ca_rotation_rounds": 1,
             "ca_rotation_trust_namespace_selector": {"sbd-trust": label},
             "ca_rotation_cert_manager": [{"namespace": server_ns, "issuer": "zone", "ca_secret": "zone-ca",
                                           "bundle": bundle_name}]}
    stages = []
    with PodLive(api_client, server_ns, client_ns, "api", bundle_name, server_name) as live:
        for _stage in range(3):
            time.sleep(2)  # traffic on each stage before the next
            stages.append(rotate_in_secret(control_plane, tmp_path, extra, api_client, ca_ns)[0])
        time.sleep(2)
    assert stages == ["trust_both", "switched", "done"], stages
    assert live.failures == [], live.failures[:5]
    assert live.ok > 50 and live.errors == [], (live.ok, live.errors[:5])

    new_root = secret_data(api_client, ca_ns, "zone-ca-2")["root.crt"].decode()
    final = core.read_namespaced_config_map(bundle_name, client_ns).data["ca.crt"]
    assert final.strip() == new_root.strip()
    assert not handshake(old_pair, final, server_name)  # the old root is refused at the end
    secret = core.read_namespaced_secret("api", server_ns)
    assert handshake(base64.b64decode(secret.data["tls.crt"]) + base64.b64decode(secret.data["tls.key"]),
                     final, server_name)
    # the Issuer's Secret holds an intermediate of the new root now, never a root key
    held = base64.b64decode(core.read_namespaced_secret("zone-ca", server_ns).data["tls.crt"]).decode()
    assert new_root in held and base64.b64decode(core.read_namespaced_secret("zone-ca", server_ns).data["tls.key"]) \
        != secret_data(api_client, ca_ns, "zone-ca-2")["root.key"]
    assert rotate_in_secret(control_plane, tmp_path, extra, api_client, ca_ns) == ("done", 0)


class StaticClient:
    """A peer that never rereads its bundle: the old root, loaded once; it handshakes all the time, no client cert."""

    def __init__(self, port: int, trust: bytes) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.load_verify_locations(cadata=trust.decode())
        self.port, self.ok, self.failures = port, 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    with self.ctx.wrap_socket(sock, server_hostname=SERVER) as tls:
                        assert tls.recv(2) == b"no"  # the server answers; it asked for no certificate of us
                self.ok += 1
            except (OSError, ssl.SSLError, AssertionError) as exc:
                self.failures.append("%s: %r" % (time.strftime("%H:%M:%S"), exc))
            self.stop.wait(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)


def test_cross_signed_a_peer_that_never_rereads_its_bundle_keeps_working_until_done(
        api_client, control_plane, run_module, namespace, tmp_path):
    """Issue #16: with ca_rotation_cross_sign, n1 serves the new CA's leaf with the cross certificate while switched."""
    made = run_module("cluster_ca", {"ca_secret": {"namespace": namespace, "name": "zone-ca"}, "common_name": "zone CA",
                                     "ca_passphrase": PASSPHRASE, "intermediate": True, "permitted_dns": ["pki.test"],
                                     "permitted_ip_ranges": ["127.0.0.0/8"]})
    assert made["changed"], made
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", **control_plane.env())
    (tmp_path / "inventory.ini").write_text("%s\n%s\n" % (SERVER, CLIENT))
    first = playbook(tmp_path, env, NODES_PLAY, namespace)
    assert first.returncode == 0, why(first)
    old_bundle = (tmp_path / CLIENT / "ca-bundle.crt").read_bytes()
    cross_play = ROTATION_PLAY.replace(
        "ca_rotation_switch_after: 0s", "ca_rotation_switch_after: 0s\n        ca_rotation_cross_sign: true").replace(
        "{common_name: zone CA 2,", "{common_name: zone CA 2, intermediate: true,")

    with Live(tmp_path, served="node-fullchain.crt") as live:
        serving_at(tmp_path, live.port)
        again = playbook(tmp_path, env, NODES_PLAY, namespace)
        assert again.returncode == 0, why(again)
        with StaticClient(live.port, old_bundle) as static:
            for stage in ("trust_both", "switched"):
                run = playbook(tmp_path, env, cross_play, namespace, "-e", "ca_rotation_stage=%s" % stage)
                assert run.returncode == 0, why(run)
                time.sleep(1)
            state = json.loads(secret_data(api_client, namespace, "zone-ca-2")["rotation.json"])
            assert state["stage"] == "switched"
            # n1 serves the new CA's leaf with the cross certificate: issued by the old root, for the new CA's name
            served = (tmp_path / SERVER / "node-fullchain.crt").read_text()
            new_ca = secret_data(api_client, namespace, "zone-ca-2")
            assert secret_data(api_client, namespace, "zone-ca-2")["cross.crt"].decode() in served
            assert new_ca["ca.crt"].decode() not in served
            until_done = list(static.failures)
            ok_until_done = static.ok
            done = playbook(tmp_path, env, cross_play, namespace)
            assert done.returncode == 0, why(done)
            time.sleep(1)
        # a rerun at done changes nothing (n1's endpoint is probed again)
        rerun = playbook(tmp_path, env, cross_play, namespace)
        assert rerun.returncode == 0, why(rerun)
        assert "changed=0" in rerun.stdout and "changed=1" not in rerun.stdout, why(rerun)
    assert until_done == [] and ok_until_done > 20, (until_done[:5], ok_until_done)
    assert live.failures == [], live.failures[:10]  # the peer that rereads its bundle: never a failure
    state = json.loads(secret_data(api_client, namespace, "zone-ca-2")["rotation.json"])
    assert state["stage"] == "done"
    # at done the leaf is served with the new CA's own chain: the peer that never reread its bundle now fails
    assert new_ca["ca.crt"].decode() in (tmp_path / SERVER / "node-fullchain.crt").read_text()
    assert static.failures and "CERTIFICATE_VERIFY_FAILED" in static.failures[-1], static.failures[-3:]
