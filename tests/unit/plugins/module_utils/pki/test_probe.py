# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tls_probe's engine against real TLS servers on loopback: what is served, verified, accepted."""
from __future__ import annotations

import os
import socket
import ssl
import threading

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import probe
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.tests.unit.plugins.module_utils.pki.test_node import converge, request_for


class Server:
    """A TLS (or plain TCP) server on 127.0.0.1 that serves until stopped; counts what it saw."""

    def __init__(self, node_dir=None, client_ca=None, require_client=False, plain=b"", silent=False, tls12=False,
                 alternate=None, cert_key=None, quiet=False):
        self.context = None
        self.contexts = []
        if node_dir is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            if tls12:  # a client certificate is then refused inside the handshake, not after it
                self.context.maximum_version = ssl.TLSVersion.TLSv1_2
            self.context.load_cert_chain(os.path.join(node_dir, "node-fullchain.crt"),
                                         os.path.join(node_dir, "node.key"))
            if client_ca is not None:
                self.context.load_verify_locations(client_ca)
                self.context.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_OPTIONAL
        if cert_key is not None:  # a certificate and key given as files (e.g. a malformed certificate)
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(*cert_key)
        if alternate is not None:  # every other connection is served with another certificate
            other = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            other.load_cert_chain(os.path.join(alternate, "node-fullchain.crt"), os.path.join(alternate, "node.key"))
            self.contexts = [self.context, other]
        self.plain, self.silent, self.quiet = plain, silent, quiet  # quiet: the handshake, then close
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.peers, self.errors = [], []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return probe.Endpoint("127.0.0.1", self.port)

    def _serve(self):
        while not self.stopping.is_set():
            try:
                conn = self.sock.accept()[0]
            except OSError:
                continue
            try:
                if self.silent:
                    self.stopping.wait(3)
                elif self.context is None:
                    conn.sendall(self.plain)
                else:
                    conn.settimeout(3)
                    context = self.contexts[len(self.peers) % 2] if self.contexts else self.context
                    with context.wrap_socket(conn, server_side=True) as tls:
                        self.peers.append(tls.getpeercert())
                        if not self.quiet:
                            tls.sendall(b"ok")
            except (ssl.SSLError, OSError) as exc:
                self.errors.append(exc)
            finally:
                conn.close()

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def world(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"], permitted_ip_ranges=["127.0.0.0/8"])
    other = make_ca(common_name="Other CA", permitted_dns=["pki.test"], permitted_ip_ranges=["127.0.0.0/8"])
    for name, authority in (("server", ca), ("client", ca), ("rogue", other)):
        converge(authority, request_for(authority, tmp_path / name, ["%s.pki.test" % name, "127.0.0.1"]))
    servers = []

    def serve(**kwargs):
        server = Server(**kwargs)
        servers.append(server)
        return server

    yield {"ca": ca, "other": other, "dir": tmp_path, "serve": serve,
           "bundle": (tmp_path / "server" / "ca-bundle.crt").read_text(),
           "other_bundle": (tmp_path / "rogue" / "ca-bundle.crt").read_text()}
    for server in servers:
        server.stop()


def run(world, server, **kwargs):
    kwargs.setdefault("timeout", 2.0)
    return probe.probe(probe.ProbeRequest(server.endpoint, **kwargs))


def client(world, name):
    return {"client_cert_path": str(world["dir"] / name / "node-fullchain.crt"),
            "client_key_path": str(world["dir"] / name / "node.key")}


def test_the_presented_certificate_is_described_and_verified(world):
    server = world["serve"](node_dir=str(world["dir"] / "server"))
    out = run(world, server, bundle_pem=world["bundle"], server_name="server.pki.test")
    assert out["reachable"] and out["tls"] and out["verified"] is True and out["verify_error"] is None
    leaf = out["chain"][0]
    served = (world["dir"] / "server" / "node.crt").read_text()
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(served.encode())
    assert leaf["serial"] == "%x" % cert.serial_number and leaf["names"] == ["server.pki.test", "127.0.0.1"]
    assert leaf["issuer"] == world["ca"].certificate.subject.rfc4514_string()
    assert out["client_certificate_accepted"] is None and out["error"] is None
    assert out["client_certificate_required"] is False and out["protocol"] == "TLSv1.3"


def test_wrong_name_and_foreign_ca_do_not_verify(world):
    server = world["serve"](node_dir=str(world["dir"] / "server"))
    wrong = run(world, server, bundle_pem=world["bundle"], server_name="other.pki.test")
    assert wrong["tls"] and wrong["verified"] is False and "other.pki.test" in wrong["verify_error"]
    foreign = run(world, server, bundle_pem=world["other_bundle"], server_name="server.pki.test")
    assert foreign["verified"] is False and "certificate" in foreign["verify_error"]
    unchecked = run(world, server)
    assert unchecked["verified"] is None and unchecked["chain"]


@pytest.mark.parametrize("tls12", [False, True])
def test_client_certificates_accepted_refused_and_required(world, tls12):
    client_ca = str(world["dir"] / "server" / "ca-bundle.crt")
    server = world["serve"](node_dir=str(world["dir"] / "server"), client_ca=client_ca, require_client=True,
                            tls12=tls12)
    good = run(world, server, bundle_pem=world["bundle"], server_name="server.pki.test", **client(world, "client"))
    assert good["client_certificate_accepted"] is True and good["verified"] is True
    assert any(("DNS", "client.pki.test") in p["subjectAltName"] for p in server.peers)
    rogue = run(world, server, **client(world, "rogue"))
    assert rogue["client_certificate_accepted"] is False and "client certificate" in rogue["error"]
    none = run(world, server)
    assert none["reachable"] and none["client_certificate_accepted"] is None
    if tls12:
        # a TLS 1.2 server says only "handshake failure": that may be a missing client certificate or no
        # common cipher, and the probe does not pretend to know which
        assert none["client_certificate_required"] is False and "may want a client certificate" in none["error"]
    else:
        assert none["tls"] and none["client_certificate_required"] is True
        assert "requires a client certificate" in none["error"]
    optional = world["serve"](node_dir=str(world["dir"] / "server"), client_ca=client_ca)
    assert run(world, optional)["client_certificate_required"] is False


def test_refused_silent_and_plain_ports_are_results(world):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    refused = probe.probe(probe.ProbeRequest(probe.Endpoint("127.0.0.1", port), timeout=2.0))
    assert refused["reachable"] is False and "cannot connect" in refused["error"]
    plain = world["serve"](plain=b"HTTP/1.1 400 Bad Request\r\n\r\n")
    out = run(world, plain)
    assert out["reachable"] and out["tls"] is False and "no TLS handshake" in out["error"]
    silent = world["serve"](silent=True)
    out = run(world, silent, timeout=0.5)
    assert out["reachable"] and out["tls"] is False and "timed out" in out["error"]


@pytest.mark.parametrize("text, host, port", [("node1.pki.test:8443", "node1.pki.test", 8443),
                                              ("10.0.0.1:443", "10.0.0.1", 443), ("[::1]:443", "::1", 443),
                                              ("NODE1.pki.test.:1", "node1.pki.test", 1)])
def test_endpoints_are_parsed(text, host, port):
    assert probe.parse_endpoint(text) == probe.Endpoint(host, port)


@pytest.mark.parametrize("text", ["node1.pki.test", "node1.pki.test:", ":443", "node1:0", "node1:65536",
                                  "node1:https", "::1:443", "[::1]443", "[nothost]:443", "a b:443",
                                  "node1.pki.test:443\n", "*.pki.test:443", "https://node1:443"])
def test_bad_endpoints_are_refused_naming_the_field(text):
    with pytest.raises(PKIError) as caught:
        probe.parse_endpoint(text, "endpoints[0]")
    assert caught.value.field == "endpoints[0]"


def test_an_unreadable_client_key_is_an_error_naming_the_option(world, tmp_path):
    server = world["serve"](node_dir=str(world["dir"] / "server"))
    with pytest.raises(PKIError) as caught:
        run(world, server, client_cert_path=str(tmp_path / "missing.crt"), client_key_path=str(tmp_path / "k"))
    assert caught.value.field == "client_cert_path"


# -- tls_probe's metrics file, read back by Prometheus' own parser
def probe_params(server, tmp_path, **extra):
    params = {"endpoint": "127.0.0.1:%d" % server.port, "server_name": None, "bundle": None, "bundle_path": None,
              "client_cert_path": None, "client_key_path": None, "timeout": 2.0,
              "metrics_path": str(tmp_path / "probe.prom"), "metrics_labels": {"host": "server.pki.test"}}
    params.update(extra)
    return params


class Ctx:
    def __init__(self, params, check_mode=False):
        self.params, self.check_mode = params, check_mode


def test_the_probe_metrics_say_what_is_served(world, tmp_path):
    parser = pytest.importorskip("prometheus_client.parser")
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops import probe as ops
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import not_valid_after

    server = world["serve"](node_dir=str(world["dir"] / "server"))
    params = probe_params(server, tmp_path, bundle=world["bundle"], server_name="server.pki.test")
    dry = ops.tls_probe(Ctx(params, check_mode=True))
    assert dry["changed"] and not (tmp_path / "probe.prom").exists()
    out = ops.tls_probe(Ctx(params))
    assert out["changed"] and (tmp_path / "probe.prom").read_text() == out["metrics"]
    found = {f.name: {frozenset(s.labels.items()): s.value for s in f.samples}
             for f in parser.text_string_to_metric_families(out["metrics"])}
    labels = frozenset({"endpoint": "127.0.0.1:%d" % server.port, "host": "server.pki.test"}.items())
    from cryptography import x509
    served = x509.load_pem_x509_certificate((world["dir"] / "server" / "node.crt").read_bytes())
    assert found["securebydefault_pki_endpoint_served_not_after_timestamp_seconds"][labels] == \
        not_valid_after(served).timestamp()
    assert found["securebydefault_pki_endpoint_probe_success"][labels] == 1
    assert not ops.tls_probe(Ctx(params))["changed"]  # nothing in it changes between probes
    wrong = ops.tls_probe(Ctx(dict(params, server_name="other.pki.test")))
    assert wrong["changed"] and "securebydefault_pki_endpoint_probe_success{" in wrong["metrics"]
    assert wrong["metrics"].count("} 0\n") == 1  # not verified: no success


def test_probe_metrics_labels_are_checked_before_any_connection(world, tmp_path):
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops import probe as ops

    server = world["serve"](node_dir=str(world["dir"] / "server"))
    for extra, field in (({"metrics_labels": {"endpoint": "x"}}, "metrics_labels"),
                         ({"metrics_labels": {"bad-label": "x"}}, "metrics_labels"),
                         ({"metrics_path": str(tmp_path / "probe.txt")}, "metrics_path"),
                         ({"metrics_path": None}, "metrics_labels")):
        with pytest.raises(PKIError) as caught:
            ops.tls_probe(Ctx(probe_params(server, tmp_path, **extra)))
        assert caught.value.field == field
    assert server.peers == [] and not server.errors  # nothing connected


def test_a_certificate_swapped_on_the_verifying_connection_does_not_verify(world):
    """The first connection sees a foreign certificate, the second the real one: not verified."""
    server = world["serve"](node_dir=str(world["dir"] / "rogue"), alternate=str(world["dir"] / "server"))
    out = run(world, server, bundle_pem=world["bundle"], server_name="server.pki.test")
    assert out["chain"][0]["issuer"] == world["other"].certificate.subject.rfc4514_string()
    assert out["verified"] is False and "another certificate" in out["verify_error"]


def test_an_encrypted_client_key_fails_at_once_naming_the_key(world, tmp_path):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key((world["dir"] / "client" / "node.key").read_bytes(), None)
    (tmp_path / "enc.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret-passphrase")))
    server = world["serve"](node_dir=str(world["dir"] / "server"))
    with pytest.raises(PKIError) as caught:
        run(world, server, client_cert_path=str(world["dir"] / "client" / "node-fullchain.crt"),
            client_key_path=str(tmp_path / "enc.key"))
    assert caught.value.field in ("client_key_path", "client_cert_path") and "encrypted" in str(caught.value)


def test_a_malformed_certificate_is_a_result_not_a_crash(world, tmp_path):
    """A lying endpoint serves a certificate whose SAN holds a one-byte IP address."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtensionOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "liar")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x03\x87\x01\x01"),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "liar.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "liar.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    server = world["serve"](cert_key=(str(tmp_path / "liar.crt"), str(tmp_path / "liar.key")))
    out = run(world, server, bundle_pem=world["bundle"])
    assert out["tls"] and "cannot be parsed" in out["chain"][0]["error"] and out["verified"] is False


def test_bundle_and_server_name_are_checked_before_any_connection(world):
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops import probe as ops

    server = world["serve"](node_dir=str(world["dir"] / "server"))
    for extra, field in (({"bundle": "not a certificate"}, "bundle"),
                         ({"server_name": "spiffe://pki.test/web"}, "server_name"),
                         ({"server_name": "web pki.test"}, "server_name")):
        with pytest.raises(PKIError) as caught:
            ops.request_from(probe_params(server, world["dir"], metrics_path=None, metrics_labels=None, **extra))
        assert caught.value.field == field
    assert server.peers == [] and not server.errors


def test_a_server_that_closes_after_the_handshake_gives_no_verdict_on_the_client(world):
    server = world["serve"](node_dir=str(world["dir"] / "server"), quiet=True)
    out = run(world, server, **client(world, "client"))
    assert out["tls"] and out["client_certificate_accepted"] is None and "no verdict" in out["error"]


def test_a_server_that_trickles_bytes_cannot_hold_the_probe_past_its_timeout(world):
    """Each byte comes before the per-operation timeout; only the deadline of the whole handshake ends it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def trickle():
        conn = listener.accept()[0]
        with conn:
            conn.sendall(b"\x16")  # the start of a TLS record, then one byte at a time for up to 30 s
            for _byte in range(100):
                if stop.wait(0.3):
                    break
                try:
                    conn.sendall(b"\x03")
                except OSError:
                    break

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        out = probe.probe(probe.ProbeRequest(probe.Endpoint("127.0.0.1", listener.getsockname()[1]), timeout=1.0))
    finally:
        stop.set()
        thread.join(5)
        listener.close()
    assert out["reachable"] and not out["tls"] and "timed out" in out["error"]
