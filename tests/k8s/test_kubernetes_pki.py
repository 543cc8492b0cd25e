# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kubernetes_pki role issues a cluster's own PKI, and a real control plane runs on it.

playbooks/kubernetes_pki.yml runs on an inventory of five hosts (cp1, cp2: etcd and control plane;
etcd3: etcd; node1, node2: nodes). Every host is a directory of this machine reached with the local connection
(the role is the same over SSH; the netns hosts of molecule/ are not needed to prove what the
components accept). Then etcd, kube-apiserver, kube-controller-manager and kube-scheduler start on
exactly the files and flags the role wrote - not on the harness's own CA - with
--authorization-mode=Node,RBAC and the NodeRestriction admission plugin, and the tests ask them
what Kubernetes decides by those certificates: who the admin is, who holds the leader leases, what
a node may do to its own and to another Node object, and whether a service-account token is good.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  pylint: disable=wrong-import-position

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "kubernetes_pki.yml"
HOSTS = {"cp1.k8s.test": ["etcd", "kube_control_plane"], "cp2.k8s.test": ["etcd", "kube_control_plane"],
         "etcd3.k8s.test": ["etcd"], "node1.k8s.test": ["kube_node"], "node2.k8s.test": ["kube_node"]}
# three etcd members (a rolling restart keeps a quorum), each on 127.0.0.1 with its own ports
ETCD_MEMBERS = [host for host, member_of in HOSTS.items() if "etcd" in member_of]
# each control-plane node's apiserver listens on its own loopback address
APISERVER_ADDRESS = {"cp1.k8s.test": "127.0.0.1", "cp2.k8s.test": "127.0.0.2"}
# each host's own loopback address (its etcd member's peer URL is there: a peer verifies it)
ADDRESS = dict(APISERVER_ADDRESS, **{"etcd3.k8s.test": "127.0.0.3"})
NODE_NAMES = {"node1.k8s.test": "node1", "node2.k8s.test": "node2.k8s.test"}
PASSPHRASE = "kubernetes pki test passphrase"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
LEADERS = ("kube-controller-manager", "kube-scheduler")


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
    for host, address in ADDRESS.items():
        hosts[host]["kubernetes_pki_addresses"] = [address]
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
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if os.environ.get("SBD_PKI_K8S_LOAD_REPORT"):  # what the role's runs cost, beside the load per stage
        with open(os.environ["SBD_PKI_K8S_LOAD_REPORT"], "a", encoding="utf-8") as out:
            elapsed = time.monotonic() - started
            kind = "role run --check" if check else "role run"
            out.write("%s (%s): %.1f s, rc %d\n" % (kind, root.name, elapsed, proc.returncode))
    recap = {}
    for match in re.finditer(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout,
                             re.M):
        recap[match.group(1)] = {k: int(v) for k, v in zip(("ok", "changed", "unreachable", "failed"),
                                                           match.groups()[1:])}
    return proc, recap


def endpoint_vars(ports: dict) -> dict:
    """Each control-plane node's apiserver, and the endpoints the live gates of a CA rotation probe."""
    out = {host: {"kubernetes_pki_apiserver_endpoint": "https://%s:%d" % (address, ports["apiserver-" + host])}
           for host, address in APISERVER_ADDRESS.items()}
    for host in HOSTS:
        endpoints = {"cluster": [], "etcd": [], "front_proxy": []}
        if host in APISERVER_ADDRESS:
            endpoints["cluster"] = ["%s:%d" % (APISERVER_ADDRESS[host], ports["apiserver-" + host])]
        if host in ETCD_MEMBERS:
            endpoints["etcd"] = ["127.0.0.1:%d" % ports["etcd-" + host], "%s:%d" % (ADDRESS[host], ports[
                "etcd-peer-" + host])]
        out.setdefault(host, {})["kubernetes_pki_rotation_endpoints"] = endpoints
    return out


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
    """etcd, two kube-apiservers, kube-controller-manager and kube-scheduler on the role's files and flags."""

    def __init__(self, state, root: Path):
        super().__init__(state)
        self.root = root
        self.argv = {}
        self.ready = {}
        self.killed = []  # restarts that needed SIGKILL after the grace period

    def start_components(self, ports: dict, timeout: float = 120.0):
        binaries = harness.build_all(components=COMPONENTS)
        self.state.mkdir(parents=True, mode=0o700)
        (self.state / harness.MARKER).write_text("made by tests/k8s/test_kubernetes_pki.py\n")
        (self.state / "logs").mkdir()
        self.info = {"ports": ports, "pids": {}, "state": str(self.state)}
        self._save()
        cp1 = "cp1.k8s.test"
        etcd_dir = self.root / "hosts" / cp1 / "pki" / "etcd"
        members = {host: ("https://127.0.0.1:%d" % ports["etcd-" + host], "https://%s:%d" % (ADDRESS[host], ports[
            "etcd-peer-" + host])) for host in ETCD_MEMBERS}
        initial = ",".join("%s=%s" % (host.split(".")[0], urls[1]) for host, urls in members.items())
        for host, (client_url, peer_url) in members.items():  # all three first: each waits for a quorum
            name = "etcd-" + host.split(".")[0]
            self.argv[name] = [
                str(binaries["etcd"]), "--name=%s" % host.split(".")[0], "--data-dir=%s" % (self.state / name),
                "--listen-client-urls=%s" % client_url, "--advertise-client-urls=%s" % client_url,
                "--listen-peer-urls=%s" % peer_url, "--initial-advertise-peer-urls=%s" % peer_url,
                "--initial-cluster=%s" % initial, "--initial-cluster-state=new",
                # every connection here comes from 127.0.0.1 (the kernel's source for any loopback address), which
                # is not in cp2's and etcd3's peer certificates (each names its own address): etcd's check of a
                # dialing peer's source address is off in this test only; certificates are verified as always
                "--peer-skip-client-san-verification=true",
                "--unsafe-no-fsync", "--log-level=warn"] + pki_args(self.root, host, "etcd")
            # healthy: it answers the apiserver's etcd client identity (so it trusts the etcd CA it was given)
            self.ready[name] = lambda port=ports["etcd-" + host]: self.https_status(
                port, "/health", etcd_dir / "ca-bundle.crt",
                (etcd_dir / "apiserver-etcd-client.crt", etcd_dir / "apiserver-etcd-client.key")) == 200
            self._spawn(name, self.argv[name])
        for host in members:
            name = "etcd-" + host.split(".")[0]
            self._wait(name, self.ready[name], time.monotonic() + timeout)
        etcd_url = ",".join(urls[0] for urls in members.values())
        admin = self.root / "admin"
        for host, address in APISERVER_ADDRESS.items():
            port = ports["apiserver-" + host]
            self.launch("kube-apiserver-" + host, [
                str(binaries["kube-apiserver"]), "--bind-address=%s" % address, "--advertise-address=%s" % address,
                "--secure-port=%d" % port, "--etcd-servers=%s" % etcd_url,
                "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
                # behind a load balancer: on SIGTERM, fail /readyz first and keep serving while it drains; then
                # end the long-running watches (of the controller-manager, the scheduler) so that they reconnect and
                # the exit is not held until their requests time out (--request-timeout, 60 s)
                "--shutdown-delay-duration=5s", "--shutdown-watch-termination-grace-period=5s",
                "--allow-privileged=false", "--profiling=false", "--v=1"] + pki_args(self.root, host, "kube-apiserver"),
                lambda address=address, port=port: self.https_status(
                    port, "/readyz", admin / "ca-bundle.crt", (admin / "admin.crt", admin / "admin.key"),
                    address) == 200, timeout)
        for name in ("kube-controller-manager", "kube-scheduler"):
            self.launch(name, [
                str(binaries[name]), "--bind-address=127.0.0.1", "--secure-port=%d" % ports[name],
                # their kubeconfig names cp1's apiserver (as kubeadm's names the local one): a renew deadline that
                # outlasts that apiserver's restart under CI load (with the default 10 s, a slow restart makes them
                # lose the lease and exit, and their supervisor would start them again)
                "--leader-elect=true", "--leader-elect-lease-duration=40s", "--leader-elect-renew-deadline=30s",
                "--leader-elect-retry-period=2s", "--v=1"] + pki_args(self.root, cp1, name) + (
                    # give up the lease on SIGTERM (the scheduler always does), so a restarted one leads at once
                    ["--feature-gates=ControllerManagerReleaseLeaderElectionLockOnExit=true"]
                    if name == "kube-controller-manager" else []),
                # /healthz of their own serving certificate (self-signed by each component in memory)
                lambda port=ports[name]: self.https_status(port, "/healthz", None, None) == 200, timeout)
        return self

    def launch(self, name, argv, ready, timeout=120.0):
        self.argv[name], self.ready[name] = argv, ready
        self._spawn(name, argv)
        self._wait(name, ready, time.monotonic() + timeout)

    GRACE = 20.0

    def restart(self, name, timeout=120.0):
        """Stop one component and start it again with the same flags.

        SIGTERM, then SIGKILL once ``GRACE`` seconds have passed, as the kubelet ends a static pod after its
        termination grace period (kubeadm's apiserver gets the default 30 s) and systemd a unit after
        TimeoutStopSec. kube-apiserver has drained its requests by then (--shutdown-delay-duration plus the
        drain); what can keep it alive longer is waiting for clients to close long-running connections, for up
        to its --request-timeout (60 s), and meanwhile the controller-manager and scheduler that talk to it could
        not renew their leases.
        """
        leader = self.lease_holder(name) if name in LEADERS else None
        proc = self.processes.pop(name)
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=self.GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            self.killed.append(name)
        self.launch(name, self.argv[name], self.ready[name], timeout)
        if name in LEADERS:
            # as a careful rolling restart does: go on once the new process leads and has started its controllers
            # (one that loses its apiserver while it builds them exits)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                lease = self.lease(name)
                if lease and lease.spec.holder_identity not in (None, leader) and (
                        lease.spec.renew_time - lease.spec.acquire_time).total_seconds() >= 5:
                    break
                time.sleep(1)
            else:
                raise AssertionError("%s did not take its lease again within %.0f s" % (name, timeout))
        self.assert_running()

    def lease(self, name):
        try:
            return client.CoordinationV1Api(api(self.root, self.root / "admin" / "admin.conf")).read_namespaced_lease(
                name, "kube-system")
        except client.ApiException:
            return None

    def lease_holder(self, name):
        lease = self.lease(name)
        return lease.spec.holder_identity if lease else None

    def assert_running(self):
        """Every component is still running (nothing here restarts one that exits, as systemd would)."""
        for name, proc in self.processes.items():
            assert proc.poll() is None, "%s exited (status %s); log: %s\n%s" % (
                name, proc.returncode, self.log(name), harness.log_tail(self.log(name)))

    def stop(self, remove: bool = True, grace: float = 15.0) -> None:
        """Stop every component; their logs are kept beside the test's files (root/logs)."""
        try:
            super().stop(remove=False, grace=grace)
        finally:
            if (self.state / "logs").is_dir():
                shutil.copytree(self.state / "logs", self.root / "logs", dirs_exist_ok=True)
            if remove:
                shutil.rmtree(self.state, ignore_errors=True)

    @staticmethod
    def https_status(port, path, cafile, cert, address="127.0.0.1"):
        if cafile is None:
            context = ssl._create_unverified_context()  # pylint: disable=protected-access
        else:
            context = ssl.create_default_context(cafile=str(cafile))
        if cert:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        conn = http.client.HTTPSConnection(address, port, context=context, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        finally:
            conn.close()


@pytest.fixture(scope="module")
def role_cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("kubernetes-pki")
    names = ["kube-controller-manager", "kube-scheduler"] + ["etcd-" + h for h in ETCD_MEMBERS] + [
        "etcd-peer-" + h for h in ETCD_MEMBERS]
    ports = {name: harness.free_port() for name in names + ["apiserver-" + h for h in APISERVER_ADDRESS]}
    extra = base_vars(root, ports["apiserver-cp1.k8s.test"])
    proc, recap = run_playbook(root, extra, endpoint_vars(ports))
    assert proc.returncode == 0 and recap and all(r["failed"] == 0 for r in recap.values()), proc.stdout + proc.stderr
    cluster = RoleCluster(root / "plane", root)
    cluster.host_vars = endpoint_vars(ports)
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
    assert_private_keys_only_where_used(root, ["cluster", "etcd", "front-proxy"])


def assert_private_keys_only_where_used(root: Path, ca_directories: list) -> None:
    """Every private key file under the test root is one a host (or the admin, or the CA host) uses; the CA keys
    are encrypted on the CA host; ansible's temporary directories hold none. The test's own copies of old pairs
    (kept-old/) and the harness's plane are left out."""
    found = {str(p.relative_to(root)) for p in private_key_files(root)
             if not str(p).startswith((str(root / "plane"), str(root / "kept-old")))}
    expected = {"admin/admin.key"}
    expected |= {str(p.relative_to(root)) for p in (root / "ca").rglob("*.key")}
    for host in APISERVER_ADDRESS:
        pki = "hosts/%s/pki/" % host
        expected |= {pki + n for n in ("apiserver.key", "apiserver-kubelet-client.key", "controller-manager.key",
                                       "scheduler.key", "sa.key", "etcd/apiserver-etcd-client.key",
                                       "front-proxy/front-proxy-client.key")}
        expected |= {pki + "service-accounts/" + p.name for p in (root / pki / "service-accounts").glob("*.private*")}
    for member in ETCD_MEMBERS:
        expected |= {"hosts/%s/pki/%s" % (member, n) for n in ("etcd/server.key", "etcd/peer.key")}
    for node in ("node1.k8s.test", "node2.k8s.test"):
        expected |= {"hosts/%s/pki/%s" % (node, n) for n in ("kubelet-client.key", "kubelet.key", "kube-proxy.key")}
    assert found == expected
    # the CA keys are encrypted on the CA host
    assert sorted(p.name for p in (root / "ca").iterdir() if p.is_dir()) == ca_directories
    for key in (root / "ca").rglob("*.key"):
        assert "ENCRYPTED PRIVATE KEY" in key.read_text(), key
    ansible_tmp = Path.home() / ".ansible" / "tmp"
    assert not (ansible_tmp.is_dir() and list(private_key_files(ansible_tmp)))


def test_a_rerun_changes_nothing(role_cluster):
    cluster, root, extra = role_cluster
    proc, recap = run_playbook(root, extra, cluster.host_vars)
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
    moment and presents what the identity's files hold. Requests pass through a model of a fail-closed load
    balancer in front of the apiservers: each apiserver's /readyz is checked every 0.2 s (each by its own
    checker, 1 s timeout), one failed check takes it out of rotation and one good check puts it back; a request
    goes only to an apiserver in rotation, and to the next one in rotation if it cannot connect; while none is
    in rotation it waits (at most ``QUEUE`` seconds, as a request queued at the balancer) and the wait is
    counted. A request fails when it cannot be sent within that time or when an apiserver answers and refuses
    it. Like client-go, a client rereads its certificate and key files and keeps the pair it had while the two
    files do not match (one is written before the other).
    """

    QUEUE = 30.0

    def __init__(self, endpoints, bundle: Path):
        self.endpoints, self.bundle = list(endpoints), bundle
        self.stage = "start"
        self.step = ""  # what the test is doing within the stage (which component restarts), kept with errors
        self.counts = {}
        self.errors = []
        self.stop = threading.Event()
        self.threads = []
        self.lock = threading.Lock()
        self.tokens = {}
        self.ready = {endpoint: False for endpoint in self.endpoints}
        self.rotation_changed = threading.Condition(self.lock)
        for endpoint in self.endpoints:
            checker = threading.Thread(target=self._health_check, args=(endpoint,), daemon=True,
                                       name="health check %s:%d" % endpoint)
            self.threads.append(checker)
            checker.start()
        deadline = time.monotonic() + 60
        while not all(self.ready.values()) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _health_check(self, endpoint):
        while not self.stop.is_set():
            ok = False
            try:
                context = ssl.create_default_context(cafile=str(self.bundle))  # as it is now (CA rotations)
                conn = http.client.HTTPSConnection(endpoint[0], endpoint[1], context=context, timeout=1)
                conn.request("GET", "/readyz")  # anonymous: allowed by system:public-info-viewer
                ok = conn.getresponse().status == 200
                conn.close()
            except (OSError, http.client.HTTPException):
                pass
            with self.lock:
                if self.ready[endpoint] != ok:
                    self.ready[endpoint] = ok
                    self.rotation_changed.notify_all()
            time.sleep(0.2)

    def _in_rotation(self, deadline):
        """The apiservers in rotation, waiting (until ``deadline``) while there is none; [] if none came."""
        with self.lock:
            while True:
                ready = [e for e in self.endpoints if self.ready[e]]
                if ready or self.stop.is_set() or time.monotonic() >= deadline:
                    return ready
                self.rotation_changed.wait(timeout=0.2)

    def _ask(self, context, token, read=None):
        """(HTTP status, reply, the apiserver that answered, seconds waited for one in rotation)."""
        body = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        problems = []
        started = time.monotonic()
        deadline = started + self.QUEUE
        waited = 0.0
        while time.monotonic() < deadline:
            before = time.monotonic()
            ready = self._in_rotation(deadline)
            waited += time.monotonic() - before
            if not ready:
                break
            shift = int(started * 1000) % len(ready)  # round robin, more or less
            for address, port in ready[shift:] + ready[:shift]:
                try:
                    conn = http.client.HTTPSConnection(address, port, context=context, timeout=10)
                    if read:  # a quorum read: etcd answers it, not the apiserver's cache
                        conn.request("GET", read, headers=headers)
                    else:
                        conn.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", headers=headers,
                                     body=body)
                    response = conn.getresponse()
                    reply = response.read()
                    conn.close()
                except (ConnectionError, http.client.RemoteDisconnected, TimeoutError) as exc:
                    problems.append("%s:%d %s" % (address, port, exc))
                    continue  # the next apiserver in rotation, as a load balancer would
                return response.status, json.loads(reply), "%s:%d" % (address, port), waited
            time.sleep(0.1)  # every apiserver in rotation dropped the connection: ask the balancer again
        raise ConnectionError("no apiserver in rotation took the request within %.0f s; %s" % (
            self.QUEUE, "; ".join(problems[-4:])))

    def add(self, name, expected_user, pair=None, token=None, read=None):
        """An identity asking who it is (SelfSubjectReview), or with ``read`` reading that object from etcd."""
        def loop():
            good = None  # the last pair that matched, copied to files of this client
            spare = Path(tempfile.mkdtemp(prefix="sbd-pki-load-"))
            while not self.stop.is_set():
                stage = self.stage
                ok, detail, waited = False, "", 0.0
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
                    status, reply, answered, waited = self._ask(context, self.tokens.get(name, token), read)
                    if read:
                        ok = status == 200 and (reply.get("metadata") or {}).get("name") == read.rsplit("/", 1)[-1]
                        detail = "%s HTTP %d %s" % (answered, status, json.dumps(reply)[:300])
                    else:
                        review = reply.get("status") if isinstance(reply, dict) else None
                        user = (review.get("userInfo") or {}).get("username") if isinstance(review, dict) else None
                        ok = status == 201 and user == expected_user
                        detail = "%s HTTP %d %s" % (answered, status, user if user else json.dumps(reply)[:800])
                except (OSError, ssl.SSLError, http.client.HTTPException, ValueError, AttributeError) as exc:
                    detail = "%s: %s" % (type(exc).__name__, exc)
                with self.lock:
                    entry = self.counts.setdefault(stage, {"requests": 0, "failures": 0, "queued": 0,
                                                           "longest wait": 0.0})
                    entry["requests"] += 1
                    if waited > 0.01:
                        entry["queued"] += 1
                        entry["longest wait"] = round(max(entry["longest wait"], waited), 2)
                    if not ok:
                        entry["failures"] += 1
                        self.errors.append((stage, self.step, name, detail))
                time.sleep(0.05)  # paced: this test runs beside others in CI
            shutil.rmtree(spare, ignore_errors=True)

        thread = threading.Thread(target=loop, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        return self.counts


def report_load(test: str, counts: dict, errors: list) -> None:
    """Print the requests and failures per stage, and append them to $SBD_PKI_K8S_LOAD_REPORT (scripts/test.sh
    shows that file after the tests, passed or not: pytest -q hides a passing test's output)."""
    lines = ["%s: %s" % (test, stage) + "".join(", %s %s" % (k, v) for k, v in sorted(count.items()))
             for stage, count in counts.items()]
    lines.append("%s: %d requests, %d failed%s" % (test, sum(c["requests"] for c in counts.values()), len(errors),
                                                   (": " + json.dumps(errors[:5])) if errors else ""))
    print("\n".join(lines))
    if os.environ.get("SBD_PKI_K8S_LOAD_REPORT"):
        with open(os.environ["SBD_PKI_K8S_LOAD_REPORT"], "a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")


def apiservers(cluster) -> list:
    return [(address, cluster.info["ports"]["apiserver-" + host]) for host, address in APISERVER_ADDRESS.items()]


def load_of_three_identities(cluster, root: Path, service_account: str, token: str) -> LoadClient:
    """The admin's certificate, node1's certificate and a service-account token, over both apiservers."""
    load = LoadClient(apiservers(cluster), root / "admin" / "ca-bundle.crt")
    load.add("admin", "kubernetes-admin", (root / "admin" / "admin.crt", root / "admin" / "admin.key"))
    node1 = root / "hosts" / "node1.k8s.test" / "pki"
    load.add("node1", "system:node:node1", (node1 / "kubelet-client.crt", node1 / "kubelet-client.key"))
    load.add("service account", service_account, token=token)
    return load


def served_fingerprint(port: int, address: str = "127.0.0.1") -> str:
    context = ssl._create_unverified_context()  # pylint: disable=protected-access
    import socket  # pylint: disable=import-outside-toplevel

    with socket.create_connection((address, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=address) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def file_fingerprint(path: Path) -> str:
    pem = path.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def lease_renewed(root: Path, name: str) -> object:
    leases = client.CoordinationV1Api(api(root, root / "admin" / "admin.conf"))
    return leases.read_namespaced_lease(name, "kube-system").spec.renew_time


def test_every_leaf_renewed_under_load_without_a_failed_request_or_a_restart(role_cluster):
    cluster, root, extra = role_cluster
    port = cluster.info["ports"]["apiserver-cp1.k8s.test"]
    cp1 = root / "hosts" / "cp1.k8s.test" / "pki"
    pids = dict(cluster.pids())
    before = {p: file_fingerprint(p) for p in sorted(root.glob("hosts/*/pki/**/*.crt"))
              if p.name != "ca-bundle.crt" and not p.name.endswith("-fullchain.crt")}
    before[root / "admin" / "admin.crt"] = file_fingerprint(root / "admin" / "admin.crt")
    assert len(before) == 25  # eight on each control-plane node, two on etcd3, three on each node, the admin's
    assert served_fingerprint(port) == before[cp1 / "apiserver.crt"]

    admin = client.CoreV1Api(api(root, root / "admin" / "admin.conf"))
    admin.create_namespace({"metadata": {"name": "load"}})
    admin.create_namespaced_service_account("load", {"metadata": {"name": "client"}})
    token = admin.create_namespaced_service_account_token(
        "client", "load", {"spec": {"expirationSeconds": 3600}}).status.token
    load = load_of_three_identities(cluster, root, "system:serviceaccount:load:client", token)
    try:
        time.sleep(3)
        load.stage = "leaf renewal"
        # every leaf at once, as `kubeadm certs renew all` would (a schedule renews each when it is due)
        proc, recap = run_playbook(root, dict(extra, kubernetes_pki_renew_now=True), cluster.host_vars)
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
        cp2 = root / "hosts" / "cp2.k8s.test" / "pki"
        while (served_fingerprint(cluster.info["ports"]["apiserver-cp2.k8s.test"], "127.0.0.2")
               != after[cp2 / "apiserver.crt"] and time.monotonic() < deadline):
            time.sleep(1)
        assert served_fingerprint(cluster.info["ports"]["apiserver-cp2.k8s.test"], "127.0.0.2") == after[
            cp2 / "apiserver.crt"]
        for member in ETCD_MEMBERS:
            assert served_fingerprint(cluster.info["ports"]["etcd-" + member]) == after[
                root / "hosts" / member / "pki" / "etcd" / "server.crt"]
        renewed = {name: lease_renewed(root, name) for name in ("kube-controller-manager", "kube-scheduler")}
        time.sleep(12)
        for name, at in renewed.items():
            assert lease_renewed(root, name) > at, name  # still leading, on their renewed identities
    finally:
        counts = load.finish()
    report_load("leaf renewal", counts, load.errors)
    assert load.errors == [], load.errors[:10]
    assert counts["leaf renewal"]["requests"] > 50 and counts["after renewal"]["requests"] > 50, counts
    assert cluster.pids() == pids  # no component was restarted


def public_keys(path: Path) -> list:
    marker = "-----END PUBLIC KEY-----"
    return [part.strip() + "\n" + marker for part in path.read_text().split(marker)[:-1]]


def token_kid(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def whoami_with_token(cluster, root, token, host="cp1.k8s.test"):
    configuration = client.Configuration()
    configuration.host = "https://%s:%d" % (APISERVER_ADDRESS[host], cluster.info["ports"]["apiserver-" + host])
    configuration.ssl_ca_cert = str(root / "admin" / "ca-bundle.crt")
    configuration.api_key = {"authorization": "Bearer " + token}
    return whoami(client.ApiClient(configuration))["username"]


def test_service_account_keys_rotate_through_live_gates_without_a_failed_request(role_cluster):
    """add -> (every apiserver restarted: accepts the new keys) -> promote -> (restarted: signs with them) -> retire."""
    cluster, root, extra = role_cluster
    # a schedule for the control plane only (the plan still covers every host, so nothing else changes)
    rotation = dict(extra, kubernetes_pki_service_account_rotate_every="1s", kubernetes_pki_hosts="kube_control_plane",
                    kubernetes_pki_service_account_promote_after="1s", kubernetes_pki_service_account_retire_after="1s")
    cp = {host: root / "hosts" / host / "pki" for host in APISERVER_ADDRESS}
    admin = client.CoreV1Api(api(root, root / "admin" / "admin.conf"))
    admin.create_namespace({"metadata": {"name": "sa-rotation"}})
    admin.create_namespaced_service_account("sa-rotation", {"metadata": {"name": "app"}})

    def mint():
        return admin.create_namespaced_service_account_token(
            "app", "sa-rotation", {"spec": {"expirationSeconds": 3600}}).status.token

    old_token = mint()
    old_pub = {host: public_keys(path / "sa.pub") for host, path in cp.items()}
    old_key = {host: (path / "sa.key").read_bytes() for host, path in cp.items()}
    assert len(old_pub["cp1.k8s.test"]) == 2 and old_pub["cp1.k8s.test"] == old_pub["cp2.k8s.test"]
    unrestarted = {name: pid for name, pid in cluster.pids().items()
                   if name.startswith("etcd") or name == "kube-scheduler"}

    def apiservers_restarted(also=()):
        for host in APISERVER_ADDRESS:  # one at a time, as behind a load balancer
            cluster.restart("kube-apiserver-" + host)
        for name in also:
            cluster.restart(name)

    def run(stage):
        load.stage = stage
        proc, recap = run_playbook(root, rotation, cluster.host_vars)
        assert proc.returncode == 0 and all(r["failed"] == 0 for r in recap.values()), proc.stdout + proc.stderr
        return proc.stdout

    load = load_of_three_identities(cluster, root, "system:serviceaccount:sa-rotation:app", old_token)
    try:
        time.sleep(2)
        run("add")
        pub = {host: public_keys(path / "sa.pub") for host, path in cp.items()}
        assert len(pub["cp1.k8s.test"]) == 4 and pub["cp1.k8s.test"] == pub["cp2.k8s.test"]  # r1 and r2 of both
        assert {host: (path / "sa.key").read_bytes() for host, path in cp.items()} == old_key  # r1 still signs
        time.sleep(1.5)
        out = run("promote, blocked")  # the new public keys are on disk, not in the running apiservers
        assert "waits before it promotes" in out and "does not accept" in out, out
        assert {host: (path / "sa.key").read_bytes() for host, path in cp.items()} == old_key

        load.stage = "restart: new public keys"
        apiservers_restarted()
        run("promote")
        new_key = {host: (path / "sa.key").read_bytes() for host, path in cp.items()}
        assert all(new_key[h] != old_key[h] for h in cp)
        time.sleep(1.5)
        out = run("retire, blocked")  # the apiservers still sign with r1
        assert "waits before it retires" in out and "signs with" in out, out
        assert len(public_keys(cp["cp1.k8s.test"] / "sa.pub")) == 4

        load.stage = "restart: new signing keys"
        apiservers_restarted(also=["kube-controller-manager"])
        new_token = mint()
        assert token_kid(new_token) != token_kid(old_token)
        assert whoami_with_token(cluster, root, old_token) == "system:serviceaccount:sa-rotation:app"
        load.tokens["service account"] = new_token  # as the kubelet refreshes a projected token
        time.sleep(1.5)
        run("retire")
        pub = {host: public_keys(path / "sa.pub") for host, path in cp.items()}
        assert len(pub["cp1.k8s.test"]) == 2 and not set(pub["cp1.k8s.test"]) & set(old_pub["cp1.k8s.test"])

        load.stage = "restart: old keys dropped"
        apiservers_restarted()
        load.stage = "done"
        time.sleep(3)
    finally:
        counts = load.finish()
    report_load("service-account key rotation", counts, load.errors)
    print("restarts that ended with SIGKILL after %.0f s: %s" % (cluster.GRACE, cluster.killed))
    assert load.errors == [], load.errors[:10]
    assert all(c["requests"] > 10 for c in counts.values()), counts
    for host in APISERVER_ADDRESS:
        assert whoami_with_token(cluster, root, new_token, host) == "system:serviceaccount:sa-rotation:app"
        with pytest.raises(client.ApiException) as refused:
            whoami_with_token(cluster, root, old_token, host)
        assert refused.value.status == 401
    # only the components the docs name were restarted
    assert {name: pid for name, pid in cluster.pids().items() if name in unrestarted} == unrestarted
    # a rerun changes nothing
    proc, recap = run_playbook(root, dict(rotation, kubernetes_pki_service_account_rotate_every="30d"),
                               cluster.host_vars)
    assert proc.returncode == 0 and {h: r["changed"] for h, r in recap.items()} == {h: 0 for h in recap}, proc.stdout


def handshake_verifies(cafile: Path, port: int, address: str = "127.0.0.1", pair=None) -> bool:
    """Whether a TLS client trusting only ``cafile`` (presenting ``pair``) completes a handshake and a request."""
    context = ssl.create_default_context(cafile=str(cafile))
    if pair:
        context.load_cert_chain(str(pair[0]), str(pair[1]))
    conn = http.client.HTTPSConnection(address, port, context=context, timeout=5)
    try:
        conn.request("GET", "/health" if pair else "/readyz")
        conn.getresponse().read()
        return True
    except (ssl.SSLError, ConnectionError):
        return False
    finally:
        conn.close()


def copy_pair(directory: Path, name: str, into: Path) -> tuple:
    into.mkdir(parents=True, exist_ok=True)
    pair = (into / (name + ".crt"), into / (name + ".key"))
    shutil.copyfile(directory / (name + ".crt"), pair[0])
    shutil.copyfile(directory / (name + ".key"), pair[1])
    return pair


def whoami_with_pair(cluster, pair, bundle: Path, host="cp1.k8s.test") -> int:
    """HTTP status of a SelfSubjectReview with a client certificate (201: authenticated)."""
    context = ssl.create_default_context(cafile=str(bundle))
    context.load_cert_chain(str(pair[0]), str(pair[1]))
    conn = http.client.HTTPSConnection(APISERVER_ADDRESS[host], cluster.info["ports"]["apiserver-" + host],
                                       context=context, timeout=10)
    try:
        conn.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", headers={
            "Content-Type": "application/json"}, body=json.dumps({"apiVersion": "authentication.k8s.io/v1",
                                                                  "kind": "SelfSubjectReview"}))
        return conn.getresponse().status
    finally:
        conn.close()


def all_ready(cluster, root: Path) -> bool:
    admin = root / "admin"
    try:
        pair = (admin / "admin.crt", admin / "admin.key")
        return all(cluster.https_status(port, "/readyz", admin / "ca-bundle.crt", pair, address) == 200
                   for address, port in apiservers(cluster))
    except (OSError, ssl.SSLError, http.client.HTTPException):
        return False


def roots_in(path: Path) -> int:
    return path.read_text().count("BEGIN CERTIFICATE")


def test_cluster_and_etcd_cas_rotate_under_load_with_only_the_restarts_the_docs_name(role_cluster):
    """Each CA: trust both (restart what reads it only at start) -> switched -> done (restart again)."""
    cluster, root, extra = role_cluster
    hosts = {host: root / "hosts" / host / "pki" for host in HOSTS}
    keep = root / "kept-old"
    old_node1 = copy_pair(hosts["node1.k8s.test"], "kubelet-client", keep / "cluster")
    old_etcd_client = copy_pair(hosts["cp1.k8s.test"] / "etcd", "apiserver-etcd-client", keep / "etcd")
    old_cluster_root = root / "ca" / "cluster" / "root.crt"
    old_etcd_root = root / "ca" / "etcd" / "root.crt"
    admin = client.CoreV1Api(api(root, root / "admin" / "admin.conf"))
    admin.create_namespace({"metadata": {"name": "ca-rotation"}})
    admin.create_namespaced_config_map("ca-rotation", {"metadata": {"name": "probe"}, "data": {"k": "v"}})
    admin.create_namespaced_service_account("ca-rotation", {"metadata": {"name": "app"}})
    token = admin.create_namespaced_service_account_token(
        "app", "ca-rotation", {"spec": {"expirationSeconds": 3600}}).status.token
    pids = dict(cluster.pids())
    restarted = []

    def restart(*names):
        for name in names:  # one at a time: a quorum of etcd members and one apiserver always serve
            load.step = "restart of " + name
            cluster.restart(name)
            restarted.append(name)
            # a rolling restart moves on only once every apiserver is ready again (a restarted etcd member
            # briefly fails the apiservers' etcd readiness check)
            deadline = time.monotonic() + 120
            while not all_ready(cluster, root) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert all_ready(cluster, root), name
            load.step = ""

    def run(stage, settings, expect_stage):
        load.stage = stage
        proc, recap = run_playbook(root, settings, cluster.host_vars)
        assert proc.returncode == 0 and all(r["failed"] == 0 for r in recap.values()), proc.stdout + proc.stderr
        found = re.findall(r"rotation is at (\w+)", proc.stdout)
        assert found and found[-1] == expect_stage, proc.stdout
        return proc.stdout

    etcd_members = ["etcd-" + host.split(".")[0] for host in ETCD_MEMBERS]
    apiserver_names = ["kube-apiserver-" + host for host in APISERVER_ADDRESS]
    load = load_of_three_identities(cluster, root, "system:serviceaccount:ca-rotation:app", token)
    load.add("admin, from etcd", "kubernetes-admin", (root / "admin" / "admin.crt", root / "admin" / "admin.key"),
             read="/api/v1/namespaces/ca-rotation/configmaps/probe")
    try:
        time.sleep(2)
        # the cluster CA
        cluster_ca = dict(extra, kubernetes_pki_cluster_ca_generation=2, kubernetes_pki_ca_switch_after="0",
                          kubernetes_pki_ca_drop_after="0")
        run("cluster: trust both", cluster_ca, "trust_both")
        assert all(roots_in(hosts[h] / "ca-bundle.crt") == 2 for h in HOSTS if h != "etcd3.k8s.test")
        # a rotation of the etcd CA asked while the cluster CA's is under way: refused before anything is written
        load.stage = "cluster: etcd rotation asked meanwhile, refused"
        files = {p: p.read_bytes() for p in (root / "hosts").rglob("*") if p.is_file()}
        proc, _recap = run_playbook(root, dict(cluster_ca, kubernetes_pki_etcd_ca_generation=2), cluster.host_vars)
        assert proc.returncode != 0 and "kubernetes_pki_etcd_ca_generation" in proc.stdout, proc.stdout
        assert "while one of the cluster CA is at trust_both" in proc.stdout, proc.stdout
        assert not (root / "ca" / "etcd.2").exists()
        assert {p: p.read_bytes() for p in (root / "hosts").rglob("*") if p.is_file()} == files
        assert roots_in(root / "admin" / "ca-bundle.crt") == 2
        # the controller-manager reads --root-ca-file only at start (it publishes kube-root-ca.crt); the
        # scheduler would reread its kubeconfig's CA file within 5 minutes (a switch_after above that needs no
        # restart of it)
        load.stage = "cluster: restarts for trust both"
        restart("kube-controller-manager", "kube-scheduler")
        run("cluster: switch", cluster_ca, "switched")
        new_cluster_root = root / "ca" / "cluster.2" / "root.crt"
        cp = {host: hosts[host] / "apiserver.crt" for host in APISERVER_ADDRESS}
        load.stage = "cluster: switched"
        deadline = time.monotonic() + 120
        for host, address in APISERVER_ADDRESS.items():  # kube-apiserver reloads its serving certificate
            port = cluster.info["ports"]["apiserver-" + host]
            while served_fingerprint(port, address) != file_fingerprint(cp[host]) and time.monotonic() < deadline:
                time.sleep(1)
            assert handshake_verifies(new_cluster_root, port, address), host
        # clients reread a renewed certificate file within 5 minutes (client-go); with a drop_after below that,
        # restart them before the old root goes
        load.stage = "cluster: restarts for a short drop_after"
        restart("kube-controller-manager", "kube-scheduler")
        run("cluster: drop the old root", cluster_ca, "done")
        assert all(roots_in(hosts[h] / "ca-bundle.crt") == 1 for h in HOSTS if h != "etcd3.k8s.test")
        load.stage = "cluster: restart for done"
        restart("kube-controller-manager")
        load.stage = "cluster: done"
        time.sleep(3)
        for host, address in APISERVER_ADDRESS.items():
            port = cluster.info["ports"]["apiserver-" + host]
            assert not handshake_verifies(old_cluster_root, port, address), host  # the old root is no use
            # kube-apiserver rereads its client CA file: a certificate of the old CA is refused
            deadline = time.monotonic() + 60
            while whoami_with_pair(cluster, old_node1, new_cluster_root, host) != 401 and time.monotonic() < deadline:
                time.sleep(1)
            assert whoami_with_pair(cluster, old_node1, new_cluster_root, host) == 401, host

        # the etcd CA
        etcd_ca = dict(cluster_ca, kubernetes_pki_etcd_ca_generation=2)
        run("etcd: trust both", etcd_ca, "trust_both")
        assert all(roots_in(hosts[h] / "etcd" / "ca-bundle.crt") == 2 for h in ETCD_MEMBERS)
        # the live gate: the bundles hold both roots, the running members do not yet
        out = run("etcd: switch, blocked", etcd_ca, "trust_both")
        assert "do not yet accept a client certificate of the new CA" in out, out
        load.stage = "etcd: restarts for trust both"
        restart(*etcd_members)  # --trusted-ca-file and --peer-trusted-ca-file are read at start only
        restart(*apiserver_names)  # so is --etcd-cafile
        run("etcd: switch", etcd_ca, "switched")
        load.stage = "etcd: switched"
        time.sleep(3)
        run("etcd: drop the old root", etcd_ca, "done")
        assert all(roots_in(hosts[h] / "etcd" / "ca-bundle.crt") == 1 for h in ETCD_MEMBERS)
        load.stage = "etcd: restarts for done"
        restart(*etcd_members)
        restart(*apiserver_names)
        load.stage = "etcd: done"
        time.sleep(3)
    finally:
        counts = load.finish()
    report_load("cluster and etcd CA rotation", counts, load.errors)
    print("restarts that ended with SIGKILL after %.0f s: %s" % (cluster.GRACE, cluster.killed))
    assert load.errors == [], load.errors[:10]
    assert all(c["requests"] > 0 for c in counts.values()), counts
    assert sum(c["requests"] for c in counts.values()) > 5000, counts
    new_etcd_root = root / "ca" / "etcd.2" / "root.crt"
    for member in ETCD_MEMBERS:
        port = cluster.info["ports"]["etcd-" + member]
        current = (hosts["cp1.k8s.test"] / "etcd" / "apiserver-etcd-client.crt",
                   hosts["cp1.k8s.test"] / "etcd" / "apiserver-etcd-client.key")
        assert not handshake_verifies(old_etcd_root, port, pair=current)  # etcd serves only the new CA's certificate
        assert not handshake_verifies(new_etcd_root, port, pair=old_etcd_client)  # and refuses the old CA's client
        assert handshake_verifies(new_etcd_root, port, pair=current)
    # the controller-manager and the scheduler still lead, on certificates of the new CA
    renewed = {name: lease_renewed(root, name) for name in ("kube-controller-manager", "kube-scheduler")}
    time.sleep(12)
    for name, at in renewed.items():
        assert lease_renewed(root, name) > at, name
    # kube-root-ca.crt, published by the restarted controller-manager, holds only the new root
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        published = admin.read_namespaced_config_map("kube-root-ca.crt", "ca-rotation").data["ca.crt"]
        if published.strip() == (hosts["cp1.k8s.test"] / "ca-bundle.crt").read_text().strip():
            break
        time.sleep(1)
    assert published.strip() == (hosts["cp1.k8s.test"] / "ca-bundle.crt").read_text().strip()
    # only the components the docs name were restarted
    assert {name: pid for name, pid in cluster.pids().items() if name not in restarted} == {
        name: pid for name, pid in pids.items() if name not in restarted}
    # a rerun changes nothing, and a third generation of etcd may start only now; asking two CAs at once fails
    proc, recap = run_playbook(root, etcd_ca, cluster.host_vars)
    assert proc.returncode == 0 and {h: r["changed"] for h, r in recap.items()} == {h: 0 for h in recap}, proc.stdout
    proc, _recap = run_playbook(root, dict(etcd_ca, kubernetes_pki_etcd_ca_generation=3,
                                           kubernetes_pki_front_proxy_ca_generation=2), cluster.host_vars, check=True)
    assert proc.returncode != 0 and "one CA rotates at a time" in proc.stdout, proc.stdout
    # after both rotations, each new key is still only where it is used (the new CAs' on the CA host)
    assert_private_keys_only_where_used(root, ["cluster", "cluster.2", "etcd", "etcd.2", "front-proxy"])


def test_the_report_lists_every_ca_generation_certificate_and_keyring(role_cluster):
    """playbooks/kubernetes_pki_status.yml, after the rotations above (or on generation 1 when run alone)."""
    cluster, root, extra = role_cluster
    generations = {ca: 1 + (root / "ca" / (ca + ".2.rotation.json")).exists() for ca in ("cluster", "etcd")}
    report = root / "report.md"
    env_vars = dict(extra, kubernetes_pki_cluster_ca_generation=generations["cluster"],
                    kubernetes_pki_etcd_ca_generation=generations["etcd"], kubernetes_pki_status_report=str(report))
    (root / "status-vars.json").write_text(json.dumps(env_vars))
    before = {p: p.read_bytes() for p in (root / "hosts").rglob("*") if p.is_file()}
    proc = subprocess.run(["ansible-playbook", str(PLAYBOOK.parent / "kubernetes_pki_status.yml"), "-i",
                           str(inventory(root, cluster.host_vars)), "-e", "@%s" % (root / "status-vars.json")],
                          capture_output=True, text=True, check=False,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = {p: p.read_bytes() for p in (root / "hosts").rglob("*") if p.is_file()}
    assert after == before  # it changed nothing on the hosts
    text = report.read_text()
    for ca in ("cluster", "etcd", "front-proxy"):
        directory = ca + (".2" if generations.get(ca) == 2 else "")
        assert str(root / "ca" / directory) in text, (directory, text)
    if generations["cluster"] == 2:
        assert re.search(r"ca_rotation.*cluster\.2.*done", text), text
    lines = [line for line in text.splitlines() if "node_certificate" in line]
    assert len(lines) == 25, text  # every component certificate of every host, and the admin's on the controller
    assert all(" ok " in line or "| ok |" in line for line in lines), lines
    admin_cert = x509.load_pem_x509_certificate((root / "admin" / "admin.crt").read_bytes())
    admin_lines = [line for line in lines if "localhost admin" in line]
    assert len(admin_lines) == 1 and admin_cert.not_valid_after_utc.strftime("%Y-%m-%d") in admin_lines[0], lines
    keyrings = [line for line in text.splitlines() if "| keyring" in line or "keyring |" in line]
    assert len(keyrings) == 2 and all("service-accounts" in line for line in keyrings), text
