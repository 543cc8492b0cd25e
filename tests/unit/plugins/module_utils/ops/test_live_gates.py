# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The live gates of a CA rotation against real TLS servers on loopback.

A service that still runs on the bundle it loaded at start refuses the new CA's clients: switched waits.
A service that never reloaded its certificate still serves the old CA's: done waits. Both are named.
"""
from __future__ import annotations

import datetime
import os
import ssl
import tempfile

import pytest
from cryptography import x509

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import rotation
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import live_gate
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.tests.unit.plugins.module_utils.pki.test_node import converge, request_for
from ansible_collections.securebydefault.pki.tests.unit.plugins.module_utils.pki.test_probe import Server

pytestmark = pytest.mark.controller
NOW = datetime.datetime.now(datetime.timezone.utc)
PASS = "correct horse"


def root_pem(ca):
    with open(os.path.join(ca.path, "root.crt")) as handle:
        return handle.read()


def server_context(node_dir, client_roots=None):
    """What a service loads: its certificate and key, and (mutual TLS) the client CAs it accepts."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(node_dir, "node-fullchain.crt"), os.path.join(node_dir, "node.key"))
    if client_roots is not None:
        context.load_verify_locations(cadata=client_roots)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
def world(make_ca, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    os.mkdir(str(tmp_path / "tmp"))
    kw = dict(permitted_dns=["pki.test"], permitted_ip_ranges=["127.0.0.0/8"])
    old, new = make_ca("Old CA", **kw), make_ca("New CA", **kw)
    for name, ca in (("on-old", old), ("on-new", new)):
        converge(ca, request_for(ca, tmp_path / name, ["svc.pki.test", "127.0.0.1"]))
    servers = []

    def serve(node_dir, client_roots=None):
        server = Server(node_dir=str(tmp_path / node_dir))
        server.context = server_context(str(tmp_path / node_dir), client_roots)
        servers.append(server)
        return server

    yield {"old": old, "new": new, "dir": tmp_path, "serve": serve}
    for server in servers:
        server.stop()


def targets(*servers, server_name="svc.pki.test"):
    return live_gate.targets_of(
        [{"host": "node%d" % i, "endpoints": [str(s.endpoint)], "server_name": server_name} for i, s in
         enumerate(servers, 1)])


def test_switched_needs_every_endpoint_to_accept_the_new_ca_s_clients(world):
    old, new = world["old"], world["new"]
    stale = world["serve"]("on-old", client_roots=root_pem(old))  # loaded its bundle before trust_both
    fresh = world["serve"]("on-old", client_roots=root_pem(old) + root_pem(new))
    open_door = world["serve"]("on-old")  # asks for no client certificate
    verdicts = live_gate.check(targets(stale, fresh, open_door), "switched", new, root_pem(new), 2.0)
    assert [v["passed"] for v in verdicts] == [False, True, True]
    assert verdicts[0]["host"] == "node1" and "refused the client certificate" in verdicts[0]["reason"]
    assert verdicts[0]["served"]["issuer"] == "CN=Old CA"
    held = list(live_gate.holding_back(verdicts))
    assert held == ["node1 %s (%s)" % (stale.endpoint, verdicts[0]["reason"])]
    # the probe identity reached the service that accepted it: nameless, client use, from the new CA
    presented = fresh.peers[-1]
    assert dict(x[0] for x in presented["subject"])["commonName"] == live_gate.PROBE_SUBJECT
    assert "subjectAltName" not in presented
    assert not os.listdir(tempfile.tempdir), "the probe identity touched the disk"


def test_done_needs_every_endpoint_to_serve_a_certificate_of_the_new_ca(world):
    old, new = world["old"], world["new"]
    both = root_pem(old) + root_pem(new)
    frozen = world["serve"]("on-old", client_roots=both)  # its certificate file was renewed, it never reloaded
    reloaded = world["serve"]("on-new", client_roots=both)
    verdicts = live_gate.check(targets(frozen, reloaded), "done", new, root_pem(new), 2.0)
    assert [v["passed"] for v in verdicts] == [False, True]
    assert "client trusting only the new root refuses" in verdicts[0]["reason"]
    # a name the certificate does not carry fails the done gate too: clients check it
    wrong = live_gate.check(targets(reloaded, server_name="other.pki.test"), "done", new, root_pem(new), 2.0)
    assert not wrong[0]["passed"] and "other.pki.test" in wrong[0]["reason"]


def test_a_closed_port_or_a_plain_port_holds_the_gate(world):
    plain = Server(plain=b"HTTP/1.0 200 OK\r\n\r\n")
    try:
        verdicts = live_gate.check(targets(plain), "switched", world["new"], root_pem(world["new"]), 1.0)
    finally:
        plain.stop()
    closed = live_gate.check(targets(plain), "switched", world["new"], root_pem(world["new"]), 1.0)
    assert not verdicts[0]["passed"] and "no TLS handshake" in verdicts[0]["reason"]
    assert not closed[0]["passed"] and "cannot connect" in closed[0]["reason"]


def test_the_probe_identity_is_short_lived_nameless_and_for_clients_only(world):
    chain_pem, key_pem = live_gate.probe_identity(world["new"], NOW)
    cert = x509.load_pem_x509_certificates(chain_pem)[0]
    assert cert.issuer == world["new"].certificate.subject
    assert cert.not_valid_after_utc - NOW <= datetime.timedelta(minutes=10)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert b"ENCRYPTED" not in key_pem and b"PRIVATE KEY" in key_pem


@pytest.mark.parametrize("entries, field, problem", [
    ([{"host": "node1", "endpoints": ["node1.pki.test"]}], "endpoints[0].endpoints", "is not host:port"),
    ([{"host": "node1", "endpoints": ["node1.pki.test:0"]}], "endpoints[0].endpoints", "port"),
    ([{"host": "", "endpoints": ["node1.pki.test:443"]}], "endpoints[0].host", "is empty"),
    ([{"host": "a", "endpoints": ["10.0.0.1:443"]}, {"host": "b", "endpoints": ["10.0.0.1:443"]}],
     "endpoints[1].endpoints", "listed twice"),
])
def test_bad_endpoints_are_refused_naming_the_field(entries, field, problem):
    with pytest.raises(PKIError) as err:
        live_gate.targets_of(entries)
    assert err.value.field == field and problem in err.value.problem


def certify(world, host, names, ca="old"):
    """What the CA host's ledger says it certified to ``host`` (node_certificate writes it when it signs)."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ledger
    path = os.path.join(world[ca].path, ledger.LEDGER)
    data = open(path, "rb").read() if os.path.exists(path) else b""
    entry = {"serial": "1", "host": host, "names": names, "not_after": "2099-01-01T00:00:00Z"}
    with open(path, "wb") as handle:
        handle.write(ledger.appended(data, entry))


def request(world, **kwargs):
    certify(world, "node1", ["svc.pki.test", "127.0.0.1"])
    kwargs.setdefault("switch_after", datetime.timedelta(0))
    kwargs.setdefault("drop_after", datetime.timedelta(0))
    return rotation.RotationRequest(path=str(world["dir"] / "r.rotation.json"), old_ca_path=world["old"].path,
                                    new_ca_path=world["new"].path, new_ca_passphrase=PASS, probe_timeout=2.0,
                                    **kwargs)


def test_a_rotation_waits_for_a_service_that_did_not_reload_and_names_it(world):
    old, new = world["old"], world["new"]
    both = root_pem(old) + root_pem(new)
    service = world["serve"]("on-old", client_roots=root_pem(old))
    entries = [{"host": "node1", "endpoints": [str(service.endpoint)], "server_name": "svc.pki.test"}]
    req = request(world, endpoints=entries)
    assert rotation.step(req, check_mode=False, now=NOW)["stage"] == "trust_both"
    # its bundle file has the new root (file evidence passes), but the service runs on the old one
    req.evidence = [{"host": "node1", "bundle": both, "certificate": ""}]
    held = rotation.step(req, check_mode=False, now=NOW)
    assert held["stage"] == "trust_both" and not held["changed"]
    assert "endpoints do not yet accept a client certificate of the new CA" in held["blocked_by"]
    assert "node1 %s" % service.endpoint in held["blocked_by"]
    assert held["endpoints"][0]["gate"] == "switched" and not held["endpoints"][0]["passed"]
    asked = request(world, endpoints=entries, evidence=req.evidence, stage="switched")
    with pytest.raises(PKIError, match="reload their services"):
        rotation.step(asked, check_mode=False, now=NOW)
    service.context = server_context(str(world["dir"] / "on-old"), both)  # reloaded its bundle
    moved = rotation.step(req, check_mode=False, now=NOW)
    assert moved["stage"] == "switched" and moved["advanced"]
    # the new certificate is on disk (file evidence passes) but the service still serves the old one
    new_cert = (world["dir"] / "on-new" / "node.crt").read_text()
    req.evidence = [{"host": "node1", "bundle": both, "certificate": new_cert}]
    held = rotation.step(req, check_mode=False, now=NOW)
    assert held["stage"] == "switched" and "endpoints do not yet serve the new CA" in held["blocked_by"]
    assert held["endpoints"][0]["served"]["issuer"] == "CN=Old CA"
    service.context = server_context(str(world["dir"] / "on-new"), both)  # reloaded its certificate
    done = rotation.step(req, check_mode=False, now=NOW)
    assert done["stage"] == "done" and "blocked_by" not in done
    # once done there is nothing left to probe
    assert rotation.step(req, check_mode=False, now=NOW)["endpoints"] == []


def test_the_live_gate_needs_the_new_ca_s_passphrase(world):
    service = world["serve"]("on-old")
    req = request(world, endpoints=[{"host": "node1", "endpoints": [str(service.endpoint)]}])
    rotation.step(req, check_mode=False, now=NOW)
    req.new_ca_passphrase = None
    with pytest.raises(PKIError) as err:
        rotation.step(req, check_mode=False, now=NOW)
    assert err.value.field == "new_ca_passphrase"


def test_a_host_that_gave_no_evidence_holds_every_stage(world):
    old, new = world["old"], world["new"]
    both = root_pem(old) + root_pem(new)
    req = request(world, evidence=[{"host": "node1", "bundle": both, "certificate": ""}],
                  hosts_without_evidence=["node2"])
    rotation.step(req, check_mode=False, now=NOW)
    held = rotation.step(req, check_mode=False, now=NOW)
    assert held["stage"] == "trust_both" and held["hosts_missing_new_root"] == ["node2"]
    assert "node2" in held["blocked_by"]
    req.hosts_without_evidence = []
    assert rotation.step(req, check_mode=False, now=NOW)["stage"] == "switched"


def test_nothing_is_probed_while_the_time_gate_holds(world):
    both = root_pem(world["old"]) + root_pem(world["new"])
    service = world["serve"]("on-old", client_roots=both)
    entries = [{"host": "node1", "endpoints": [str(service.endpoint)]}]
    req = request(world, endpoints=entries, switch_after=datetime.timedelta(hours=1),
                  evidence=[{"host": "node1", "bundle": both, "certificate": ""}])
    rotation.step(req, check_mode=False, now=NOW)
    seen = len(service.peers) + len(service.errors)
    held = rotation.step(req, check_mode=False, now=NOW + datetime.timedelta(minutes=5))
    assert held["endpoints"] == [] and "gate opens" in held["blocked_by"]
    assert len(service.peers) + len(service.errors) == seen
    # decided for a later time, the probe identity is still valid now, when the handshakes happen
    late = rotation.step(req, check_mode=False, now=NOW + datetime.timedelta(hours=2))
    assert late["endpoints"][0]["gate"] == "switched" and late["endpoints"][0]["passed"]
    assert late["stage"] == "switched"


def test_an_endpoint_the_ca_never_certified_to_that_node_is_not_probed(world):
    service = world["serve"]("on-old")
    req = request(world, endpoints=[{"host": "node2", "endpoints": [str(service.endpoint)]}])
    with pytest.raises(PKIError) as err:
        rotation.step(req, check_mode=False, now=NOW)
    assert err.value.field == "endpoints" and "node2" in err.value.problem
    assert not os.path.exists(req.path) and service.peers == [] and service.errors == []
    # a name the new CA certified to the node counts as well
    certify(world, "node2", ["127.0.0.1"], ca="new")
    req = request(world, endpoints=[{"host": "node2", "endpoints": [str(service.endpoint)]}])
    assert rotation.step(req, check_mode=False, now=NOW)["stage"] == "trust_both"


@pytest.mark.parametrize("timeout", [0, -1, 61])
def test_a_probe_timeout_out_of_bounds_is_refused(timeout):
    params = {"path": "/x", "old_ca_path": "/a", "new_ca_path": "/b", "switch_after": "1h", "drop_after": "1h",
              "probe_timeout": timeout}
    with pytest.raises(PKIError) as err:
        rotation.RotationRequest.from_params(params)
    assert err.value.field == "probe_timeout"


def test_a_state_file_without_the_time_of_its_stage_is_refused(world):
    req = request(world)
    rotation.step(req, check_mode=False, now=NOW)
    with open(req.path, "w") as handle:
        handle.write('{"stage": "switched", "times": {"trust_both": "2026-01-01T00:00:00Z"}}')
    with pytest.raises(PKIError, match="lacks the time"):
        rotation.step(req, check_mode=False, now=NOW)
