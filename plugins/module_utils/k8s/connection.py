# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The way to the API server, with the standard library.

A kubeconfig context (or the pod's service account) names a server, the CA that
vouches for it and the client's credentials. For the forms that cover clusters
made by kubeadm, kind, k3s, this collection's ``kubernetes_pki`` role and
service accounts (client certificate and key, inline or in files; a bearer
token, inline or in a file; ``insecure-skip-tls-verify``; ``tls-server-name``)
the connection is made here with ``ssl`` and ``http.client``: a module run
does not import the ``kubernetes`` package (about a quarter of a second on
every run). Anything else a kubeconfig may hold (a credential plugin ``exec``,
an ``auth-provider``, a username and password, a ``proxy-url``)
is ``NeedsPackage``: the client then connects through the ``kubernetes``
package as before.

TLS is verified against the context's CA only (the system's trusted CAs only
when the context names none, as the ``kubernetes`` package does), with the
server's name (or ``tls-server-name``) checked, TLS 1.2 at least. A client key
given inline is written to a private temporary file (0600, created
exclusively) only while ``ssl`` loads it, and removed at once. Impersonation
(``as``) is refused: neither this module nor the ``kubernetes`` package sends
it, and requests would go out as the base identity.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import http.client
import json
import os
import ssl
import tempfile
import threading
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlencode, urlsplit

from ..pki.errors import PKIError

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"

# What this module can do itself; any other key of a kubeconfig cluster or user needs the kubernetes package.
_CLUSTER_KEYS = frozenset(
    ("server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify", "tls-server-name",
     "extensions")
)
_USER_KEYS = frozenset(
    ("client-certificate", "client-certificate-data", "client-key", "client-key-data", "token", "tokenFile",
     "extensions")
)
_IMPERSONATION = frozenset(("as", "as-groups", "as-uid", "as-user-extra"))


class WatchRefused(Exception):
    """The server answered a watch request with an error: read instead."""


class NeedsPackage(Exception):
    """The kubeconfig uses something only the kubernetes package does (named in the message)."""


@dataclass
class Endpoint:
    """One API server and how to reach it: what a kubeconfig context or a service account says."""

    server: str
    source: str
    ca_pem: Optional[str] = None
    ca_file: Optional[str] = None
    cert_pem: Optional[bytes] = None
    cert_file: Optional[str] = None
    key_pem: Optional[bytes] = dataclasses.field(default=None, repr=False)
    key_file: Optional[str] = None
    token: Optional[str] = dataclasses.field(default=None, repr=False)
    token_file: Optional[str] = None
    insecure: bool = False
    server_name: Optional[str] = None


def _bad(path: str, problem: str, field: str = "kubeconfig") -> PKIError:
    return PKIError(field, "cannot load the Kubernetes configuration from %s: %s" % (path, problem),
                    "check the kubeconfig file and context name")


def read_kubeconfig(path: str) -> Dict:
    """The kubeconfig at ``path`` as a mapping (JSON, else YAML)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except OSError as exc:
        raise _bad(path, "cannot read it: %s" % (exc.strerror or exc)) from None
    try:
        data = json.loads(text)
    except ValueError:
        try:
            import yaml  # pylint: disable=import-outside-toplevel
        except ImportError:
            raise PKIError("kubeconfig", "%s is YAML, and PyYAML is not installed on this host" % path,
                           "install PyYAML (python3-yaml) where the module runs, or give the kubeconfig as "
                           "JSON") from None
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            data = yaml.load(text, Loader=loader)  # nosec B506 - a safe loader
        except yaml.YAMLError as exc:  # where, not what: the line may hold a token
            mark = getattr(exc, "problem_mark", None)
            at = " at line %d, column %d" % (mark.line + 1, mark.column + 1) if mark is not None else ""
            raise _bad(path, "not YAML%s: %s" % (at, getattr(exc, "problem", None) or "cannot parse")) from None
    if not isinstance(data, dict):
        raise _bad(path, "not a kubeconfig (no mapping at its top)")
    return data


def _named(config: Dict, kind: str, name: str, path: str) -> Optional[Dict]:
    """The entry ``name`` of the list ``kind`` (clusters, users, contexts): its inner mapping."""
    found = [e for e in config.get(kind) or [] if isinstance(e, dict) and e.get("name") == name]
    if len(found) > 1:
        raise _bad(path, "it defines %s %r %d times" % (kind[:-1], name, len(found)))
    if not found:
        return None
    inner = found[0].get(kind[:-1])
    if inner is None:
        return {}
    if not isinstance(inner, dict):
        raise _bad(path, "%s %r is not a mapping" % (kind[:-1], name))
    return inner


def _data(value, what: str, path: str) -> bytes:
    """A -data field: base64 of PEM (never empty: an empty CA would mean the system's CAs)."""
    try:
        data = base64.b64decode(str(value).encode(), validate=False)
    except (binascii.Error, ValueError):
        data = b""
    if b"-----BEGIN " not in data:
        raise _bad(path, "%s is not base64 of PEM" % what)
    return data


def _token(value, path: str) -> Optional[str]:
    """A bearer token as a header may carry it; the message never shows it."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _bad(path, "its token is not a string")
    token = value.strip()
    if not token or any(ord(c) < 33 or ord(c) == 127 for c in token):
        raise _bad(path, "its token is empty or holds spaces or control characters (not shown)")
    return token


def from_kubeconfig(path: str, context: Optional[str]) -> Endpoint:
    """The endpoint of ``context`` (or the current context) of the kubeconfig at ``path``."""
    config = read_kubeconfig(path)
    name = context or config.get("current-context")
    if not name:
        raise PKIError("context", "%s has no current-context and no context was given" % path,
                       "set context to one of the kubeconfig's contexts")
    ctx = _named(config, "contexts", name, path)
    if ctx is None:
        known = [c.get("name") for c in config.get("contexts") or [] if isinstance(c, dict)]
        raise PKIError("context" if context else "kubeconfig",
                       "context %r is not in %s (it has: %s)" % (name, path, ", ".join(map(str, known)) or "none"),
                       "set context to one of them" if known else "use a kubeconfig that defines contexts")
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    cluster = _named(config, "clusters", cluster_name, path) if cluster_name else None
    if cluster is None:
        raise _bad(path, "context %r names cluster %r, which it does not define" % (name, cluster_name))
    user = _named(config, "users", user_name, path) if user_name else {}
    if user is None:
        raise _bad(path, "context %r names user %r, which it does not define" % (name, user_name))
    if _IMPERSONATION & set(user):
        raise PKIError("kubeconfig", "user %r of %s impersonates (%s): the modules would send their requests as the "
                       "user itself" % (user_name, path, ", ".join(sorted(_IMPERSONATION & set(user)))),
                       "give the modules a kubeconfig (or context) whose user is the identity they should act as")
    unknown = sorted(set(cluster) - _CLUSTER_KEYS) + sorted(set(user) - _USER_KEYS)
    if unknown:
        raise NeedsPackage("the kubeconfig's context %r uses %s" % (name, ", ".join(unknown)))
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise _bad(path, "cluster %r has no server" % cluster_name)
    base = os.path.dirname(os.path.abspath(path))

    def file_of(value) -> Optional[str]:  # relative to the kubeconfig's directory, as kubectl reads them
        return os.path.join(base, str(value)) if value else None

    endpoint = Endpoint(server=server.rstrip("/"), source=path + (" (context %s)" % context if context else ""))
    endpoint.insecure = cluster.get("insecure-skip-tls-verify") in (True, "true")
    endpoint.server_name = cluster.get("tls-server-name") or None
    if cluster.get("certificate-authority-data"):
        endpoint.ca_pem = _data(cluster["certificate-authority-data"], "certificate-authority-data", path).decode(
            "ascii", "replace")
    else:
        endpoint.ca_file = file_of(cluster.get("certificate-authority"))
    if user.get("client-certificate-data"):
        endpoint.cert_pem = _data(user["client-certificate-data"], "client-certificate-data", path)
    else:
        endpoint.cert_file = file_of(user.get("client-certificate"))
    if user.get("client-key-data"):
        endpoint.key_pem = _data(user["client-key-data"], "client-key-data", path)
    else:
        endpoint.key_file = file_of(user.get("client-key"))
    if (endpoint.key_pem or endpoint.key_file) and not (endpoint.cert_pem or endpoint.cert_file):
        raise _bad(path, "user %r has a client key without its certificate" % user_name)
    if endpoint.cert_pem and not (endpoint.key_pem or endpoint.key_file):
        raise _bad(path, "user %r has client-certificate-data without its key" % user_name)
    endpoint.token = _token(user.get("token"), path)
    endpoint.token_file = None if endpoint.token else file_of(user.get("tokenFile"))
    return endpoint


def in_cluster() -> Endpoint:
    """The endpoint of the pod's service account."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    token = os.path.join(SERVICE_ACCOUNT, "token")
    if not host or not port or not os.path.isfile(token):
        raise PKIError("in_cluster", "not running in a Kubernetes pod (no KUBERNETES_SERVICE_HOST/PORT or no "
                       "service account token at %s)" % token,
                       "give a kubeconfig instead, or run the module in a pod with a service account")
    if ":" in host:  # an IPv6 address
        host = "[%s]" % host
    return Endpoint(server="https://%s:%s" % (host, port), source="in-cluster service account",
                    ca_file=os.path.join(SERVICE_ACCOUNT, "ca.crt"), token_file=token)


def _tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """Verify the server against the endpoint's CA (name checked) and present its client certificate."""
    where = endpoint.source
    try:
        if endpoint.insecure:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif endpoint.ca_pem or endpoint.ca_file:
            context = ssl.create_default_context(cafile=endpoint.ca_file, cadata=endpoint.ca_pem)
        else:  # the context names no CA: the system's trusted ones, as the kubernetes package does
            context = ssl.create_default_context()
    except (OSError, ValueError) as exc:
        raise _bad(where, "its certificate-authority cannot be loaded: %s" % exc) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Python 3.13 turns on X509 strict checks; the kubernetes package (urllib3) does not: a hand-made cluster CA
    # without keyUsage would be refused here alone
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    made: List[str] = []

    def on_disk(pem: bytes) -> str:  # inline PEM for ssl, which reads files: private, removed right after
        fd, name = tempfile.mkstemp(prefix="sbd-pki-kube.", suffix=".pem")  # 0600, created exclusively
        made.append(name)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return name

    try:
        if endpoint.cert_pem or endpoint.cert_file:
            certfile = endpoint.cert_file or on_disk(endpoint.cert_pem or b"")
            keyfile = endpoint.key_file or (on_disk(endpoint.key_pem) if endpoint.key_pem else None)
            context.load_cert_chain(certfile, keyfile)
    except (OSError, ValueError) as exc:
        raise _bad(where, "its client certificate and key cannot be loaded: %s" % exc) from None
    finally:
        for name in made:
            os.unlink(name)
    return context


class _Connection(http.client.HTTPSConnection):
    """HTTPS that checks the certificate against ``server_name`` (tls-server-name) when one is given."""

    def __init__(self, host, port, server_name, **kwargs):
        super().__init__(host, port, **kwargs)
        self._server_name = server_name

    def connect(self):
        if not self._server_name:
            return super().connect()
        import socket  # pylint: disable=import-outside-toplevel

        sock = socket.create_connection((self.host, self.port), self.timeout, self.source_address)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)
        return None


# what a kept-alive connection the server closed fails with: sent again once, on a new connection, if the request
# is one that may be sent twice (a read, or a server-side apply: the same apply twice is the apply once)
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, http.client.CannotSendRequest)
_APPLY = "application/apply-patch+yaml"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress  # pylint: disable=import-outside-toplevel

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection the server closed (or sent something on): not to be used again."""
    if conn.sock is None:
        return False
    import select  # pylint: disable=import-outside-toplevel

    try:
        return bool(select.select([conn.sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class Transport:
    """Requests to one endpoint over kept-alive connections: as many as requests are sent at once (bulk applies
    send from several threads), each reused once its answer is read."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        source = endpoint.source
        parts = urlsplit(endpoint.server)
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise _bad(source, "its server has a port that is not a number in 1-65535") from None
        if parts.scheme not in ("https", "http") or not host:
            raise _bad(source, "its server is not an https:// URL")
        if parts.username is not None or parts.password is not None:
            raise PKIError("kubeconfig", "the server URL of %s carries a user name or password (not shown)" % source,
                           "give the credentials as the kubeconfig user's token or client certificate")
        credentials = endpoint.token or endpoint.token_file or endpoint.cert_pem or endpoint.cert_file
        if parts.scheme == "http" and (not _loopback(host) or credentials):
            # credentials and CA keys in clear text: only to a local proxy (kubectl proxy), and without credentials
            raise PKIError("kubeconfig", "the server %s of %s is plain http%s: requests (and the CA material some "
                           "carry) would go unencrypted" % (endpoint.server, source, " with credentials" if
                                                            credentials else " on a host other than this one"),
                           "use the API server's https:// address")
        self._https = parts.scheme == "https"
        self._host, self._port = host, port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._context = _tls_context(endpoint) if self._https else None
        self._idle: List[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _new(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return _Connection(self._host, self._port, self.endpoint.server_name, timeout=timeout,
                               context=self._context)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _take(self) -> Tuple[http.client.HTTPConnection, bool]:
        """An idle connection (and True), or a new one (and False)."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._new(self.timeout), False
            if not _dropped(conn):
                return conn, True
            conn.close()

    def _token(self) -> Optional[str]:
        if self.endpoint.token:
            return self.endpoint.token
        if self.endpoint.token_file:
            try:
                with open(self.endpoint.token_file, encoding="utf-8") as handle:
                    return _token(handle.read(), self.endpoint.source + " (its tokenFile)")
            except OSError as exc:
                raise _bad(self.endpoint.source, "its token file cannot be read: %s" % exc.strerror) from None
        return None

    def _headers(self, headers: Dict[str, str]) -> Dict[str, str]:
        headers = dict(headers)
        token = self._token()
        if token:
            headers["Authorization"] = "Bearer " + token
        return headers

    def send(self, method: str, path: str, query: List[Tuple[str, str]], headers: Dict[str, str],
             body=None) -> Tuple[int, bytes]:
        """(status, body) of one request; transport failures raise (OSError, ssl.SSLError, HTTPException)."""
        url = self._prefix + path
        if query:  # a path may carry a query of its own (a label selector)
            url += ("&" if "?" in path else "?") + urlencode(query)
        headers = self._headers(headers)
        payload = json.dumps(body).encode() if body is not None else None
        conn, reused = self._take()
        try:
            answer = self._exchange(conn, method, url, headers, payload)
        except _STALE:
            if not reused or not (method == "GET" or headers.get("Content-Type") == _APPLY):
                raise
            conn, _reused = self._new(self.timeout), False
            answer = self._exchange(conn, method, url, headers, payload)
        with self._lock:
            self._idle.append(conn)
        return answer

    @staticmethod
    def _exchange(conn, method, url, headers, payload) -> Tuple[int, bytes]:
        try:
            conn.request(method, url, body=payload, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except BaseException:
            conn.close()
            raise

    def watch(self, path: str, query: List[Tuple[str, str]], timeout: float):
        """The events of a watch request, decoded, on a connection of its own (closed at the end); WatchRefused if
        the server answers with an error."""
        url = self._prefix + path + ("&" if "?" in path else "?") + urlencode(query)
        conn = self._new(timeout)
        try:
            conn.request("GET", url, headers=self._headers({"Accept": "application/json"}))
            response = conn.getresponse()
            if response.status != 200:  # RBAC may allow get but not watch
                response.read()
                raise WatchRefused("HTTP %d" % response.status)
            for line in response:
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
