# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An in-memory Kubernetes API for the use-case tests.

``FakeKube`` is a ``client.Kube`` whose transport (``_send``) answers from a
dict instead of the network, so request counting, error mapping (401/403/409/
422, transport errors) and get/apply/delete are the client's real code. The
server part implements what the collection uses: GET of objects, lists and API
discovery; POST (409 if it exists); PUT with the resourceVersion as a
precondition (409 when stale); a Secret over 1 MiB of data refused (422); server-side apply as a deep merge; merge patch
of /status; DELETE; dry run (nothing stored); resourceVersion and generation
bookkeeping. ``inject`` makes the next matching request fail with a status
(e.g. 409, after an optional concurrent change) or an exception (a transport
error). ``controller`` plays cert-manager while a use case waits.
"""
from __future__ import annotations

import base64
import copy
import json
import threading
from typing import Callable, Dict, List, Optional

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import certmanager as cm
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import Kube

# The API server refuses a Secret whose data values together exceed 1 MiB (422, field data: Too long).
MAX_SECRET_SIZE = 1024 * 1024
SERVED = {cm.API_VERSION: ["certificates", "issuers", "clusterissuers", "certificaterequests"]}


def secret_size(secret: Dict) -> int:
    """What the API server counts against the limit: the decoded data values together."""
    return sum(len(base64.b64decode(value)) for value in (secret.get("data") or {}).values())


def merge(base: Dict, patch: Dict) -> Dict:
    """Server-side apply, good enough for tests: maps merge key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif value is None:
            out.pop(key, None)
        else:
            out[key] = copy.deepcopy(value)
    return out


class Injection:
    def __init__(self, method: str, path: Optional[str], status: int, error: Optional[BaseException],
                 times: int, before: Optional[Callable[["FakeKube"], None]]) -> None:
        self.method, self.path, self.status, self.error = method, path, status, error
        self.times, self.before = times, before

    def matches(self, method: str, path: str) -> bool:
        return self.times != 0 and self.method == method and (self.path is None or path.startswith(self.path))


class FakeKube(Kube):
    """A Kube on an in-memory API server; ``objects`` maps an object's path to the object."""

    def __init__(self, served: Optional[Dict[str, List[str]]] = None) -> None:  # pylint: disable=super-init-not-called
        self.timeout = 30
        self.calls = 0
        self.notes: List[str] = []
        self.host = "https://fake.invalid:6443"
        self.source = "fake"
        self.objects: Dict[str, Dict] = {}
        self.served = dict(SERVED if served is None else served)
        self.log: List[tuple] = []  # (method, path, dry run)
        self.injections: List[Injection] = []
        self._calls_lock = threading.Lock()
        self._serve_lock = threading.RLock()  # the bulk use cases send from several threads
        self.controller: Optional[Callable[["FakeKube"], None]] = None
        self._version = 100
        self.closed = False

    # -- test helpers
    def inject(self, method: str, path: Optional[str] = None, status: int = 409, error: Optional[BaseException] = None,
               times: int = 1, before: Optional[Callable[["FakeKube"], None]] = None) -> None:
        """The next ``times`` (-1: every) ``method`` requests (on ``path...``) fail; ``before`` runs first."""
        self.injections.append(Injection(method, path, status, error, times, before))

    def put_object(self, path: str, obj: Dict) -> Dict:
        """Store ``obj`` at ``path`` as another client would (no call counted)."""
        return self._store(path, copy.deepcopy(obj), None)

    def writes(self, dry_run: Optional[bool] = None) -> List[tuple]:
        return [entry for entry in self.log if entry[0] in ("POST", "PUT", "PATCH", "DELETE")
                and (dry_run is None or entry[2] == dry_run)]

    def close(self) -> None:
        self.closed = True

    def wait(self, path, done, timeout, interval=0.5):
        """Poll a few times; between polls the controller (cert-manager) gets to act. Never sleeps."""
        obj = None
        for _poll in range(5):
            obj = self.get(path)
            if done(obj):
                return True, obj
            if self.controller is not None:
                self.controller(self)
        return False, obj

    # -- the server
    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def _store(self, path: str, obj: Dict, old: Optional[Dict]) -> Dict:
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = self._next_version()
        meta.setdefault("uid", "uid-%s" % meta["resourceVersion"])
        meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
        meta["managedFields"] = [{"manager": "securebydefault.pki", "operation": "Apply"}]
        if "spec" in obj:
            generation = (old or {}).get("metadata", {}).get("generation", 0)
            changed = old is None or old.get("spec") != obj.get("spec")
            meta["generation"] = generation + 1 if changed else generation
        self.objects[path] = obj
        return obj

    def _send(self, method, path, query, headers, body):
        with self._serve_lock:
            return self._send_one(method, path, query, headers, body)

    def _send_one(self, method, path, query, headers, body):
        query = dict(query or [])
        if "?" in path:  # a query written into the path (status.k8s_items), as the real server reads it
            from urllib.parse import parse_qsl

            path, written = path.split("?", 1)
            query.update(parse_qsl(written))
        dry_run = query.get("dryRun") == "All"
        self.log.append((method, path, dry_run))
        for injection in self.injections:
            if injection.matches(method, path):
                injection.times -= 1
                if injection.before is not None:
                    injection.before(self)
                if injection.error is not None:
                    raise injection.error
                return injection.status, json.dumps({"kind": "Status", "code": injection.status,
                                                     "message": "injected HTTP %d" % injection.status}).encode()
        status, obj = self._serve(method, path, body, dry_run)
        if method == "GET" and status == 200 and query.get("labelSelector") and "items" in (obj or {}):
            wanted = dict(pair.split("=", 1) for pair in query["labelSelector"].split(","))
            obj["items"] = [item for item in obj["items"] if all(
                ((item.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in wanted.items())]
        if method == "GET" and status == 200 and query.get("fieldSelector") and "items" in (obj or {}):
            field, value = query["fieldSelector"].split("=", 1)
            assert field == "metadata.name", field
            obj["items"] = [item for item in obj["items"] if (item.get("metadata") or {}).get("name") == value]
        return status, json.dumps(obj).encode() if obj is not None else b""

    def _serve(self, method, path, body, dry_run):
        if method in ("POST", "PUT") and (body or {}).get("kind") == "Secret" and secret_size(body) > MAX_SECRET_SIZE:
            return 422, {"kind": "Status", "code": 422, "reason": "Invalid",
                         "message": "Secret is invalid: data: Too long: may not be more than %d bytes"
                         % MAX_SECRET_SIZE}
        status_of = path.endswith("/status")
        target = path[:-len("/status")] if status_of else path
        current = self.objects.get(target)
        if method == "GET":
            return self._get(path)
        if method == "POST":
            name = body["metadata"]["name"]
            full = path + "/" + name
            if full in self.objects:
                return 409, {"code": 409, "reason": "AlreadyExists", "message": "%s already exists" % name}
            return 201, self._write(full, copy.deepcopy(body), None, dry_run)
        if method == "DELETE":
            if current is None:
                return 404, {"code": 404, "message": "not found"}
            if not dry_run:
                del self.objects[target]
            return 200, {"kind": "Status", "status": "Success"}
        if method == "PUT":
            if current is None:
                return 404, {"code": 404, "message": "not found"}
            if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return 409, {"code": 409, "reason": "Conflict", "message": "the object has been modified"}
            return 200, self._write(target, copy.deepcopy(body), current, dry_run)
        if method == "PATCH" and status_of:  # merge patch of the status, conditional on a resourceVersion
            if current is None:
                return 404, {"code": 404, "message": "not found"}
            wanted = (body.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                return 409, {"code": 409, "reason": "Conflict", "message": "the object has been modified"}
            new = copy.deepcopy(current)
            new["status"] = merge(current.get("status") or {}, body.get("status") or {})
            return 200, self._write(target, new, current, dry_run)
        if method == "PATCH":  # server-side apply
            new = merge(current or {}, body)
            return (200 if current else 201), self._write(target, new, current, dry_run)
        return 405, {"code": 405, "message": "method not allowed"}

    def _write(self, path, obj, old, dry_run):
        obj.setdefault("metadata", {}).pop("managedFields", None)
        if old is not None and "status" in old and "status" not in obj:
            obj["status"] = copy.deepcopy(old["status"])
        if dry_run:
            preview = copy.deepcopy(obj)
            if old is not None:
                preview["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return preview
        return copy.deepcopy(self._store(path, obj, old))

    def _get(self, path):
        if path in self.objects:
            return 200, copy.deepcopy(self.objects[path])
        for group_version, plurals in self.served.items():
            if path == "/apis/" + group_version:
                return 200, {"kind": "APIResourceList", "resources": [{"name": p} for p in plurals]}
        items = [copy.deepcopy(obj) for key, obj in sorted(self.objects.items()) if key.rsplit("/", 1)[0] == path]
        if path in ("/api/v1/configmaps", "/api/v1/secrets"):  # across namespaces
            kind = path.rsplit("/", 1)[1]
            items = [copy.deepcopy(obj) for key, obj in sorted(self.objects.items())
                     if key.startswith("/api/v1/namespaces/") and key.split("/")[5:6] == [kind]]
        if items or path.endswith(("/certificates", "/secrets", "/configmaps", "/namespaces")):
            return 200, {"kind": "List", "items": items}
        return 404, {"kind": "Status", "code": 404, "message": "%s not found" % path}


def cert_manager(kube: FakeKube) -> None:
    """cert-manager, one reconcile: issuers become Ready; Certificates are issued (again when Issuing)."""
    for obj in kube.objects.values():
        kind = obj.get("kind")
        if kind not in ("Issuer", "ClusterIssuer", "Certificate"):
            continue
        status = obj.setdefault("status", {})
        conditions = status.get("conditions") or []
        issuing = any(c.get("type") == "Issuing" and c.get("status") == "True" for c in conditions)
        if kind == "Certificate" and (issuing or not status.get("revision")):
            status["revision"] = (status.get("revision") or 0) + 1
        generation = obj["metadata"].get("generation")
        status["conditions"] = [{"type": "Ready", "status": "True", "reason": "Ready",
                                 "observedGeneration": generation}]
        obj["metadata"]["resourceVersion"] = kube._next_version()  # pylint: disable=protected-access


def trust_manager(kube: FakeKube) -> None:
    """trust-manager, one reconcile: each Bundle's sources go into a ConfigMap (and Secret) in each namespace its
    selector matches, labelled as trust-manager labels them; the Bundle is then Synced for its generation."""
    namespaces = {path: obj for path, obj in kube.objects.items() if path.rsplit("/", 1)[0] == "/api/v1/namespaces"}
    for bundle in list(kube.objects.values()):
        if bundle.get("kind") != "Bundle":
            continue
        spec, name = bundle["spec"], bundle["metadata"]["name"]
        pem = ""
        for source in spec["sources"]:
            if "inLine" in source:
                pem += source["inLine"]
            for kind, plural in (("configMap", "configmaps"), ("secret", "secrets")):
                if kind in source:
                    obj = kube.objects["/api/v1/namespaces/cert-manager/%s/%s" % (plural, source[kind]["name"])]
                    data = obj["data"][source[kind]["key"]]
                    pem += base64.b64decode(data).decode() if plural == "secrets" else data
        wanted = ((spec["target"].get("namespaceSelector") or {}).get("matchLabels")) or {}
        expressions = ((spec["target"].get("namespaceSelector") or {}).get("matchExpressions")) or []
        for ns in namespaces.values():
            labels = dict(ns["metadata"].get("labels") or {}, **{"kubernetes.io/metadata.name": ns["metadata"]["name"]})
            if any(labels.get(k) != v for k, v in wanted.items()):
                continue
            if any(e["operator"] == "In" and labels.get(e["key"]) not in e["values"] for e in expressions):
                continue
            where = "/api/v1/namespaces/%s" % ns["metadata"]["name"]
            meta = {"name": name, "namespace": ns["metadata"]["name"], "labels": {"trust.cert-manager.io/bundle": name}}
            if spec["target"].get("configMap"):
                kube.put_object(where + "/configmaps/" + name, {
                    "kind": "ConfigMap", "metadata": dict(meta), "data": {spec["target"]["configMap"]["key"]: pem}})
            if spec["target"].get("secret"):
                kube.put_object(where + "/secrets/" + name, {"kind": "Secret", "metadata": dict(meta), "data": {
                    spec["target"]["secret"]["key"]: base64.b64encode(pem.encode()).decode()}})
        bundle["status"] = {"conditions": [{"type": "Synced", "status": "True",
                                            "observedGeneration": bundle["metadata"]["generation"]}]}
