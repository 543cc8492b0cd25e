# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine under attack: a compromised node, a hostile local user, tampered CA and node files.

Every case plays one attack and asserts two things: the attack is refused with an error that
names the option or file at fault, and every file involved (the CA, the node's directory, the
file the attacker aimed at) is byte-for-byte and mode-for-mode what it was before. Cases that
need another uid (a file owned by someone else) need root, as CI has; they skip elsewhere.
Playbook-level attacks (a node lying about its names, check mode) are in
tests/system/test_adversarial_playbooks.py.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import stat
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import (
    ca_files, ca_store, files as fs, keyring as kr, keyring_files as kf, node, ownership, record, revocation,
    signing)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import (
    NameConstraintsSpec, build_csr)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import (
    build_identity, identity_of_certificate, parse_name)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, generate_private_key
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_duration, utcnow
from ansible_collections.securebydefault.pki.tests.unit.pki_helpers import request_for, tree


DAY = datetime.timedelta(days=1)
PASS = "correct horse"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make files owned by another user")


def refused(call, match, *paths, field=None):
    """``call`` raises a PKIError matching ``match`` (and naming ``field``) and changes nothing in ``paths``."""
    before = tree(*paths)
    with pytest.raises(PKIError, match=match) as info:
        call()
    assert tree(*paths) == before
    if field is not None:
        assert info.value.field == field, str(info.value)
    return info.value


def converge(ca, request, host=""):
    """prepare -> sign (through the ledger) -> install, as node_certificate does."""
    prepared = node.prepare(request)
    if not prepared.csr:
        return prepared
    pem, _serial = signing.sign_csr(ca.path, PASS, prepared.csr, prepared.identity, ["server", "client"], 90 * DAY,
                                    False, host)
    request.names = prepared.identity
    return node.install(request, pem)


def csr_for(names):
    key = generate_private_key(KeySpec())
    return build_csr(key, build_identity(names)).public_bytes(serialization.Encoding.PEM).decode()


def sign_for(ca, host, names, shared=()):
    return signing.sign_csr(ca.path, PASS, csr_for(names), names, ["server"], 30 * DAY, False, host,
                            shared_names=shared)


# ---------------------------------------------------------------- names: one grammar, nothing hidden

@pytest.mark.parametrize("name", [
    "a\n.pki.test",                        # a newline inside a label was signed
    "node1.pki.test\n",                    # a trailing newline was stripped silently
    " node1.pki.test",
    "node\t1.pki.test",
    "node 1.pki.test",
    "node1.pki.test\x00.evil",
    "https://a.pki.test/x\ny",             # a URI with a newline
    "https://a.pki.test/x y",
    "https://a.pki.test/\x7f",
    "https://evil@a.pki.test/",            # a user part in a URI
    "https://exa_mple!/",                  # a URI whose host is no DNS name
    "spiffe://pki.test/a\n/b",             # a SPIFFE segment ending in a newline
    "::ffff:10.0.0.5",                     # another spelling of 10.0.0.5 slipped past ownership
    "fe80::1%eth0",                        # an address with a zone: another spelling of fe80::1
    "SPIFFE://pki.test/db",                # another spelling of spiffe://pki.test/db
    "https://A.pki.test/",
])
def test_malformed_names_are_refused(name):
    with pytest.raises(PKIError) as info:
        parse_name(name, "dns_names[0]")
    assert info.value.field == "dns_names[0]"


def test_dns_scoped_ca_refuses_uris_of_other_domains(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    for uri in ("https://evil.example/x", "spiffe://evil.example/workload"):
        refused(lambda uri=uri: sign_for(ca, "h1", ["h1.pki.test", uri]), "outside the permitted DNS subtrees", ca.path,
                field="names")
    pem = sign_for(ca, "h1", ["h1.pki.test", "spiffe://pki.test/h1"])[0]  # inside its scope: signed
    assert identity_of_certificate(x509.load_pem_x509_certificate(pem.encode())).uris == ("spiffe://pki.test/h1",)


def test_csr_with_an_email_san_gets_no_email_san(make_ca):
    ca = make_ca(permitted_dns=["pki.test"])
    key = generate_private_key(KeySpec())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "h1.pki.test")]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("h1.pki.test"),
                                                       x509.RFC822Name("ceo@evil.example")]), critical=False)
           .sign(key, __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()))
    pem = signing.sign_csr(ca.path, PASS, csr.public_bytes(serialization.Encoding.PEM).decode(), ["h1.pki.test"],
                           ["server"], 30 * DAY, False, "h1")[0]
    san = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == []


# ---------------------------------------------------------------- identity: names are owned

def test_another_hosts_name_is_refused_naming_both(make_ca):
    ca = make_ca(permitted_dns=["pki.test"], permitted_ip_ranges=["10.0.0.0/8"])
    sign_for(ca, "node1", ["node1.pki.test", "10.0.0.1"])
    err = refused(lambda: sign_for(ca, "node2", ["node2.pki.test", "node1.pki.test"]), "held by node1", ca.path,
                  field="names")
    assert "node2" in str(err)


def test_another_hosts_address_is_refused(make_ca):
    ca = make_ca(permitted_dns=["pki.test"], permitted_ip_ranges=["10.0.0.0/8"])
    sign_for(ca, "node1", ["node1.pki.test", "10.0.0.1"])
    refused(lambda: sign_for(ca, "node2", ["node2.pki.test", "10.0.0.1"]), r"10\.0\.0\.1 \(held by node1\)", ca.path)


def test_check_mode_of_sign_csr_refuses_what_the_real_run_would(make_ca):
    """A dry run makes every check of a signature (names held, constraints, policy) and records nothing."""
    ca = make_ca(permitted_dns=["pki.test"])
    sign_for(ca, "node1", ["node1.pki.test"])
    refused(lambda: signing.sign_csr(ca.path, PASS, csr_for(["node1.pki.test"]), ["node1.pki.test"], ["server"],
                                     30 * DAY, False, "node2", dry_run=True), "held by node1", ca.path)
    refused(lambda: signing.sign_csr(ca.path, PASS, csr_for(["node2.other.test"]), ["node2.other.test"], ["server"],
                                     30 * DAY, False, "node2", dry_run=True), "outside", ca.path)
    before = tree(ca.path)
    assert signing.sign_csr(ca.path, PASS, csr_for(["node2.pki.test"]), ["node2.pki.test"], ["server"], 30 * DAY,
                            False, "node2", dry_run=True) == (None, None)
    assert tree(ca.path) == before


def test_names_are_compared_normalized(make_ca):
    ca = make_ca(permitted_dns=["pki.test"])
    sign_for(ca, "node1", ["node1.pki.test"])
    refused(lambda: sign_for(ca, "node2", ["NODE1.pki.test."]), "held by node1", ca.path)


def test_same_host_renews_its_own_names(make_ca):
    ca = make_ca(permitted_dns=["pki.test"])
    sign_for(ca, "node1", ["node1.pki.test"])
    sign_for(ca, "node1", ["node1.pki.test"])
    assert [e["host"] for e in ca_store.ledger.read(ca.path)[0]] == ["node1", "node1"]


def test_a_revoked_hosts_names_are_released(make_ca):
    ca = make_ca(permitted_dns=["pki.test"])
    sign_for(ca, "node1", ["node1.pki.test"])
    revocation.revoke(ca_store.DirectoryStore(ca.path), ca, ["node1"], [], "cessation_of_operation", utcnow(),
                      3 * DAY, 7 * DAY)
    sign_for(ca, "node2", ["node1.pki.test"])  # the name was released by decommissioning


def test_an_expired_certificate_holds_no_name(make_ca):
    ca = make_ca(permitted_dns=["pki.test"])
    with open(os.path.join(ca.path, "ledger.jsonl"), "a") as handle:
        handle.write(json.dumps({"serial": "1f", "host": "old", "names": ["node1.pki.test"],
                                 "not_after": "2020-01-01T00:00:00Z"}) + "\n")
    sign_for(ca, "node2", ["node1.pki.test"])


def test_shared_names_are_shared_by_configuration(make_ca):
    ca = make_ca(permitted_dns=["pki.test"])
    sign_for(ca, "node1", ["node1.pki.test", "vip.pki.test"], shared=["vip.pki.test"])
    sign_for(ca, "node2", ["node2.pki.test", "vip.pki.test"], shared=["vip.pki.test"])
    # a name shared by one host is not shared by another that did not say so
    refused(lambda: sign_for(ca, "node3", ["node1.pki.test"], shared=["vip.pki.test"]), "held by node1", ca.path)


def test_two_racing_hosts_cannot_both_take_a_name(make_ca):
    ca = make_ca(permitted_dns=["pki.test"])
    outcomes = []

    def claim(host):
        try:
            sign_for(ca, host, ["contested.pki.test"])
            outcomes.append("signed")
        except PKIError:
            outcomes.append("refused")

    threads = [threading.Thread(target=claim, args=("h%d" % i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "refused", "refused", "signed"]
    assert len([e for e in ca_store.ledger.read(ca.path)[0] if "contested.pki.test" in e["names"]]) == 1


def test_revoking_a_host_revokes_every_certificate_naming_it(make_ca):
    ca = make_ca(permitted_dns=["pki.test"])
    sign_for(ca, "node1", ["node1.pki.test"])
    # a certificate signed before names were owned: another host got node1's name
    with open(os.path.join(ca.path, "ledger.jsonl"), "a") as handle:
        handle.write(json.dumps({"serial": "abc123", "host": "thief", "names": ["node1.pki.test", "thief.pki.test"],
                                 "not_after": "2099-01-01T00:00:00Z"}) + "\n")
    decided, _crl = revocation.revoke(ca_store.DirectoryStore(ca.path), ca, ["node1"], [], "key_compromise", utcnow(),
                                      3 * DAY, 7 * DAY)
    assert "abc123" in [e["serial"] for e in decided.newly_revoked]


def test_conflicts_ignore_entries_that_cannot_be_read(make_ca):
    assert ownership.conflicts(b"not json\n[1,2]\n", None, "h2", ["a.pki.test"], [], utcnow()) == []


# ---------------------------------------------------------------- files: never follow, never escape

def issued(make_ca, tmp_path, **kwargs):
    ca = make_ca(permitted_dns=["pki.test"])
    base = tmp_path / "node"
    converge(ca, request_for(ca, base, ["n1.pki.test"], **kwargs))
    return ca, base


def test_planted_pending_key_link_is_never_followed(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    base = tmp_path / "node"
    base.mkdir(mode=0o755)
    target = tmp_path / "victim"
    target.write_text("root:x:0:0\n")
    os.chmod(target, 0o640)
    os.symlink(target, base / "node.key.pending")
    req = request_for(ca, base, ["n1.pki.test"], key=fs.FileSpec(str(base / "node.key"), 0o600, 0, 0))
    refused(lambda: node.prepare(req), "symbolic link|not a regular file", base, target)


def test_planted_link_at_the_key_is_refused(make_ca, tmp_path):
    ca, base = issued(make_ca, tmp_path)
    target = tmp_path / "victim"
    target.write_text("secret\n")
    os.chmod(target, 0o600)
    os.unlink(base / "node.key")
    os.symlink(target, base / "node.key")
    refused(lambda: node.prepare(request_for(ca, base, ["n1.pki.test"])), "not a regular file", base, target)


def test_planted_link_at_the_record_is_not_believed(make_ca, tmp_path):
    ca, base = issued(make_ca, tmp_path)
    fake = tmp_path / "fake.json"
    shutil.copy(base / "node.issued.json", fake)
    os.unlink(base / "node.issued.json")
    os.symlink(fake, base / "node.issued.json")
    assert record.load(str(base / "node.crt")) is None
    refused(lambda: node.prepare(request_for(ca, base, ["n1.pki.test"])), "not a regular file", base, fake,
            field="cert_path (.issued.json)")


def test_ledger_link_never_makes_signing_write_outside_the_ca(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched\n")
    os.symlink(outside, os.path.join(ca.path, "ledger.jsonl"))
    refused(lambda: sign_for(ca, "h1", ["h1.pki.test"]), "symbolic link", ca.path, outside)


def test_lock_link_is_refused(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    outside = tmp_path / "outside.lock"
    outside.write_text("x")
    os.symlink(outside, os.path.join(ca.path, ".lock"))
    refused(lambda: sign_for(ca, "h1", ["h1.pki.test"]), "symbolic link", ca.path, outside)


@pytest.mark.parametrize("journal", [
    {"action": "retire", "id": "r1", "write": [], "rename": [], "remove": ["../outside"]},
    {"action": "promote", "id": "r2", "write": [], "rename": [["r1.key.primary", "../outside"]], "remove": []},
    {"action": "add", "id": "r2", "write": ["/etc/passwd"], "rename": [], "remove": []},
    {"action": "retire", "id": "r1", "write": [], "rename": "nonsense", "remove": []},
])
def test_edited_keyring_journal_cannot_reach_outside(tmp_path, journal):
    ring = tmp_path / "ring"
    ring.mkdir(mode=0o700)
    (ring / "r1.key.primary").write_bytes(b"k" * 32)
    outside = tmp_path / "outside"
    outside.write_text("keep me\n")
    (ring / kf.META).write_text(json.dumps({"transition": journal}))
    refused(lambda: kf.recover(str(ring)), "not an entry of this keyring", ring, outside, field="path")


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "x\ny", " node"])
def test_certificate_name_is_a_plain_file_name(name):
    with pytest.raises(PKIError) as info:
        fs.plain_name(name, "name")
    assert info.value.field == "name"


def test_node_directories_are_created_without_the_umask(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    old = os.umask(0)
    try:
        converge(ca, request_for(ca, tmp_path / "a" / "b" / "node", ["n1.pki.test"]))
    finally:
        os.umask(old)
    for directory in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "node"):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o755, directory
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b" / "node" / "node.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b" / "node" / ".issued.key").st_mode) == 0o600


def test_ca_directories_are_created_without_the_umask(tmp_path):
    old = os.umask(0)
    try:
        path = str(tmp_path / "pki" / "ca")
        ca_store.write_new_ca(path, ca_store.build_ca_files(ca_store.CASettings("umask CA"), PASS))
        ca = ca_store.load_ca(path, PASS)
        ca.path = path
        sign_for(ca, "h1", ["h1.pki.test"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "pki").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    for name in ("ca.key", "ledger.jsonl", ".lock"):
        assert stat.S_IMODE(os.stat(os.path.join(path, name)).st_mode) == 0o600, name


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
def test_directory_others_can_write_is_refused(make_ca, tmp_path, mode):
    ca = make_ca(permitted_dns=["pki.test"])
    base = tmp_path / "shared"
    base.mkdir()
    os.chmod(base, mode)
    refused(lambda: node.prepare(request_for(ca, base, ["n1.pki.test"])), "writable by", base, field="key_path")


@needs_root
def test_directory_owned_by_another_user_is_refused(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    base = tmp_path / "theirs"
    base.mkdir(mode=0o755)
    os.chown(base, 4242, 4242)
    refused(lambda: node.prepare(request_for(ca, base, ["n1.pki.test"])), "owned by uid 4242", base)


@needs_root
def test_directory_of_the_configured_owner_is_accepted_and_links_still_refused(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    base = tmp_path / "svc"
    base.mkdir(mode=0o755)
    os.chown(base, 4242, 4242)
    spec = {kind: fs.FileSpec(str(base / name), mode, 4242, 4242) for kind, name, mode in (
        ("key", "node.key", 0o600), ("cert", "node.crt", 0o644), ("chain", "node-fullchain.crt", 0o644),
        ("bundle", "ca-bundle.crt", 0o644))}
    converge(ca, request_for(ca, base, ["n1.pki.test"], **spec))
    assert os.stat(base / "node.key").st_uid == 4242
    # the service user plants a link where root would chmod: refused, the target untouched
    target = tmp_path / "shadow"
    target.write_text("x")
    os.chmod(target, 0o600)
    os.unlink(base / "node.crt")
    os.symlink(target, base / "node.crt")
    refused(lambda: node.prepare(request_for(ca, base, ["n1.pki.test"], **spec)), "not a regular file", base, target)


def test_ca_directory_open_to_others_is_refused(make_ca):
    ca = make_ca()
    os.chmod(ca.path, 0o755)
    refused(lambda: ca_store.load_ca(ca.path, PASS), "open to other users", ca.path, field="ca_path")
    refused(lambda: ca_files.verified_public(ca.path, PASS), "open to other users", ca.path)


def test_ca_key_readable_by_others_is_refused(make_ca):
    ca = make_ca()
    os.chmod(os.path.join(ca.path, "ca.key"), 0o644)
    refused(lambda: ca_store.load_ca(ca.path, PASS), r"ca.key is readable or writable by other users", ca.path)
    refused(lambda: sign_for(ca, "h1", ["h1.pki.test"]), "readable or writable by other users", ca.path)


@needs_root
def test_ca_owned_by_another_user_is_refused(make_ca):
    ca = make_ca()
    os.chown(ca.path, 4242, 4242)
    refused(lambda: ca_store.load_ca(ca.path, PASS), "owned by uid 4242", ca.path)


def test_ca_directory_link_is_refused(make_ca, tmp_path):
    ca = make_ca()
    link = tmp_path / "ca-link"
    os.symlink(ca.path, link)
    refused(lambda: ca_store.load_ca(str(link), PASS), "symbolic link", ca.path)


@pytest.mark.parametrize("mode,allowed", [(0o644, False), (0o640, False), (0o604, False), (0o660, False),
                                          (0o600, True), (0o400, True)])
def test_private_key_modes(make_ca, tmp_path, mode, allowed):
    ca = make_ca()

    def make():
        return request_for(ca, tmp_path / "n", ["n1.pki.test"], key=fs.FileSpec(str(tmp_path / "n" / "node.key"), mode))
    if allowed:
        make()
    else:
        refused(make, "private key", tmp_path, field="key_mode")


def test_group_readable_key_only_by_name(make_ca, tmp_path):
    ca = make_ca()
    spec = fs.FileSpec(str(tmp_path / "n" / "node.key"), 0o640)
    request_for(ca, tmp_path / "n", ["n1.pki.test"], key=spec, allow_group_readable_key=True)
    with pytest.raises(PKIError, match="every user"):
        request_for(ca, tmp_path / "n", ["n1.pki.test"], key=fs.FileSpec(spec.path, 0o644),
                    allow_group_readable_key=True)
    with pytest.raises(PKIError, match="change"):
        fs.check_key_mode(0o660, True)


def test_two_hosts_with_one_path_are_refused(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    base = tmp_path / "shared-nfs"
    converge(ca, request_for(ca, base, ["n1.pki.test"], host="node1"), host="node1")
    refused(lambda: node.prepare(request_for(ca, base, ["n2.pki.test"], host="node2")),
            "holds the certificate of inventory host node1", base, field="path")


# ---------------------------------------------------------------- records: a fast path that cannot be fooled

def still_valid(req, found):
    return record.still_valid(
        found, cert_path=req.cert.path, key_path=req.key.path, chain_path=req.chain.path,
        bundle_path=req.bundle.path, bundle_pem=req.bundle_pem, issuer_pem=req.issuer_pem, names=req.names,
        usages=req.usages, key=req.key_spec.describe(), renew_before=req.renew_before,
        modes={"key": req.key.mode, "cert": req.cert.mode}, uid=-1, gid=-1, now=utcnow(), host=req.host,
        key_encrypted=bool(req.key_passphrase))


def forge_record(base, cert_pem, key_pem):
    """What an attacker who can write the directory does: new files, and a record edited to match."""
    (base / "node.crt").write_bytes(cert_pem)
    (base / "node.key").write_bytes(key_pem)
    data = json.loads((base / "node.issued.json").read_text())
    data["cert_sha256"] = record.sha256_bytes(cert_pem)
    data["key_sha256"] = record.sha256_bytes(key_pem)
    data.pop("mac", None)
    (base / "node.issued.json").write_text(json.dumps(data))


def test_foreign_certificate_with_edited_record_is_not_believed(make_ca, tmp_path):
    ca, base = issued(make_ca, tmp_path)
    foreign = make_ca(common_name="Foreign CA", permitted_dns=["pki.test"])
    other = tmp_path / "other"
    converge(foreign, request_for(foreign, other, ["n1.pki.test"]))
    forge_record(base, (other / "node.crt").read_bytes(), (other / "node.key").read_bytes())
    req = request_for(ca, base, ["n1.pki.test"])
    assert record.load(req.cert.path) is None
    reasons = node.prepare(dict_check(req)).reasons
    assert any("issuer" in r for r in reasons), reasons


def dict_check(req):
    req.check_mode = True
    return req


def test_different_key_with_edited_record_is_not_believed(make_ca, tmp_path):
    ca, base = issued(make_ca, tmp_path)
    stray = generate_private_key(KeySpec()).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption())
    forge_record(base, (base / "node.crt").read_bytes(), stray)
    req = request_for(ca, base, ["n1.pki.test"])
    assert record.load(req.cert.path) is None
    reasons = node.prepare(dict_check(req)).reasons
    assert any("does not match" in r for r in reasons), reasons


def test_record_copied_from_another_directory_is_not_believed(make_ca, tmp_path):
    ca, base = issued(make_ca, tmp_path)
    converge(ca, request_for(ca, tmp_path / "node2", ["n2.pki.test"]))
    shutil.copy(tmp_path / "node2" / "node.issued.json", base / "node.issued.json")
    assert record.load(str(base / "node.crt")) is None


@needs_root
def test_replaced_record_key_is_not_ours(make_ca, tmp_path):
    ca, base = issued(make_ca, tmp_path)
    key_path = base / record.MAC_KEY
    os.chown(key_path, 4242, 4242)  # what a service user who replaced the key file would leave
    assert record.load(str(base / "node.crt")) is None


def test_record_key_link_is_not_ours(make_ca, tmp_path):
    ca, base = issued(make_ca, tmp_path)
    elsewhere = tmp_path / "known-key"
    elsewhere.write_bytes(b"k" * 32)
    os.chmod(elsewhere, 0o600)
    os.unlink(base / record.MAC_KEY)
    os.symlink(elsewhere, base / record.MAC_KEY)
    assert record.mac_key(str(base / "node.crt")) is None


def test_genuine_record_is_still_believed(make_ca, tmp_path):
    ca, base = issued(make_ca, tmp_path)
    req = request_for(ca, base, ["n1.pki.test"])
    assert still_valid(req, record.load(req.cert.path))


def test_record_of_another_host_is_not_believed(make_ca, tmp_path):
    ca, base = issued(make_ca, tmp_path, host="node1")
    req = request_for(ca, base, ["n1.pki.test"], host="node2")
    assert not still_valid(req, record.load(req.cert.path))


def test_adding_a_key_passphrase_is_noticed(make_ca, tmp_path):
    ca, base = issued(make_ca, tmp_path)
    req = request_for(ca, base, ["n1.pki.test"], key_passphrase="node key passphrase")
    assert not still_valid(req, record.load(req.cert.path))
    refused(lambda: node.prepare(req), "not encrypted but a passphrase was given", base, field="key_path")


# ---------------------------------------------------------------- the CA's files agree, or nothing is read

def replace_root(ca, other):
    shutil.copy(os.path.join(other.path, "root.crt"), os.path.join(ca.path, "root.crt"))


def test_swapped_root_never_reaches_a_bundle(make_ca):
    ca = make_ca()
    ca_files.verified_public(ca.path, PASS)  # stamped while genuine
    replace_root(ca, make_ca(common_name="Attacker CA"))
    refused(lambda: ca_files.verified_public(ca.path, PASS), "root.crt is not|do not belong together", ca.path,
            field="ca_path")


def test_swapped_root_and_certificate_are_caught_by_the_key(make_ca):
    ca = make_ca()
    ca_files.verified_public(ca.path, PASS)
    attacker = make_ca(common_name="Test CA")  # same name, other key
    for name in ("root.crt", "ca.crt"):
        shutil.copy(os.path.join(attacker.path, name), os.path.join(ca.path, name))
    refused(lambda: ca_files.verified_public(ca.path, PASS), "ca.key does not match", ca.path)


def test_intermediate_with_foreign_root_is_refused(make_ca):
    ca = make_ca(intermediate=True)
    replace_root(ca, make_ca(common_name="Test CA Root"))
    refused(lambda: ca_store.load_ca(ca.path, PASS), "ca.crt is not signed by root.crt", ca.path)
    refused(lambda: sign_for(ca, "h1", ["h1.pki.test"]), "ca.crt is not signed by root.crt", ca.path)


def test_stamp_of_another_ca_is_not_accepted(make_ca):
    ca = make_ca()
    other = make_ca(common_name="Attacker CA")
    ca_files.verified_public(other.path, PASS)
    replace_root(ca, other)
    shutil.copy(os.path.join(other.path, ca_files.STAMP), os.path.join(ca.path, ca_files.STAMP))
    refused(lambda: ca_files.verified_public(ca.path, PASS), "do not belong together", ca.path)


def test_stamp_forged_without_the_passphrase_is_not_accepted(make_ca):
    ca = make_ca()
    replace_root(ca, make_ca(common_name="Attacker CA"))
    files = ca_files.read_directory(ca.path, ca_files.STAMPED)
    with open(os.path.join(ca.path, ca_files.STAMP), "w") as handle:
        json.dump({"mac": ca_files._stamp_mac(files, "a guess")}, handle)
    refused(lambda: ca_files.verified_public(ca.path, PASS), "do not belong together", ca.path)


def test_trust_also_with_a_swapped_root_is_refused(make_ca):
    old = make_ca(intermediate=True)
    replace_root(old, make_ca(common_name="Test CA Root"))
    refused(lambda: ca_files.read_public(old.path, "trust_also"), "not signed by root.crt", old.path,
            field="trust_also")


def test_ca_json_flipped_intermediate_flag_is_refused(make_ca):
    ca = make_ca()
    path = os.path.join(ca.path, "ca.json")
    meta = json.load(open(path))
    meta["intermediate"] = True
    open(path, "w").write(json.dumps(meta))
    refused(lambda: ca_store.load_ca(ca.path, PASS), "intermediate", ca.path)


@pytest.mark.parametrize("content", [b"[1, 2]", b'{"policy": "x"}', b'{"policy": {"max_leaf_validity": "abc"}}',
                                     b'{"policy": {"max_leaf_validity": 1e400}}',
                                     b'{"policy": {"allow_wildcard": "yes"}}', b'{"not_after": 5}'])
def test_ca_json_of_the_wrong_shape_is_a_clear_error(make_ca, content):
    ca = make_ca()
    with open(os.path.join(ca.path, "ca.json"), "wb") as handle:
        handle.write(content)
    refused(lambda: ca_store.load_ca(ca.path, PASS), "ca.json of .* is not", ca.path, field="ca_path")
    refused(lambda: ca_files.read_policy(ca.path), "ca.json", ca.path)


def test_truncated_ca_key_is_not_called_a_wrong_passphrase(make_ca):
    ca = make_ca()
    path = os.path.join(ca.path, "ca.key")
    data = open(path, "rb").read()
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
    err = refused(lambda: ca_store.load_ca(ca.path, PASS), "truncated|no complete PEM", ca.path)
    assert "passphrase" not in err.problem
    with open(path, "wb") as handle:  # cut inside the body, footer kept
        lines = data.splitlines(keepends=True)
        handle.write(b"".join(lines[:3] + lines[-1:]))
    err = refused(lambda: ca_store.load_ca(ca.path, PASS), "truncated|damaged", ca.path)
    assert "passphrase" not in err.problem


# ---------------------------------------------------------------- clear errors and defaults

@pytest.mark.parametrize("value", ["99999999999999999y", "3650000d", float("inf"), float("nan"), 10 ** 30])
def test_absurd_durations_are_clear_errors(value):
    with pytest.raises(PKIError) as info:
        parse_duration(value, "valid_for")
    assert info.value.field == "valid_for"


def test_ca_expiring_within_renew_before_says_why(make_ca):
    now = utcnow()
    policy = {"not_after": (now + 10 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")}
    with pytest.raises(PKIError, match="within renew_before") as info:
        ca_files.check_policy(policy, 30 * DAY, False, now, renew_before=30 * DAY)
    assert info.value.field == "renew_before"
    ca_files.check_policy(policy, 5 * DAY, False, now, renew_before=2 * DAY)


def test_changed_organization_is_a_difference(make_ca):
    ca = make_ca(organization="Acme")
    settings = ca_store.CASettings("Test CA", organization="Evil Corp")
    assert any("organization" in d for d in ca_store.settings_differences(ca, settings))
    assert ca_store.settings_differences(ca, ca_store.CASettings("Test CA", organization="Acme")) == []


def test_constraints_spec_refuses_whitespace():
    with pytest.raises(PKIError):
        NameConstraintsSpec.parse(permitted_dns=["pki.test\n"])


def test_keyring_entries_through_links_are_refused(tmp_path):
    ring = tmp_path / "ring"
    ring.mkdir(mode=0o700)
    secret = tmp_path / "elsewhere"
    secret.write_bytes(b"s" * 32)
    os.symlink(secret, ring / "r1.key.primary")
    refused(lambda: kf.read_entries(str(ring)), "not a regular file", ring, secret)
    assert kr.ENTRY.match("r1.key.primary")


# ---------------------------------------------------------------- found by an attacker's review of the first version

@pytest.mark.parametrize("name", ["root.crt", "ca.crt"])
def test_a_certificate_appended_to_a_ca_file_never_reaches_a_bundle(make_ca, name):
    ca = make_ca(intermediate=name == "ca.crt")
    evil = make_ca(common_name="Evil CA")
    with open(os.path.join(ca.path, name), "ab") as handle:
        handle.write(open(os.path.join(evil.path, "root.crt"), "rb").read())
    for call in (lambda: ca_files.verified_public(ca.path, PASS), lambda: ca_files.read_public(ca.path),
                 lambda: ca_store.load_ca(ca.path, PASS)):
        refused(call, "exactly one PEM certificate", ca.path)


def test_trailing_text_in_a_ca_file_is_refused(make_ca):
    ca = make_ca()
    with open(os.path.join(ca.path, "root.crt"), "ab") as handle:
        handle.write(b"-----BEGIN CERTIFICATE-----\nnot really\n")
    refused(lambda: ca_files.verified_public(ca.path, PASS), "exactly one PEM certificate", ca.path)


@needs_root
def test_a_link_above_the_directory_made_by_another_user_is_refused(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chown(home, 4242, 4242)
    victim = tmp_path / "etc-otherapp"
    (victim / "tls").mkdir(parents=True, mode=0o755)
    (victim / "tls" / "node.key").write_text("root's key\n")
    os.chmod(victim / "tls" / "node.key", 0o600)
    os.symlink(victim, home / "app")
    os.lchown(home / "app", 4242, 4242)
    base = home / "app" / "tls"
    spec = {kind: fs.FileSpec(str(base / name), mode, 4242, 4242) for kind, name, mode in (
        ("key", "node.key", 0o600), ("cert", "node.crt", 0o644), ("chain", "node-fullchain.crt", 0o644),
        ("bundle", "ca-bundle.crt", 0o644))}
    refused(lambda: node.prepare(request_for(ca, base, ["n1.pki.test"], **spec)), "link owned by uid 4242|owned by uid",
            victim, home)


@needs_root
def test_a_directory_above_owned_by_another_user_is_refused(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    (tmp_path / "svc" / "tls").mkdir(parents=True)
    os.chown(tmp_path / "svc", 4242, 4242)
    refused(lambda: node.prepare(request_for(ca, tmp_path / "svc" / "tls", ["n1.pki.test"])), "owned by uid 4242",
            tmp_path / "svc")


def test_a_group_writable_directory_above_is_refused(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    (tmp_path / "shared" / "tls").mkdir(parents=True)
    os.chmod(tmp_path / "shared", 0o775)
    request = request_for(ca, tmp_path / "shared" / "tls", ["n1.pki.test"])
    refused(lambda: node.prepare(request), "writable by its group", tmp_path / "shared")


def test_a_sticky_world_writable_directory_above_may_be_passed(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    (tmp_path / "scratch").mkdir()
    os.chmod(tmp_path / "scratch", 0o1777)
    converge(ca, request_for(ca, tmp_path / "scratch" / "mine" / "tls", ["n1.pki.test"]))
    assert (tmp_path / "scratch" / "mine" / "tls" / "node.crt").exists()


def test_a_hard_link_is_never_chmodded(make_ca, tmp_path):
    ca, base = issued(make_ca, tmp_path)
    victim = tmp_path / "victim.crt"
    shutil.copy(base / "node.crt", victim)
    os.chmod(victim, 0o600)
    os.unlink(base / "node.crt")
    os.link(victim, base / "node.crt")
    refused(lambda: node.prepare(request_for(ca, base, ["n1.pki.test"])), "hard links", base, victim)


def test_revocation_matches_names_in_any_spelling(make_ca):
    ca = make_ca(permitted_dns=["pki.test"])
    sign_for(ca, "node1", ["node1.pki.test"])
    with open(os.path.join(ca.path, "ledger.jsonl"), "a") as handle:  # an entry written before names were normalized
        handle.write(json.dumps({"serial": "abc124", "host": "thief", "names": ["NODE1.pki.test."],
                                 "not_after": "2099-01-01T00:00:00Z"}) + "\n")
    decided = revocation.revoke(ca_store.DirectoryStore(ca.path), ca, ["node1"], [], "key_compromise", utcnow(),
                                3 * DAY, 7 * DAY)[0]
    assert "abc124" in [e["serial"] for e in decided.newly_revoked]
    legacy = b'{"serial":"1","host":"x","names":["Node9.pki.test"],"not_after":"2099-01-01T00:00:00Z"}\n'
    with pytest.raises(PKIError, match="held by x"):
        ownership.check_free(legacy, None, "y", ["node9.pki.test"], [], utcnow(), "the CA")
