# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The use case of the status report (module rotation_status): items, their urgency, the Markdown.

Reads CA directories (public files only), rotation state files (through
``_ops.rotation.load_state``), what the nodes reported, and optionally the
cert-manager Certificates and keyring Secrets of a cluster. Writes nothing but
the report file and the Prometheus metrics file (``pki.metrics``, docs/monitoring.md).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional
from urllib.parse import quote

from ansible_collections.securebydefault.pki.plugins.module_utils._ops.rotation import load_state, states_beside
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import metrics
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import secret_where
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import keyring as kr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import revocation
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.params import request_from
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import (
    FileSpec,
    atomic_write,
    planted_in_shared_directory,
    read_bytes,
    read_own_public,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keyring import STAGES as KEYRING_STAGES
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.rotation import NEXT, ORDER
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import (
    isoformat,
    parse_duration,
    parse_isoformat,
    utcnow,
)

URGENCY = {"expired": 0, "missing": 1, "blocked": 2, "not_ready": 3, "due": 4, "ok": 5}
CRL_WARN = parse_duration(revocation.DEFAULT_CRL_RENEW_BEFORE, "crl_renew_before")
KEYRING_NEXT = kr.NEXT_STEP
COLUMNS = ("status", "kind", "name", "where", "expires", "stage", "next_action", "next_due", "note")


@dataclass
class StatusRequest:
    ca_paths: List[str] = field(default_factory=list)
    cas: List[Dict[str, Any]] = field(default_factory=list)
    rotation_states: Optional[List[str]] = None
    nodes: List[Dict[str, Any]] = field(default_factory=list)
    kubernetes: bool = False
    namespaces: List[str] = field(default_factory=list)
    warn_within: datetime.timedelta = datetime.timedelta(days=30)
    report_path: Optional[str] = None
    metrics_path: Optional[str] = None

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> "StatusRequest":
        return request_from(
            cls,
            params,
            warn_within=parse_duration(params["warn_within"], "warn_within"),
            metrics_path=metrics.check_path(params.get("metrics_path"), "metrics_path"),
        )


def _time(text) -> Optional[datetime.datetime]:
    if not text:
        return None
    try:
        return parse_isoformat(str(text).replace("+00:00", "Z"))
    except ValueError:
        return None


def item(
    kind, name, where, expires=None, stage=None, next_action=None, next_due=None, status=None, note="", stage_since=None
):
    return {
        "kind": kind,
        "name": name,
        "where": where,
        "expires": expires,
        "stage": stage,
        "stage_since": stage_since,
        "next_action": next_action,
        "next_due": next_due,
        "status": status,
        "note": note,
    }


def expiry_status(expires, now, warn) -> str:
    when = _time(expires)
    if when is None:
        return "ok"
    if when <= now:
        return "expired"
    return "due" if when - now <= warn else "ok"


def crl_item(data: Optional[bytes], where: str, now):
    """The CA's published CRL, if any: when it must be replaced (peers refuse everything after that)."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import revocation

    if data is None:
        return None
    summary = revocation.crl_summary(revocation.load_crl(data, "ca_paths"))
    status = expiry_status(summary["next_update"], now, CRL_WARN)
    return item(
        "crl",
        "CRL %s (%d revoked)" % (summary["crl_number"], summary["revoked_count"]),
        where,
        summary["next_update"],
        status=status,
        next_action="publish a fresh CRL (playbooks/decommission.yml)" if status != "ok" else None,
    )


def one_ca_items(issuer_pem, where, crl_pem, crl_where, now, warn) -> List[Dict[str, Any]]:
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import describe, load_certificate

    info = describe(load_certificate(issuer_pem, "ca_paths"))
    status = expiry_status(info["not_after"], now, warn)
    out = [
        item(
            "ca",
            info["subject"],
            where,
            info["not_after"],
            status=status,
            next_action="rotate the CA (role ca_rotation)" if status != "ok" else None,
        )
    ]
    crl = crl_item(crl_pem, crl_where, now)
    return out + ([crl] if crl is not None else [])


def ca_items(paths, cas, now, warn) -> List[Dict[str, Any]]:
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import revocation
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import read_public

    out = []
    for path in paths:
        if not os.path.lexists(path):
            out.append(
                item(
                    "ca",
                    "(no CA yet)",
                    path,
                    status="missing",
                    next_action="create the CA (playbooks/site.yml, role cluster_ca)",
                )
            )
            continue
        crl_path = os.path.join(path, revocation.CRL)
        out += one_ca_items(
            read_public(path, "ca_paths")[0], path, read_bytes(crl_path, "ca_paths"), crl_path, now, warn
        )
    for index, info in enumerate(cas):
        public, location = info.get("public") or {}, info.get("location") or {}
        if not public.get("issuer"):
            raise PKIError("cas[%d]" % index, "has no public.issuer", "pass what securebydefault.pki.ca_info returned")
        secret = location.get("secret")
        where = secret_where(secret["namespace"], secret["name"]) if secret else str(location.get("path"))
        if info.get("host"):
            where = "%s:%s" % (info["host"], where)
        crl = info.get("crl")
        out += one_ca_items(public["issuer"], where, crl.encode("ascii") if crl else None, where, now, warn)
    return out


def rotation_item(old_new, where: str, stage: Optional[str], since, runner: str) -> Dict[str, Any]:
    """One CA rotation of the report: due while a stage follows, with the task that moves it on."""
    entry = item("ca_rotation", "%s -> %s" % old_new, where, stage=stage, status="ok", stage_since=since)
    if stage in NEXT:
        entry.update(next_action="run %s (stage %s)" % (runner, NEXT[stage]), status="due")
    return entry


def rotation_items(states: List[str]) -> List[Dict[str, Any]]:
    out = []
    for path in states:
        state = load_state(path, "rotation_states")
        if not state:
            raise PKIError(
                "rotation_states",
                "%s does not exist" % path,
                "list only the state files of rotations that have started",
            )
        stage = state.get("stage")
        old_new = (state.get("old_ca_path"), state.get("new_ca_path"))
        out.append(rotation_item(old_new, path, stage, (state.get("times") or {}).get(stage), "ca_rotation"))
    return out


def node_items(nodes, now, warn) -> List[Dict[str, Any]]:
    out = []
    for node in nodes:
        host = str(node.get("host"))
        cert = node.get("certificate") or {}
        if cert:
            if not cert.get("exists", True):
                out.append(
                    item(
                        "node_certificate",
                        host,
                        host,
                        status="expired",
                        note="no certificate",
                        next_action="issue (node_certificate)",
                    )
                )
            else:
                status = expiry_status(cert.get("not_after"), now, warn)
                reasons = cert.get("renewal_reasons") or cert.get("reasons") or []
                if reasons and status == "ok":
                    status = "due"
                out.append(
                    item(
                        "node_certificate",
                        cert.get("subject") or host,
                        host,
                        cert.get("not_after"),
                        status=status,
                        note="; ".join(reasons),
                        next_action="renew (node_certificate)" if status != "ok" else None,
                    )
                )
        for ring in node.get("keyrings") or []:
            meta = ring.get("meta") or {}
            stage = meta.get("stage")
            out.append(
                item(
                    "keyring",
                    ring.get("path"),
                    host,
                    stage=stage,
                    status="ok",
                    note="primary %s since %s"
                    % (meta.get("primary"), (meta.get("stage_times") or {}).get(stage or "")),
                    next_action=KEYRING_NEXT.get(stage),
                    stage_since=(meta.get("stage_times") or {}).get(stage or ""),
                )
            )
    return out


def issuer_rotation_items(kube, namespace) -> List[Dict[str, Any]]:
    """The rotations of CA Issuers whose CA cert-manager issued (cert_manager_ca_rotation's Issuer annotation)."""
    # pylint: disable=import-outside-toplevel
    import json

    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.cert_manager_rotation import ANNOTATION
    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import certmanager
    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import namespaced_path

    out = []
    listing = kube.get(namespaced_path(certmanager.API_VERSION, "issuers", namespace)) or {}
    for issuer in listing.get("items") or []:
        meta = issuer.get("metadata") or {}
        raw = (meta.get("annotations") or {}).get(ANNOTATION)
        if raw is None:
            continue
        where = "k8s:%s/%s" % (meta.get("namespace"), meta.get("name"))
        try:
            state = json.loads(raw)
            stage = state["stage"] if state.get("stage") in ORDER else None
        except (ValueError, TypeError, KeyError, AttributeError):
            stage, state = None, {}
        if stage is None:  # an edited state must not hide a rotation from the report
            out.append(
                item(
                    "ca_rotation",
                    meta.get("name"),
                    where,
                    status="blocked",
                    note="the rotation annotation is not a state this collection wrote",
                    next_action="check who edited the Issuer; cert_manager_ca_rotation checks the evidence again",
                )
            )
            continue
        old_new = (state.get("from"), state.get("to"))
        out.append(rotation_item(old_new, where, stage, state.get("since"), "cert_manager_ca_rotation"))
    return out


def secret_rotation_items(secret: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The rotation to a CA kept in this Secret (ca_rotation's rotation.json), if one is recorded there.

    Its signature is not checked here (that takes the new CA's passphrase); ca_rotation refuses a state the new
    CA did not sign, so an edited one holds that rotation, as the report's note says.
    """
    import base64  # pylint: disable=import-outside-toplevel
    import binascii  # pylint: disable=import-outside-toplevel

    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.rotation import STATE_KEY, unseal

    meta = secret.get("metadata") or {}
    raw = (secret.get("data") or {}).get(STATE_KEY)
    if raw is None:
        return []
    where = "k8s:%s/%s: %s" % (meta.get("namespace"), meta.get("name"), STATE_KEY)
    try:
        state, signature = unseal(base64.b64decode(raw, validate=True), where, "rotation_states")
        if signature is not None:
            base64.b64decode(signature, validate=True)
    except (PKIError, binascii.Error, ValueError):
        state, signature = {}, None
    if not state or not signature:
        return [
            item(
                "ca_rotation",
                meta.get("name"),
                where,
                status="blocked",
                note="%s is not a signed rotation state this collection wrote" % STATE_KEY,
                next_action="check who edited the Secret; ca_rotation refuses a state the new CA did not sign",
            )
        ]

    def name(secret_ref):
        return "%s/%s" % (secret_ref["namespace"], secret_ref["name"]) if secret_ref else "?"

    stage = state["stage"]
    old_new = (name(state.get("old_ca_secret")), name(state.get("new_ca_secret")))
    return [rotation_item(old_new, where, stage, state["times"].get(stage), "ca_rotation")]


def k8s_items(kube, namespaces, now, warn) -> List[Dict[str, Any]]:
    """cert-manager Certificates and the keyring Secrets this collection manages."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import certmanager, labels
    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import namespaced_path

    out = []
    selector = ",".join("%s=%s" % pair for pair in labels.MANAGED_BY.items())
    for namespace in namespaces or [None]:
        listing = kube.get(namespaced_path(certmanager.API_VERSION, "certificates", namespace)) or {}
        for cert in listing.get("items") or []:
            meta, status = cert["metadata"], cert.get("status") or {}
            state = expiry_status(status.get("notAfter"), now, warn) if certmanager.is_ready(cert) else "not_ready"
            out.append(
                item(
                    "cert_manager_certificate",
                    meta["name"],
                    meta["namespace"],
                    status.get("notAfter"),
                    stage="revision %s" % status.get("revision"),
                    status=state,
                    next_action="renewal by cert-manager",
                    next_due=status.get("renewalTime"),
                )
            )
        out.extend(issuer_rotation_items(kube, namespace))
        secrets = kube.get(namespaced_path("v1", "secrets", namespace) + "?labelSelector=" + quote(selector)) or {}
        for secret in secrets.get("items") or []:
            if labels.CA_LABEL in ((secret.get("metadata") or {}).get("labels") or {}):
                out.extend(secret_rotation_items(secret))
                continue
            meta = labels.keyring_state_of(secret)
            annotations = (secret.get("metadata") or {}).get("annotations") or {}
            if not meta and (labels.KEYRING_STATE in annotations or labels.LEGACY_KEYRING_STATE in annotations):
                # an edited state must not hide a keyring from the report
                out.append(
                    item(
                        "k8s_keyring",
                        secret["metadata"]["name"],
                        secret["metadata"]["namespace"],
                        status="blocked",
                        note="the keyring state annotation is not a state this collection wrote",
                        next_action="check who edited the Secret; run k8s_keyring to record the state again",
                    )
                )
                continue
            if not meta:
                continue
            stage = meta.get("stage")
            out.append(
                item(
                    "k8s_keyring",
                    secret["metadata"]["name"],
                    secret["metadata"]["namespace"],
                    stage=stage,
                    status="ok",
                    note="primary %s; keys %s"
                    % (meta.get("primary"), ", ".join(sorted(secret.get("data") or {})).replace("\n", "")),
                    next_action=KEYRING_NEXT.get(stage),
                    stage_since=(meta.get("stage_times") or {}).get(stage or ""),
                )
            )
    return out


def render(items: List[Dict[str, Any]], summary: Dict[str, int], now) -> str:
    """The Markdown report: a title with the time, the counts, one table row per item."""
    lines = [
        "# Rotation status (%s)" % isoformat(now),
        "",
        ", ".join("%s: %d" % (k, summary[k]) for k in URGENCY),
        "",
        "| %s |" % " | ".join(c.replace("_", " ") if c != "next_due" else "due" for c in COLUMNS),
        "|%s" % ("---|" * len(COLUMNS)),
    ]
    for entry in items:
        lines.append("| %s |" % " | ".join(str(entry.get(k) or "").replace("|", "/") for k in COLUMNS))
    return "\n".join(lines) + "\n"


def write_report(path: str, report: str, check_mode: bool) -> bool:
    """Write the report when more than its time line changed; whether it did (or would)."""
    try:
        old = read_own_public(path, "report_path", 0o644, len(report))
    except (PKIError, OSError):
        # A link or FIFO that someone planted in a shared sticky directory (/tmp) is replaced by the rename,
        # never followed; anything else that is not a regular file (/dev/null, a directory) is refused.
        # Check mode writes nothing either way.
        if not check_mode and not planted_in_shared_directory(path):
            raise
        old = None
    changed = old is None or old.decode("utf-8", "replace").split("\n", 1)[-1] != report.split("\n", 1)[-1]
    if changed and not check_mode:
        atomic_write(FileSpec(path, 0o644), report.encode(), public=True)
    return changed


# The kinds of items whose expiry is a certificate's notAfter.
CERTIFICATE_KINDS = ("ca", "node_certificate", "cert_manager_certificate")
# The kinds found on a node: their "where" is the host, also given as the label host.
NODE_KINDS = ("node_certificate", "keyring")


def _timestamp(text) -> Optional[int]:
    when = _time(text)
    return int(when.timestamp()) if when is not None else None


def item_labels(entry: Dict[str, Any]) -> Dict[str, Any]:
    """The labels of an item's series: kind, name and where as in the report; host on a node.

    Nothing that changes on renewal (serials, fingerprints, a CRL's number) is a label. A CRL is
    known by where it is: its report name carries its number.
    """
    labels = {"kind": entry["kind"], "name": entry["name"], "where": entry["where"]}
    if entry["kind"] == "crl":
        del labels["name"]
    if entry["kind"] in NODE_KINDS:
        labels["host"] = entry["where"]
    return labels


def status_metrics(items: List[Dict[str, Any]]) -> metrics.Exposition:
    """The Prometheus metrics of the report's items (docs/monitoring.md).

    Items come most urgent first; when two have the same labels (a host listed twice), the first
    one's series is kept, as node_exporter refuses a file with a series twice.
    """
    out = metrics.Exposition()
    seen = set()
    for entry in items:
        kind, labels = entry["kind"], item_labels(entry)
        series = tuple(sorted((k, str(v)) for k, v in labels.items() if v not in (None, "")))
        if series in seen:
            continue
        seen.add(series)
        needs_action = 0 if entry["status"] == "ok" else 1
        when = _timestamp(entry.get("expires"))
        if kind in CERTIFICATE_KINDS:
            out.add(metrics.CERTIFICATE_RENEWAL_DUE, labels, needs_action)
            if when is not None:
                out.add(metrics.CERTIFICATE_NOT_AFTER, labels, when)
        elif kind == "crl":
            out.add(metrics.CRL_RENEWAL_DUE, labels, needs_action)
            if when is not None:
                out.add(metrics.CRL_NEXT_UPDATE, labels, when)
        elif kind == "ca_rotation":
            _stage_metrics(out, metrics.CA_ROTATION_STAGE, metrics.CA_ROTATION_STAGE_SINCE, labels, ORDER, entry)
        elif kind in ("keyring", "k8s_keyring"):
            _stage_metrics(out, metrics.KEYRING_STAGE, metrics.KEYRING_STAGE_SINCE, labels, KEYRING_STAGES, entry)
    return out


def _stage_metrics(out, stage_family, since_family, labels, stages, entry) -> None:
    """A state set of the stage, and when that stage began (the age is time() minus it, in PromQL)."""
    out.state_set(stage_family, labels, "stage", stages, entry.get("stage"))
    since = _timestamp(entry.get("stage_since"))
    if since is not None:  # unknown (lost keyring metadata): no series rather than a made-up time
        out.add(since_family, labels, since)


def report(request: StatusRequest, kube=None, check_mode: bool = False, now=None) -> Dict[str, Any]:
    """The whole report; ``kube`` is a connection (or a callable making one) when request.kubernetes."""
    now = now or utcnow()
    warn = request.warn_within
    states = states_beside(request.ca_paths) if request.rotation_states is None else request.rotation_states
    items = ca_items(request.ca_paths, request.cas, now, warn) + rotation_items(states)
    items += node_items(request.nodes, now, warn)
    if request.kubernetes:
        items += k8s_items(kube() if callable(kube) else kube, request.namespaces, now, warn)
    items.sort(key=lambda e: (URGENCY.get(e["status"], 9), e.get("expires") or "9999", e["kind"], e["name"]))
    summary = {k: sum(1 for e in items if e["status"] == k) for k in URGENCY}
    text = render(items, summary, now)
    changed = write_report(request.report_path, text, check_mode) if request.report_path else False
    result = dict(changed=changed, items=items, summary=summary, report=text)
    if request.metrics_path:
        result["metrics"] = status_metrics(items).render()
        if metrics.write(metrics.check_path(request.metrics_path), result["metrics"], check_mode, "metrics_path"):
            result["changed"] = True
    return result


def rotation_status(ctx) -> Dict[str, Any]:
    """Module rotation_status."""
    request = StatusRequest.from_params(ctx.params)
    try:
        return report(request, kube=lambda: ctx.kube, check_mode=ctx.check_mode)
    except OSError as exc:
        raise PKIError("ca_paths", "cannot read: %s" % exc, "check the paths") from None
