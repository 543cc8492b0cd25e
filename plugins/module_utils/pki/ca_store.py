# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A CA directory on the CA host: create it in one atomic step, load and validate it.

Layout (directory 0700, keys 0600)::

    ca.crt    issuing CA certificate (the root, or the intermediate)
    ca.key    issuing CA key, PKCS#8, encrypted unless the user opted out
    root.crt  trust anchor (same certificate as ca.crt without an intermediate)
    root.key  root key, only with an intermediate
    ca.json   policy and what the CA was created with

The same files can live as keys of one Kubernetes Secret (k8s/ca_secret.py).
Code that signs, records or revokes talks to a *store* - DirectoryStore here,
SecretStore there - with one small interface: ``read`` the files, ``create``
a new CA, ``update`` files under the store's exclusion (a flock on the
directory; the Secret's resourceVersion), ``record`` a ledger entry. A store
made with ``dry_run`` checks but writes nothing (a Secret store sends the API
server's dry run). A store with a ``size_limit`` (a Secret) compacts its ledger
and revocation record as it writes them; a directory has none and keeps both whole.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional

try:
    from cryptography import x509
except ImportError:  # modules report it through _ops.runner.require_cryptography()
    pass

from .authority import (
    DEFAULT_MAX_LEAF_VALIDITY,
    CertificateAuthority,
    NameConstraintsSpec,
    SigningPolicy,
    create_ca_certificate,
    verify_signed_by,
)
from .bundle import certificate_pem, describe, is_ca_certificate, load_certificate
from . import files as fs
from . import ledger
from .ca_files import check_complete, metadata_of, public_of, read_directory
from .errors import PKIError
from .keys import KeySpec, generate_private_key, load_private_key, private_key_pem, public_key_der, spec_of_key
from .timeutil import isoformat, not_valid_after, utcnow

FORMAT_VERSION = 1
# Every file a CA can have; revoked.json and crl.pem come with the first revocation.
CA_FILES = ("ca.crt", "ca.key", "root.crt", "root.key", "ca.json", "revoked.json", "crl.pem", ledger.LEDGER)
_PRIVATE = ("ca.key", "root.key", "revoked.json", ledger.LEDGER)
# What loading the issuing CA needs of them.
LOAD_FILES = ("ca.crt", "ca.key", "root.crt", "ca.json")


@dataclass(frozen=True)
class CASettings:
    common_name: str
    key_spec: KeySpec = KeySpec()
    valid_for: datetime.timedelta = datetime.timedelta(days=3650)
    constraints: NameConstraintsSpec = NameConstraintsSpec()
    intermediate: bool = False
    organization: Optional[str] = None
    policy: SigningPolicy = SigningPolicy()


def _metadata(settings: CASettings, encrypted: bool, created: datetime.datetime, not_after: datetime.datetime) -> Dict:
    return {
        "format": FORMAT_VERSION,
        "common_name": settings.common_name,
        "created": isoformat(created),
        "not_after": isoformat(not_after),
        "key": settings.key_spec.describe(),
        "intermediate": settings.intermediate,
        "key_encrypted": encrypted,
        "constraints": settings.constraints.describe(),
        "policy": {
            "max_leaf_validity": int(settings.policy.max_validity.total_seconds()),
            "allow_wildcard": settings.policy.allow_wildcard,
        },
    }


def build_ca_files(
    settings: CASettings, passphrase: Optional[str], now: Optional[datetime.datetime] = None
) -> Dict[str, bytes]:
    """The full content of a new CA directory (nothing written yet)."""
    now = now or utcnow()
    root_key = generate_private_key(settings.key_spec)
    root_cn = settings.common_name + (" Root" if settings.intermediate else "")
    root = create_ca_certificate(
        root_key,
        root_cn,
        settings.valid_for,
        settings.constraints,
        path_length=1 if settings.intermediate else 0,
        organization=settings.organization,
        now=now,
    )
    files = {"root.crt": certificate_pem(root).encode("ascii")}
    if settings.intermediate:
        key = generate_private_key(settings.key_spec)
        cert = create_ca_certificate(
            key,
            settings.common_name,
            settings.valid_for,
            settings.constraints,
            path_length=0,
            issuer_key=root_key,
            issuer_cert=root,
            organization=settings.organization,
            now=now,
        )
        files["root.key"] = private_key_pem(root_key, passphrase)
    else:
        key, cert = root_key, root
    files["ca.key"] = private_key_pem(key, passphrase)
    files["ca.crt"] = certificate_pem(cert).encode("ascii")
    not_after = min(not_valid_after(root), not_valid_after(cert))
    files["ca.json"] = (
        json.dumps(_metadata(settings, bool(passphrase), now, not_after), indent=2, sort_keys=True) + "\n"
    ).encode("utf-8")
    return files


def write_new_ca(path: str, files: Dict[str, bytes]) -> None:
    """Create the CA directory in one rename, so a CA is either complete or absent."""
    parent = os.path.dirname(os.path.abspath(path))
    fs.ensure_directory(parent, 0o755, "path")
    staging = tempfile.mkdtemp(prefix=".%s.new." % os.path.basename(path), dir=parent)
    try:
        os.chmod(staging, 0o700)
        for name, data in files.items():
            mode = 0o600 if name.endswith(".key") else 0o644
            fd = os.open(os.path.join(staging, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        if os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def ca_exists(path: str) -> bool:
    return os.path.exists(os.path.join(path, "ca.crt")) or os.path.exists(os.path.join(path, "ca.key"))


def load_ca(
    path: str,
    passphrase: Optional[str],
    field: str = "ca_path",
    passphrase_field: str = "ca_passphrase",
    check: bool = True,
    now: Optional[datetime.datetime] = None,
) -> CertificateAuthority:
    """Load and validate a CA directory; every problem is a PKIError naming the option."""
    ca = load_ca_from(read_directory(path, LOAD_FILES, field), path, passphrase, field, passphrase_field, check, now)
    ca.path = path
    return ca


def load_ca_from(
    files: Mapping[str, Optional[bytes]],
    where: str,
    passphrase: Optional[str],
    field: str = "ca_path",
    passphrase_field: str = "ca_passphrase",
    check: bool = True,
    now: Optional[datetime.datetime] = None,
) -> CertificateAuthority:
    """Load and validate a CA from its files, wherever they are kept (``where`` names it in messages)."""
    check_complete(files, where, field)
    public_of(files, where, field)  # exactly one certificate in ca.crt and in root.crt
    cert = load_certificate(files["ca.crt"], "%s: ca.crt" % where)
    root = load_certificate(files["root.crt"], "%s: root.crt" % where)
    meta = metadata_of(files.get("ca.json"), where, field)
    try:
        key = load_private_key(files["ca.key"] or b"", passphrase, "%s: ca.key" % where)
    except PKIError as exc:
        raise PKIError(passphrase_field if "passphrase" in exc.problem else exc.field, exc.problem, exc.fix) from None
    policy_meta = meta.get("policy") or {}
    policy = SigningPolicy(
        max_validity=datetime.timedelta(
            seconds=int(policy_meta.get("max_leaf_validity", DEFAULT_MAX_LEAF_VALIDITY.total_seconds()))
        ),
        allow_wildcard=bool(policy_meta.get("allow_wildcard", False)),
    )
    same = cert == root
    ca = CertificateAuthority(key=key, certificate=cert, chain=[], root=cert if same else root, policy=policy)
    check_consistent(ca, meta, where, field)
    if check:
        ca.check_usable(now, field)
    return ca


def check_consistent(ca: CertificateAuthority, meta: Mapping, where: str, field: str) -> None:
    """The CA's files agree with each other: root <-> intermediate <-> key <-> ca.json.

    Nothing is read from a CA (not even its public root, for a trust bundle) until this holds:
    a root.crt swapped for another CA's root, an intermediate of someone else, or a key that is
    not the certificate's are refused here, naming the file.
    """
    problems = consistency_problems(ca.certificate, ca.root, meta)
    if public_key_der(ca.key) != public_key_der(ca.certificate.public_key()):
        problems.append("ca.key does not match the CA certificate ca.crt")
    if problems:
        raise PKIError(
            field,
            "the files of CA %s do not belong together: %s" % (where, "; ".join(problems)),
            "restore the CA's files together from one backup; if they were changed by someone else, "
            "treat the CA as compromised and rotate it",
        )


def consistency_problems(cert, root, meta: Mapping) -> List[str]:
    """What does not fit between ca.crt, root.crt and ca.json (no key needed)."""
    problems = []
    if not is_ca_certificate(root) or not verify_signed_by(root, root):
        problems.append("root.crt is not a self-signed CA certificate")
    if cert != root and (not is_ca_certificate(cert) or not verify_signed_by(cert, root)):
        problems.append("ca.crt is not signed by root.crt")
    intermediate = cert != root
    if meta and bool(meta.get("intermediate", intermediate)) != intermediate:
        problems.append(
            "ca.json says intermediate=%s, the certificates say %s" % (meta.get("intermediate"), intermediate)
        )
    cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    if meta.get("common_name") and (not cn or str(cn[0].value) != meta["common_name"]):
        problems.append("ca.json names the CA %r, ca.crt %r" % (meta["common_name"], str(cn[0].value) if cn else ""))
    return problems


def check_public_files(files: Mapping[str, Optional[bytes]], where: str, field: str) -> None:
    """ca.crt, root.crt and ca.json agree (the key is checked where it is decrypted)."""
    public_of(files, where, field)  # exactly one certificate in each
    cert = load_certificate(files["ca.crt"], "%s: ca.crt" % where)
    root = load_certificate(files["root.crt"], "%s: root.crt" % where)
    problems = consistency_problems(cert, root, metadata_of(files.get("ca.json"), where, field))
    if problems:
        raise PKIError(
            field,
            "the files of CA %s do not belong together: %s" % (where, "; ".join(problems)),
            "restore the CA's files together from one backup; if they were changed by someone else, "
            "treat the CA as compromised and rotate it",
        )


def load_ca_in(store, passphrase: Optional[str], passphrase_field: str = "ca_passphrase") -> CertificateAuthority:
    """Load and validate the CA a store (DirectoryStore, k8s SecretStore) keeps."""
    return load_ca_from(store.read(LOAD_FILES), store.where, passphrase, store.field, passphrase_field)


def load_ca_and_public_in(store, passphrase: Optional[str], passphrase_field: str = "ca_passphrase") -> tuple:
    """(the CA, issuer PEM, root PEM), all from one read of the store: the roots handed out are those of the key
    that was checked (a writer who swaps the files between two reads cannot slip in a root of their own)."""
    files = store.read(LOAD_FILES)
    ca = load_ca_from(files, store.where, passphrase, store.field, passphrase_field)
    issuer_pem, root_pem = public_of(files, store.where, store.field)
    return ca, issuer_pem, root_pem


def public_in(store) -> tuple:
    """(issuer PEM, root PEM) of the CA a store keeps, once ca.crt, root.crt and ca.json agree (no key needed).

    ca_files.read_public is this for a CA directory.
    """
    files = store.read(("ca.crt", "root.crt", "ca.json"))
    check_public_files(files, store.where, store.field)
    return public_of(files, store.where, store.field)


# A change to a CA's files: given what they are now (name -> bytes, None when absent), the files to write.
Change = Callable[[Dict[str, Optional[bytes]]], Dict[str, bytes]]


class DirectoryStore:
    """A CA directory on this host; writers are serialized by ledger.ca_lock."""

    # No limit: the ledger and revoked.json keep the CA's whole history (a Secret's are compacted).
    size_limit: Optional[int] = None

    def __init__(self, path: str, field: str = "ca_path", dry_run: bool = False) -> None:
        self.path = path
        self.where = path
        self.field = field
        self.dry_run = dry_run

    def exists(self) -> bool:
        return ca_exists(self.path)

    def read(self, names: Iterable[str] = CA_FILES) -> Dict[str, Optional[bytes]]:
        return read_directory(self.path, names, self.field)

    def create(self, files: Dict[str, bytes]) -> bool:
        """Write a new CA (checked first, also in a dry run); False when another run created one first."""
        path = self.path
        if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
            raise PKIError(
                self.field, "%s exists and is not an empty directory or a CA" % path, "choose another path for the CA"
            )
        fs.check_destination(os.path.join(path, "ca.crt"), self.field)
        if not self.dry_run:
            write_new_ca(path, files)
        return True

    def update(self, change: Change, names: Iterable[str] = CA_FILES) -> Dict[str, bytes]:
        """Apply ``change`` under the CA lock; each file is replaced atomically, in the order given."""
        if self.dry_run:
            return change(self.read(names))
        with ledger.ca_lock(self.path):
            written = change(self.read(names))
            for name, data in written.items():
                mode = 0o600 if name in _PRIVATE else 0o644
                fs.atomic_write(fs.FileSpec(os.path.join(self.path, name), mode), data)
        return written

    def record(self, entry: Dict, check: Optional[Callable[[bytes, Optional[bytes]], None]] = None) -> None:
        """Add a signature to the ledger (appended under the lock, never rewritten).

        ``check`` sees the ledger and revoked.json as they are under the lock and may refuse.
        """
        if self.dry_run:
            return
        revoked_path = os.path.join(self.path, "revoked.json")
        ledger.append(
            self.path,
            entry,
            check=None
            if check is None
            else (lambda existing: check(existing, fs.read_bytes(revoked_path, self.field))),
        )


def ca_summary(ca: CertificateAuthority, path: str) -> Dict:
    info = describe(ca.certificate)
    return {
        "path": path,
        "subject": info["subject"],
        "fingerprint": info["fingerprint"],
        "not_after": info["not_after"],
        "root_fingerprint": describe(ca.root)["fingerprint"],
        "key": spec_of_key(ca.key).describe(),
        "constraints": NameConstraintsSpec.from_certificate(ca.certificate).describe(),
        "intermediate": ca.certificate != ca.root,
    }


def settings_differences(ca: CertificateAuthority, settings: CASettings) -> List[str]:
    """How an existing CA differs from what is asked; each needs a new CA, not an edit."""
    out = []
    cn = ca.certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    have_cn = str(cn[0].value) if cn else ""
    if have_cn != settings.common_name:
        out.append("common_name %r -> %r" % (have_cn, settings.common_name))
    org = ca.certificate.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_NAME)
    have_org = str(org[0].value) if org else None
    if (have_org or None) != (settings.organization or None):
        out.append("organization %r -> %r" % (have_org, settings.organization))
    have_spec, want_spec = spec_of_key(ca.key), settings.key_spec
    if have_spec != KeySpec(want_spec.type, want_spec.effective_size):
        out.append("key %s -> %s" % (have_spec.describe(), want_spec.describe()))
    have_nc = NameConstraintsSpec.from_certificate(ca.certificate)
    if have_nc != settings.constraints:
        out.append("name constraints %s -> %s" % (have_nc.describe(), settings.constraints.describe()))
    if (ca.certificate != ca.root) != settings.intermediate:
        out.append("intermediate %s -> %s" % (ca.certificate != ca.root, settings.intermediate))
    return out


def policy_differences(meta: Dict, settings: CASettings) -> List[str]:
    policy = meta.get("policy") or {}
    out = []
    want = int(settings.policy.max_validity.total_seconds())
    if int(policy.get("max_leaf_validity", -1)) != want:
        out.append("max_leaf_validity %s -> %s" % (policy.get("max_leaf_validity"), want))
    if bool(policy.get("allow_wildcard", False)) != settings.policy.allow_wildcard:
        out.append("allow_wildcard %s -> %s" % (policy.get("allow_wildcard", False), settings.policy.allow_wildcard))
    return out


def update_metadata_policy(meta: Dict, settings: CASettings) -> bytes:
    meta = dict(meta)
    meta["policy"] = {
        "max_leaf_validity": int(settings.policy.max_validity.total_seconds()),
        "allow_wildcard": settings.policy.allow_wildcard,
    }
    return (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8")


def expires_in(ca: CertificateAuthority, now: Optional[datetime.datetime] = None) -> datetime.timedelta:
    return min(not_valid_after(c) for c in [ca.certificate, ca.root]) - (now or utcnow())
