# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small Kubernetes client for the collection's modules.

Requests are plain REST so that every call is visible and counted
(``Kube.calls``), objects are applied server-side under one field manager, and
check mode is the API server's own dry run. The connection is made with the
standard library (``connection``) for the kubeconfigs of client certificates
and tokens and for service accounts; a kubeconfig that needs more (a credential
plugin, an auth-provider, a proxy) is loaded by the ``kubernetes`` package,
imported only then. Every failure is a PKIError that names the option to fix:
unreachable API server, a bad kubeconfig, missing cert-manager CRDs, RBAC
refusals and field-manager conflicts. Transport failures (no connection, TLS,
timeout) are a KubeTransportError: nothing was read or written, and the fix is
in kubeconfig/context or the network, never the object.
"""
from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
import time
from typing import Dict, List, Optional, Tuple

from ..pki.errors import PKIError
from . import connection
# re-exported for the modules that still import them from here
from .labels import MANAGED_BY  # noqa: F401  pylint: disable=unused-import
from .options import DEFAULT_FIELD_MANAGER  # noqa: F401  pylint: disable=unused-import

# Keys of an object the server owns or that change on every write; never compared or diffed.
_VOLATILE = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")


class KubeTransportError(PKIError):
    """The API server could not be reached or did not answer (connection, TLS, timeout); nothing happened."""


def kubeconfig_path(param: Optional[str]) -> Optional[str]:
    """The kubeconfig to use: the option, then K8S_AUTH_KUBECONFIG, KUBECONFIG, ~/.kube/config."""
    for candidate in (param, os.environ.get("K8S_AUTH_KUBECONFIG"), os.environ.get("KUBECONFIG")):
        if candidate:
            return os.path.expanduser(candidate.split(os.pathsep)[0])
    default = os.path.expanduser("~/.kube/config")
    return default if os.path.exists(default) else None


class Kube:
    """One API server connection; counts the requests it makes."""

    def __init__(self, kubeconfig: Optional[str] = None, context: Optional[str] = None,
                 in_cluster: Optional[bool] = None, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.calls = 0
        self._calls_lock = threading.Lock()  # requests may be sent from several threads (bulk applies)
        self.notes: List[str] = []  # what check mode could not ask the server (shown as warnings)
        path = kubeconfig_path(kubeconfig)
        use_cluster = in_cluster if in_cluster is not None else (
            path is None and bool(os.environ.get("KUBERNETES_SERVICE_HOST")))
        if use_cluster:
            endpoint = connection.in_cluster()
        else:
            if path is None:
                raise PKIError("kubeconfig", "no kubeconfig found (option unset, no K8S_AUTH_KUBECONFIG or "
                               "KUBECONFIG, no ~/.kube/config) and not running in a cluster",
                               "set kubeconfig to the path of a kubeconfig file")
            if not os.path.isfile(path):
                raise PKIError("kubeconfig", "%s does not exist or is not a file" % path,
                               "point kubeconfig (or KUBECONFIG) at an existing kubeconfig file")
            try:
                endpoint = connection.from_kubeconfig(path, context)
            except connection.NeedsPackage as why:
                self._transport = _PackageTransport(path, context, timeout, str(why))
                self._watching = False
                self.host, self.source = self._transport.host, path + (" (context %s)" % context if context else "")
                return
        if endpoint.insecure:
            self.notes.append("%s says insecure-skip-tls-verify: the API server at %s is not authenticated, anyone "
                              "on the way could read and answer these requests" % (endpoint.source, endpoint.server))
        self._transport = connection.Transport(endpoint, timeout)
        self.host, self.source = endpoint.server, endpoint.source
        self._watching = True  # waits watch (the package transport and a refused watch ask again instead)

    def close(self) -> None:
        self._transport.close()

    # -- transport
    def request(self, method: str, path: str, body=None, query=None,
                content_type: str = "application/json") -> Tuple[int, Optional[Dict]]:
        """(status, decoded body); HTTP errors are returned, transport errors raised as PKIError."""
        with self._calls_lock:
            self.calls += 1
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            status, data = self._send(method, path, list((query or {}).items()), headers, body)
        except KubeTransportError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            raise self.transport_error(exc) from None
        except Exception as exc:  # pylint: disable=broad-except
            if not _is_urllib3(exc):
                raise
            raise self.transport_error(exc) from None
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = {"message": data.decode(errors="replace") if isinstance(data, bytes) else str(data)}
        if status == 401:
            raise PKIError("kubeconfig", "the API server at %s refused our credentials (401 Unauthorized)"
                           % self.host, "renew the client certificate or token in the kubeconfig")
        return status, decoded

    def transport_error(self, exc) -> KubeTransportError:
        """The KubeTransportError for a failed request: TLS and timeouts told apart from a closed port."""
        urllib3 = _urllib3()
        if urllib3 is not None and isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
            exc = exc.reason
        reason = _reason(exc)
        refused = isinstance(exc, ConnectionError) or (
            urllib3 is not None and isinstance(exc, urllib3.exceptions.NewConnectionError))
        tls = isinstance(exc, ssl.SSLError) or (urllib3 is not None and isinstance(exc, urllib3.exceptions.SSLError))
        if tls or "SSL" in reason or "CERTIFICATE_VERIFY" in reason:
            return KubeTransportError("kubeconfig", "TLS with the Kubernetes API server at %s failed: %s"
                                      % (self.host, reason),
                                      "check the cluster's CA certificate (certificate-authority-data) and the "
                                      "server address in the kubeconfig")
        # NewConnectionError is a ConnectTimeoutError to urllib3, but a refused connection is no timeout
        timed_out = isinstance(exc, TimeoutError) or (
            urllib3 is not None and isinstance(exc, urllib3.exceptions.TimeoutError))
        if not refused and timed_out:
            return KubeTransportError("kubeconfig", "the Kubernetes API server at %s did not answer within %ss: %s"
                                      % (self.host, self.timeout, reason),
                                      "check that kubeconfig/context point at a running API server, or raise "
                                      "api_timeout")
        return KubeTransportError("kubeconfig", "the Kubernetes API server at %s is unreachable: %s"
                                  % (self.host, reason),
                                  "check that the API server runs and that kubeconfig/context point at it")

    def _send(self, method, path, query, headers, body):
        return self._transport.send(method, path, query, headers, body)

    def get(self, path: str) -> Optional[Dict]:
        status, obj = self.request("GET", path)
        if status == 404:
            return None
        self.check(status, obj, "read", path)
        return obj

    def check(self, status: int, obj: Optional[Dict], verb: str, path: str, field: str = "name") -> None:
        if 200 <= status < 300:
            return
        message = (obj or {}).get("message") or "HTTP %d" % status
        if status == 403:
            raise PKIError(field, "forbidden to %s %s: %s" % (verb, path, message),
                           "grant the user of this kubeconfig RBAC permission to %s this resource" % verb)
        if status == 409:
            raise PKIError(field, "conflict on %s: %s" % (path, message),
                           "another field manager owns these fields; set force_conflicts: true to take them over")
        if status == 422:
            raise PKIError(field, "the API server rejected %s: %s" % (path, message), "fix the values it names")
        raise PKIError(field, "cannot %s %s: %s" % (verb, path, message), "see the API server's message")

    def require_api(self, group_version: str, plural: str, what: str) -> None:
        """Fail clearly when a CRD (e.g. cert-manager's) is not installed."""
        status, obj = self.request("GET", "/apis/" + group_version)
        plurals = {r.get("name") for r in (obj or {}).get("resources") or []} if status == 200 else set()
        if status == 404 or plural not in plurals:
            raise PKIError("kubeconfig", "%s (%s %s) is not served by the API server at %s: its CRDs are not "
                           "installed" % (what, group_version, plural, self.host),
                           "install %s (its CRDs) in this cluster first, or point kubeconfig at the cluster that "
                           "has it" % what)
        self.check(status, obj, "discover", "/apis/" + group_version, field="kubeconfig")

    def apply(self, path: str, body: Dict, field_manager: str, dry_run: bool, force: bool,
              field: str = "name") -> Dict:
        """Server-side apply; check mode is the server's dry run (admission and validation included)."""
        query = {"fieldManager": field_manager}
        if force:
            query["force"] = "true"
        if dry_run:
            query["dryRun"] = "All"
        status, obj = self.request("PATCH", path, body=body, query=query, content_type="application/apply-patch+yaml")
        if dry_run and status == 404 and ((obj or {}).get("details") or {}).get("kind") == "namespaces":
            # check mode of a first run: the namespace is made by an earlier task that only dry-ran too. The
            # server cannot dry-run into it; report the object as it would be created, and say why.
            namespace = (body.get("metadata") or {}).get("namespace")
            self.notes.append("namespace %s does not exist yet (check mode): %s was not sent to the server's "
                              "dry run" % (namespace, path))
            return json.loads(json.dumps(body))
        self.check(status, obj, "apply", path, field)
        return obj

    def delete(self, path: str, dry_run: bool) -> bool:
        query = {"dryRun": "All"} if dry_run else None
        status, obj = self.request("DELETE", path, query=query)
        if status == 404:
            return False
        self.check(status, obj, "delete", path)
        return True

    def wait(self, path: str, done, timeout: float, interval: float = 0.5) -> Tuple[bool, Optional[Dict]]:
        """Until ``done(obj)`` for the object (or list) at ``path``, at most ``timeout`` seconds: (done, last seen).

        Watched where the connection can stream (each change is seen as it happens), asked again every
        ``interval`` seconds otherwise, and whenever the object does not exist yet."""
        deadline = time.monotonic() + timeout
        obj = self.get(path)
        while True:
            if done(obj):
                return True, obj
            if time.monotonic() >= deadline:
                return False, obj
            started = time.monotonic()
            if obj is not None and self._watching:
                try:
                    watched = self._watch(path, obj, done, deadline)
                except connection.WatchRefused:
                    self._watching = False  # RBAC may allow get but not watch: ask instead from now on
                    watched = None
                if watched is not None:
                    return watched
            # asked again after ``interval`` at the earliest: a watch that ends at once does not become a busy loop
            time.sleep(max(min(started + interval, deadline) - time.monotonic(), 0))
            obj = self.get(path)

    def _watch(self, path: str, obj: Dict, done, deadline: float) -> Optional[Tuple[bool, Optional[Dict]]]:
        """Watch from ``obj``'s resourceVersion until ``done`` or the deadline: (True, obj) when done, None when the
        watch ended first (the caller reads again: the server closed it, the version was too old, the stream
        broke)."""
        listing = str(obj.get("kind") or "").endswith("List")
        meta = obj.get("metadata") or {}
        query = {"watch": "1", "resourceVersion": meta.get("resourceVersion") or ""}
        if listing:
            items = {(o.get("metadata") or {}).get("name"): o for o in obj.get("items") or []}
            watch_path = path
        else:  # one object: its collection, narrowed to its name
            watch_path, name = path.rsplit("/", 1)
            query["fieldSelector"] = "metadata.name=" + name
        seconds = int(deadline - time.monotonic())
        if seconds < 1:
            return None
        query["timeoutSeconds"] = str(seconds)
        with self._calls_lock:
            self.calls += 1
        stream = self._transport.watch(watch_path, list(query.items()), seconds + 5)
        try:
            for event in stream:
                kind, changed = event.get("type"), event.get("object") or {}
                if kind == "ERROR":  # 410 Gone and the like: read again, watch from there
                    return None
                if listing:
                    name = (changed.get("metadata") or {}).get("name")
                    if kind == "DELETED":
                        items.pop(name, None)
                    else:
                        items[name] = changed
                    current: Optional[Dict] = dict(obj, items=list(items.values()))
                else:
                    current = None if kind == "DELETED" else changed
                if done(current):
                    return True, current
                if time.monotonic() >= deadline:
                    return False, current
        except (OSError, http.client.HTTPException, ValueError):
            return None  # the next read says what is wrong, if anything is
        finally:
            stream.close()  # the watch's own connection
        return None


def secret_where(namespace: str, name: str) -> str:
    """How messages and reports name a Secret."""
    return "Secret %s/%s" % (namespace, name)


def connect(params) -> "Kube":
    """The connection the options of securebydefault.pki.k8s.access describe."""
    return Kube(kubeconfig=params.get("kubeconfig"), context=params.get("context"),
                in_cluster=params.get("in_cluster"), timeout=params.get("api_timeout") or 30)


def _urllib3():
    """urllib3 if something (the kubernetes package) imported it: only its errors need it."""
    import sys  # pylint: disable=import-outside-toplevel

    return sys.modules.get("urllib3")


def _is_urllib3(exc) -> bool:
    urllib3 = _urllib3()
    return urllib3 is not None and isinstance(exc, urllib3.exceptions.HTTPError)


class _PackageTransport:
    """Requests through the kubernetes package, for the kubeconfigs ``connection`` leaves to it."""

    def __init__(self, path: str, context: Optional[str], timeout: float, why: str) -> None:
        try:
            # pylint: disable=import-outside-toplevel
            from kubernetes import client as k8s_client
            from kubernetes import config as k8s_config
            from kubernetes.config.config_exception import ConfigException
        except ImportError:
            raise PKIError("kubeconfig", "%s: that needs the kubernetes Python package, which is not installed on "
                           "this host" % why,
                           "install it (pip install 'kubernetes>=24') where the module runs, or use a kubeconfig "
                           "with a client certificate or a token") from None
        self.timeout = timeout
        config = k8s_client.Configuration()
        try:
            k8s_config.load_kube_config(config_file=path, context=context, client_configuration=config,
                                        persist_config=False)
        except ConfigException as exc:
            field = "context" if context and "context" in str(exc).lower() else "kubeconfig"
            raise PKIError(field, "cannot load the Kubernetes configuration from %s: %s" % (path, exc),
                           "check the kubeconfig file and context name") from None
        config.retries = False
        self.host = config.host
        self.api = k8s_client.ApiClient(config)

    def send(self, method, path, query, headers, body) -> Tuple[int, bytes]:
        from kubernetes.client.rest import ApiException  # pylint: disable=import-outside-toplevel

        try:
            if hasattr(self.api, "param_serialize"):
                # kubernetes >= 34 (the current OpenAPI generator): serialize, then send; no raise on 4xx/5xx
                method, url, headers, body, _post = self.api.param_serialize(
                    method, path, query_params=query, header_params=headers, body=body,
                    auth_settings=["BearerToken"])
                response = self.api.call_api(method, url, header_params=headers, body=body,
                                             _request_timeout=self.timeout)
                return response.status, response.read()
            # older clients: one call, raises ApiException on errors
            response = self.api.call_api(path, method, query_params=query, header_params=headers, body=body,
                                         auth_settings=["BearerToken"], _preload_content=False,
                                         _request_timeout=self.timeout, _return_http_data_only=True)
            return response.status, response.data
        except ApiException as exc:
            if not exc.status:  # the client's way of saying the transport failed
                raise ConnectionError(exc.reason) from None
            return exc.status, exc.body

    def close(self) -> None:
        self.api.close()


def _reason(exc) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


def comparable(obj: Optional[Dict]) -> Optional[Dict]:
    """What a user manages of an object: spec/data/type, labels and annotations; not server bookkeeping."""
    if obj is None:
        return None
    meta = obj.get("metadata") or {}
    out = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
    kept = {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if meta.get(k)}
    out["metadata"] = kept
    return out


def without_managed_fields(obj: Optional[Dict]) -> Optional[Dict]:
    """The object as returned to the user: server bookkeeping (managedFields) left out."""
    if not obj:
        return obj
    out = dict(obj)
    out["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return out


def namespaced_path(group_version: str, plural: str, namespace: Optional[str], name: Optional[str] = None) -> str:
    prefix = "/api/" + group_version if "/" not in group_version else "/apis/" + group_version
    path = prefix + ("/namespaces/%s" % namespace if namespace else "") + "/" + plural
    return path + ("/" + name if name else "")
