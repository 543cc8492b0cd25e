# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stdlib connection to the API server, against a real TLS server on loopback.

The server is Python's own HTTPS server with a CA, a server certificate and a client CA made here; it records
what each request carried (path, Authorization, the client certificate's subject). What is checked is what an
attacker on the way or a mistaken kubeconfig would change: the server's identity (CA and name), the client's
credentials, the kubeconfig's context, and that a kubeconfig only the kubernetes package understands goes there.
"""
from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import connection
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import Kube, KubeTransportError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

NOW = datetime.datetime.now(datetime.timezone.utc)


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject, key, issuer=None, issuer_key=None, ca=False, names=(), usage=None):
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer.subject if issuer else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(minutes=5)).not_valid_after(NOW + datetime.timedelta(hours=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                        critical=True)
    return builder.sign(issuer_key or key, hashes.SHA256())


class PKI:
    """A cluster CA (server certificate for 127.0.0.1 and api.test), a client certificate, and a stranger CA."""

    def __init__(self, root: Path) -> None:
        import ipaddress  # pylint: disable=import-outside-toplevel

        self.root = root
        ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert("cluster ca", ca_key, ca=True)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = _cert("kube-apiserver", server_key, self.ca, ca_key,
                       names=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("api.test")],
                       usage=ExtendedKeyUsageOID.SERVER_AUTH)
        other_server_key = ec.generate_private_key(ec.SECP256R1())
        other = _cert("elsewhere", other_server_key, self.ca, ca_key, names=[x509.DNSName("elsewhere.test")],
                      usage=ExtendedKeyUsageOID.SERVER_AUTH)
        self.client_key = ec.generate_private_key(ec.SECP256R1())
        self.client = _cert("operator", self.client_key, self.ca, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
        stranger_key = ec.generate_private_key(ec.SECP256R1())
        self.stranger = _cert("stranger ca", stranger_key, ca=True)
        for name, data in (("ca.crt", _pem(self.ca)), ("server.pem", _pem(server) + _pem(server_key)),
                           ("other.pem", _pem(other) + _pem(other_server_key)), ("client.crt", _pem(self.client)),
                           ("client.key", _pem(self.client_key)), ("stranger.crt", _pem(self.stranger))):
            (root / name).write_bytes(data)


class Server:
    """HTTPS on 127.0.0.1: answers JSON, records each request; client certificates optional (tokens work too)."""

    def __init__(self, pki: PKI, cert: str = "server.pem", close_after_each: bool = False, answer=None) -> None:
        self.requests = []
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                peer = self.connection.getpeercert()
                subject = dict(x[0] for x in peer["subject"]) if peer else {}
                seen.append({"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"),
                             "client": subject.get("commonName"), "body": body.decode() or None,
                             "type": self.headers.get("Content-Type")})
                if answer is not None and answer(self):
                    return
                out = json.dumps({"kind": "Status", "path": self.path}).encode()
                self.send_response(404 if self.path.startswith("/missing") else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
                if close_after_each:  # as a server closing an idle kept-alive connection: no "Connection: close"
                    self.close_connection = True

            do_GET = do_PATCH = do_POST = do_DELETE = _answer

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(pki.root / cert))
        context.load_verify_locations(str(pki.root / "ca.crt"))
        context.verify_mode = ssl.CERT_OPTIONAL
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def server(pki):
    running = Server(pki)
    yield running
    running.stop()


def kubeconfig(tmp_path, server_url, cluster=None, user=None, name="test", as_yaml=True, current=True) -> Path:
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": dict({"server": server_url}, **(cluster or {}))}],
        "users": [{"name": name, "user": user or {}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }
    if current:
        config["current-context"] = name
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config) if as_yaml else json.dumps(config))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def inline_cert(pki):
    return {"client-certificate-data": b64(_pem(pki.client)), "client-key-data": b64(_pem(pki.client_key))}


def test_a_yaml_kubeconfig_with_inline_certificates_authenticates_both_ends(pki, server, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile  # pylint: disable=import-outside-toplevel

    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % server.port,
                      {"certificate-authority-data": b64(_pem(pki.ca))}, inline_cert(pki))
    kube = Kube(kubeconfig=str(path))
    try:
        status, obj = kube.request("GET", "/api/v1/namespaces/x", query={"limit": "5"})
        applied = kube.apply("/apis/cert-manager.io/v1/namespaces/x/certificates/web", {"spec": {"a": 1}},
                             "securebydefault.pki", dry_run=True, force=False)
    finally:
        kube.close()
    assert status == 200 and obj["path"] == "/api/v1/namespaces/x?limit=5"
    assert [r["client"] for r in server.requests] == ["operator", "operator"]  # the client certificate was shown
    assert server.requests[1]["path"] == ("/apis/cert-manager.io/v1/namespaces/x/certificates/web"
                                          "?fieldManager=securebydefault.pki&dryRun=All")
    assert json.loads(server.requests[1]["body"]) == {"spec": {"a": 1}}
    assert server.requests[1]["type"] == "application/apply-patch+yaml" and applied["kind"] == "Status"
    assert kube.calls == 2
    assert list((tmp_path / "tmp").iterdir()) == []  # the key's temporary file is gone


def test_files_relative_to_the_kubeconfig_and_one_connection_for_many_requests(pki, server, tmp_path):
    path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % server.port,
                      {"certificate-authority": os.path.relpath(pki.root / "ca.crt", tmp_path)},
                      {"client-certificate": str(pki.root / "client.crt"),
                       "client-key": os.path.relpath(pki.root / "client.key", tmp_path)}, as_yaml=False)
    kube = Kube(kubeconfig=str(path))
    try:
        for _round in range(3):
            assert kube.get("/api/v1/namespaces/a")["path"] == "/api/v1/namespaces/a"
        assert kube.get("/missing/thing") is None
        opened = len(kube._transport._idle)  # pylint: disable=protected-access
    finally:
        kube.close()
    assert opened == 1 and len(server.requests) == 4 and {r["client"] for r in server.requests} == {"operator"}


@pytest.mark.parametrize("user", ["inline", "file"])
def test_a_bearer_token_inline_or_in_a_file(pki, server, tmp_path, user):
    (tmp_path / "token").write_text("s3cret-token\n")
    creds = {"token": "s3cret-token"} if user == "inline" else {"tokenFile": "token"}
    path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % server.port,
                      {"certificate-authority": str(pki.root / "ca.crt")}, creds)
    kube = Kube(kubeconfig=str(path))
    try:
        kube.get("/api")
    finally:
        kube.close()
    assert server.requests[0]["auth"] == "Bearer s3cret-token" and server.requests[0]["client"] is None


def test_a_server_the_kubeconfig_ca_did_not_sign_is_refused_before_any_request(pki, server, tmp_path):
    path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % server.port,
                      {"certificate-authority": str(pki.root / "stranger.crt")}, {"token": "s3cret-token"})
    kube = Kube(kubeconfig=str(path))
    with pytest.raises(KubeTransportError) as err:
        kube.get("/api")
    kube.close()
    assert err.value.field == "kubeconfig" and "TLS with the Kubernetes API server" in err.value.problem
    assert "CERTIFICATE_VERIFY_FAILED" in err.value.problem
    assert server.requests == []  # the token never left


def test_the_server_name_is_checked_and_tls_server_name_sets_it(pki, tmp_path):
    other = Server(pki, cert="other.pem")  # a certificate of the right CA, for another name
    try:
        cluster = {"certificate-authority": str(pki.root / "ca.crt")}
        path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % other.port, cluster, {"token": "t"})
        kube = Kube(kubeconfig=str(path))
        with pytest.raises(KubeTransportError) as err:
            kube.get("/api")
        kube.close()
        assert "TLS" in err.value.problem and other.requests == []
        path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % other.port,
                          dict(cluster, **{"tls-server-name": "elsewhere.test"}), {"token": "t"})
        kube = Kube(kubeconfig=str(path))
        try:
            assert kube.get("/api")["path"] == "/api"
        finally:
            kube.close()
    finally:
        other.stop()


def test_insecure_skip_tls_verify_works_and_warns(pki, server, tmp_path):
    path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % server.port, {"insecure-skip-tls-verify": True}, {})
    kube = Kube(kubeconfig=str(path))
    try:
        kube.get("/api")
    finally:
        kube.close()
    assert any("insecure-skip-tls-verify" in note and "not authenticated" in note for note in kube.notes), kube.notes


def test_a_kept_alive_connection_the_server_closed_is_opened_again(pki, tmp_path):
    closing = Server(pki, close_after_each=True)
    try:
        path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % closing.port,
                          {"certificate-authority": str(pki.root / "ca.crt")}, inline_cert(pki))
        kube = Kube(kubeconfig=str(path))
        try:
            for name in ("a", "b", "c"):
                assert kube.get("/api/v1/namespaces/" + name)["path"].endswith(name)
        finally:
            kube.close()
        assert [r["path"][-1] for r in closing.requests] == ["a", "b", "c"]  # each sent once
    finally:
        closing.stop()


def test_a_request_that_may_not_be_sent_twice_is_not_sent_again(pki, tmp_path):
    """The server takes a request and drops the kept-alive connection without an answer: a read is sent again on a
    new connection, a create (POST) is not (it may have been done) and fails as a transport error."""
    dropped = []

    def answer(handler):
        if handler.path.startswith("/drop") and handler.path not in dropped:
            dropped.append(handler.path)
            handler.close_connection = True  # no answer at all
            return True
        return False

    server = Server(pki, answer=answer)
    try:
        path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % server.port,
                          {"certificate-authority": str(pki.root / "ca.crt")}, inline_cert(pki))
        kube = Kube(kubeconfig=str(path))
        try:
            kube.get("/api")  # the connection is kept alive after this
            assert kube.get("/drop/read")["path"] == "/drop/read"
            kube.get("/api")
            with pytest.raises(KubeTransportError) as err:
                kube.request("POST", "/drop/create", body={"kind": "Secret"})
        finally:
            kube.close()
    finally:
        server.stop()
    assert [r["method"] + " " + r["path"] for r in server.requests] == [
        "GET /api", "GET /drop/read", "GET /drop/read", "GET /api", "POST /drop/create"]
    assert "unreachable" in err.value.problem


def test_a_closed_port_is_unreachable_naming_the_server(pki, tmp_path):
    import socket  # pylint: disable=import-outside-toplevel

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % port, {"certificate-authority": str(pki.root / "ca.crt")})
    kube = Kube(kubeconfig=str(path))
    with pytest.raises(KubeTransportError) as err:
        kube.get("/api")
    assert "unreachable" in err.value.problem and "127.0.0.1:%d" % port in err.value.problem


def test_contexts_are_chosen_and_a_missing_one_is_named(pki, tmp_path):
    path = kubeconfig(tmp_path, "https://127.0.0.1:1", {"certificate-authority": str(pki.root / "ca.crt")},
                      current=False)
    assert connection.from_kubeconfig(str(path), "test").server == "https://127.0.0.1:1"
    with pytest.raises(PKIError) as err:
        connection.from_kubeconfig(str(path), None)
    assert err.value.field == "context" and "no current-context" in err.value.problem
    with pytest.raises(PKIError) as err:
        Kube(kubeconfig=str(path), context="prod")
    assert err.value.field == "context" and "'prod' is not in" in err.value.problem and "test" in err.value.problem


@pytest.mark.parametrize("change,words", [
    ({"clusters": []}, "names cluster 'test', which it does not define"),
    ({"users": []}, "names user 'test', which it does not define"),
    ({"users": [{"name": "test", "user": {"client-certificate-data": b64(b"-----BEGIN CERTIFICATE-----")}}]},
     "client-certificate-data without its key"),
    ({"users": [{"name": "test", "user": {"client-key": "k.pem"}}]}, "client key without its certificate"),
    # an empty or garbled CA must not mean "the system's CAs"
    ({"clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:1",
                                                "certificate-authority-data": "===="}}]},
     "certificate-authority-data is not base64 of PEM"),
    ({"users": [{"name": "test", "user": {}}, {"name": "test", "user": {}}]}, "defines user 'test' 2 times"),
    ({"clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:99999"}}]}, "not a number in 1-65535"),
])
def test_a_broken_kubeconfig_is_named(tmp_path, change, words):
    path = kubeconfig(tmp_path, "https://127.0.0.1:1")
    config = dict(yaml.safe_load(path.read_text()), **change)
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(PKIError) as err:
        Kube(kubeconfig=str(path))
    assert err.value.field == "kubeconfig" and words in err.value.problem, err.value.problem


def test_not_yaml_is_named(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text("clusters: [unclosed\n")
    with pytest.raises(PKIError) as err:
        Kube(kubeconfig=str(path))
    assert err.value.field == "kubeconfig" and "not YAML" in err.value.problem


@pytest.mark.parametrize("token", ["s3cret tok", "s3cret\ttok", 12345])
def test_a_token_a_header_cannot_carry_is_refused_without_showing_it(tmp_path, token):
    path = kubeconfig(tmp_path, "https://127.0.0.1:1", {}, {"token": token})
    with pytest.raises(PKIError) as err:
        Kube(kubeconfig=str(path))
    assert err.value.field == "kubeconfig" and "token" in err.value.problem
    assert "s3cret" not in str(err.value) and "12345" not in str(err.value)


def test_a_token_with_a_trailing_newline_is_sent_without_it(pki, server, tmp_path):
    path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % server.port,
                      {"certificate-authority": str(pki.root / "ca.crt")}, {"token": "s3cret-token\n"})
    kube = Kube(kubeconfig=str(path))
    try:
        kube.get("/api")
    finally:
        kube.close()
    assert server.requests[0]["auth"] == "Bearer s3cret-token"


def test_an_inline_certificate_with_a_key_file_and_the_reverse(pki, server, tmp_path):
    for user in ({"client-certificate-data": b64(_pem(pki.client)), "client-key": str(pki.root / "client.key")},
                 {"client-certificate": str(pki.root / "client.crt"), "client-key-data": b64(_pem(pki.client_key))}):
        path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % server.port,
                          {"certificate-authority": str(pki.root / "ca.crt")}, user)
        kube = Kube(kubeconfig=str(path))
        try:
            kube.get("/api")
        finally:
            kube.close()
    assert [r["client"] for r in server.requests] == ["operator", "operator"]


def test_impersonation_is_refused_not_dropped(tmp_path):
    path = kubeconfig(tmp_path, "https://127.0.0.1:1", {}, {"token": "t", "as": "system:serviceaccount:x:y"})
    with pytest.raises(PKIError) as err:
        Kube(kubeconfig=str(path))
    assert err.value.field == "kubeconfig" and "impersonates (as)" in err.value.problem


def test_a_password_in_the_server_url_is_refused_and_not_shown(tmp_path):
    path = kubeconfig(tmp_path, "https://admin:hunter2@127.0.0.1:6443", {}, {})
    with pytest.raises(PKIError) as err:
        Kube(kubeconfig=str(path))
    assert "user name or password" in err.value.problem and "hunter2" not in str(err.value)


def test_plain_http_only_to_this_host(tmp_path):
    path = kubeconfig(tmp_path, "http://10.1.2.3:8080", {}, {"token": "t"})
    with pytest.raises(PKIError) as err:
        Kube(kubeconfig=str(path))
    assert err.value.field == "kubeconfig" and "unencrypted" in err.value.problem
    local = kubeconfig(tmp_path, "http://127.0.0.1:8001", {}, {})  # kubectl proxy
    Kube(kubeconfig=str(local)).close()
    with pytest.raises(PKIError) as err:  # but no credentials in clear text, not even to this host
        Kube(kubeconfig=str(kubeconfig(tmp_path, "http://127.0.0.1:8001", {}, {"token": "t"})))
    assert "plain http with credentials" in err.value.problem


@pytest.mark.parametrize("user,key", [
    ({"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}}, "exec"),
    ({"auth-provider": {"name": "oidc"}}, "auth-provider"),
    ({"username": "u", "password": "p"}, "password, username"),
])
def test_what_only_the_kubernetes_package_does_goes_there(tmp_path, user, key):
    path = kubeconfig(tmp_path, "https://127.0.0.1:1", {}, user)
    with pytest.raises(connection.NeedsPackage) as err:
        connection.from_kubeconfig(str(path), None)
    assert key in str(err.value)


def test_a_kubeconfig_with_a_credential_plugin_connects_through_the_package(pki, server, tmp_path):
    """exec: the kubernetes package runs the plugin (here a script printing a token) and sends its token."""
    pytest.importorskip("kubernetes")  # not in the engine tier's environment: the test below covers that
    plugin = tmp_path / "plugin.py"
    plugin.write_text("import json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
                      "'kind': 'ExecCredential', 'status': {'token': 'from-plugin'}}))\n")
    path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % server.port,
                      {"certificate-authority": str(pki.root / "ca.crt")},
                      {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                                "args": [str(plugin)], "interactiveMode": "Never"}})
    kube = Kube(kubeconfig=str(path))
    try:
        assert kube.get("/api")["path"] == "/api"
    finally:
        kube.close()
    assert type(kube._transport).__name__ == "_PackageTransport"  # pylint: disable=protected-access
    assert server.requests[0]["auth"] == "Bearer from-plugin"


def test_without_the_kubernetes_package_such_a_kubeconfig_is_named_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # as if not installed: importing it raises ImportError
    path = kubeconfig(tmp_path, "https://127.0.0.1:1", {}, {"exec": {"command": "aws"}})
    with pytest.raises(PKIError) as err:
        Kube(kubeconfig=str(path))
    assert err.value.field == "kubeconfig" and "uses exec" in err.value.problem
    assert "needs the kubernetes Python package" in err.value.problem and "pip install" in err.value.fix


def test_a_module_process_with_a_plain_kubeconfig_does_not_import_the_package(pki, server, tmp_path):
    path = kubeconfig(tmp_path, "https://127.0.0.1:%d" % server.port,
                      {"certificate-authority-data": b64(_pem(pki.ca))}, inline_cert(pki))
    script = ("import sys; from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import Kube\n"
              "k = Kube(kubeconfig=sys.argv[1]); k.get('/api'); k.close()\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'urllib3')))")
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert out.stdout.strip() == "[]", out.stdout
    assert len(server.requests) == 1


# -- waits watch: every change is seen as it happens, without asking again
def _json(handler, status, obj):
    out = json.dumps(obj).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(out)))
    handler.end_headers()
    handler.wfile.write(out)


def _stream(handler, events):
    """A watch answer as the API server sends it: chunked, one JSON event per line."""
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for event in events:
        line = json.dumps(event).encode() + b"\n"
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        handler.wfile.flush()
    handler.wfile.write(b"0\r\n\r\n")
    handler.close_connection = True


def _certificate(name, version, ready):
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return {"kind": "Certificate", "metadata": {"name": name, "resourceVersion": str(version)}, "status": status}


def _ready(obj):
    return any(c["status"] == "True" for c in ((obj or {}).get("status") or {}).get("conditions") or [])


def _wait_on(pki, tmp_path, answer, path, done, interval):
    """Kube.wait(path, done) against a server answering with ``answer``: (its requests, the Kube, the outcome)."""
    server = Server(pki, answer=answer)
    try:
        kube = Kube(kubeconfig=str(kubeconfig(tmp_path, "https://127.0.0.1:%d" % server.port,
                                              {"certificate-authority": str(pki.root / "ca.crt")}, inline_cert(pki))))
        try:
            outcome = kube.wait(path, done, 30, interval)
        finally:
            kube.close()
    finally:
        server.stop()
    return server.requests, kube, outcome


def test_a_wait_for_one_object_watches_it_by_name_from_the_version_read(pki, tmp_path):
    def answer(handler):
        if "watch=1" in handler.path:
            _stream(handler, [{"type": "MODIFIED", "object": _certificate("web", 6, False)},
                              {"type": "MODIFIED", "object": _certificate("web", 7, True)}])
        else:
            _json(handler, 200, _certificate("web", 5, False))
        return True

    requests, kube, (done, obj) = _wait_on(pki, tmp_path, answer,
                                           "/apis/cert-manager.io/v1/namespaces/prod/certificates/web", _ready, 5)
    assert done and obj["metadata"]["resourceVersion"] == "7"
    assert [r["path"].split("?")[0] for r in requests] == [
        "/apis/cert-manager.io/v1/namespaces/prod/certificates/web",
        "/apis/cert-manager.io/v1/namespaces/prod/certificates"]
    watch = requests[1]["path"]
    assert "watch=1" in watch and "resourceVersion=5" in watch and "fieldSelector=metadata.name%3Dweb" in watch
    assert kube.calls == 2  # one read, one watch: nothing asked again


def test_a_wait_for_a_list_follows_each_item_through_the_watch(pki, tmp_path):
    def answer(handler):
        if "watch=1" in handler.path:
            _stream(handler, [{"type": "MODIFIED", "object": _certificate("a", 11, True)},
                              {"type": "ADDED", "object": _certificate("c", 12, False)},
                              {"type": "DELETED", "object": _certificate("c", 13, False)},
                              {"type": "MODIFIED", "object": _certificate("b", 14, True)}])
        else:
            _json(handler, 200, {"kind": "CertificateList", "metadata": {"resourceVersion": "10"},
                                 "items": [_certificate("a", 8, False), _certificate("b", 9, False)]})
        return True

    seen = []

    def all_ready(listing):
        seen.append(sorted(o["metadata"]["name"] for o in listing["items"]))
        return all(_ready(o) for o in listing["items"])

    requests, _kube, (done, listing) = _wait_on(pki, tmp_path, answer,
                                                "/apis/cert-manager.io/v1/namespaces/prod/certificates", all_ready, 5)
    assert done and [o["metadata"]["resourceVersion"] for o in listing["items"]] == ["11", "14"]
    assert seen == [["a", "b"], ["a", "b"], ["a", "b", "c"], ["a", "b"], ["a", "b"]]
    assert "resourceVersion=10" in requests[1]["path"] and len(requests) == 2


def test_a_refused_watch_falls_back_to_asking(pki, tmp_path):
    reads = []

    def answer(handler):
        if "watch=1" in handler.path:
            _json(handler, 403, {"kind": "Status", "message": "watch is forbidden"})
        else:
            reads.append(handler.path)
            _json(handler, 200, _certificate("web", len(reads), len(reads) >= 3))
        return True

    requests, _kube, (done, obj) = _wait_on(pki, tmp_path, answer,
                                            "/apis/cert-manager.io/v1/namespaces/prod/certificates/web", _ready, 0.05)
    assert done and obj["metadata"]["resourceVersion"] == "3"
    assert sum("watch=1" in r["path"] for r in requests) == 1  # tried once, then only reads
    assert len(reads) == 3
