#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: rotation_status
short_description: One report of CAs, node certificates, cert-manager Certificates, keyrings - expiry, stage, next step
version_added: 0.2.0
description:
  - Runs on the controller. Reads the CA directories (O(ca_paths)) and their rotation state files itself, or takes
    CAs read where they live by M(securebydefault.pki.ca_info) (O(cas)),
    takes what the nodes reported (O(nodes), gathered by C(playbooks/rotation_status.yml) with
    M(securebydefault.pki.certificate_info) and the keyrings' metadata), and, with O(kubernetes=true), lists
    cert-manager Certificates and keyring Secrets through the API.
  - Every item gets a status - C(ok), C(due) (inside O(warn_within) of expiry or of a due rotation step),
    C(expired), C(missing) (a CA directory that does not exist yet), C(blocked) (a rotation waiting on
    evidence), C(not_ready) (cert-manager) - and the next action
    with its time, sorted most urgent first. The report is also rendered as Markdown (O(report_path)).
  - A CA that has published a CRL (M(securebydefault.pki.revoke)) gets a C(crl) item. It is C(due) within
    3 days of the CRL's next update and C(expired) after it, because peers that check CRLs then refuse every
    certificate.
  - Read-only; never changes anything but the report file.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
options:
  ca_paths:
    description: CA directories made by M(securebydefault.pki.cluster_ca).
    type: list
    elements: path
    default: []
  cas:
    description:
      - CAs read where they live (a designated CA host, a Kubernetes Secret) - the results of
        M(securebydefault.pki.ca_info), optionally with a C(host) key naming the CA host for the report.
      - Their CA and CRL items are made from the public material alone.
    type: list
    elements: dict
    default: []
  rotation_states:
    description: State files of CA rotations. Unset means C(<CA path>.rotation.json) for each CA that has one.
    type: list
    elements: path
  nodes:
    description:
      - Per node - C(host), C(certificate) (the result of M(securebydefault.pki.certificate_info)) and C(keyrings)
        (a list of C({path, meta}) with the content of each keyring's C(.keyring.json)).
    type: list
    elements: dict
    default: []
  kubernetes:
    description:
      - Also list cert-manager Certificates and keyring Secrets
        (labelled C(app.kubernetes.io/managed-by=securebydefault.pki)).
    type: bool
    default: false
  namespaces:
    description: Namespaces to list; empty means all.
    type: list
    elements: str
    default: []
  warn_within:
    description: Items expiring or due within this time are C(due).
    type: str
    default: 30d
  report_path:
    description: Write the Markdown report here (atomically).
    type: path
attributes:
  check_mode:
    support: full
    description: Reads everything; writes no report file.
  diff_mode:
    support: none
    description: Nothing to diff.
"""

EXAMPLES = r"""
- name: The report, from what the nodes told
  securebydefault.pki.rotation_status:
    ca_paths: [/srv/pki/prod, /srv/pki/prod-2027]
    nodes:
      - host: node1.prod.example.internal
        certificate: {exists: true, not_after: "2027-02-01T00:00:00Z", issuer: "CN=prod CA", subject: "CN=node1"}
        keyrings: []
    kubernetes: true
    report_path: /srv/pki/status.md
  delegate_to: localhost
"""

RETURN = r"""
items:
  description: Every item, most urgent first - kind, name, where, expires, stage, status, next_action, next_due.
  returned: always
  type: list
  elements: dict
summary:
  description: Items per status.
  returned: always
  type: dict
  sample: {ok: 12, due: 1, expired: 0, missing: 0, blocked: 0, not_ready: 0}
report:
  description: The Markdown report.
  returned: always
  type: str
"""

import datetime
import json
import os
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import KUBERNETES_IMPORT_ERROR
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s_support import K8S_CONNECTION_SPEC, connect
from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import fail_pki
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import FileSpec, atomic_write
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import (
    isoformat, parse_duration, parse_isoformat, utcnow)

URGENCY = {"expired": 0, "missing": 1, "blocked": 2, "not_ready": 3, "due": 4, "ok": 5}
CRL_WARN = datetime.timedelta(days=3)  # the revoke module's default crl_renew_before


def _time(text):
    if not text:
        return None
    try:
        return parse_isoformat(str(text).replace("+00:00", "Z"))
    except ValueError:
        return None


def item(kind, name, where, expires=None, stage=None, next_action=None, next_due=None, status=None, note=""):
    return {"kind": kind, "name": name, "where": where, "expires": expires, "stage": stage,
            "next_action": next_action, "next_due": next_due, "status": status, "note": note}


def expiry_status(expires, now, warn):
    when = _time(expires)
    if when is None:
        return "ok"
    if when <= now:
        return "expired"
    return "due" if when - now <= warn else "ok"


def crl_item(data, where, now):
    """The CA's published CRL, if any: when it must be replaced (peers refuse everything after that)."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import revocation

    if data is None:
        return None
    summary = revocation.crl_summary(revocation.load_crl(data, "ca_paths"))
    status = expiry_status(summary["next_update"], now, CRL_WARN)
    return item("crl", "CRL %s (%d revoked)" % (summary["crl_number"], summary["revoked_count"]), where,
                summary["next_update"], status=status,
                next_action="publish a fresh CRL (playbooks/decommission.yml)" if status != "ok" else None)


def one_ca_items(issuer_pem, where, crl_pem, crl_where, now, warn):
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import describe, load_certificate

    info = describe(load_certificate(issuer_pem, "ca_paths"))
    status = expiry_status(info["not_after"], now, warn)
    out = [item("ca", info["subject"], where, info["not_after"], status=status,
                next_action="rotate the CA (role ca_rotation)" if status != "ok" else None)]
    crl = crl_item(crl_pem, crl_where, now)
    return out + ([crl] if crl is not None else [])


def ca_items(paths, cas, states, now, warn):
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import revocation
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import read_public
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import read_bytes

    out = []
    for path in paths:
        if not os.path.lexists(path):
            out.append(item("ca", "(no CA yet)", path, status="missing",
                            next_action="create the CA (playbooks/site.yml, role cluster_ca)"))
            continue
        crl_path = os.path.join(path, revocation.CRL)
        out += one_ca_items(read_public(path, "ca_paths")[0], path, read_bytes(crl_path), crl_path, now, warn)
    for index, info in enumerate(cas):
        public, location = info.get("public") or {}, info.get("location") or {}
        if not public.get("issuer"):
            raise PKIError("cas[%d]" % index, "has no public.issuer", "pass what securebydefault.pki.ca_info returned")
        secret = location.get("secret")
        where = "Secret %s/%s" % (secret["namespace"], secret["name"]) if secret else str(location.get("path"))
        if info.get("host"):
            where = "%s:%s" % (info["host"], where)
        crl = info.get("crl")
        out += one_ca_items(public["issuer"], where, crl.encode("ascii") if crl else None, where, now, warn)
    for path in states:
        with open(path) as handle:
            state = json.load(handle)
        stage = state.get("stage")
        entry = item("ca_rotation", "%s -> %s" % (state.get("old_ca_path"), state.get("new_ca_path")), path,
                     stage=stage, status="ok")
        if stage != "done":
            nxt = {"trust_both": "switched", "switched": "done"}.get(stage)
            entry.update(next_action="run ca_rotation (stage %s)" % nxt, status="due")
        out.append(entry)
    return out


def node_items(nodes, now, warn):
    out = []
    for node in nodes:
        host = str(node.get("host"))
        cert = node.get("certificate") or {}
        if cert:
            if not cert.get("exists", True):
                out.append(item("node_certificate", host, host, status="expired", note="no certificate",
                                next_action="issue (node_certificate)"))
            else:
                status = expiry_status(cert.get("not_after"), now, warn)
                reasons = cert.get("renewal_reasons") or cert.get("reasons") or []
                if reasons and status == "ok":
                    status = "due"
                out.append(item("node_certificate", cert.get("subject") or host, host, cert.get("not_after"),
                                status=status, note="; ".join(reasons),
                                next_action="renew (node_certificate)" if status != "ok" else None))
        for ring in node.get("keyrings") or []:
            meta = ring.get("meta") or {}
            stage = meta.get("stage")
            out.append(item("keyring", ring.get("path"), host, stage=stage, status="ok",
                            note="primary %s since %s" % (meta.get("primary"), (meta.get("stage_times") or {})
                                                          .get(stage or "")),
                            next_action={"added": "promote", "promoted": "retire"}.get(stage)))
    return out


def k8s_items(module, now, warn):
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import MANAGED_BY, namespaced_path
    kube = connect(module)
    out = []
    try:
        namespaces = module.params["namespaces"] or [None]
        for namespace in namespaces:
            listing = kube.get(namespaced_path("cert-manager.io/v1", "certificates", namespace)) or {}
            for cert in listing.get("items") or []:
                meta, status = cert["metadata"], cert.get("status") or {}
                ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                            for c in status.get("conditions") or [])
                state = "not_ready" if not ready else expiry_status(status.get("notAfter"), now, warn)
                out.append(item("cert_manager_certificate", meta["name"], meta["namespace"], status.get("notAfter"),
                                stage="revision %s" % status.get("revision"), status=state,
                                next_action="renewal by cert-manager", next_due=status.get("renewalTime")))
            selector = ",".join("%s=%s" % item for item in MANAGED_BY.items())
            secrets = kube.get(namespaced_path("v1", "secrets", namespace) + "?labelSelector=" + quote(selector)) or {}
            for secret in secrets.get("items") or []:
                annotations = secret["metadata"].get("annotations") or {}
                raw = annotations.get("keyring.securebydefault.pki/state")
                if not raw:
                    continue
                meta = json.loads(raw)
                stage = meta.get("stage")
                out.append(item("k8s_keyring", secret["metadata"]["name"], secret["metadata"]["namespace"],
                                stage=stage, status="ok",
                                note="primary %s; keys %s" % (meta.get("primary"), ", ".join(
                                    sorted((secret.get("data") or {}))).replace("\n", "")),
                                next_action={"added": "promote", "promoted": "retire"}.get(stage)))
    finally:
        kube.close()
    return out


def render(items, summary, now):
    lines = ["# Rotation status (%s)" % isoformat(now), "",
             ", ".join("%s: %d" % (k, summary[k]) for k in URGENCY), "",
             "| status | kind | name | where | expires | stage | next action | due | note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for entry in items:
        lines.append("| %s |" % " | ".join(str(entry.get(k) or "") .replace("|", "/") for k in (
            "status", "kind", "name", "where", "expires", "stage", "next_action", "next_due", "note")))
    return "\n".join(lines) + "\n"


def main():
    module = AnsibleModule(argument_spec=dict(
        K8S_CONNECTION_SPEC,
        ca_paths=dict(type="list", elements="path", default=[]),
        cas=dict(type="list", elements="dict", default=[]),
        rotation_states=dict(type="list", elements="path"),
        nodes=dict(type="list", elements="dict", default=[]),
        kubernetes=dict(type="bool", default=False),
        namespaces=dict(type="list", elements="str", default=[]),
        warn_within=dict(type="str", default="30d"),
        report_path=dict(type="path"),
    ), supports_check_mode=True)
    p = module.params
    try:
        now = utcnow()
        warn = parse_duration(p["warn_within"], "warn_within")
        states = p["rotation_states"]
        if states is None:
            states = [c.rstrip("/") + ".rotation.json" for c in p["ca_paths"]
                      if os.path.exists(c.rstrip("/") + ".rotation.json")]
        items = ca_items(p["ca_paths"], p["cas"], states, now, warn) + node_items(p["nodes"], now, warn)
        if p["kubernetes"]:
            if KUBERNETES_IMPORT_ERROR:
                raise PKIError("kubernetes", "the kubernetes Python package is missing", "pip install kubernetes")
            items += k8s_items(module, now, warn)
        items.sort(key=lambda e: (URGENCY.get(e["status"], 9), e.get("expires") or "9999", e["kind"], e["name"]))
        summary = {k: sum(1 for e in items if e["status"] == k) for k in URGENCY}
        report = render(items, summary, now)
        changed = False
        if p["report_path"]:
            try:
                with open(p["report_path"]) as handle:
                    old = handle.read()
            except FileNotFoundError:
                old = None
            # the first line carries the time; compare the rest
            changed = old is None or old.split("\n", 1)[-1] != report.split("\n", 1)[-1]
            if changed and not module.check_mode:
                atomic_write(FileSpec(p["report_path"], 0o644), report.encode(), public=True)
        module.exit_json(changed=changed, items=items, summary=summary, report=report)
    except PKIError as exc:
        fail_pki(module, exc)
    except (OSError, ValueError) as exc:
        fail_pki(module, PKIError("ca_paths", "cannot read: %s" % exc, "check the paths"))


if __name__ == "__main__":
    main()
