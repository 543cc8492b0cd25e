# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cert-manager use cases: ensure a Certificate, ensure an Issuer, re-issue what an issuer signed.

Each takes the runner's context and returns the module's result. Every
option is checked (k8s/certmanager.py) before the first request; references
(issuer, keystore password Secrets, a CA directory) are checked before
anything is applied. Objects are written by k8s/objects.ensure, so check
mode is the server's dry run and --diff compares what a user manages.
cryptography is imported only where a CA directory is read.
"""

from __future__ import annotations

import base64
import secrets
from typing import Dict, List, Optional, Tuple

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import certmanager as cm
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import objects
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import (
    namespaced_path,
    secret_where,
    without_managed_fields,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.labels import MANAGED_BY
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError


def conditions_text(obj: Optional[Dict]) -> str:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return (
        "; ".join("%s=%s (%s: %s)" % (c.get("type"), c.get("status"), c.get("reason"), c.get("message")) for c in conds)
        or "no conditions yet"
    )


def revision_of(obj: Optional[Dict]) -> int:
    return ((obj or {}).get("status") or {}).get("revision") or 0


# -- Certificate
def issuer_path(ref: Dict, namespace: str) -> str:
    if ref["kind"] == "ClusterIssuer":
        return namespaced_path(cm.API_VERSION, "clusterissuers", None, ref["name"])
    return namespaced_path(cm.API_VERSION, "issuers", namespace, ref["name"])


def check_references(ctx, spec: Dict, refs: List[Tuple[str, str, str, bool]], namespace: str) -> List[Tuple[str, str]]:
    """The issuer and keystore password Secrets must exist; returns the password Secrets to create.

    In check mode a missing issuer is a warning: the task that creates it only dry-ran before this one.
    """
    kube, ref = ctx.kube, spec["issuerRef"]
    if ref["group"] == cm.GROUP and kube.get(issuer_path(ref, namespace)) is None:
        where = "the cluster" if ref["kind"] == "ClusterIssuer" else "namespace %s" % namespace
        if not ctx.check_mode:
            raise PKIError(
                "issuer_name",
                "%s %r does not exist in %s" % (ref["kind"], ref["name"], where),
                "create it first (securebydefault.pki.cert_manager_issuer) or fix issuer_name/issuer_kind",
            )
        ctx.warn(
            "%s %r does not exist in %s yet (check mode): an earlier task would create it, or the real run "
            "fails here" % (ref["kind"], ref["name"], where)
        )
    missing = []
    for field, secret, key, create in refs:
        obj = kube.get(namespaced_path("v1", "secrets", namespace, secret))
        if obj is None and create:
            missing.append((secret, key))
        elif obj is None:
            raise PKIError(
                field,
                "Secret %r does not exist in namespace %s" % (secret, namespace),
                "create the keystore password Secret first, or set create_password_secret: true",
            )
        elif key not in (obj.get("data") or {}):
            raise PKIError(
                field.replace("_name", "_key"),
                "Secret %r has no key %r" % (secret, key),
                "store the password under that key or set password_secret_key",
            )
    return missing


def create_password_secrets(ctx, missing: List[Tuple[str, str]], namespace: str) -> None:
    """A random keystore password, made once; an existing password Secret is never changed."""
    for secret, key in missing:
        password = base64.b64encode(secrets.token_urlsafe(24).encode()).decode()
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": secret, "namespace": namespace, "labels": dict(MANAGED_BY)},
            "data": {key: password},
        }
        objects.ensure(
            ctx.kube,
            namespaced_path("v1", "secrets", namespace, secret),
            body,
            ctx.params,
            ctx.check_mode,
            field="keystores.password_secret_name",
            force=False,
            before=None,
        )


def renew_now(ctx, path: str, obj: Dict, timeout: int) -> Dict:
    """Ask cert-manager to issue again (as cmctl renew) and wait for a higher revision, Ready."""
    old = revision_of(obj)
    cm.request_issuing(ctx.kube, path, obj, "Certificate re-issuance requested by securebydefault.pki")
    done, after = ctx.kube.wait(path, lambda o: cm.is_ready(o) and revision_of(o) > old, timeout)
    if not done:
        raise PKIError(
            "renew",
            "no new revision after %ss (still %s): %s" % (timeout, old, conditions_text(after)),
            "check the issuer's conditions and cert-manager's log, or raise wait_timeout",
        )
    return after


def delete_object(ctx, plural: str, namespace: Optional[str], name: str) -> Dict:
    path = namespaced_path(cm.API_VERSION, plural, namespace, name)
    ctx.kube.require_api(cm.API_VERSION, plural, "cert-manager")
    deleted = objects.delete(ctx.kube, path, ctx.check_mode)
    result = dict(changed=deleted.changed)
    if deleted.changed:
        result["diff"] = deleted.diff()
    return result


def ensure_certificate(ctx) -> Dict:
    """The Certificate as the options describe it; renewed now if asked; Ready if waited for."""
    params = ctx.params
    namespace = cm.check_k8s_name(params["namespace"], "namespace")
    name = cm.check_k8s_name(params["name"], "name")
    if params["state"] == "absent":
        return delete_object(ctx, "certificates", namespace, name)
    spec, refs = cm.certificate_spec(params)
    kube = ctx.kube
    path = namespaced_path(cm.API_VERSION, "certificates", namespace, name)
    before = kube.get(path)
    if before is None:  # a 404 may mean "no such Certificate" or "no cert-manager at all"
        kube.require_api(cm.API_VERSION, "certificates", "cert-manager")
    missing = check_references(ctx, spec, refs, namespace)
    create_password_secrets(ctx, missing, namespace)
    body = {
        "apiVersion": cm.API_VERSION,
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    applied = objects.ensure(kube, path, body, params, ctx.check_mode, before=before)
    result = dict(
        changed=applied.changed or bool(missing),
        spec=spec,
        secret_name=spec["secretName"],
        password_secrets_created=[secret for secret, _key in missing],
    )
    if result["changed"]:
        result["diff"] = applied.diff()
    after = applied.after
    if params["renew"]:
        result["changed"] = True
        if before is not None and not ctx.check_mode:  # a new Certificate is issued anyway
            after = renew_now(ctx, path, after, params["wait_timeout"])
    if params["wait"] and not ctx.check_mode and not cm.is_ready(after):
        done, after = kube.wait(path, cm.is_ready, params["wait_timeout"])
        if not done:
            exc = PKIError(
                "wait_timeout",
                "Certificate %s/%s not Ready after %ss: %s"
                % (namespace, name, params["wait_timeout"], conditions_text(after)),
                "check the issuer (is it Ready?) and cert-manager's log, or raise wait_timeout",
            )
            exc.result = dict(certificate=without_managed_fields(after), ready=False)  # returned with the failure
            raise exc
    result.update(
        certificate=without_managed_fields(after),
        ready=cm.is_ready(after),
        revision=((after or {}).get("status") or {}).get("revision"),
    )
    return result


# -- Issuer
def ca_secret_data(path: str, passphrase: Optional[str]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """tls.crt (signing CA, then its root if it is an intermediate), tls.key (PKCS#8, clear), ca.crt (root)."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import describe, pem_of
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import load_ca
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import private_key_pem

    ca = load_ca(path, passphrase, field="ca_path", passphrase_field="ca_passphrase")
    chain = [ca.certificate] + list(ca.chain) + ([ca.root] if ca.root != ca.certificate else [])
    data = {
        "tls.crt": base64.b64encode(pem_of(chain).encode()).decode(),
        "tls.key": base64.b64encode(private_key_pem(ca.key)).decode(),
        "ca.crt": base64.b64encode(pem_of([ca.root]).encode()).decode(),
    }
    info = describe(ca.certificate)
    return data, {"subject": info["subject"], "fingerprint": info["fingerprint"]}


def secret_summary(obj: Optional[Dict]) -> Dict:
    """What --diff shows of a CA Secret: the certificate, never the key."""
    if obj is None:
        return {}
    data = obj.get("data") or {}
    return {
        "metadata": {"name": obj["metadata"]["name"], "namespace": obj["metadata"]["namespace"]},
        "type": obj.get("type"),
        "tls.crt": base64.b64decode(data.get("tls.crt", "")).decode(errors="replace"),
        "tls.key": "(hidden)" if data.get("tls.key") else None,
    }


def ensure_ca_secret(ctx, namespace: str) -> Tuple[Dict, Optional[Dict]]:
    """The issuer's CA Secret filled from ``ca_path``; a different CA there is kept unless replace_ca_secret."""
    params, kube = ctx.params, ctx.kube
    name = params["ca_secret_name"]
    data, info = ca_secret_data(params["ca_path"], params["ca_passphrase"])
    path = namespaced_path("v1", "secrets", namespace, name)
    before = kube.get(path)
    old = ((before or {}).get("data") or {}).get("tls.crt")
    if old and old != data["tls.crt"] and not params["replace_ca_secret"]:
        raise PKIError(
            "ca_secret_name",
            "Secret %s/%s already holds a different CA certificate" % (namespace, name),
            "choose another ca_secret_name, or set replace_ca_secret: true after saving the old "
            "key (everything that CA signed stops being trusted by pods that trust only the new one)",
        )
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "data": data,
    }
    applied = objects.ensure(kube, path, body, params, ctx.check_mode, field="ca_secret_name", before=before)
    summary = dict(info, name=name, namespace=namespace, changed=applied.changed)
    diff = applied.diff(secret_where(namespace, name), show=secret_summary) if applied.changed else None
    return summary, diff


def ensure_issuer(ctx) -> Dict:
    """The Issuer/ClusterIssuer (and its CA Secret from ca_path); Ready if waited for."""
    params = ctx.params
    cluster = params["kind"] == "ClusterIssuer"
    name = cm.check_k8s_name(params["name"], "name")
    namespace = None if cluster else cm.check_k8s_name(params["namespace"], "namespace")
    plural = "clusterissuers" if cluster else "issuers"
    if params["ca_path"] and params["type"] != "ca":
        raise PKIError("ca_path", "only applies to type ca", "set type: ca, or remove ca_path")
    if params["state"] == "absent":
        return delete_object(ctx, plural, namespace, name)
    spec = cm.issuer_spec(params)
    kube = ctx.kube
    kube.require_api(cm.API_VERSION, plural, "cert-manager")
    result: Dict = dict(changed=False, diff=[])
    if params["ca_path"]:
        result["ca_secret"], diff = ensure_ca_secret(
            ctx, params["cluster_resource_namespace"] if cluster else namespace
        )
        if diff:
            result["changed"] = True
            result["diff"].append(diff)
    metadata = dict(name=name, **({"namespace": namespace} if namespace else {}))
    path = namespaced_path(cm.API_VERSION, plural, namespace, name)
    applied = objects.ensure(
        kube,
        path,
        {"apiVersion": cm.API_VERSION, "kind": params["kind"], "metadata": metadata, "spec": spec},
        params,
        ctx.check_mode,
    )
    if applied.changed:
        result["changed"] = True
        result["diff"].append(dict(applied.diff(), before_header="%s %s" % (params["kind"], name)))
    after = applied.after
    if params["wait"] and not ctx.check_mode:
        # A CA Secret that was just replaced must be re-read by cert-manager: wait for that generation.
        done, after = kube.wait(path, cm.is_ready, params["wait_timeout"])
        if not done:
            cond = cm.condition(after, "Ready") or {}
            raise PKIError(
                "wait_timeout",
                "%s %s not Ready after %ss: %s"
                % (params["kind"], name, params["wait_timeout"], cond.get("message") or "no Ready condition yet"),
                "check the CA Secret (ca_secret_name) and cert-manager's log, or raise wait_timeout",
            )
    result.update(issuer=without_managed_fields(after), ready=cm.is_ready(after))
    return result


# -- Re-issue after a CA switch
def signed_by(pem: str, issuer) -> bool:
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import verify_signed_by
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificate

    try:
        return verify_signed_by(load_certificate(pem, "tls.crt"), issuer)
    except PKIError:
        return False


def tls_crt(kube, namespace: str, secret_name: str) -> str:
    secret = kube.get(namespaced_path("v1", "secrets", namespace, secret_name))
    data = ((secret or {}).get("data") or {}).get("tls.crt")
    return base64.b64decode(data).decode(errors="replace") if data else ""


def reissue(ctx) -> Dict:
    """Re-issue every Certificate of the issuer whose Secret is not signed by the CA in ca_path; wait for each."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificate
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import read_public

    params = ctx.params
    namespace = cm.check_k8s_name(params["namespace"], "namespace")
    issuer = load_certificate(read_public(params["ca_path"], "ca_path")[0], "ca_path")
    kube = ctx.kube
    kube.require_api(cm.API_VERSION, "certificates", "cert-manager")
    listing = kube.get(namespaced_path(cm.API_VERSION, "certificates", namespace)) or {}
    bundle = ""
    if params["bundle_configmap"]:
        configmap = kube.get(namespaced_path("v1", "configmaps", namespace, params["bundle_configmap"])) or {}
        bundle = (configmap.get("data") or {}).get("ca.crt", "")
    mine = [
        c
        for c in listing.get("items") or []
        if (c.get("spec") or {}).get("issuerRef", {}).get("name") == params["issuer_name"]
        and (c.get("spec") or {}).get("issuerRef", {}).get("kind", "Issuer") == params["issuer_kind"]
    ]
    pems = {c["metadata"]["name"]: tls_crt(kube, namespace, c["spec"]["secretName"]) for c in mine}
    due = [c for c in mine if not signed_by(pems[c["metadata"]["name"]], issuer)]
    report = [
        {"name": c["metadata"]["name"], "revision": (c.get("status") or {}).get("revision"), "reissued": c in due}
        for c in mine
    ]
    if not ctx.check_mode:
        for cert in due:
            path = namespaced_path(cm.API_VERSION, "certificates", namespace, cert["metadata"]["name"])
            cm.request_issuing(kube, path, cert, "Re-issued by securebydefault.pki after a CA switch")
        for cert, entry in zip(mine, report):
            if entry["reissued"]:
                entry["revision"] = wait_reissued(ctx, cert, issuer, pems)
    evidence = [
        {
            "host": "k8s:%s/%s" % (namespace, c["metadata"]["name"]),
            "certificate": pems[c["metadata"]["name"]],
            "bundle": bundle,
        }
        for c in mine
    ]
    return dict(
        changed=bool(due), certificates=report, reissued=[c["metadata"]["name"] for c in due], evidence=evidence
    )


def wait_reissued(ctx, cert: Dict, issuer, pems: Dict[str, str]) -> Optional[int]:
    """Wait until ``cert`` is Ready at a higher revision and its Secret is signed by ``issuer``; its revision."""
    params, kube = ctx.params, ctx.kube
    namespace, name = cert["metadata"]["namespace"], cert["metadata"]["name"]
    old = revision_of(cert)

    def reissued(obj):
        if not (cm.is_ready(obj) and revision_of(obj) > old):
            return False
        pems[name] = tls_crt(kube, namespace, obj["spec"]["secretName"])  # kept for the evidence
        return signed_by(pems[name], issuer)

    done, now = kube.wait(
        namespaced_path(cm.API_VERSION, "certificates", namespace, name), reissued, params["wait_timeout"]
    )
    if not done:
        raise PKIError(
            "wait_timeout",
            "Certificate %s/%s was not re-issued by the new CA within %ss" % (namespace, name, params["wait_timeout"]),
            "check that issuer %s uses the new CA Secret and is Ready" % params["issuer_name"],
        )
    return (now.get("status") or {}).get("revision")
