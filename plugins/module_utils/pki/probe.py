# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a TLS endpoint actually presents, as a real client sees it.

Files say what a service should serve; only a handshake says what it serves. ``probe`` connects
to ``host:port`` (optionally presenting a client certificate), records the presented chain,
whether it verifies against a bundle and a name (a second, verifying handshake, so the result is
what a real client with that bundle would get, intermediates sent by the server included), and
whether the server accepted the client certificate. A refused connection, a timeout or a port
that does not speak TLS is a result, not an exception.

Standard library ``ssl`` for the handshakes; cryptography only to describe the certificates. The
whole presented chain is read where Python offers it (3.13+); before that, the leaf.
"""

from __future__ import annotations

import ipaddress
import select
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from .errors import PKIError

# What the server may say when it refuses a client certificate we presented (TLS 1.2 in the handshake, TLS 1.3
# after it). Without one presented, only CERTIFICATE_REQUIRED says for sure that the server wants one.
_CLIENT_REFUSALS = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "UNSUPPORTED_CERTIFICATE",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "HANDSHAKE_FAILURE",
    "ACCESS_DENIED",
    "DECRYPT_ERROR",
)


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return "[%s]:%d" % (self.host, self.port) if ":" in self.host else "%s:%d" % (self.host, self.port)


def parse_endpoint(text: str, field: str = "endpoint") -> Endpoint:
    """``host:port`` or ``[v6 address]:port``; the host a DNS name or an IP address, the port 1-65535."""
    from .identity import check_dns_name

    if not isinstance(text, str) or not text or any(c.isspace() for c in text):
        raise PKIError(field, "%r is not host:port" % (text,), "write it as host:port, e.g. node1.example:8443")
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise PKIError(field, "%r is not [address]:port" % text, "write an IPv6 endpoint as [2001:db8::1]:443")
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise PKIError(field, "%r: %r is not an IPv6 address" % (text, host), "write [address]:port") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host or ":" in host:
            raise PKIError(
                field,
                "%r is not host:port" % text,
                "write it as host:port (an IPv6 address in brackets: [2001:db8::1]:443)",
            )
        try:
            host = str(ipaddress.IPv4Address(host))
        except ValueError:
            host = check_dns_name(host, field)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise PKIError(
            field,
            "%r: the port %r is not a number from 1 to 65535" % (text, port),
            "give the TLS port, e.g. %s:443" % host,
        )
    return Endpoint(host, int(port))


@dataclass
class ProbeRequest:
    endpoint: Endpoint
    server_name: Optional[str] = None  # SNI and the name verified; default: the endpoint's host
    bundle_pem: Optional[str] = None  # trust anchors to verify against; None: no verification
    client_cert_path: Optional[str] = None
    client_key_path: Optional[str] = None
    timeout: float = 5.0


def _describe(der: bytes) -> Dict[str, Any]:
    """The fields of one presented certificate; one that cannot be parsed is described as such."""
    try:
        return _fields(der)
    except Exception as exc:  # a lying endpoint: a malformed certificate is what it serves, not a crash
        return {"error": "the certificate cannot be parsed: %s" % (exc or exc.__class__.__name__)}


def _fields(der: bytes) -> Dict[str, Any]:
    from cryptography import x509

    from .bundle import fingerprint
    from .identity import identity_of_certificate
    from .timeutil import isoformat, not_valid_after, not_valid_before

    cert = x509.load_der_x509_certificate(der)
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": "%x" % cert.serial_number,
        "names": identity_of_certificate(cert).names(),
        "not_before": isoformat(not_valid_before(cert)),
        "not_after": isoformat(not_valid_after(cert)),
        "fingerprint": fingerprint(cert),
    }


def _reason(exc: Optional[BaseException]) -> str:
    if exc is None:
        return "no handshake"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or exc.strerror or str(exc)
    if isinstance(exc, socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__


def _refused_client(exc: BaseException, presented: bool) -> bool:
    reason = str(getattr(exc, "reason", "") or exc).upper().replace(" ", "_")
    return any(word in reason for word in (_CLIENT_REFUSALS if presented else ("CERTIFICATE_REQUIRED",)))


class _Handshake:
    """One TCP connection and TLS handshake; what happened, never an exception."""

    def __init__(self, request: ProbeRequest, context: ssl.SSLContext) -> None:
        self.request = request
        self.context = context
        self.connected = False
        self.tls = None  # type: Optional[ssl.SSLSocket]
        self.error: Optional[BaseException] = None

    def __enter__(self) -> "_Handshake":
        endpoint = self.request.endpoint
        # one deadline for connection and handshake: a server that trickles bytes cannot hold the probe longer
        deadline = time.monotonic() + self.request.timeout
        try:
            raw = socket.create_connection((endpoint.host, endpoint.port), timeout=self.request.timeout)
        except OSError as exc:
            self.error = exc
            return self
        self.connected = True
        server_name = self.request.server_name or endpoint.host
        tls = None
        wanted: Tuple[List[ssl.SSLSocket], List[ssl.SSLSocket]]
        try:
            tls = self.context.wrap_socket(raw, server_hostname=server_name, do_handshake_on_connect=False)
            tls.setblocking(False)
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    wanted = ([tls], [])
                except ssl.SSLWantWriteError:
                    wanted = ([], [tls])
                left = deadline - time.monotonic()
                if left <= 0 or not any(select.select(wanted[0], wanted[1], [], left)[:2]):
                    raise socket.timeout("timed out")
            tls.settimeout(self.request.timeout)
            self.tls = tls
        except (OSError, ssl.SSLError) as exc:
            (tls or raw).close()
            self.error = exc
        return self

    def __exit__(self, *exc_info) -> None:
        if self.tls is not None:
            self.tls.close()


def _no_passphrase() -> str:
    raise PKIError(
        "client_key_path",
        "the client key is encrypted",
        "give the probe an unencrypted key (it would otherwise wait for a passphrase on a terminal)",
    )


def _context(request: ProbeRequest, verify: bool, bundle_pem: Optional[str] = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if verify:
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=bundle_pem)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if request.client_cert_path:
        try:
            context.load_cert_chain(request.client_cert_path, request.client_key_path, password=_no_passphrase)
        except (OSError, ssl.SSLError) as exc:
            raise PKIError(
                "client_cert_path",
                "cannot load the client certificate and key: %s" % _reason(exc),
                "point client_cert_path and client_key_path at a PEM certificate and its unencrypted "
                "key readable by this user",
            ) from None
    return context


def _client_verdict(hs: _Handshake) -> Tuple[Optional[bool], Optional[str]]:
    """(accepted, why not): TLS 1.3 servers refuse a client certificate after the handshake, so read once."""
    presented = bool(hs.request.client_cert_path)
    if hs.tls is None:
        refused = hs.error is not None and _refused_client(hs.error, presented)
        return (False, _reason(hs.error)) if refused else (None, None)
    hs.tls.settimeout(min(hs.request.timeout, 1.0))
    try:
        data = hs.tls.recv(1)
    except (socket.timeout, ssl.SSLWantReadError):
        return True, None  # no alert in time: the server kept the connection with our certificate
    except ssl.SSLError as exc:
        if _refused_client(exc, presented):
            return False, _reason(exc)
        return None, "no verdict on the client certificate: %s" % _reason(exc)
    except OSError as exc:
        return False, _reason(exc)
    if not data:  # closed without a word: it may have refused us after the handshake, or never cared
        return None, "no verdict on the client certificate: the server closed the connection after the handshake"
    return True, None  # the server answered after accepting the certificate


def _chain_of(tls: ssl.SSLSocket) -> List[bytes]:
    unverified = getattr(tls, "get_unverified_chain", None)  # Python 3.13+
    if unverified is not None:
        chain = unverified()  # DER bytes, leaf first
        if chain and all(isinstance(c, bytes) for c in chain):
            return list(chain)
    leaf = tls.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def probe(request: ProbeRequest) -> Dict[str, Any]:
    """What ``request.endpoint`` presents and whether a client with ``request.bundle_pem`` accepts it."""
    result: Dict[str, Any] = {
        "endpoint": str(request.endpoint),
        "reachable": False,
        "tls": False,
        "chain": [],
        "verified": None,
        "verify_error": None,
        "client_certificate_accepted": None,
        "client_certificate_required": False,
        "error": None,
    }
    leaf = None
    with _Handshake(request, _context(request, verify=False)) as hs:
        if not hs.connected:
            result["error"] = "cannot connect to %s: %s" % (request.endpoint, _reason(hs.error))
            return result
        result["reachable"] = True
        if hs.tls is None:
            accepted, why = _client_verdict(hs)
            if accepted is False and request.client_cert_path:
                # the server is TLS and refused our client certificate during the handshake (TLS 1.2)
                result.update(
                    tls=True,
                    client_certificate_accepted=False,
                    error="the server refused the client certificate: %s" % why,
                )
            elif accepted is False:
                result.update(
                    tls=True,
                    client_certificate_required=True,
                    error="the server requires a client certificate: %s" % why,
                )
            else:
                result["error"] = "no TLS handshake with %s: %s" % (request.endpoint, _reason(hs.error))
                if "HANDSHAKE_FAILURE" in result["error"].upper().replace(" ", "_"):
                    result["error"] += (
                        " (the server may want a client certificate, or share no protocol or cipher with this client)"
                    )
            return result
        result["tls"] = True
        result["protocol"] = hs.tls.version()
        presented = _chain_of(hs.tls)
        leaf = presented[0] if presented else None
        result["chain"] = [_describe(der) for der in presented]
        # TLS 1.3 servers refuse (or demand) a client certificate after the client's handshake is done
        accepted, why = _client_verdict(hs)
        if request.client_cert_path:
            result["client_certificate_accepted"] = accepted
            if accepted is False:
                result["error"] = "the server refused the client certificate: %s" % why
            elif accepted is None:
                result["error"] = why
        elif accepted is False:
            result["client_certificate_required"] = True
            result["error"] = "the server requires a client certificate: %s" % why
    if request.bundle_pem is not None:
        result["verified"], result["verify_error"] = _verify(request, leaf)
    return result


def _verify(request: ProbeRequest, leaf: Optional[bytes]) -> Tuple[bool, Optional[str]]:
    """A second handshake that verifies chain and name against the bundle, as a real client does.

    It must see the leaf the first connection saw: an endpoint (or a load balancer) that serves another
    certificate on the verifying connection does not verify.
    """
    with _Handshake(request, _context(request, verify=True, bundle_pem=request.bundle_pem)) as hs:
        if hs.tls is not None:
            if leaf is not None and hs.tls.getpeercert(binary_form=True) != leaf:
                return False, "the endpoint presented another certificate on the verifying connection"
            return True, None
        error = hs.error
        if isinstance(error, ssl.SSLCertVerificationError):
            return False, error.verify_message or _reason(error)
        return False, _reason(error) if error is not None else "no handshake"
