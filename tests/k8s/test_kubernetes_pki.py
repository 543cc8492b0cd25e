# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubernetes_pki role issues a cluster's own PKI, and a real control plane runs on it.

playbooks/kubernetes_pki.yml runs on an inventory of three hosts (cp1: etcd and control plane;
node1, node2: nodes). Every host is a directory of this machine reached with the local connection
(the role is the same over SSH; the netns hosts of molecule/ are not needed to prove what the
components accept). Then etcd, kube-apiserver, kube-controller-manager and kube-scheduler start on
exactly the files and flags the role wrote - not on the harness's own CA - with
--authorization-mode=Node,RBAC and the NodeRestriction admission plugin, and the tests ask them
what Kubernetes decides by those certificates: who the admin is, who holds the leader leases, what
a node may do to its own and to another Node object, and whether a service-account token is good.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  pylint: disable=wrong-import-position

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "kubernetes_pki.yml"
HOSTS = {"cp1.k8s.test": ["etcd", "kube_control_plane"], "node1.k8s.test": ["kube_node"],
         "node2.k8s.test": ["kube_node"]}
NODE_NAMES = {"node1.k8s.test": "node1", "node2.k8s.test": "node2.k8s.test"}
PASSPHRASE = "kubernetes pki test passphrase"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def inventory(root: Path, host_vars=None) -> Path:
    """An inventory of local-connection hosts, each with its own directories under ``root``."""
    groups = {}
    for host, member_of in HOSTS.items():
        for group in member_of:
            groups.setdefault(group, {"hosts": {}})["hosts"][host] = None
    hosts = {}
    for host in HOSTS:
        hosts[host] = {"kubernetes_pki_dir": str(root / "hosts" / host / "pki"),
                       "kubernetes_pki_config_dir": str(root / "hosts" / host / "etc")}
        if host in NODE_NAMES:
            hosts[host]["kubernetes_pki_node_name"] = NODE_NAMES[host]
    hosts["cp1.k8s.test"]["kubernetes_pki_addresses"] = ["127.0.0.1"]
    for host, extra in (host_vars or {}).items():
        hosts[host].update(extra)
    data = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                    "hosts": hosts, "children": groups}}
    path = root / "inventory.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_playbook(root: Path, extra: dict, host_vars=None, check=False):
    """Run the playbook; returns (process, {host: recap counts})."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "vars.json").write_text(json.dumps(extra))
    cmd = ["ansible-playbook", str(PLAYBOOK), "-i", str(inventory(root, host_vars)), "-e", "@%s" % (root / "vars.json")]
    if check:
        cmd.append("--check")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_FORKS="5")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    recap = {}
    for match in re.finditer(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout,
                             re.M):
        recap[match.group(1)] = {k: int(v) for k, v in zip(("ok", "changed", "unreachable", "failed"),
                                                           match.groups()[1:])}
    return proc, recap


def base_vars(root: Path, apiserver_port: int = 6443) -> dict:
    return {"kubernetes_pki_ca_dir": str(root / "ca"), "kubernetes_pki_ca_passphrase": PASSPHRASE,
            "kubernetes_pki_admin_dir": str(root / "admin"),
            "kubernetes_pki_apiserver_url": "https://127.0.0.1:%d" % apiserver_port,
            "kubernetes_pki_valid_for": "30d", "kubernetes_pki_renew_before": "10d"}


def pki_args(root: Path, host: str, component: str) -> list:
    """The flags the role wrote for ``component`` on ``host`` (pki-flags/<component>.env)."""
    text = (root / "hosts" / host / "etc" / "pki-flags" / (component + ".env")).read_text()
    line = [raw for raw in text.splitlines() if raw and not raw.startswith("#")][0]
    return shlex.split(shlex.split(line.split("=", 1)[1])[0])


class RoleCluster(harness.ControlPlane):
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler on the role's files and flags."""

    def __init__(self, state, root: Path):
        super().__init__(state)
        self.root = root

    def start_components(self, ports: dict, timeout: float = 120.0):
        binaries = harness.build_all(components=COMPONENTS)
        self.state.mkdir(parents=True, mode=0o700)
        (self.state / harness.MARKER).write_text("made by tests/k8s/test_kubernetes_pki.py\n")
        (self.state / "logs").mkdir()
        self.info = {"ports": ports, "pids": {}, "state": str(self.state)}
        self._save()
        started = time.monotonic()
        cp1 = "cp1.k8s.test"
        etcd_url = "https://127.0.0.1:%d" % ports["etcd"]
        peer_url = "https://127.0.0.1:%d" % ports["etcd-peer"]
        self._spawn("etcd", [
            str(binaries["etcd"]), "--name=cp1", "--data-dir=%s" % (self.state / "etcd"),
            "--listen-client-urls=%s" % etcd_url, "--advertise-client-urls=%s" % etcd_url,
            "--listen-peer-urls=%s" % peer_url, "--initial-advertise-peer-urls=%s" % peer_url,
            "--initial-cluster=cp1=%s" % peer_url, "--initial-cluster-state=new",
            "--unsafe-no-fsync", "--log-level=warn"] + pki_args(self.root, cp1, "etcd"))
        etcd_dir = self.root / "hosts" / cp1 / "pki" / "etcd"
        self._wait("etcd", lambda: self.https_status(
            ports["etcd"], "/health", etcd_dir / "ca-bundle.crt",
            (etcd_dir / "apiserver-etcd-client.crt", etcd_dir / "apiserver-etcd-client.key")) == 200,
            started + timeout)
        self._spawn("kube-apiserver", [
            str(binaries["kube-apiserver"]), "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            "--secure-port=%d" % ports["apiserver"], "--etcd-servers=%s" % etcd_url,
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=false", "--profiling=false", "--v=1"] + pki_args(self.root, cp1, "kube-apiserver"))
        admin = self.root / "admin"
        self._wait("kube-apiserver", lambda: self.https_status(
            ports["apiserver"], "/readyz", admin / "ca-bundle.crt", (admin / "admin.crt", admin / "admin.key")) == 200,
            started + timeout)
        for name in ("kube-controller-manager", "kube-scheduler"):
            self._spawn(name, [
                str(binaries[name]), "--bind-address=127.0.0.1", "--secure-port=%d" % ports[name],
                "--leader-elect=true", "--v=1"] + pki_args(self.root, cp1, name))
            # /healthz of their own serving certificate (self-signed by each component in memory)
            self._wait(name, lambda port=ports[name]: self.https_status(port, "/healthz", None, None) == 200,
                       started + timeout)
        return self

    @staticmethod
    def https_status(port, path, cafile, cert):
        import http.client  # pylint: disable=import-outside-toplevel

        if cafile is None:
            context = ssl._create_unverified_context()  # pylint: disable=protected-access
        else:
            context = ssl.create_default_context(cafile=str(cafile))
        if cert:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        finally:
            conn.close()


@pytest.fixture(scope="module")
def role_cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("kubernetes-pki")
    ports = {name: harness.free_port() for name in ("etcd", "etcd-peer", "apiserver", "kube-controller-manager",
                                                    "kube-scheduler")}
    extra = base_vars(root, ports["apiserver"])
    proc, recap = run_playbook(root, extra)
    assert proc.returncode == 0 and recap and all(r["failed"] == 0 for r in recap.values()), proc.stdout + proc.stderr
    cluster = RoleCluster(root / "plane", root)
    try:
        cluster.start_components(ports)
        yield cluster, root, extra
    finally:
        cluster.stop()


def api(root: Path, kubeconfig: Path):
    return config.new_client_from_config(config_file=str(kubeconfig))


def whoami(api_client) -> dict:
    review = client.AuthenticationV1Api(api_client).create_self_subject_review({
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return {"username": review.status.user_info.username, "groups": review.status.user_info.groups or []}


def test_the_admin_kubeconfig_works_with_the_identity_the_role_gave_it(role_cluster):
    _cluster, root, _extra = role_cluster
    admin = api(root, root / "admin" / "admin.conf")
    me = whoami(admin)
    assert me["username"] == "kubernetes-admin" and "system:masters" in me["groups"]
    assert "kube-system" in [n.metadata.name for n in client.CoreV1Api(admin).list_namespace().items]


def test_controller_manager_and_scheduler_hold_their_leases_with_their_identities(role_cluster):
    _cluster, root, _extra = role_cluster
    etc = root / "hosts" / "cp1.k8s.test" / "etc"
    assert whoami(api(root, etc / "controller-manager.conf"))["username"] == "system:kube-controller-manager"
    assert whoami(api(root, etc / "scheduler.conf"))["username"] == "system:kube-scheduler"
    leases = client.CoordinationV1Api(api(root, root / "admin" / "admin.conf"))
    holders = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(holders) < 2:
        for name in ("kube-controller-manager", "kube-scheduler"):
            try:
                holder = leases.read_namespaced_lease(name, "kube-system").spec.holder_identity
            except client.ApiException:
                continue
            if holder:
                holders[name] = holder
        time.sleep(1)
    assert set(holders) == {"kube-controller-manager", "kube-scheduler"}, holders
    # the controller-manager works as itself: it made the kube-root-ca.crt ConfigMap from the role's bundle
    core = client.CoreV1Api(api(root, root / "admin" / "admin.conf"))
    deadline = time.monotonic() + 60
    published = None
    while time.monotonic() < deadline and published is None:
        try:
            published = core.read_namespaced_config_map("kube-root-ca.crt", "default").data["ca.crt"]
        except client.ApiException:
            time.sleep(1)
    bundle = (root / "hosts" / "cp1.k8s.test" / "pki" / "ca-bundle.crt").read_text()
    assert published is not None and published.strip() == bundle.strip()


def node_object(name):
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def test_a_node_may_change_its_own_node_object_and_no_other(role_cluster):
    _cluster, root, _extra = role_cluster
    node1 = client.CoreV1Api(api(root, root / "hosts" / "node1.k8s.test" / "etc" / "kubelet.conf"))
    node2 = client.CoreV1Api(api(root, root / "hosts" / "node2.k8s.test" / "etc" / "kubelet.conf"))
    assert whoami(node1.api_client) == {"username": "system:node:node1",
                                        "groups": ["system:nodes", "system:authenticated"]}
    node1.create_node(node_object("node1"))
    patched = node1.patch_node("node1", {"metadata": {"annotations": {"sbd-pki/seen": "yes"}}})
    assert patched.metadata.annotations["sbd-pki/seen"] == "yes"
    node2.create_node(node_object("node2.k8s.test"))
    with pytest.raises(client.ApiException) as denied:
        node1.patch_node("node2.k8s.test", {"metadata": {"annotations": {"sbd-pki/taken": "yes"}}})
    assert denied.value.status == 403
    with pytest.raises(client.ApiException) as denied:
        node1.create_node(node_object("node3"))
    assert denied.value.status == 403
    with pytest.raises(client.ApiException) as denied:
        node2.delete_node("node1")
    assert denied.value.status == 403


def test_a_service_account_token_is_accepted(role_cluster):
    _cluster, root, _extra = role_cluster
    admin = api(root, root / "admin" / "admin.conf")
    core = client.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": "tokens"}})
    core.create_namespaced_service_account("tokens", {"metadata": {"name": "reader"}})
    token = core.create_namespaced_service_account_token(
        "reader", "tokens", {"spec": {"expirationSeconds": 600}}).status.token
    configuration = client.Configuration()
    configuration.host = admin.configuration.host
    configuration.ssl_ca_cert = str(root / "admin" / "ca-bundle.crt")
    configuration.api_key = {"authorization": "Bearer " + token}
    assert whoami(client.ApiClient(configuration))["username"] == "system:serviceaccount:tokens:reader"
    configuration.api_key = {"authorization": "Bearer " + token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")}
    with pytest.raises(client.ApiException) as refused:
        whoami(client.ApiClient(configuration))
    assert refused.value.status == 401


def private_key_files(root: Path):
    for path in root.rglob("*"):
        if path.is_file() and "PRIVATE KEY-----" in path.read_text(errors="replace"):
            yield path


def test_every_private_key_is_on_the_host_that_uses_it_and_nowhere_else(role_cluster):
    _cluster, root, _extra = role_cluster
    found = {str(p.relative_to(root)) for p in private_key_files(root) if not str(p).startswith(str(root / "plane"))}
    expected = {"admin/admin.key"}
    for ca in ("cluster", "etcd", "front-proxy"):
        expected |= {str(p.relative_to(root)) for p in (root / "ca" / ca).rglob("*.key")}
    cp1 = "hosts/cp1.k8s.test/pki/"
    expected |= {cp1 + n for n in ("apiserver.key", "apiserver-kubelet-client.key", "controller-manager.key",
                                   "scheduler.key", "sa.key", "etcd/server.key", "etcd/peer.key",
                                   "etcd/apiserver-etcd-client.key", "front-proxy/front-proxy-client.key")}
    expected |= {cp1 + "service-accounts/" + p.name for p in (root / cp1 / "service-accounts").glob("*.private*")}
    for node in ("node1.k8s.test", "node2.k8s.test"):
        expected |= {"hosts/%s/pki/%s" % (node, n) for n in ("kubelet-client.key", "kubelet.key", "kube-proxy.key")}
    assert found == expected
    # the CA keys are encrypted on the CA host
    for ca in ("cluster", "etcd", "front-proxy"):
        for key in (root / "ca" / ca).rglob("*.key"):
            assert "ENCRYPTED PRIVATE KEY" in key.read_text(), key


def test_a_rerun_changes_nothing(role_cluster):
    _cluster, root, extra = role_cluster
    proc, recap = run_playbook(root, extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {h: r["changed"] for h, r in recap.items()} == {h: 0 for h in recap}, proc.stdout


@pytest.mark.parametrize("host_vars, extra, field", [
    ({"node1.k8s.test": {"kubernetes_pki_node_name": "node7"}}, {}, "kubernetes_pki_node_name"),
    ({}, {"kubernetes_pki_service_cidr": "10.96.0.0/16", "kubernetes_pki_service_ip": "10.97.0.1"},
     "kubernetes_pki_service_ip"),
    ({}, {"kubernetes_pki_etcd_ca_permitted_dns": ["etcd.k8s.test"], "kubernetes_pki_etcd_ca_permitted_ip_ranges":
          ["127.0.0.0/8", "::1/128"]}, "kubernetes_pki_etcd_ca_permitted_dns"),
])
def test_bad_input_fails_before_anything_is_written(tmp_path, host_vars, extra, field):
    proc, _recap = run_playbook(tmp_path, dict(base_vars(tmp_path), **extra), host_vars)
    assert proc.returncode != 0
    assert field in proc.stdout, proc.stdout
    assert not (tmp_path / "ca").exists() and not (tmp_path / "hosts").exists() and not (tmp_path / "admin").exists()


class LoadClient:
    """Identities making requests without pause (bounded, loopback only), counted per stage.

    Each request is a new TLS connection, so every handshake meets what the apiserver serves at that
    moment and presents what the identity's files hold. Like client-go, a client rereads its certificate
    and key files and keeps the pair it had while the two files do not match (one is written before
    the other).
    """

    def __init__(self, port: int, bundle: Path):
        self.port, self.bundle = port, bundle
        self.stage = "start"
        self.counts = {}
        self.errors = []
        self.stop = threading.Event()
        self.threads = []
        self.lock = threading.Lock()

    def add(self, name, expected_user, pair=None, token=None):
        def loop():
            good = None  # the last pair that matched, copied to files of this client
            spare = Path(tempfile.mkdtemp(prefix="sbd-pki-load-"))
            while not self.stop.is_set():
                stage = self.stage
                ok, detail = False, ""
                try:
                    context = ssl.create_default_context(cafile=str(self.bundle))
                    if pair:
                        current = (pair[0].read_bytes(), pair[1].read_bytes())
                        if current != good:
                            (spare / "new.crt").write_bytes(current[0])
                            (spare / "new.key").write_bytes(current[1])
                            try:
                                ssl.create_default_context().load_cert_chain(spare / "new.crt", spare / "new.key")
                                os.replace(spare / "new.crt", spare / "good.crt")
                                os.replace(spare / "new.key", spare / "good.key")
                                good = current
                            except ssl.SSLError:
                                pass  # mid-write (the key is new, the certificate not yet): keep the pair we had
                        context.load_cert_chain(spare / "good.crt", spare / "good.key")
                    conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=10)
                    headers = {"Content-Type": "application/json", "Accept": "application/json"}
                    if token:
                        headers["Authorization"] = "Bearer " + token
                    conn.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", headers=headers,
                                 body=json.dumps({"apiVersion": "authentication.k8s.io/v1",
                                                  "kind": "SelfSubjectReview"}))
                    response = conn.getresponse()
                    body = response.read()
                    conn.close()
                    user = json.loads(body).get("status", {}).get("userInfo", {}).get("username")
                    ok = response.status == 201 and user == expected_user
                    detail = "HTTP %d %s" % (response.status, user)
                except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as exc:
                    detail = "%s: %s" % (type(exc).__name__, exc)
                with self.lock:
                    entry = self.counts.setdefault(stage, {"requests": 0, "failures": 0})
                    entry["requests"] += 1
                    if not ok:
                        entry["failures"] += 1
                        self.errors.append((stage, name, detail))
                time.sleep(0.02)
            shutil.rmtree(spare, ignore_errors=True)

        thread = threading.Thread(target=loop, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        return self.counts


def served_fingerprint(port: int) -> str:
    context = ssl._create_unverified_context()  # pylint: disable=protected-access
    import socket  # pylint: disable=import-outside-toplevel

    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def file_fingerprint(path: Path) -> str:
    pem = path.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def lease_renewed(root: Path, name: str) -> object:
    leases = client.CoordinationV1Api(api(root, root / "admin" / "admin.conf"))
    return leases.read_namespaced_lease(name, "kube-system").spec.renew_time


def test_every_leaf_renewed_under_load_without_a_failed_request_or_a_restart(role_cluster):
    cluster, root, extra = role_cluster
    port = cluster.info["ports"]["apiserver"]
    cp1 = root / "hosts" / "cp1.k8s.test" / "pki"
    pids = dict(cluster.pids())
    before = {p: file_fingerprint(p) for p in sorted(root.glob("hosts/*/pki/**/*.crt"))
              if p.name != "ca-bundle.crt" and not p.name.endswith("-fullchain.crt")}
    before[root / "admin" / "admin.crt"] = file_fingerprint(root / "admin" / "admin.crt")
    assert len(before) == 15  # eight on cp1, three on each node, the admin's
    assert served_fingerprint(port) == before[cp1 / "apiserver.crt"]

    admin = client.CoreV1Api(api(root, root / "admin" / "admin.conf"))
    admin.create_namespace({"metadata": {"name": "load"}})
    admin.create_namespaced_service_account("load", {"metadata": {"name": "client"}})
    token = admin.create_namespaced_service_account_token(
        "client", "load", {"spec": {"expirationSeconds": 3600}}).status.token
    load = LoadClient(port, root / "admin" / "ca-bundle.crt")
    load.add("admin", "kubernetes-admin", (root / "admin" / "admin.crt", root / "admin" / "admin.key"))
    node1 = root / "hosts" / "node1.k8s.test" / "pki"
    load.add("node1", "system:node:node1", (node1 / "kubelet-client.crt", node1 / "kubelet-client.key"))
    load.add("service account", "system:serviceaccount:load:client", token=token)
    try:
        time.sleep(3)
        load.stage = "leaf renewal"
        # every leaf at once, as `kubeadm certs renew all` would (a schedule renews each when it is due)
        proc, recap = run_playbook(root, dict(extra, kubernetes_pki_renew_now=True))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert all(r["changed"] > 0 for r in recap.values()), proc.stdout
        after = {p: file_fingerprint(p) for p in before}
        assert [p for p in before if before[p] == after[p]] == []  # every leaf is new
        load.stage = "after renewal"
        # kube-apiserver reloads its serving certificate by itself; etcd serves the new one on new connections
        deadline = time.monotonic() + 120
        while served_fingerprint(port) != after[cp1 / "apiserver.crt"] and time.monotonic() < deadline:
            time.sleep(1)
        assert served_fingerprint(port) == after[cp1 / "apiserver.crt"]
        assert served_fingerprint(cluster.info["ports"]["etcd"]) == after[cp1 / "etcd" / "server.crt"]
        renewed = {name: lease_renewed(root, name) for name in ("kube-controller-manager", "kube-scheduler")}
        time.sleep(12)
        for name, at in renewed.items():
            assert lease_renewed(root, name) > at, name  # still leading, on their renewed identities
    finally:
        counts = load.finish()
    print("requests per stage: %s" % json.dumps(counts))
    assert load.errors == [], load.errors[:10]
    assert counts["leaf renewal"]["requests"] > 50 and counts["after renewal"]["requests"] > 50, counts
    assert cluster.pids() == pids  # no component was restarted
