# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node's side of node_certificate: its key, its files, its reasons.

Runs on the node (cryptography 38 and newer). The private key is generated
here and never leaves this host: only a CSR goes out, only a certificate
comes back.

Two stages, so a run with nothing due is one round trip:

``prepare``  validate every destination; converge what needs no signature
             (trust bundle, truststore, full chain, file modes); decide with
             reasons whether a certificate must be issued and, if so, put a
             fresh key beside the current one (``<key>.pending``) and return a CSR.
``install``  check the signed certificate against the pending (or current)
             key, the approved identity and the subject asked for, then replace
             key, certificate, chain and keystore, each atomically.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field as dc_field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:  # modules report it through _ops.runner.require_cryptography()
    pass

from . import files as fs
from . import record
from .authority import build_csr, check_identity, verify_signed_by
from .bundle import certificate_pem, fingerprint, load_certificate, load_certificates, pem_of
from .errors import PKIError
from .formats import keystore, keystore_matches, truststore_fingerprints
from .identity import Identity, Subject, build_identity, identity_of_certificate, parse_subject, requested_names
from .inspection import renewal_reasons, subject_reason
from .keys import (
    KeySpec,
    generate_private_key,
    load_private_key,
    private_key_pem,
    public_key_der,
    spec_of_key,
    validate_key_spec,
)
from .timeutil import isoformat, not_valid_after

REGENERATE_KEY = ("on_renewal", "never")


@dataclass
class NodeRequest:
    key: fs.FileSpec
    cert: fs.FileSpec
    names: Sequence[str]
    issuer_pem: str
    key_spec: KeySpec = KeySpec()
    key_passphrase: Optional[str] = None
    regenerate_key: str = "on_renewal"
    chain: Optional[fs.FileSpec] = None
    bundle: Optional[fs.FileSpec] = None
    bundle_pem: str = ""
    discover: Sequence[str] = ()
    allow_wildcard: bool = False
    renew_before: datetime.timedelta = datetime.timedelta(days=30)
    usages: Sequence[str] = ("server", "client")
    # the subject the controller chose (a Subject, or the subject option as given); Subject() is the default
    subject: Union[Subject, Mapping, None] = None
    force: bool = False
    revoked_serials: Sequence[str] = ()
    keystore: Optional[fs.FileSpec] = None
    truststore: Optional[fs.FileSpec] = None
    truststore_der: Optional[bytes] = None
    pkcs12_passphrase: Optional[str] = None
    keystore_alias: str = "node"
    backup: bool = False
    check_mode: bool = False
    host: str = ""
    allow_group_readable_key: bool = False
    issuers: List[x509.Certificate] = dc_field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.subject, Subject):
            self.subject = parse_subject(self.subject, "subject")
        self.key_spec = validate_key_spec(self.key_spec)
        fs.check_key_mode(self.key.mode, self.allow_group_readable_key)
        if self.regenerate_key not in REGENERATE_KEY:
            raise PKIError(
                "regenerate_key", "unknown value %r" % self.regenerate_key, "use one of %s" % ", ".join(REGENERATE_KEY)
            )
        self.issuers = load_certificates(self.issuer_pem, "issuer")
        if not self.issuers:
            raise PKIError("issuer", "no issuing CA certificate given", "pass the CA certificate PEM")

    @property
    def chosen_subject(self) -> Subject:
        return self.subject if isinstance(self.subject, Subject) else parse_subject(self.subject, "subject")

    @property
    def pending_key_path(self) -> str:
        return self.key.path + ".pending"

    def destinations(self) -> List[Tuple[str, fs.FileSpec]]:
        out = [("key_path", self.key), ("cert_path", self.cert)]
        for name in ("chain", "bundle", "keystore", "truststore"):
            spec = getattr(self, name)
            if spec is not None:
                out.append(("%s_path" % name if name in ("chain", "bundle") else "pkcs12_%s_path" % name, spec))
        return out


@dataclass
class NodeResult:
    changed: bool = False
    reasons: List[str] = dc_field(default_factory=list)
    identity: List[str] = dc_field(default_factory=list)
    csr: Optional[str] = None
    written: List[str] = dc_field(default_factory=list)
    backups: List[str] = dc_field(default_factory=list)
    certificate: Dict = dc_field(default_factory=dict)
    before: Dict = dc_field(default_factory=dict)
    after: Dict = dc_field(default_factory=dict)
    discovered: Dict = dc_field(default_factory=dict)
    pending_created: bool = False

    def as_dict(self) -> Dict:
        out = {
            "changed": self.changed,
            "reasons": self.reasons,
            "identity": self.identity,
            "written": self.written,
            "backups": self.backups,
            "certificate": self.certificate,
            "discovered": self.discovered,
            "pending_created": self.pending_created,
        }
        if self.csr:
            out["csr"] = self.csr
        return out


def check_owner_of_path(request: NodeRequest) -> None:
    """Two hosts configured with one directory would take turns replacing each other's key: refuse."""
    found = record.load(request.cert.path)
    if found and request.host and found.get("host") and found["host"] != request.host:
        raise PKIError(
            "path",
            "%s holds the certificate of inventory host %s; %s is configured with the same "
            "path" % (os.path.dirname(request.cert.path), found["host"], request.host),
            "give each host its own path (e.g. include {{ inventory_hostname }}), or remove %s if "
            "this host really took the directory over" % record.record_path(request.cert.path),
        )


def desired_identity(request: NodeRequest, result: NodeResult) -> Identity:
    names, result.discovered = requested_names(request.names, request.discover)
    identity = build_identity(names, "names", request.allow_wildcard)
    check_identity(identity, request.issuers, request.allow_wildcard, "names", request.chosen_subject, request.usages)
    return identity


def _load_key_file(path: str, passphrase: Optional[str], field: str):
    """(key, the bytes it was loaded from), (None, None) when absent."""
    data = fs.read_bytes(path, field)
    if data is None:
        return None, None
    return load_private_key(data, passphrase, field), data


def _load_cert_file(path: str):
    """(first certificate, the bytes it was loaded from), (None, None) when absent."""
    data = fs.read_bytes(path, "cert_path")
    if data is None:
        return None, None
    certs = load_certificates(data, "cert_path")
    return (certs[0] if certs else None), data


def _cert_info(cert: Optional[x509.Certificate]) -> Dict:
    if cert is None:
        return {}
    ident = identity_of_certificate(cert)
    return {
        "names": ident.names(),
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": "%x" % cert.serial_number,
        "not_after": isoformat(not_valid_after(cert)),
        "fingerprint": fingerprint(cert),
    }


def _write_record(
    request: NodeRequest,
    cert: x509.Certificate,
    identity: Identity,
    cert_data: bytes,
    key_data: bytes,
    chain_data: Optional[bytes],
) -> None:
    """Remember what was checked or installed, so the next run can skip X.509 parsing (see record.py)."""
    info = _cert_info(cert)
    data = record.build(
        cert_path=request.cert.path,
        cert_data=cert_data,
        key_data=key_data,
        chain_data=chain_data if request.chain else None,
        issuer_pem=request.issuer_pem,
        names=identity.names(),
        usages=request.usages,
        key=request.key_spec.describe(),
        not_after=info["not_after"],
        serial=info["serial"],
        fingerprint=info["fingerprint"],
        issuer=info["issuer"],
        host=request.host,
        key_encrypted=bool(request.key_passphrase),
        dir_owner=request.key.uid,
        subject=info["subject"],
        requested_subject=request.chosen_subject.describe(),
    )
    spec = fs.FileSpec(record.record_path(request.cert.path), request.key.mode, request.key.uid, request.key.gid)
    encoded = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
    if fs.read_bytes(spec.path) != encoded or fs.attribute_changes(spec.path, spec):
        fs.atomic_write(spec, encoded)


def _issuer_chain(request: NodeRequest) -> List[x509.Certificate]:
    """What the leaf presents after itself: everything in ``issuer`` that is not self-signed."""
    return [c for c in request.issuers if c.issuer != c.subject]


def _converge_file(
    request: NodeRequest,
    result: NodeResult,
    spec: fs.FileSpec,
    data: Union[bytes, Callable[[], bytes]],
    same: Optional[Callable[[Optional[bytes]], bool]] = None,
) -> None:
    """Write ``data`` (or what it returns) if content differs, else only fix mode/owner.

    ``same`` compares semantically where bytes differ on every write (PKCS#12 salts).
    """
    current = fs.read_bytes(spec.path)
    equal = same(current) if same is not None else current == data
    if not equal:
        result.changed = True
        result.written.append(spec.path)
        if not request.check_mode:
            if request.backup and current is not None:
                result.backups.append(fs.backup_file(spec.path))
            fs.atomic_write(spec, data() if callable(data) else data)
    elif fs.attribute_changes(spec.path, spec):
        result.changed = True
        result.written.append(spec.path + " (attributes)")
        if not request.check_mode:
            fs.apply_attributes(spec.path, spec)


def check_destinations(request: NodeRequest) -> None:
    """Every file this request may write or read back is a plain file in a directory only trusted users write."""
    for field, spec in request.destinations():
        fs.check_destination(spec.path, field, request.key.uid)
    fs.check_destination(request.pending_key_path, "key_path (.pending)", request.key.uid)
    fs.check_destination(record.record_path(request.cert.path), "cert_path (.issued.json)", request.key.uid)


def prepare(request: NodeRequest) -> NodeResult:
    result = NodeResult()
    check_destinations(request)
    check_owner_of_path(request)
    identity = desired_identity(request, result)
    result.identity = identity.names()

    # Existing material: unreadable keys are an error (never silently replaced).
    key, key_data = _load_key_file(request.key.path, request.key_passphrase, "key_path")
    cert, cert_data = _load_cert_file(request.cert.path)
    result.before = _cert_info(cert)

    # Trust material first: it needs no signature and should reach nodes early (CA rotation).
    if request.bundle is not None:
        _converge_file(request, result, request.bundle, request.bundle_pem.encode("ascii"))
    if request.truststore is not None and request.truststore_der is not None:
        want = sorted(fingerprint(c) for c in load_certificates(request.bundle_pem, "bundle"))
        _converge_file(
            request,
            result,
            request.truststore,
            request.truststore_der,
            same=lambda data: truststore_fingerprints(data, request.pkcs12_passphrase or "") == want,
        )

    reasons = renewal_reasons(
        cert,
        private_key=key,
        identity=identity,
        issuers=request.issuers[:1],
        renew_before=request.renew_before,
        key_spec=request.key_spec,
        usages=request.usages,
        subject=request.chosen_subject,
    )
    if cert is not None and key is None:
        reasons.append("private key missing")
    if cert is not None and "%x" % cert.serial_number in request.revoked_serials:
        reasons.append("serial %x was revoked by the CA" % cert.serial_number)
    if request.force and not reasons:
        reasons.append("forced re-issue")
    result.reasons = reasons

    if not reasons:
        result.certificate = _cert_info(cert)
        result.after = result.before
        chain = [cert] + _issuer_chain(request)
        chain_data = pem_of(chain).encode("ascii")
        if request.chain is not None:
            _converge_file(request, result, request.chain, chain_data)
        for spec in (request.key, request.cert):
            if fs.attribute_changes(spec.path, spec):
                result.changed = True
                result.written.append(spec.path + " (attributes)")
                if not request.check_mode:
                    fs.apply_attributes(spec.path, spec)
        if request.keystore is not None:
            passphrase = request.pkcs12_passphrase or ""
            _converge_file(
                request,
                result,
                request.keystore,
                lambda: keystore(key, cert, chain[1:], passphrase, request.keystore_alias),
                same=lambda data: keystore_matches(data, passphrase, key, cert, chain[1:]),
            )
        if not request.check_mode:
            _write_record(request, cert, identity, cert_data, key_data, chain_data)
        return result

    result.changed = True
    subject = request.chosen_subject
    result.after = {
        "names": identity.names(),
        "subject": subject.x509_name(identity).rfc4514_string(),
        "issuer": request.issuers[0].subject.rfc4514_string(),
    }
    if request.check_mode:
        return result
    signing_key, result.pending_created = _key_for_csr(request, key, reasons)
    result.csr = build_csr(signing_key, identity, subject).public_bytes(serialization.Encoding.PEM).decode("ascii")
    return result


def _key_for_csr(request: NodeRequest, current_key, reasons: List[str]) -> Tuple[object, bool]:
    """(key to put in the CSR, whether a new pending key file was written for it)."""
    keep = (
        request.regenerate_key == "never"
        and current_key is not None
        and not any(r.startswith(("key algorithm changed", "private key does not match")) for r in reasons)
    )
    if keep:
        return current_key, False
    pending = _load_key_file(request.pending_key_path, request.key_passphrase, "key_path (.pending)")[0]
    if pending is not None and spec_of_key(pending) == request.key_spec:
        return pending, False  # resume an interrupted issuance with the key already made
    new_key = generate_private_key(request.key_spec)
    pending_spec = fs.FileSpec(request.pending_key_path, 0o600, request.key.uid, request.key.gid)
    fs.atomic_write(pending_spec, private_key_pem(new_key, request.key_passphrase))
    return new_key, True


def abort(request: NodeRequest) -> NodeResult:
    """Signing was refused: remove the pending key this run made, so the failed run leaves nothing."""
    result = NodeResult()
    if os.path.exists(request.pending_key_path):
        fs.remove_quietly(request.pending_key_path)
        result.written.append(request.pending_key_path + " (removed)")
    return result


def install(request: NodeRequest, certificate_pem_text: str) -> NodeResult:
    """Install a signed certificate; nothing is replaced unless everything checks out."""
    result = NodeResult()
    check_destinations(request)
    check_owner_of_path(request)
    cert = load_certificate(certificate_pem_text, "certificate")
    identity = build_identity(request.names, "names", request.allow_wildcard)
    result.identity = identity.names()
    if identity_of_certificate(cert) != identity:
        raise PKIError(
            "certificate",
            "the signed certificate names %s, expected %s" % (identity_of_certificate(cert).names(), identity.names()),
            "re-run the task",
        )
    wrong_subject = subject_reason(cert, request.chosen_subject, identity)
    if wrong_subject:
        raise PKIError(
            "certificate",
            "the signed certificate is not issued to the subject asked for (%s)" % wrong_subject,
            "sign it with the same subject as this task's (sign_csr's subject option), then install it",
        )
    if not verify_signed_by(cert, request.issuers[0]):
        raise PKIError(
            "certificate",
            "the certificate is not signed by the expected CA %s" % request.issuers[0].subject.rfc4514_string(),
            "re-run the task",
        )
    cert_public = public_key_der(cert.public_key())
    pending, pending_data = _load_key_file(request.pending_key_path, request.key_passphrase, "key_path (.pending)")
    current, current_data = _load_key_file(request.key.path, request.key_passphrase, "key_path")
    if pending is not None and public_key_der(pending) == cert_public:
        key, key_data, promote = pending, pending_data, True
    elif current is not None and public_key_der(current) == cert_public:
        key, key_data, promote = current, current_data, False
    else:
        raise PKIError(
            "certificate",
            "the signed certificate matches neither the node's key nor its pending key",
            "re-run the task; a new CSR will be made",
        )
    before = _cert_info(_load_cert_file(request.cert.path)[0])
    chain = [cert] + _issuer_chain(request)
    cert_data, chain_data = certificate_pem(cert).encode("ascii"), pem_of(chain).encode("ascii")
    staged: List[Tuple[str, str]] = []
    try:
        staged.append((fs.stage_file(request.cert, cert_data), request.cert.path))
        if request.chain is not None:
            staged.append((fs.stage_file(request.chain, chain_data), request.chain.path))
        if request.keystore is not None:
            data = keystore(key, cert, chain[1:], request.pkcs12_passphrase or "", request.keystore_alias)
            staged.append((fs.stage_file(request.keystore, data), request.keystore.path))
    except BaseException:
        for tmp, _target in staged:
            fs.remove_quietly(tmp)
        raise
    if request.backup:
        for path in (request.key.path, request.cert.path):
            backup = fs.backup_file(path)
            if backup:
                result.backups.append(backup)
    if promote:
        fs.apply_attributes(request.pending_key_path, request.key)
        fs.commit_staged(request.pending_key_path, request.key.path)
        result.written.append(request.key.path)
    for tmp, path in staged:
        fs.commit_staged(tmp, path)
        result.written.append(path)
    _write_record(request, cert, identity, cert_data, key_data, chain_data)
    result.changed = True
    result.before = before
    result.certificate = _cert_info(cert)
    result.after = result.certificate
    return result
