# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's stages: prepare -> sign -> install, reruns, resumption and every failure leaving files intact."""
from __future__ import annotations

import datetime
import os
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
from cryptography import x509

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import files as fs
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import node
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import certificate_pem
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.formats import truststore
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, public_key_der
from ansible_collections.securebydefault.pki.tests.unit.pki_helpers import openssl_verify, request_for

DAY = datetime.timedelta(days=1)


def converge(ca, request, valid_for=90 * DAY, usages=("server", "client")):
    """What the node_certificate action does: prepare, sign on the CA, install."""
    prepared = node.prepare(request)
    if not prepared.csr:
        return prepared, None
    csr = x509.load_pem_x509_csr(prepared.csr.encode())
    cert = ca.sign(csr, build_identity(prepared.identity), usages, valid_for)
    request.names = prepared.identity
    return prepared, node.install(request, certificate_pem(cert))


def snapshot(directory):
    return {n: open(os.path.join(directory, n), "rb").read() for n in sorted(os.listdir(directory))}


def test_issue_then_idempotent(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    req = request_for(ca, tmp_path / "n1", ["n1.pki.test"])
    prepared, installed = converge(ca, req)
    assert prepared.reasons == ["no certificate yet"]
    assert installed.changed
    assert oct(os.stat(req.key.path).st_mode & 0o777) == "0o600"
    assert not os.path.exists(req.pending_key_path)
    ok, out = openssl_verify(open(req.cert.path).read(), open(req.bundle.path).read(), tmp_path)
    assert ok, out
    before = snapshot(tmp_path / "n1")
    again, nothing = converge(ca, req)
    assert again.reasons == [] and not again.changed and nothing is None
    assert snapshot(tmp_path / "n1") == before


def test_check_mode_writes_nothing(make_ca, tmp_path):
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"], check_mode=True)
    result = node.prepare(req)
    assert result.changed and result.reasons == ["no certificate yet"] and result.csr is None
    assert not os.path.exists(tmp_path / "n")


def test_renewal_reasons_drive_reissue_with_fresh_key(make_ca, tmp_path):
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"], renew_before=30 * DAY)
    converge(ca, req)
    old_key = open(req.key.path, "rb").read()
    req.names = ["n.pki.test", "10.0.0.9"]
    prepared, installed = converge(ca, req)
    assert prepared.reasons == ["name 10.0.0.9 missing from certificate"]
    assert open(req.key.path, "rb").read() != old_key, "a fresh key for every certificate"
    # expiry window: a 20-day certificate is due with renew_before 30d
    req.force = True
    prepared = converge(ca, req, valid_for=20 * DAY)[0]
    assert prepared.reasons == ["forced re-issue"]
    req.force = False
    prepared = converge(ca, req)[0]
    assert len(prepared.reasons) == 1 and prepared.reasons[0].startswith("expires in 19d")


def test_regenerate_key_never_keeps_key(make_ca, tmp_path):
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"], regenerate_key="never")
    converge(ca, req)
    key = open(req.key.path, "rb").read()
    req.force = True
    converge(ca, req)
    assert open(req.key.path, "rb").read() == key


def test_issuer_change_and_algorithm_change_are_reasons(make_ca, tmp_path):
    ca = make_ca()
    new_ca = make_ca(common_name="New CA")
    req = request_for(ca, tmp_path / "n", ["n.pki.test"])
    converge(ca, req)
    moved = request_for(new_ca, tmp_path / "n", ["n.pki.test"], check_mode=True)
    assert node.prepare(moved).reasons == ["issuer changed: certificate signed by CN=Test CA, current CA is CN=New CA"]
    rsa = request_for(ca, tmp_path / "n", ["n.pki.test"], key_spec=KeySpec("rsa", 2048), check_mode=True)
    assert node.prepare(rsa).reasons == ["key algorithm changed: ec/256 -> rsa/2048"]
    client = request_for(ca, tmp_path / "n", ["n.pki.test"], usages=["client"], check_mode=True)
    assert node.prepare(client).reasons == ["usages changed: client,server -> client"]


def test_interrupted_issuance_resumes_with_pending_key(make_ca, tmp_path):
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"])
    first = node.prepare(req)  # the run dies here: the CA never signed
    pending = open(req.pending_key_path, "rb").read()
    second = node.prepare(req)
    assert open(req.pending_key_path, "rb").read() == pending, "the pending key is reused, not replaced"
    assert public_key_der(x509.load_pem_x509_csr(first.csr.encode()).public_key()) == public_key_der(
        x509.load_pem_x509_csr(second.csr.encode()).public_key())
    cert = ca.sign(x509.load_pem_x509_csr(second.csr.encode()), build_identity(second.identity), ["server"], DAY * 9)
    node.install(request_for(ca, tmp_path / "n", ["n.pki.test"]), certificate_pem(cert))
    assert open(req.key.path, "rb").read() == pending


def test_corrupted_node_key_fails_and_survives(make_ca, tmp_path):
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"])
    converge(ca, req)
    with open(req.key.path, "r+b") as handle:
        handle.seek(40)
        handle.write(b"!!!!")
    before = snapshot(tmp_path / "n")
    with pytest.raises(PKIError, match="not a readable PEM private key") as err:
        node.prepare(request_for(ca, tmp_path / "n", ["n.pki.test", "extra.pki.test"]))
    assert err.value.field == "key_path"
    assert snapshot(tmp_path / "n") == before


def test_unwritable_destination_fails_before_writing(make_ca, tmp_path):
    ca = make_ca()
    (tmp_path / "blocker").write_text("a file, not a directory")
    req = request_for(ca, tmp_path / "blocker" / "sub", ["n.pki.test"])
    with pytest.raises(PKIError, match="is not a directory") as err:
        node.prepare(req)
    assert err.value.field == "key_path"
    assert sorted(os.listdir(tmp_path)) == ["blocker", "ca1"]
    assert (tmp_path / "blocker").read_text() == "a file, not a directory"


def test_names_outside_constraints_fail_on_node_before_writing(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    req = request_for(ca, tmp_path / "n", ["n.other.test"])
    with pytest.raises(PKIError, match="outside the permitted DNS subtrees"):
        node.prepare(req)
    assert not os.path.exists(tmp_path / "n")


def test_install_refuses_a_certificate_for_another_key(make_ca, tmp_path):
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"])
    converge(ca, req)
    before = snapshot(tmp_path / "n")
    other = request_for(ca, tmp_path / "other", ["n.pki.test"])
    converge(ca, other)
    with pytest.raises(PKIError, match="matches neither"):
        node.install(req, open(other.cert.path).read())
    assert snapshot(tmp_path / "n") == before


def test_mode_and_bundle_drift_are_repaired_without_reissue(make_ca, tmp_path):
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"])
    converge(ca, req)
    serial = x509.load_pem_x509_certificate(open(req.cert.path, "rb").read()).serial_number
    os.chmod(req.key.path, 0o644)
    open(req.bundle.path, "w").write("tampered\n")
    result = node.prepare(req)
    assert result.changed and result.reasons == [] and result.csr is None
    assert oct(os.stat(req.key.path).st_mode & 0o777) == "0o600"
    assert open(req.bundle.path).read() == certificate_pem(ca.root)
    assert x509.load_pem_x509_certificate(open(req.cert.path, "rb").read()).serial_number == serial


def test_backup_keeps_previous_pair(make_ca, tmp_path):
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"], backup=True)
    converge(ca, req)
    old_cert = open(req.cert.path).read()
    req.force = True
    installed = converge(ca, req)[1]
    assert len(installed.backups) == 2
    assert any(open(b).read() == old_cert for b in installed.backups)


@pytest.mark.controller  # Java truststores need cryptography >= 45 (the controller)
@pytest.mark.skipif(not shutil.which("keytool"), reason="keytool (OpenJDK) not installed")
def test_pkcs12_keystore_and_truststore_readable_by_java(make_ca, tmp_path):
    ca = make_ca(intermediate=True)
    base = tmp_path / "n"
    req = request_for(ca, base, ["n.pki.test"], keystore=fs.FileSpec(str(base / "node.p12"), 0o600),
                      truststore=fs.FileSpec(str(base / "truststore.p12"), 0o644),
                      truststore_der=truststore([ca.root], "changeit"), pkcs12_passphrase="changeit")
    converge(ca, req)
    keys_out = subprocess.run(["keytool", "-list", "-v", "-keystore", str(base / "node.p12"), "-storepass", "changeit"],
                              capture_output=True, text=True, check=False)
    assert "PrivateKeyEntry" in keys_out.stdout and "Certificate chain length: 2" in keys_out.stdout
    trust_out = subprocess.run(["keytool", "-list", "-keystore", str(base / "truststore.p12"), "-storepass",
                                "changeit"], capture_output=True, text=True, check=False)
    assert "trustedCertEntry" in trust_out.stdout
    assert subprocess.run(["keytool", "-list", "-keystore", str(base / "node.p12"), "-storepass", "wrong"],
                          capture_output=True, check=False).returncode != 0
    before = snapshot(base)
    again = node.prepare(req)
    assert not again.changed and snapshot(base) == before, "PKCS#12 files are compared by content, not bytes"


def _serve_once(context, sock, outcome):
    try:
        conn = sock.accept()[0]
        with context.wrap_socket(conn, server_side=True) as tls:
            outcome["peer"] = tls.getpeercert()
            tls.sendall(b"ok")
    except (ssl.SSLError, OSError) as exc:
        outcome["error"] = exc


def mtls(server_dir, client_dir, server_name, client_ca_file=None):
    """A real mutual-TLS handshake over loopback; returns (client error or None, server outcome)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(os.path.join(server_dir, "node-fullchain.crt"), os.path.join(server_dir, "node.key"))
    server_ctx.load_verify_locations(os.path.join(server_dir, "ca-bundle.crt"))
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_cert_chain(os.path.join(client_dir, "node-fullchain.crt"), os.path.join(client_dir, "node.key"))
    client_ctx.load_verify_locations(client_ca_file or os.path.join(client_dir, "ca-bundle.crt"))
    outcome = {}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        thread = threading.Thread(target=_serve_once, args=(server_ctx, sock, outcome))
        thread.start()
        error = None
        try:
            with socket.create_connection(sock.getsockname(), timeout=5) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                    assert tls.recv(2) == b"ok"
        except (ssl.SSLError, OSError, AssertionError) as exc:
            error = exc
        thread.join(5)
    return error, outcome


def test_real_mtls_between_two_nodes_and_negative_cases(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    other = make_ca(common_name="Other CA", permitted_dns=["pki.test"])
    for name in ("a", "b"):
        converge(ca, request_for(ca, tmp_path / name, ["%s.pki.test" % name]))
    converge(other, request_for(other, tmp_path / "rogue", ["b.pki.test"]))
    error, outcome = mtls(str(tmp_path / "a"), str(tmp_path / "b"), "a.pki.test")
    assert error is None and "error" not in outcome
    assert ("DNS", "b.pki.test") in outcome["peer"]["subjectAltName"], "server saw the client's identity"
    error = mtls(str(tmp_path / "a"), str(tmp_path / "b"), "c.pki.test")[0]
    assert isinstance(error, ssl.SSLCertVerificationError), "a name not in the certificate must fail"
    error, outcome = mtls(str(tmp_path / "a"), str(tmp_path / "rogue"), "a.pki.test",
                          client_ca_file=str(tmp_path / "a" / "ca-bundle.crt"))
    assert isinstance(outcome.get("error"), ssl.SSLError), "a client from another CA must be refused by the server"


def test_a_revoked_certificate_is_reissued_with_a_fresh_key(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    converge(ca, request_for(ca, tmp_path / "n1", ["n1.pki.test"]))
    first = x509.load_pem_x509_certificate(open(str(tmp_path / "n1" / "node.crt"), "rb").read())
    key_before = open(str(tmp_path / "n1" / "node.key"), "rb").read()
    other = "%x" % (first.serial_number + 1)
    assert node.prepare(request_for(ca, tmp_path / "n1", ["n1.pki.test"], revoked_serials=[other])).reasons == []
    revoked = ["%x" % first.serial_number]
    prepared, installed = converge(ca, request_for(ca, tmp_path / "n1", ["n1.pki.test"], revoked_serials=revoked))
    assert prepared.reasons == ["serial %x was revoked by the CA" % first.serial_number]
    assert installed.changed and open(str(tmp_path / "n1" / "node.key"), "rb").read() != key_before
    again = node.prepare(request_for(ca, tmp_path / "n1", ["n1.pki.test"], revoked_serials=revoked))
    assert again.reasons == [] and not again.changed
