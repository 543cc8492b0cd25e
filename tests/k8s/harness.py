# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A real Kubernetes control plane for the collection's tests.

etcd, kube-apiserver, a cert-manager controller and trust-manager, built from Go modules
(tests/k8s/build/*), cached by version outside the repository, started on
127.0.0.1 only with certificates made here, and stopped without leftovers.

    python tests/k8s/harness.py build            build (or reuse) the binaries
    python tests/k8s/harness.py start [--dir D]  start in the background, print KUBECONFIG
    python tests/k8s/harness.py status [--dir D] what runs, and where it listens
    python tests/k8s/harness.py stop [--dir D]   stop everything and remove D
    python tests/k8s/harness.py run [--dir D] -- CMD ARGS...
                                                 start, run CMD with KUBECONFIG set, stop

Everything a run makes (certificates, etcd data, logs, kubeconfigs) lives in
the state directory, default /tmp/sbd-pki-k8s. Binaries live in
$SBD_PKI_CACHE/k8s (default ~/.cache/sbd-pki/k8s).
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import datetime
import hashlib
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KUBERNETES = "v1.36.3"
VERSIONS = {
    "etcd": "v3.6.16",
    "kube-apiserver": KUBERNETES,
    "kube-controller-manager": KUBERNETES,
    "kube-scheduler": KUBERNETES,
    "cert-manager": "v1.21.2",
    "trust-manager": "v0.25.0",
}
# The build module (a directory of tests/k8s/build) and the Go package of each binary.
PACKAGES = {
    "etcd": ("etcd", "."),
    "kube-apiserver": ("kubernetes", "k8s.io/kubernetes/cmd/kube-apiserver"),
    "kube-controller-manager": ("kubernetes", "k8s.io/kubernetes/cmd/kube-controller-manager"),
    "kube-scheduler": ("kubernetes", "k8s.io/kubernetes/cmd/kube-scheduler"),
    "cert-manager": ("cert-manager", "."),
    "trust-manager": ("trust-manager", "."),
}
# What the shared control plane (ControlPlane) runs; the others start only where a test asks for them.
SHARED_PLANE = ("etcd", "kube-apiserver", "cert-manager", "trust-manager")
CERT_MANAGER_MODULE = "github.com/cert-manager/cert-manager"
TRUST_MANAGER_MODULE = "github.com/cert-manager/trust-manager"
# trust-manager v0.25 reconciles Bundle (trust.cert-manager.io/v1alpha1); its ClusterBundle CRD has no controller yet.
TRUST_MANAGER_CRDS = ("trust.cert-manager.io_bundles.yaml",)
TRUST_WEBHOOK_PATH = "/validate-trust-cert-manager-io-v1alpha1-bundle"
BUILD_DIR = Path(__file__).resolve().parent / "build"
DEFAULT_STATE = Path(os.environ.get("SBD_PKI_K8S_STATE", "/tmp/sbd-pki-k8s"))
LOOPBACK = "127.0.0.1"
SERVICE_RANGE = "10.0.0.0/24"
CERT_MANAGER_NAMESPACE = "cert-manager"
MARKER = ".sbd-pki-k8s"  # only a directory holding this is ever removed


class HarnessError(Exception):
    """A component failed to build or start; the message names its log."""


def cache_root() -> Path:
    base = os.environ.get("SBD_PKI_CACHE") or os.path.expanduser("~/.cache/sbd-pki")
    return Path(base) / "k8s"


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


# --------------------------------------------------------------------- build

def build_key(component: str) -> str:
    digest = hashlib.sha256()
    module = BUILD_DIR / PACKAGES[component][0]
    for name in sorted(os.listdir(module)):
        digest.update(name.encode())
        digest.update((module / name).read_bytes())
    digest.update(go_version().encode())
    return "%s-%s" % (VERSIONS[component], digest.hexdigest()[:12])


def go_version() -> str:
    try:
        return subprocess.run(["go", "env", "GOVERSION"], check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise HarnessError("Go is needed to build the control plane and was not found or failed: %s" % exc) from exc


def binary_path(component: str) -> Path:
    return cache_root() / "bin" / ("%s-%s" % (component, build_key(component)))


def crd_dir() -> Path:
    return cache_root() / ("cert-manager-crds-%s" % VERSIONS["cert-manager"])


def trust_crd_dir() -> Path:
    return cache_root() / ("trust-manager-crds-%s" % VERSIONS["trust-manager"])


def go_env() -> dict:
    env = dict(os.environ)
    env["GOFLAGS"] = "-mod=readonly -buildvcs=false"
    env["CGO_ENABLED"] = "0"
    return env


def build(component: str, out=sys.stderr) -> Path:
    """Build one component unless its cached binary matches the build inputs."""
    target = binary_path(component)
    if target.exists():
        return target
    logs = cache_root() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    log = logs / ("build-%s.log" % component)
    version = VERSIONS[component]
    ldflags = ["-s", "-w"]
    if component.startswith("kube-"):
        major, minor = version[1:].split(".")[:2]
        ldflags += [
            "-X", "k8s.io/component-base/version.gitVersion=%s" % version,
            "-X", "k8s.io/component-base/version.gitMajor=%s" % major,
            "-X", "k8s.io/component-base/version.gitMinor=%s" % minor,
            "-X", "k8s.io/component-base/version.gitTreeState=clean",
        ]
    elif component == "etcd":
        ldflags += ["-X", "go.etcd.io/etcd/api/v3/version.GitSHA=%s" % version]
    partial = target.with_name(target.name + ".partial")
    cmd = ["go", "build", "-trimpath", "-o", str(partial), "-ldflags", " ".join(ldflags), PACKAGES[component][1]]
    print("building %s %s (log: %s)" % (component, version, log), file=out, flush=True)
    started = time.monotonic()
    with open(log, "w") as handle:
        handle.write("$ %s\n" % " ".join(cmd))
        handle.flush()
        result = subprocess.run(cmd, cwd=BUILD_DIR / PACKAGES[component][0], env=go_env(), stdout=handle,
                                stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise HarnessError("building %s %s failed (exit %d); log: %s\n%s"
                           % (component, version, result.returncode, log, log_tail(log)))
    os.replace(partial, target)
    print("built %s in %.0f s" % (component, time.monotonic() - started), file=out, flush=True)
    return target


def fetch_crds(component: str = "cert-manager") -> Path:
    """Copy a controller's CRDs out of its Go module (the version the controller is built from)."""
    target, module = (crd_dir(), CERT_MANAGER_MODULE) if component == "cert-manager" else (
        trust_crd_dir(), TRUST_MANAGER_MODULE)
    if target.is_dir():
        return target
    result = subprocess.run(["go", "list", "-m", "-json", module], cwd=BUILD_DIR / component,
                            env=go_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HarnessError("cannot locate the %s module: %s" % (module, result.stderr.strip()))
    source = Path(json.loads(result.stdout)["Dir"]) / "deploy" / "crds"
    files = sorted(source.glob("*.yaml"))
    if component == "trust-manager":
        files = [path for path in files if path.name in TRUST_MANAGER_CRDS]
    if not files:
        raise HarnessError("no CRDs found in %s" % source)
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=".crds-"))
    for path in files:
        shutil.copyfile(path, partial / path.name)
    os.replace(partial, target)
    return target


def build_all(out=sys.stderr, components=tuple(VERSIONS)) -> dict:
    binaries = {name: build(name, out) for name in components}
    fetch_crds()
    fetch_crds("trust-manager")
    return binaries


# ------------------------------------------------------------- certificates

def _pki(state: Path) -> dict:
    """Make the harness's own CA and every certificate the components need."""
    # Imported here so that `build` and `stop` work without cryptography.
    # pylint: disable=import-outside-toplevel
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki = state / "pki"
    pki.mkdir(mode=0o700)
    now = datetime.datetime.now(datetime.timezone.utc)

    def write_key(name, key):
        path = pki / (name + ".key")
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path

    def write_cert(name, cert):
        path = pki / (name + ".crt")
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sbd-pki test control plane CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = {"ca.crt": write_cert("ca", ca_cert)}
    write_key("ca", ca_key)

    def issue(name, common_name, organization=None, dns=(), ips=(), server=False, client=False):
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
            [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = (
            x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(ca_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        files[name + ".crt"] = write_cert(name, builder.sign(ca_key, hashes.SHA256()))
        files[name + ".key"] = write_key(name, key)

    service_ip = str(next(ipaddress.ip_network(SERVICE_RANGE).hosts()))
    issue("etcd", "etcd", dns=["localhost"], ips=[LOOPBACK], server=True, client=True)
    issue("apiserver-etcd-client", "kube-apiserver-etcd-client", client=True)
    issue("apiserver", "kube-apiserver", server=True,
          dns=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
               "kubernetes.default.svc.cluster.local"], ips=[LOOPBACK, service_ip])
    # Both clients are cluster admins: this is a test control plane, not a model of RBAC.
    issue("admin", "sbd-pki-admin", organization="system:masters", client=True)
    issue("cert-manager", "cert-manager", organization="system:masters", client=True)
    issue("trust-manager", "trust-manager", organization="system:masters", client=True)
    issue("trust-manager-webhook", "trust-manager", dns=["localhost"], ips=[LOOPBACK], server=True)

    sa_key = ec.generate_private_key(ec.SECP256R1())
    files["sa.key"] = write_key("sa", sa_key)
    files["sa.pub"] = pki / "sa.pub"
    files["sa.pub"].write_bytes(sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return files


def _kubeconfig(path: Path, server: str, files: dict, user: str) -> None:
    def b64(name):
        return base64.b64encode(files[name].read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sbd-pki-test", "cluster": {
            "server": server, "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(user + ".crt"), "client-key-data": b64(user + ".key")}}],
        "contexts": [{"name": "sbd-pki-test", "context": {"cluster": "sbd-pki-test", "user": user}}],
        "current-context": "sbd-pki-test",
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle, indent=2)  # JSON is YAML; no extra dependency


# ---------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Ask the kernel to kill the child when the process that started it dies.

    SIGKILL, not SIGTERM: kube-apiserver's graceful shutdown waits on etcd, which is
    going away at the same moment; nothing here is worth keeping after a killed harness.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL))


def _cmdline(pid: int) -> str:
    try:
        return Path("/proc/%d/cmdline" % pid).read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        return Path("/proc/%d/stat" % pid).read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def listening_addresses(pids) -> list:
    """(pid, address, port) of every listening TCP socket held by the given processes."""
    inodes = {}
    for pid in pids:
        fd_dir = Path("/proc/%d/fd" % pid)
        try:
            for entry in fd_dir.iterdir():
                try:
                    target = os.readlink(entry)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = pid
        except OSError:
            continue
    found = []
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A = LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)
            if family == 4:
                address = str(ipaddress.IPv4Address(raw[::-1]))
            else:
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                address = str(ipaddress.IPv6Address(words))
            found.append((inodes[fields[9]], address, int(hex_port, 16)))
    return sorted(found)


class ControlPlane:
    """etcd + kube-apiserver + cert-manager on loopback, in one state directory."""

    def __init__(self, state_dir=DEFAULT_STATE, supervised: bool = True):
        self.state = Path(state_dir)
        self.supervised = supervised  # children die with this process
        self.processes = {}  # name -> Popen (only in the process that started them)
        self.info = {}

    # -- paths
    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.state / "state.json"

    def log(self, name: str) -> Path:
        return self.state / "logs" / (name + ".log")

    # -- lifecycle
    def start(self, timeout: float = 120.0, out=sys.stderr, cert_manager: bool = True) -> "ControlPlane":
        """Start etcd and kube-apiserver, then (unless cert_manager=False) cert-manager's CRDs and controller."""
        if self.state_file.exists():
            raise HarnessError("a control plane already uses %s; run `harness.py stop --dir %s` first"
                               % (self.state, self.state))
        if self.state.exists() and any(self.state.iterdir()) and not (self.state / MARKER).exists():
            raise HarnessError("%s exists and was not made by this harness; choose another --dir" % self.state)
        binaries = build_all(out)
        crds = crd_dir()
        if self.state.exists():
            shutil.rmtree(self.state)
        self.state.mkdir(parents=True, mode=0o700)
        (self.state / MARKER).write_text("made by tests/k8s/harness.py; removed by `harness.py stop`\n")
        (self.state / "logs").mkdir()
        try:
            self._start(binaries, crds, timeout, out, cert_manager)
        except BaseException:
            self.stop(remove=False)
            raise
        return self

    def _start(self, binaries, crds, timeout, out, cert_manager=True):
        started = time.monotonic()
        files = _pki(self.state)
        ports = {"etcd": free_port(), "etcd-peer": free_port(), "apiserver": free_port(), "cert-manager": free_port(),
                 "trust-manager": free_port(), "trust-manager-webhook": free_port(),
                 "trust-manager-metrics": free_port()}
        self.info = {"ports": ports, "pids": {}, "kubeconfig": str(self.kubeconfig),
                     "versions": VERSIONS, "state": str(self.state)}
        self._save()

        etcd_url = "https://%s:%d" % (LOOPBACK, ports["etcd"])
        peer_url = "https://%s:%d" % (LOOPBACK, ports["etcd-peer"])
        pki = self.state / "pki"
        self._spawn("etcd", [
            str(binaries["etcd"]), "--name=sbd-pki", "--data-dir=%s" % (self.state / "etcd"),
            "--listen-client-urls=%s" % etcd_url, "--advertise-client-urls=%s" % etcd_url,
            "--listen-peer-urls=%s" % peer_url, "--initial-advertise-peer-urls=%s" % peer_url,
            "--initial-cluster=sbd-pki=%s" % peer_url, "--initial-cluster-state=new",
            "--cert-file=%s" % (pki / "etcd.crt"), "--key-file=%s" % (pki / "etcd.key"),
            "--trusted-ca-file=%s" % files["ca.crt"], "--client-cert-auth",
            "--peer-cert-file=%s" % (pki / "etcd.crt"), "--peer-key-file=%s" % (pki / "etcd.key"),
            "--peer-trusted-ca-file=%s" % files["ca.crt"], "--peer-client-cert-auth",
            # A throwaway test store: durability is not worth the fsyncs.
            "--unsafe-no-fsync", "--log-level=warn",
        ])
        self._wait("etcd", lambda: self._https_ok(ports["etcd"], "/health", "apiserver-etcd-client"),
                   started + timeout)
        print("etcd ready on %s" % etcd_url, file=out, flush=True)

        api_url = "https://%s:%d" % (LOOPBACK, ports["apiserver"])
        self._spawn("kube-apiserver", [
            str(binaries["kube-apiserver"]),
            "--bind-address=%s" % LOOPBACK, "--advertise-address=%s" % LOOPBACK,
            "--secure-port=%d" % ports["apiserver"], "--cert-dir=%s" % (self.state / "apiserver"),
            "--tls-cert-file=%s" % (pki / "apiserver.crt"), "--tls-private-key-file=%s" % (pki / "apiserver.key"),
            "--client-ca-file=%s" % files["ca.crt"],
            "--etcd-servers=%s" % etcd_url, "--etcd-cafile=%s" % files["ca.crt"],
            "--etcd-certfile=%s" % (pki / "apiserver-etcd-client.crt"),
            "--etcd-keyfile=%s" % (pki / "apiserver-etcd-client.key"),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file=%s" % files["sa.pub"],
            "--service-account-signing-key-file=%s" % files["sa.key"],
            "--service-cluster-ip-range=%s" % SERVICE_RANGE,
            "--authorization-mode=RBAC", "--allow-privileged=false", "--profiling=false",
            "--v=1",
        ])
        self._wait("kube-apiserver", lambda: self._https_ok(ports["apiserver"], "/readyz", "admin"),
                   started + timeout)
        print("kube-apiserver ready on %s" % api_url, file=out, flush=True)

        _kubeconfig(self.kubeconfig, api_url, files, "admin")
        _kubeconfig(self.state / "cert-manager.kubeconfig", api_url, files, "cert-manager")
        if not cert_manager:
            print("control plane without cert-manager up in %.1f s" % (time.monotonic() - started), file=out)
            return
        self._install_crds(crds, started + timeout)
        print("cert-manager CRDs established", file=out, flush=True)

        self._spawn("cert-manager", [
            str(binaries["cert-manager"]), "--kubeconfig=%s" % (self.state / "cert-manager.kubeconfig"),
            "--cluster-resource-namespace=%s" % CERT_MANAGER_NAMESPACE,
            "--healthz-address=%s:%d" % (LOOPBACK, ports["cert-manager"]), "--v=2",
        ])
        self._wait("cert-manager", lambda: self._http_ok(ports["cert-manager"], "/healthz"), started + timeout)
        print("cert-manager ready (healthz http://%s:%d/healthz); up in %.1f s"
              % (LOOPBACK, ports["cert-manager"], time.monotonic() - started), file=out, flush=True)
        self._start_trust_manager(binaries, files, api_url, started + timeout, out)

    def _start_trust_manager(self, binaries, files, api_url, deadline, out):
        """trust-manager's Bundle controller with secret targets on, its trust namespace cert-manager's, and its
        validating webhook registered with the API server (by URL on loopback, as the chart does by Service)."""
        ports, pki = self.info["ports"], self.state / "pki"
        self._install_crds(trust_crd_dir(), deadline)
        tls = self.state / "trust-manager-tls"
        tls.mkdir(mode=0o700)
        shutil.copyfile(pki / "trust-manager-webhook.crt", tls / "tls.crt")
        shutil.copyfile(pki / "trust-manager-webhook.key", tls / "tls.key")
        _kubeconfig(self.state / "trust-manager.kubeconfig", api_url, files, "trust-manager")
        # every listener on loopback (--bind-address: build/trust-manager/main.go; upstream binds two to 0.0.0.0)
        self._spawn("trust-manager", [
            str(binaries["trust-manager"]), "--kubeconfig=%s" % (self.state / "trust-manager.kubeconfig"),
            "--trust-namespace=%s" % CERT_MANAGER_NAMESPACE, "--secret-targets-enabled=true",
            "--leader-elect=false", "--readiness-probe-port=%d" % ports["trust-manager"],
            "--metrics-port=%d" % ports["trust-manager-metrics"],
            "--bind-address=%s" % LOOPBACK, "--webhook-port=%d" % ports["trust-manager-webhook"],
            "--webhook-certificate-dir=%s" % tls, "--log-level=2",
        ])
        self._wait("trust-manager", lambda: self._http_ok(ports["trust-manager"], "/readyz"), deadline)
        ca_bundle = base64.b64encode(Path(files["ca.crt"]).read_bytes()).decode()
        status, reply = self._api("POST", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "trust-manager"},
            "webhooks": [{
                "name": "trust.cert-manager.io",
                "rules": [{"apiGroups": ["trust.cert-manager.io"], "apiVersions": ["v1alpha1"],
                           "operations": ["CREATE", "UPDATE"], "resources": ["bundles"]}],
                "admissionReviewVersions": ["v1"], "timeoutSeconds": 5, "failurePolicy": "Fail",
                "sideEffects": "None",
                "clientConfig": {
                    "url": "https://%s:%d%s" % (LOOPBACK, ports["trust-manager-webhook"], TRUST_WEBHOOK_PATH),
                    "caBundle": ca_bundle,
                },
            }],
        })
        if status not in (200, 201):
            raise HarnessError("registering trust-manager's webhook failed: HTTP %d %s" % (status, reply[:500]))
        print("trust-manager ready (readyz http://%s:%d/readyz, webhook https://%s:%d)"
              % (LOOPBACK, ports["trust-manager"], LOOPBACK, ports["trust-manager-webhook"]), file=out, flush=True)

    def _save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.info, indent=2))
        os.replace(tmp, self.state_file)

    def _spawn(self, name: str, argv: list) -> None:
        log = open(self.log(name), "ab")  # pylint: disable=consider-using-with
        try:
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.state,
                start_new_session=True, preexec_fn=_die_with_parent if self.supervised else None)
        finally:
            log.close()
        self.processes[name] = proc
        self.info["pids"][name] = proc.pid
        self._save()

    def _wait(self, name: str, check, deadline: float) -> None:
        proc = self.processes[name]
        while True:
            code = proc.poll()
            if code is not None:
                raise HarnessError("%s exited with status %d while starting; log: %s\n%s"
                                   % (name, code, self.log(name), log_tail(self.log(name))))
            try:
                if check():
                    return
            except (OSError, http.client.HTTPException, ssl.SSLError):
                pass
            if time.monotonic() > deadline:
                raise HarnessError("%s did not become healthy in time; log: %s\n%s"
                                   % (name, self.log(name), log_tail(self.log(name))))
            time.sleep(0.2)

    def _ssl_context(self, user: str) -> ssl.SSLContext:
        pki = self.state / "pki"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / (user + ".crt")), str(pki / (user + ".key")))
        return context

    def _https_ok(self, port: int, path: str, user: str) -> bool:
        conn = http.client.HTTPSConnection(LOOPBACK, port, context=self._ssl_context(user), timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        finally:
            conn.close()

    @staticmethod
    def _http_ok(port: int, path: str) -> bool:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def _api(self, method: str, path: str, body=None) -> tuple:
        port = self.info["ports"]["apiserver"]
        conn = http.client.HTTPSConnection(LOOPBACK, port, context=self._ssl_context("admin"), timeout=30)
        try:
            headers = {"Accept": "application/json"}
            data = None
            if body is not None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                headers["Content-Type"] = "application/yaml" if isinstance(body, str) else "application/json"
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace")
        finally:
            conn.close()

    def _install_crds(self, crds: Path, deadline: float) -> None:
        names = []
        for path in sorted(crds.glob("*.yaml")):
            text = path.read_text()
            for document in text.split("\n---"):
                if "kind: CustomResourceDefinition" not in document:
                    continue
                status, reply = self._api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                                          document)
                if status not in (200, 201):
                    raise HarnessError("installing CRDs from %s failed: HTTP %d %s" % (path, status, reply[:500]))
                names.append(json.loads(reply)["metadata"]["name"])
        for name in names:
            while True:
                status, reply = self._api("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + name)
                # a CRD just created can come back with "conditions": null before the controller fills it in
                conditions = ((json.loads(reply).get("status") or {}).get("conditions") or []) if status == 200 else []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    break
                if time.monotonic() > deadline:
                    raise HarnessError("CRD %s was not established in time (HTTP %d)" % (name, status))
                time.sleep(0.1)
        status, reply = self._api("POST", "/api/v1/namespaces",
                                  {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": CERT_MANAGER_NAMESPACE}})
        if status not in (200, 201, 409):
            raise HarnessError("creating namespace %s failed: HTTP %d %s" % (CERT_MANAGER_NAMESPACE, status, reply))

    def pids(self) -> dict:
        if not self.info and self.state_file.exists():
            self.info = json.loads(self.state_file.read_text())
        return {name: pid for name, pid in self.info.get("pids", {}).items() if self._ours(pid)}

    def _ours(self, pid: int) -> bool:
        # A pid from an old state file may have been reused; only touch our own processes.
        return _alive(pid) and str(self.state) in _cmdline(pid)

    def stop(self, remove: bool = True, grace: float = 15.0) -> None:
        """Stop every component, the last started first (etcd last), and remove the state directory."""
        pids = self.pids()
        for name in reversed(list(pids)):
            pid = pids[name]
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + grace
            while self._ours(pid) and time.monotonic() < deadline:
                self._reap(name)
                time.sleep(0.1)
            if self._ours(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self._reap(name, block=True)
        if remove and (self.state / MARKER).exists():
            shutil.rmtree(self.state, ignore_errors=True)
        elif self.state_file.exists():
            self.state_file.unlink()

    def _reap(self, name: str, block: bool = False) -> None:
        proc = self.processes.get(name)
        if proc is not None:
            if block:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            else:
                proc.poll()

    def env(self) -> dict:
        return {"KUBECONFIG": str(self.kubeconfig), "K8S_AUTH_KUBECONFIG": str(self.kubeconfig),
                "SBD_PKI_K8S_STATE": str(self.state)}


# --------------------------------------------------------------------- CLI

def _stop_group(child) -> None:
    """SIGTERM the command's process group, SIGKILL what is left after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure nothing else in its group lingers
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


def _status(plane: ControlPlane) -> int:
    pids = plane.pids()
    if not pids:
        print("no control plane running in %s" % plane.state)
        return 1
    print("state: %s\nkubeconfig: %s" % (plane.state, plane.kubeconfig))
    names = {pid: name for name, pid in pids.items()}
    for pid, address, port in listening_addresses(pids.values()):
        print("%-15s pid %-7d listens on %s:%d" % (names[pid], pid, address, port))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="harness.py", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--dir", default=str(DEFAULT_STATE), help="state directory (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for start-up")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build")
    sub.add_parser("start")
    sub.add_parser("status")
    sub.add_parser("stop")
    run = sub.add_parser("run")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            for name, path in build_all().items():
                print("%s %s: %s" % (name, VERSIONS[name], path))
            print("cert-manager CRDs: %s" % crd_dir())
            print("trust-manager CRDs: %s" % trust_crd_dir())
            return 0
        if args.command == "status":
            return _status(ControlPlane(args.dir))
        if args.command == "stop":
            ControlPlane(args.dir).stop()
            print("stopped; removed %s" % args.dir)
            return 0
        if args.command == "start":
            plane = ControlPlane(args.dir, supervised=False).start(args.timeout)
            print("export KUBECONFIG=%s" % plane.kubeconfig)
            return 0
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        if not cmd:
            parser.error("run needs a command after --")
        plane = ControlPlane(args.dir)

        def interrupted(signum, _frame):
            raise KeyboardInterrupt("signal %d" % signum)

        signal.signal(signal.SIGTERM, interrupted)
        child = None
        try:
            plane.start(args.timeout)
            env = dict(os.environ, **plane.env())
            # Its own process group, so that an interruption stops everything the command started.
            child = subprocess.Popen(cmd, env=env, start_new_session=True,  # pylint: disable=consider-using-with
                                     preexec_fn=_die_with_parent)
            return child.wait()
        finally:
            if child is not None:
                _stop_group(child)
            plane.stop()
    except HarnessError as exc:
        print("harness.py: %s" % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness.py: interrupted; control plane stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
