# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The live gates of a CA rotation: what the services accept and present, not what their files hold.

A node's bundle file may hold the new root while the service still runs on the bundle it loaded at
start; its certificate file may come from the new CA while it still serves the old one. So before
``switched`` every endpoint must accept a client certificate of the new CA, and before ``done``
every endpoint must present a certificate that a client trusting only the new root accepts.

The client certificate is a probe identity: a fresh key in memory and a certificate of the new CA
valid for minutes, for client authentication only, with no subject alternative name and the fixed
subject CN=securebydefault.pki rotation probe (grant that name nothing in services that authorize by
subject). The standard library's TLS reads certificates only from files: on Linux they are memory
files (memfd, never on disk, gone with the process); elsewhere a private temporary directory, checked
to be this user's own and removed before the function returns. A fresh identity is made whenever the
current one could expire before the next probe ends.
"""

from __future__ import annotations

import datetime
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .errors import PKIError

PROBE_LIFETIME = datetime.timedelta(minutes=10)
MAX_TIMEOUT = 60  # seconds per connection and handshake; four of them must fit well inside PROBE_LIFETIME
PROBE_SUBJECT = "securebydefault.pki rotation probe"
# What each gate checks, by the stage it leads to.
CHECKS = {"switched": "accepts a client certificate of the new CA", "done": "presents a certificate of the new CA"}


@dataclass(frozen=True)
class Target:
    host: str  # the node the endpoint belongs to (for messages)
    endpoint: str  # host:port
    server_name: Optional[str] = None


def targets_of(entries: Sequence[Dict[str, Any]], field: str = "endpoints") -> List[Target]:
    """The endpoints of every node, checked before any probe: host:port each, no endpoint twice."""
    from .probe import parse_endpoint

    targets: List[Target] = []
    seen = set()
    for index, entry in enumerate(entries or []):
        where = "%s[%d]" % (field, index)
        host = str(entry.get("host") or "")
        if not host:
            raise PKIError(where + ".host", "is empty", "name the node (inventory host) these endpoints belong to")
        for text in entry.get("endpoints") or []:
            endpoint = str(parse_endpoint(text, where + ".endpoints"))
            if endpoint in seen:
                raise PKIError(
                    where + ".endpoints",
                    "%s is listed twice" % endpoint,
                    "list each endpoint once, under the node that serves it",
                )
            seen.add(endpoint)
            targets.append(Target(host, endpoint, entry.get("server_name") or None))
    return targets


def probe_identity(
    ca, now: Optional[datetime.datetime] = None, lifetime: datetime.timedelta = PROBE_LIFETIME
) -> Tuple[bytes, bytes]:
    """(certificate chain PEM, unencrypted key PEM) of a nameless client certificate of ``ca``, valid minutes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from .authority import BACKDATE, _ski, key_usage
    from .keys import signature_hash_for
    from .timeutil import not_valid_after, utcnow

    now = now or utcnow()  # the handshakes happen now, whatever time the rotation is decided for
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + lifetime, *[not_valid_after(c) for c in [ca.certificate] + list(ca.chain)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, PROBE_SUBJECT)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(_ski(key.public_key()), critical=False)
        .add_extension(  # so a client picks the right issuer when old and new CA share a subject
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, signature_hash_for(ca.key))
    )
    chain = [cert] + ca.issuer_chain()
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, key_pem


class _IdentityFiles:
    """The probe identity as two files only this process can read: memory files on Linux, else a private
    temporary directory; gone on exit."""

    def __init__(self, chain_pem: bytes, key_pem: bytes) -> None:
        self.data = (chain_pem, key_pem)
        self.fds: List[int] = []
        self.directory: Optional[str] = None

    def __enter__(self) -> Tuple[str, str]:
        if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
            paths = []
            for name, data in zip(("probe.crt", "probe.key"), self.data):
                fd = os.memfd_create("sbd-pki-" + name)
                self.fds.append(fd)
                os.write(fd, data)
                paths.append("/proc/self/fd/%d" % fd)
            return paths[0], paths[1]
        self.directory = tempfile.mkdtemp(prefix="sbd-pki-probe-")  # mode 0700, a fresh random name
        info = os.lstat(self.directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            raise PKIError(
                "probe_timeout",
                "the temporary directory %s is not private" % self.directory,
                "point TMPDIR at a directory only this user can write",
            )
        files = (os.path.join(self.directory, "probe.crt"), os.path.join(self.directory, "probe.key"))
        for path, data in zip(files, self.data):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        return files[0], files[1]

    def __exit__(self, *exc_info) -> None:
        for fd in self.fds:
            os.close(fd)
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)


def _verdict(target: Target, result: Dict[str, Any], gate: str) -> Dict[str, Any]:
    """Whether one probe result passes ``gate`` (the stage it leads to), and why not."""
    chain = result.get("chain") or [{}]
    served = {k: chain[0].get(k) for k in ("serial", "issuer", "fingerprint", "not_after") if chain[0].get(k)}
    reason = None
    if not result.get("tls"):
        reason = result.get("error") or "no TLS handshake"
    elif result.get("client_certificate_accepted") is False:
        reason = result.get("error") or "the client certificate of the new CA was refused"
    elif result.get("client_certificate_accepted") is not True:
        reason = result.get("error") or "no verdict on the client certificate"
        reason += " (a service that checks client certificates only after the handshake cannot be judged here)"
    elif gate == "done" and not result.get("verified"):
        reason = "a client trusting only the new root refuses what it serves (%s)" % (
            result.get("verify_error") or result.get("error") or "not verified"
        )
    return {
        "host": target.host,
        "endpoint": target.endpoint,
        "gate": gate,
        "check": CHECKS[gate],
        "passed": reason is None,
        "reason": reason,
        "served": served,
    }


def check(
    targets: Sequence[Target],
    gate: str,
    ca,
    new_root_pem: str,
    timeout: float,
) -> List[Dict[str, Any]]:
    """Probe every target for ``gate`` ("switched" or "done") with a fresh probe identity of ``ca``."""
    from .probe import ProbeRequest, parse_endpoint, probe

    from .timeutil import utcnow

    if gate not in CHECKS:
        raise ValueError(gate)
    # the longest one probe can take: two handshakes (each connect + handshake), the wait for a refusal
    worst = datetime.timedelta(seconds=4 * timeout + 1)
    verdicts: List[Dict[str, Any]] = []
    pending = list(targets)
    while pending:
        minted = utcnow()
        with _IdentityFiles(*probe_identity(ca, minted)) as (cert_path, key_path):
            while pending and utcnow() + worst < minted + PROBE_LIFETIME - datetime.timedelta(minutes=1):
                target = pending.pop(0)
                result = probe(
                    ProbeRequest(
                        parse_endpoint(target.endpoint),
                        server_name=target.server_name,
                        bundle_pem=new_root_pem if gate == "done" else None,
                        client_cert_path=cert_path,
                        client_key_path=key_path,
                        timeout=timeout,
                    )
                )
                verdicts.append(_verdict(target, result, gate))
    return verdicts


def holding_back(verdicts: Sequence[Dict[str, Any]]) -> Iterator[str]:
    """``host endpoint (reason)`` of every endpoint that failed its gate."""
    for verdict in verdicts:
        if not verdict["passed"]:
            yield "%s %s (%s)" % (verdict["host"], verdict["endpoint"], verdict["reason"])
