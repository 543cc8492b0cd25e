# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rotation of a CA Issuer whose CA cert-manager issued (self-signed ClusterIssuer -> CA Certificate -> Issuer).

cert-manager renews such a CA in place: the Issuer signs with the new key at once, while pods still trust
only the old one. Here the rotation is staged instead, each stage gated on time and on evidence read from
the cluster (never on the stage recorded alone):

- trust_both: a second CA Certificate (``new_ca_certificate``, a copy of the old one's spec with its own
  Secret) is issued; the trust bundle holds the old and the new root.
- switched: once the bundle in the Issuer's namespace holds the new root (and every selected namespace, with
  trust-manager) and ``switch_after`` has passed, the Issuer signs with the new CA and every Certificate
  of the Issuer is re-issued from it.
- done: once every Certificate of the Issuer chains to the new CA and ``drop_after`` has passed, the bundle
  holds the new root alone and the old CA Certificate (and, by default, its Secret with the old key) is deleted.

The stage and its start are recorded in an annotation of the Issuer.
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Dict, List, Optional, Tuple

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager as cm_ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.k8s_objects import deliver_roots
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import certmanager as cm
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import objects
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import namespaced_path
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.labels import CA_ROTATION
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_duration

ANNOTATION = CA_ROTATION
STAGES = ("none", "trust_both", "switched", "done")
# What a copy of the old CA Certificate keeps: everything that makes it that CA, not where it is stored.
_NOT_COPIED = ("secretName",)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _stamp(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_stamp(text: str) -> Optional[datetime.datetime]:
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def _secret_certs(kube, namespace: str, name: str, field: str) -> Tuple[List, List]:
    """(tls.crt certificates, ca.crt certificates) of a CA Secret; each list may be empty."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificates

    secret = kube.get(namespaced_path("v1", "secrets", namespace, name))
    if secret is None:
        raise PKIError(field, "Secret %s/%s does not exist" % (namespace, name), "let cert-manager issue it first")
    data = secret.get("data") or {}

    def certs(key):
        try:
            return load_certificates(base64.b64decode(data.get(key) or ""), field)
        except (PKIError, ValueError):
            return []

    return certs("tls.crt"), certs("ca.crt")


def _root(kube, namespace: str, secret: str, field: str):
    """(signing CA certificate, root) of a CA Secret: tls.crt's first certificate, ca.crt's (itself if none)."""
    tls, ca = _secret_certs(kube, namespace, secret, field)
    if not tls:
        raise PKIError(
            field,
            "Secret %s/%s holds no CA certificate in tls.crt" % (namespace, secret),
            "wait until cert-manager has issued it",
        )
    return tls[0], (ca[0] if ca else tls[0])


def _pem(cert) -> str:
    # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM).decode()


def _roots_text(certs) -> Tuple[str, List[str]]:
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import fingerprint

    pem, prints = "", []
    for cert in certs:
        digest = fingerprint(cert)
        if digest not in prints:
            pem += _pem(cert)
            prints.append(digest)
    return pem, prints


class _Rotation:
    """One run: reads, checks, then advances as far as the gates and ``stage`` allow."""

    def __init__(self, ctx):
        self.ctx, self.kube, self.params = ctx, ctx.kube, ctx.params
        params = self.params
        self.namespace = cm.check_k8s_name(params["namespace"], "namespace")
        self.issuer = cm.check_k8s_name(params["issuer"], "issuer")
        self.new = cm.check_k8s_name(params["new_ca_certificate"], "new_ca_certificate")
        self.switch_after = parse_duration(params["switch_after"], "switch_after", allow_zero=True)
        self.drop_after = parse_duration(params["drop_after"], "drop_after", allow_zero=True)
        self.bundle = cm.check_k8s_name(params["bundle"], "bundle")
        self.issuer_path = namespaced_path(cm.API_VERSION, "issuers", self.namespace, self.issuer)
        self.log: List[str] = []
        self.changed = False

    def cert_path(self, name: str) -> str:
        return namespaced_path(cm.API_VERSION, "certificates", self.namespace, name)

    # -- reading
    def read(self) -> None:
        kube = self.kube
        kube.require_api(cm.API_VERSION, "issuers", "cert-manager")
        self.issuer_obj = kube.get(self.issuer_path)
        if self.issuer_obj is None:
            raise PKIError(
                "issuer",
                "Issuer %s/%s does not exist" % (self.namespace, self.issuer),
                "name the CA Issuer whose CA cert-manager issued",
            )
        ca = (self.issuer_obj.get("spec") or {}).get("ca") or {}
        if not ca.get("secretName"):
            raise PKIError(
                "issuer",
                "%s/%s is not a CA Issuer" % (self.namespace, self.issuer),
                "only a CA Issuer (spec.ca.secretName) has a CA to rotate",
            )
        self.current_secret = ca["secretName"]
        raw = ((self.issuer_obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
        state = {}
        if raw:
            try:
                state = json.loads(raw)
            except ValueError:
                state = {}
        if state.get("to") == self.new and state.get("stage") in STAGES[1:] and state.get("from"):
            self.state = state
        else:
            self.state = {"stage": "none"}
        listing = kube.get(namespaced_path(cm.API_VERSION, "certificates", self.namespace)) or {}
        by_name = {c["metadata"]["name"]: c for c in listing.get("items") or []}
        self.new_obj = by_name.get(self.new)
        if self.state["stage"] == "none":
            if self.current_secret == self.new:
                raise PKIError(
                    "new_ca_certificate",
                    "the Issuer already signs with %s, and no rotation to it is recorded" % self.new,
                    "name a new CA Certificate to rotate to",
                )
            owners = [
                c
                for c in by_name.values()
                if (c.get("spec") or {}).get("secretName") == self.current_secret and (c.get("spec") or {}).get("isCA")
            ]
            if len(owners) != 1:
                raise PKIError(
                    "issuer",
                    "its CA Secret %s is not kept by exactly one cert-manager CA Certificate in %s"
                    % (self.current_secret, self.namespace),
                    "rotate a CA kept in a CA directory with the ca_rotation role instead",
                )
            self.old = owners[0]["metadata"]["name"]
            if self.old == self.new:
                raise PKIError("new_ca_certificate", "is the Issuer's current CA Certificate", "choose a new name")
            # an existing one is taken only if it is what this rotation makes (a run that stopped after making it)
            if self.new_obj is not None and (self.new_obj.get("spec") or {}) != self.new_spec(by_name[self.old]):
                raise PKIError(
                    "new_ca_certificate",
                    "Certificate %s/%s exists and is not a copy of %s with its own Secret"
                    % (self.namespace, self.new, self.old),
                    "choose another name, or delete it",
                )
            if self.new in {
                (c.get("spec") or {}).get("secretName") for c in by_name.values() if c["metadata"]["name"] != self.new
            }:
                raise PKIError(
                    "new_ca_certificate",
                    "Secret %s/%s belongs to another Certificate" % (self.namespace, self.new),
                    "choose another name",
                )
        else:  # the annotation is as trustworthy as write access to the Issuer: checked like an option
            self.old = cm.check_k8s_name(str(self.state["from"]), "issuer")
        self.old_obj = by_name.get(self.old)
        if self.old_obj is not None and not (self.old_obj.get("spec") or {}).get("isCA"):
            raise PKIError(
                "issuer",
                "the recorded old CA Certificate %s/%s is not a CA" % (self.namespace, self.old),
                "fix or remove the %s annotation of the Issuer" % ANNOTATION,
            )
        if self.old_obj is None and self.state["stage"] != "done":
            raise PKIError(
                "issuer",
                "the old CA Certificate %s/%s is gone before the rotation is done" % (self.namespace, self.old),
                "recreate it, or finish with stage=done and force=true",
            )

    # -- the stages
    def record(self, stage: str) -> None:
        self.state = {"from": self.old, "to": self.new, "stage": stage, "since": _stamp(_now())}
        if self.ctx.check_mode:
            return
        patch = {
            "metadata": {
                "resourceVersion": self.issuer_obj["metadata"]["resourceVersion"],
                "annotations": {ANNOTATION: json.dumps(self.state, sort_keys=True)},
            }
        }
        status, reply = self.kube.request(
            "PATCH", self.issuer_path, body=patch, content_type="application/merge-patch+json"
        )
        self.kube.check(status, reply, "record the rotation stage on", self.issuer_path, field="issuer")
        self.issuer_obj = reply

    def trust(self, roots) -> Dict:
        pem, prints = _roots_text(roots)
        params = dict(self.params)
        if not params.get("namespace_selector") and not params.get("namespaces"):
            params["namespaces"] = [self.namespace]  # no wider than a ConfigMap in the Issuer's namespace
        result = deliver_roots(self.ctx, params, self.bundle, self.namespace, lambda: (pem, prints))
        self.changed |= result["changed"]
        return result

    def new_spec(self, old: Dict) -> Dict:
        """The old CA Certificate's spec with the new Secret: a role that applies it later under the new name
        changes nothing and cert-manager issues nothing (no label either: the role's apply would remove it). Both
        roots share a subject unless ``common_name``; clients tell them apart by their key identifiers."""
        spec = {k: v for k, v in (old.get("spec") or {}).items() if k not in _NOT_COPIED}
        spec["secretName"] = self.new
        if self.params.get("common_name"):
            spec["commonName"] = self.params["common_name"]
        return spec

    def issue_new_ca(self):
        """The new CA Certificate: the old one's spec with its own Secret; waited for until issued."""
        if self.ctx.check_mode and self.new_obj is None:
            return None
        spec = self.new_spec(self.old_obj)
        body = {
            "apiVersion": cm.API_VERSION,
            "kind": "Certificate",
            "metadata": {"name": self.new, "namespace": self.namespace},
            "spec": spec,
        }
        applied = objects.ensure(
            self.kube, self.cert_path(self.new), body, self.params, self.ctx.check_mode, field="new_ca_certificate"
        )
        self.changed |= applied.changed
        if self.ctx.check_mode:
            return None
        done, after = self.kube.wait(self.cert_path(self.new), cm.is_issued, self.params["wait_timeout"])
        if not done:
            raise PKIError(
                "wait_timeout",
                "CA Certificate %s/%s not issued after %ss: %s"
                % (self.namespace, self.new, self.params["wait_timeout"], cm_ops.conditions_text(after)),
                "check its issuer %s" % (spec.get("issuerRef") or {}).get("name"),
            )
        return _root(self.kube, self.namespace, self.new, "new_ca_certificate")

    def bundle_holds(self, root) -> bool:
        # pylint: disable=import-outside-toplevel
        from ansible_collections.securebydefault.pki.plugins.module_utils._ops.trust_manager import fingerprints_of
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import fingerprint

        configmap = self.kube.get(namespaced_path("v1", "configmaps", self.namespace, self.bundle)) or {}
        return fingerprint(root) in fingerprints_of((configmap.get("data") or {}).get(self.params["key"], ""))

    def waited(self, gate: datetime.timedelta) -> bool:
        since = _parse_stamp(self.state.get("since"))
        return self.params["force"] or (since is not None and _now() - since >= gate)

    def run(self) -> Dict:
        self.read()
        wanted = self.params["stage"]
        limit = STAGES.index(wanted) if wanted != "auto" else len(STAGES) - 1
        start = self.state["stage"]
        reissued: List[str] = []
        new_pair = None

        # trust_both: the new CA exists, pods trust both (re-applied on every run before done: idempotent)
        if self.state["stage"] in ("none", "trust_both") and limit >= 1:
            new_pair = self.issue_new_ca()
            old_pair = _root(self.kube, self.namespace, self.old_obj["spec"]["secretName"], "issuer")
            roots = [old_pair[1]] + ([new_pair[1]] if new_pair else [])
            self.trust(roots)
            if self.state["stage"] == "none":
                self.record("trust_both")
                self.changed = True
                self.log.append("trust_both: %s issued, the bundle holds both roots" % self.new)
        if new_pair is None and self.state["stage"] != "none" and not self.ctx.check_mode:
            new_pair = _root(self.kube, self.namespace, self.new, "new_ca_certificate")

        # switched: gated on the time and on the bundle holding the new root
        if self.state["stage"] == "trust_both" and limit >= 2 and new_pair is not None:
            if not self.waited(self.switch_after):
                self.log.append(
                    "switched: waiting for switch_after (%s) since %s"
                    % (self.params["switch_after"], self.state.get("since"))
                )
            elif not self.bundle_holds(new_pair[1]):
                self.log.append(
                    "switched: the bundle %s/%s does not hold the new root yet" % (self.namespace, self.bundle)
                )
            else:
                self.switch_issuer()
                result = cm_ops.reissue_under(
                    self.ctx, self.namespace, (self.issuer, "Issuer"), [new_pair[0]], None, self.params["wait_timeout"]
                )
                reissued = result["reissued"]
                self.record("switched")
                self.changed = True
                self.log.append(
                    "switched: the Issuer signs with %s; re-issued %d Certificate(s)" % (self.new, len(reissued))
                )

        # done: gated on the time and on every Certificate of the Issuer chaining to the new CA
        if self.state["stage"] == "switched" and limit >= 3 and new_pair is not None:
            pending = self.pending(new_pair[0]) if self.waited(self.drop_after) else None
            if pending is None:
                self.log.append(
                    "done: waiting for drop_after (%s) since %s" % (self.params["drop_after"], self.state.get("since"))
                )
            elif pending:
                self.log.append("done: not yet re-issued from the new CA: %s" % ", ".join(pending))
            else:
                self.trust([new_pair[1]])
                self.retire_old()
                self.record("done")
                self.changed = True
                self.log.append("done: the bundle holds the new root alone; %s retired" % self.old)
        elif self.state["stage"] == "done" and new_pair is not None:
            self.trust([new_pair[1]])  # a rerun: the bundle as done left it

        result = dict(
            changed=self.changed,
            stage=self.state["stage"],
            previous_stage=start,
            old_ca_certificate=self.old,
            new_ca_certificate=self.new,
            reissued=reissued,
            log=self.log,
        )
        if new_pair is not None:
            result["new_root_fingerprint"] = _roots_text([new_pair[1]])[1][0]
        return result

    def switch_issuer(self) -> None:
        body = {
            "apiVersion": cm.API_VERSION,
            "kind": "Issuer",
            "metadata": {"name": self.issuer, "namespace": self.namespace},
            "spec": {"ca": {"secretName": self.new}},
        }
        objects.ensure(self.kube, self.issuer_path, body, self.params, self.ctx.check_mode, field="issuer")
        if self.ctx.check_mode:
            return
        done, after = self.kube.wait(self.issuer_path, cm.is_ready, self.params["wait_timeout"])
        if not done:
            raise PKIError(
                "wait_timeout",
                "Issuer %s/%s not Ready on %s: %s"
                % (self.namespace, self.issuer, self.new, cm_ops.conditions_text(after)),
                "check cert-manager's log",
            )
        self.issuer_obj = after

    def pending(self, new_ca) -> List[str]:
        """The Certificates of the Issuer whose Secret does not hold a certificate of ``new_ca`` yet."""
        mine, pems = cm_ops.certificates_of(self.kube, self.namespace, (self.issuer, "Issuer"))
        return [c["metadata"]["name"] for c in mine if not cm_ops.signed_by(pems[c["metadata"]["name"]], [new_ca])]

    def retire_old(self) -> None:
        if self.old_obj is not None:
            objects.delete(self.kube, self.cert_path(self.old), self.ctx.check_mode)
        if self.params["delete_old_ca_secret"]:
            name = (self.old_obj or {}).get("spec", {}).get("secretName") or self.old
            issuers = self.kube.get(namespaced_path(cm.API_VERSION, "issuers", self.namespace)) or {}
            users = [
                i["metadata"]["name"]
                for i in issuers.get("items") or []
                if ((i.get("spec") or {}).get("ca") or {}).get("secretName") == name
            ]
            if users:  # another Issuer still signs with the old CA: its key stays
                self.log.append("done: Secret %s kept, Issuer(s) %s still use it" % (name, ", ".join(users)))
                return
            objects.delete(self.kube, namespaced_path("v1", "secrets", self.namespace, name), self.ctx.check_mode)


def rotate_ca_issuer(ctx) -> Dict:
    return _Rotation(ctx).run()
