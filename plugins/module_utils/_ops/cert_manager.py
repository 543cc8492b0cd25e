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
import time
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

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


def check_references(
    ctx,
    spec: Dict,
    refs: List[Tuple[str, str, str, bool]],
    namespace: str,
    issuers: Optional[Dict[str, bool]] = None,
) -> List[Tuple[str, str]]:
    """The issuer and keystore password Secrets must exist; returns the password Secrets to create.

    In check mode a missing issuer is a warning: the task that creates it only dry-ran before this one.
    ``issuers`` remembers which issuers exist across the Certificates of one run.
    """
    kube, ref = ctx.kube, spec["issuerRef"]
    known = {} if issuers is None else issuers
    where_issuer = issuer_path(ref, namespace)
    if ref["group"] == cm.GROUP and where_issuer not in known:
        known[where_issuer] = kube.get(where_issuer) is not None
    if ref["group"] == cm.GROUP and not known[where_issuer]:
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
    """A random keystore password, made once; an existing password Secret is never changed. One Secret asked for
    by several Certificates (or under several keys) is made once, with every key."""
    keys: Dict[str, List[str]] = {}
    for secret, key in missing:
        keys.setdefault(secret, [])
        if key not in keys[secret]:
            keys[secret].append(key)
    for secret, names in keys.items():
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": secret, "namespace": namespace, "labels": dict(MANAGED_BY)},
            "data": {key: base64.b64encode(secrets.token_urlsafe(24).encode()).decode() for key in names},
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


@dataclass
class _Plan:
    """One Certificate checked and read, before anything is written."""

    params: Dict
    namespace: str
    name: str
    path: str
    spec: Dict
    before: Optional[Dict]
    missing: List[Tuple[str, str]]


def _plan(ctx, params: Dict, issuers: Optional[Dict[str, bool]] = None, listed=None) -> _Plan:
    """Check one Certificate's options and references and read it (no write; ``listed``: as already read)."""
    namespace = cm.check_k8s_name(params["namespace"], "namespace")
    name = cm.check_k8s_name(params["name"], "name")
    spec, refs = cm.certificate_spec(params)
    path = namespaced_path(cm.API_VERSION, "certificates", namespace, name)
    before = ctx.kube.get(path) if listed is None else listed.get(name)
    if before is None and listed is None:  # a 404 may mean "no such Certificate" or "no cert-manager at all"
        ctx.kube.require_api(cm.API_VERSION, "certificates", "cert-manager")
    missing = check_references(ctx, spec, refs, namespace, issuers)
    return _Plan(params, namespace, name, path, spec, before, missing)


def _apply(ctx, plan: _Plan, params: Dict) -> Tuple[Dict, Optional[Dict]]:
    """Apply the Certificate server-side (its password Secrets made before); (result, object after)."""
    body = {
        "apiVersion": cm.API_VERSION,
        "kind": "Certificate",
        "metadata": {"name": plan.name, "namespace": plan.namespace},
        "spec": plan.spec,
    }
    # a Certificate already as asked, applied by this field manager, is not applied again (a rerun of many)
    applied = objects.ensure(ctx.kube, plan.path, body, params, ctx.check_mode, before=plan.before, skip_unchanged=True)
    result = dict(
        changed=applied.changed or bool(plan.missing),
        spec=plan.spec,
        secret_name=plan.spec["secretName"],
        password_secrets_created=[secret for secret, _key in plan.missing],
    )
    if result["changed"]:
        result["diff"] = applied.diff()
    after = applied.after
    if plan.params["renew"]:
        result["changed"] = True
        if plan.before is not None and not ctx.check_mode:  # a new Certificate is issued anyway
            after = renew_now(ctx, plan.path, after, params["wait_timeout"])
    return result, after


def _finish(result: Dict, after: Optional[Dict]) -> Dict:
    result.update(
        certificate=without_managed_fields(after),
        ready=cm.is_issued(after),
        revision=((after or {}).get("status") or {}).get("revision"),
    )
    return result


def ensure_certificate(ctx) -> Dict:
    """The Certificate as the options describe it; renewed now if asked; Ready if waited for."""
    params = ctx.params
    if params["state"] == "absent":
        namespace = cm.check_k8s_name(params["namespace"], "namespace")
        return delete_object(ctx, "certificates", namespace, cm.check_k8s_name(params["name"], "name"))
    plan = _plan(ctx, params)
    create_password_secrets(ctx, plan.missing, plan.namespace)
    result, after = _apply(ctx, plan, params)
    if params["wait"] and not ctx.check_mode and not cm.is_issued(after):
        done, after = ctx.kube.wait(plan.path, cm.is_issued, params["wait_timeout"])
        if not done:
            exc = PKIError(
                "wait_timeout",
                "Certificate %s/%s not Ready after %ss: %s"
                % (plan.namespace, plan.name, params["wait_timeout"], conditions_text(after)),
                "check the issuer (is it Ready?) and cert-manager's log, or raise wait_timeout",
            )
            exc.result = dict(certificate=without_managed_fields(after), ready=False)  # returned with the failure
            raise exc
    return _finish(result, after)


def item_params(ctx, where: str, item) -> Dict:
    """One Certificate given as a mapping (an item of ``certificates``; ``where`` names it) checked against the
    options of cert_manager_certificate."""
    # pylint: disable=import-outside-toplevel
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.cert_manager_spec import CERTIFICATE_SPEC

    if not isinstance(item, dict):
        raise PKIError(where, "is not a mapping", "give each Certificate as a mapping of its options")
    validated = ArgumentSpecValidator(CERTIFICATE_SPEC, required_if=[("state", "present", ["issuer_name"])]).validate(
        item
    )
    if validated.error_messages:
        raise PKIError(
            where,
            "; ".join(validated.error_messages),
            "give each item the options of securebydefault.pki.cert_manager_certificate (no connection options, "
            "no wait or wait_timeout: they apply to all)",
        )
    for deprecation in getattr(validated, "_deprecations", []):  # aliases given in an item
        ctx.warn("%s: %s" % (where, deprecation.get("msg")))
    return dict(validated.validated_parameters)


def ensure_certificates(ctx, interval: float = 0.5) -> Dict:
    """Many Certificates in one run: all checked before any write, applied, then waited for together (asking every
    ``interval`` seconds)."""
    params = ctx.params
    connection = {k: v for k, v in params.items() if k not in ("certificates", "wait", "wait_timeout")}
    items = [
        dict(connection, **item_params(ctx, "certificates[%d]" % i, item))
        for i, item in enumerate(params["certificates"])
    ]
    batch = plan_batch(ctx, items, params["wait_timeout"])
    apply_batch(ctx, batch)
    return finish_batch(ctx, batch, params["wait"], params["wait_timeout"], interval)


@dataclass
class Batch:
    """Certificates of one run (each item checked by ``item_params``): read and planned, then applied."""

    items: List[Dict]
    plans: List[Optional[_Plan]]
    wait_timeout: int
    results: List[Dict] = dataclasses.field(default_factory=list)
    afters: List[Optional[Dict]] = dataclasses.field(default_factory=list)


def plan_batch(ctx, items: List[Dict], wait_timeout: int, issuers: Optional[Dict[str, bool]] = None) -> Batch:
    """Every check and read of ``items``, nothing written: each namespace's Certificates are read with one list.
    ``issuers`` may say which issuers exist (or are made by this run before the Certificates are applied)."""
    kube = ctx.kube
    seen: Dict[Tuple[str, str], int] = {}
    for index, item in enumerate(items):
        key = (item["namespace"], item["name"])
        if key in seen:
            raise PKIError(
                "certificates[%d].name" % index,
                "Certificate %s/%s is also certificates[%d]" % (key[0], key[1], seen[key]),
                "list each Certificate once",
            )
        seen[key] = index
    known: Dict[str, bool] = {} if issuers is None else issuers
    listings: Dict[str, Dict[str, Dict]] = {}  # the Certificates of each namespace, read once
    plans: List[Optional[_Plan]] = []
    for index, item in enumerate(items):
        try:
            namespace = cm.check_k8s_name(item["namespace"], "namespace")
            cm.check_k8s_name(item["name"], "name")
            if item["state"] == "absent":
                plans.append(None)
                continue
            if namespace not in listings:
                listing = kube.get(namespaced_path(cm.API_VERSION, "certificates", namespace))
                if listing is None:
                    kube.require_api(cm.API_VERSION, "certificates", "cert-manager")
                listings[namespace] = {
                    (o.get("metadata") or {}).get("name"): o for o in (listing or {}).get("items") or []
                }
            plans.append(_plan(ctx, dict(item, wait_timeout=wait_timeout), known, listings[namespace]))
        except PKIError as exc:
            raise exc.within("certificates[%d]" % index) from None
    return Batch(items, plans, wait_timeout)


def apply_batch(ctx, batch: Batch) -> None:
    """The keystore password Secrets first, each once (Certificates may share one), then the Certificates side by
    side. If any fails, the others are still written: the error says which were and that something changed."""
    items, plans = batch.items, batch.plans
    passwords: Dict[str, List[Tuple[str, str]]] = {}
    for plan in plans:
        if plan is not None:
            passwords.setdefault(plan.namespace, []).extend(plan.missing)
    for namespace, missing in passwords.items():
        if missing:
            create_password_secrets(ctx, missing, namespace)

    def apply(index: int) -> Tuple[Dict, Optional[Dict]]:
        item, plan = items[index], plans[index]
        if plan is None:
            result, after = delete_object(ctx, "certificates", item["namespace"], item["name"]), None
        else:
            result, after = _apply(ctx, plan, dict(item, wait_timeout=batch.wait_timeout))
        result.update(name=item["name"], namespace=item["namespace"])
        return result, after

    outcomes = _side_by_side(apply, len(items))
    failures = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, PKIError)]
    if failures:
        index, exc = failures[0]
        done = [o[0] for o in outcomes if not isinstance(o, PKIError)]
        failed = exc.within("certificates[%d]" % index)
        failed.result = dict(
            changed=any(r["changed"] for r in done),
            certificates=done,
            not_applied=["%s/%s" % (items[i]["namespace"], items[i]["name"]) for i, _exc in failures],
        )
        raise failed from None
    batch.results = [o[0] for o in outcomes]
    batch.afters = [o[1] for o in outcomes]


def finish_batch(ctx, batch: Batch, wait: bool, timeout: int, interval: float = 0.5) -> Dict:
    """The applied Certificates waited for together (when ``wait``), and the result; a PKIError naming
    wait_timeout if some are not Ready in time."""
    items, plans, results = batch.items, batch.plans, batch.results
    afters = batch.afters
    waiting = [
        i for i, plan in enumerate(plans) if plan is not None and not ctx.check_mode and not cm.is_issued(afters[i])
    ]
    if wait and waiting:
        afters = _wait_all(ctx.kube, items, afters, waiting, timeout, interval)
    for index, plan in enumerate(plans):
        if plan is not None:
            _finish(results[index], afters[index])
    late = [i for i in waiting if not cm.is_issued(afters[i])] if wait else []
    summary = dict(
        changed=any(r["changed"] for r in results),
        certificates=results,
        ready=all(r.get("ready", True) for r in results),
        diff=[
            dict(r["diff"], before_header="Certificate %s/%s" % (r["namespace"], r["name"]))
            for r in results
            if r.get("diff")
        ],
    )
    if late:
        exc = PKIError(
            "wait_timeout",
            "%d of %d Certificates not Ready after %ss: %s"
            % (
                len(late),
                len(waiting),
                timeout,
                "; ".join(
                    "%s/%s %s" % (items[i]["namespace"], items[i]["name"], conditions_text(afters[i]))
                    for i in late[:10]
                ),
            ),
            "check the issuers (are they Ready?) and cert-manager's log, or raise wait_timeout",
        )
        exc.result = summary
        raise exc
    return summary


# how many Certificates are applied at once: the API server answers requests side by side (the floor of the bulk
# benchmark applies one after the other); few enough not to crowd the client's connection pool or the server
APPLY_WORKERS = 8


def _side_by_side(work: Callable[[int], Any], count: int) -> List[Any]:
    """``work(i)`` for i in range(count), up to APPLY_WORKERS at once; each outcome in order (a PKIError raised by
    one is its outcome: the others still run)."""

    def outcome(index: int):
        try:
            return work(index)
        except PKIError as exc:
            return exc

    if count <= 1:
        return [outcome(i) for i in range(count)]
    from concurrent.futures import ThreadPoolExecutor  # pylint: disable=import-outside-toplevel

    with ThreadPoolExecutor(max_workers=min(APPLY_WORKERS, count)) as pool:
        return list(pool.map(outcome, range(count)))


def _wait_all(
    kube, items: List[Dict], afters: List[Optional[Dict]], waiting: List[int], timeout: int, interval: float = 0.5
) -> List[Optional[Dict]]:
    """Wait for every Certificate in ``waiting`` at once (cert-manager issues them side by side): one list
    request per namespace and round, within one deadline for all."""
    afters = list(afters)
    deadline = time.monotonic() + timeout
    for namespace in sorted({items[i]["namespace"] for i in waiting}):
        mine = [i for i in waiting if items[i]["namespace"] == namespace]

        def all_ready(listing, mine=mine):
            by_name = {(o.get("metadata") or {}).get("name"): o for o in (listing or {}).get("items") or []}
            for i in mine:
                afters[i] = by_name.get(items[i]["name"], afters[i])
            return all(cm.is_issued(afters[i]) for i in mine)

        kube.wait(
            namespaced_path(cm.API_VERSION, "certificates", namespace),
            all_ready,
            max(deadline - time.monotonic(), 0),
            interval,
        )
    return afters


# -- Issuer
def ca_secret_data(store, passphrase: Optional[str]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """tls.crt (signing CA, then its root if it is an intermediate), tls.key (PKCS#8, clear), ca.crt (root).

    ``store``: where the Ansible CA is kept (ca_path or ca_secret).
    """
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import describe, pem_of
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import load_ca_in
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import private_key_pem

    ca = load_ca_in(store, passphrase)
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


def _secret_certificates(obj: Optional[Dict]) -> Tuple[Optional[List], Optional[bytes]]:
    """(certificates in tls.crt, tls.key bytes) of a Secret as read: ([], None) when it holds none,
    (None, None) when it holds something that does not parse (never overwritten without replace_ca_secret)."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificates

    data = (obj or {}).get("data") or {}
    if not data.get("tls.crt"):
        return [], None
    try:
        certs = load_certificates(base64.b64decode(data.get("tls.crt") or ""), "tls.crt")
        key = base64.b64decode(data.get("tls.key") or "")
    except (PKIError, ValueError):
        return None, None
    return (certs or None), key


def _refuse_other_ca(namespace: str, name: str) -> PKIError:
    return PKIError(
        "ca_secret_name",
        "Secret %s/%s already holds a different CA certificate" % (namespace, name),
        "choose another ca_secret_name, or set replace_ca_secret: true after saving the old "
        "key (everything that CA signed stops being trusted by pods that trust only the new one)",
    )


def intermediate_secret_data(ctx, namespace: str, name: str, before: Optional[Dict]) -> Tuple[Dict, Dict]:
    """The Secret's data with a per-issuer intermediate of the CA in ca_path (kept while still good)."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import issuer_ca
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import (
        describe,
        load_certificate,
        pem_of,
    )
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import public_in
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import private_key_pem
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import (
        isoformat,
        not_valid_after,
        parse_duration,
        utcnow,
    )

    params, store = ctx.params, ctx.store
    now = utcnow()
    signing_pem, root_pem = public_in(store)
    signing, root = load_certificate(signing_pem, store.field), load_certificate(root_pem, store.field)
    certs, key_pem = _secret_certificates(before)
    if certs is None and not params["replace_ca_secret"]:
        raise PKIError(
            "ca_secret_name",
            "Secret %s/%s holds a tls.crt that is not a PEM certificate" % (namespace, name),
            "look at what is in it; set replace_ca_secret: true to overwrite it",
        )
    held = certs[0] if certs else None
    legacy = held is not None and held == signing and _key_matches(key_pem, signing)
    if legacy and not params["replace_ca_secret"]:
        ctx.warn(
            "Secret %s/%s holds the key of the CA in %s itself (what this module wrote before 0.4.0); it is kept. "
            "Set replace_ca_secret: true to replace it by a per-issuer intermediate (pods keep trusting the same "
            "root), or ca_secret_holds: signing_ca to keep it without this warning" % (namespace, name, store.where)
        )
        return dict(before["data"]), dict(describe(held), intermediate=False)
    signer = issuer_ca.load_signer_in(store, params["ca_passphrase"], now)
    constraints = issuer_ca.narrowed(
        signer,
        params["intermediate_permitted_dns"],
        params["intermediate_permitted_ip_ranges"],
        params["intermediate_permitted_uri_domains"],
    )
    valid_for = parse_duration(params["intermediate_valid_for"], "intermediate_valid_for")
    issuer_ca.check_valid_for(valid_for)
    mine = held is not None and (held == signing or issuer_ca.is_ours(held, signer))
    if held is not None and not mine and not params["replace_ca_secret"]:
        raise _refuse_other_ca(namespace, name)
    why = "none yet"
    if held is not None:
        why = issuer_ca.still_good(held, key_pem, signer, constraints, now, own=[signing, root])
    if why is None:  # kept; the rest of the Secret is what it must be (a root planted beside it goes)
        data = {
            "tls.crt": base64.b64encode(pem_of([held, signer.certificate]).encode()).decode(),
            "tls.key": before["data"]["tls.key"],
            "ca.crt": base64.b64encode(pem_of([signer.certificate]).encode()).decode(),
        }
        return data, dict(describe(held), intermediate=True, not_after=isoformat(not_valid_after(held)))
    label = "%s/%s" % (namespace, name)
    common_name = label[: 64 - len(issuer_ca.SUBJECT_SUFFIX)] + issuer_ca.SUBJECT_SUFFIX
    key, cert = issuer_ca.issue(signer, common_name, constraints, valid_for, now)
    data = {
        "tls.crt": base64.b64encode(pem_of([cert, signer.certificate]).encode()).decode(),
        "tls.key": base64.b64encode(private_key_pem(key)).decode(),
        "ca.crt": base64.b64encode(pem_of([signer.certificate]).encode()).decode(),
    }
    return data, dict(
        describe(cert), intermediate=True, not_after=isoformat(not_valid_after(cert)), renewed_because=why
    )


def _key_matches(key_pem: Optional[bytes], cert) -> bool:
    """``key_pem`` is the private key of ``cert`` (a small PEM that loads); anything else is not."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.issuer_ca import MAX_KEY_PEM
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import load_private_key, public_key_der

    if not key_pem or len(key_pem) > MAX_KEY_PEM:
        return False
    try:
        return public_key_der(load_private_key(key_pem, None, "tls.key")) == public_key_der(cert.public_key())
    except Exception:  # a planted key of any kind is simply not the CA's
        return False


def ensure_ca_secret(ctx, namespace: str) -> Tuple[Dict, Optional[Dict]]:
    """The issuer's CA Secret filled from ``ca_path``; a different CA there is kept unless replace_ca_secret."""
    params, kube = ctx.params, ctx.kube
    name = params["ca_secret_name"]
    path = namespaced_path("v1", "secrets", namespace, name)
    before = kube.get(path)
    if params["ca_secret_holds"] == "intermediate":
        data, info = intermediate_secret_data(ctx, namespace, name, before)
    else:
        data, info = ca_secret_data(ctx.store, params["ca_passphrase"])
        old = ((before or {}).get("data") or {}).get("tls.crt")
        if old and old != data["tls.crt"] and not params["replace_ca_secret"]:
            raise _refuse_other_ca(namespace, name)
        info["intermediate"] = False
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


def _check_rotated(before: Optional[Dict], spec: Dict, kind: str, name: str) -> None:
    """An Issuer that cert_manager_ca_rotation switched to a new CA is never switched back (say, by a rerun of a
    role that still names the old CA): that would make it sign with a CA the pods are about to stop trusting."""
    import json  # pylint: disable=import-outside-toplevel

    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.labels import CA_ROTATION

    raw = (((before or {}).get("metadata") or {}).get("annotations") or {}).get(CA_ROTATION)
    try:
        state = json.loads(raw) if raw else {}
    except ValueError:
        return
    if not isinstance(state, dict) or state.get("stage") not in ("switched", "done"):
        return
    now = ((before.get("spec") or {}).get("ca") or {}).get("secretName")
    wanted = (spec.get("ca") or {}).get("secretName")
    if now == state.get("to") and wanted != now:
        raise PKIError(
            "ca_secret_name",
            "%s %s was rotated to the CA in Secret %s by cert_manager_ca_rotation (stage %s); this would switch it to "
            "%s" % (kind, name, now, state.get("stage"), wanted),
            "set ca_secret_name: %s (role cert_manager_pki: cert_manager_pki_ca_certificate: %s)" % (now, now),
        )


def ensure_issuer(ctx) -> Dict:
    """The Issuer/ClusterIssuer (and its CA Secret from ca_path); Ready if waited for."""
    params = ctx.params
    cluster = params["kind"] == "ClusterIssuer"
    name = cm.check_k8s_name(params["name"], "name")
    namespace = None if cluster else cm.check_k8s_name(params["namespace"], "namespace")
    plural = "clusterissuers" if cluster else "issuers"
    ansible_ca = "ca_path" if params["ca_path"] else ("ca_secret" if params.get("ca_secret") else None)
    if ansible_ca and params["type"] != "ca":
        raise PKIError(ansible_ca, "only applies to type ca", "set type: ca, or remove %s" % ansible_ca)
    if params["state"] == "absent":
        return delete_object(ctx, plural, namespace, name)
    spec = cm.issuer_spec(params)
    kube = ctx.kube
    kube.require_api(cm.API_VERSION, plural, "cert-manager")
    result: Dict = dict(changed=False, diff=[])
    path = namespaced_path(cm.API_VERSION, plural, namespace, name)
    before = kube.get(path)
    _check_rotated(before, spec, params["kind"], name)
    if ansible_ca == "ca_secret" and (
        params["cluster_resource_namespace"] if cluster else namespace,
        params["ca_secret_name"],
    ) == (params["ca_secret"]["namespace"], params["ca_secret"]["name"]):
        raise PKIError(
            "ca_secret_name",
            "is the Secret that keeps the CA itself (ca_secret)",
            "give the Issuer a Secret of its own; it gets a per-issuer intermediate of that CA",
        )
    if ansible_ca:
        result["ca_secret"], diff = ensure_ca_secret(
            ctx, params["cluster_resource_namespace"] if cluster else namespace
        )
        if diff:
            result["changed"] = True
            result["diff"].append(diff)
    metadata = dict(name=name, **({"namespace": namespace} if namespace else {}))
    applied = objects.ensure(
        kube,
        path,
        {"apiVersion": cm.API_VERSION, "kind": params["kind"], "metadata": metadata, "spec": spec},
        params,
        ctx.check_mode,
        before=before,
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
def signed_by(pem: str, anchors) -> bool:
    """The certificate in ``pem`` (tls.crt: leaf, then its chain) was issued under one of ``anchors``."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import chains_to
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificates

    try:
        return chains_to(load_certificates(pem, "tls.crt"), anchors)
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
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import public_in

    params = ctx.params
    namespace = cm.check_k8s_name(params["namespace"], "namespace")
    # the CA's issuing certificate and its root: leaves of a per-issuer intermediate chain to the root
    issuer = [load_certificate(pem, ctx.store.field) for pem in public_in(ctx.store)]
    return reissue_under(
        ctx,
        namespace,
        (params["issuer_name"], params["issuer_kind"]),
        issuer,
        params["bundle_configmap"],
        params["wait_timeout"],
    )


def certificates_of(kube, namespace: str, issuer_ref: Tuple[str, str]) -> Tuple[List[Dict], Dict[str, str]]:
    """The Certificates of ``issuer_ref`` (name, kind) in ``namespace``, and the tls.crt each one's Secret holds."""
    listing = kube.get(namespaced_path(cm.API_VERSION, "certificates", namespace)) or {}
    mine = [
        c
        for c in listing.get("items") or []
        if (c.get("spec") or {}).get("issuerRef", {}).get("name") == issuer_ref[0]
        and (c.get("spec") or {}).get("issuerRef", {}).get("kind", "Issuer") == issuer_ref[1]
    ]
    return mine, {c["metadata"]["name"]: tls_crt(kube, namespace, c["spec"]["secretName"]) for c in mine}


def reissue_under(
    ctx, namespace: str, issuer_ref: Tuple[str, str], issuer, bundle_configmap: Optional[str], wait_timeout: int
) -> Dict:
    """Re-issue every Certificate of ``issuer_ref`` (name, kind) whose Secret does not chain to ``issuer`` (the CA's
    certificates); wait for each. Check mode: only report. The evidence: each Secret's certificate and the bundle."""
    kube = ctx.kube
    kube.require_api(cm.API_VERSION, "certificates", "cert-manager")
    mine, pems = certificates_of(kube, namespace, issuer_ref)
    bundle = ""
    if bundle_configmap:
        configmap = kube.get(namespaced_path("v1", "configmaps", namespace, bundle_configmap)) or {}
        bundle = (configmap.get("data") or {}).get("ca.crt", "")
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
                entry["revision"] = wait_reissued(ctx, cert, issuer, pems, issuer_ref[0], wait_timeout)
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


def wait_reissued(ctx, cert: Dict, issuer, pems: Dict[str, str], issuer_name: str, wait_timeout: int) -> Optional[int]:
    """Wait until ``cert`` is Ready at a higher revision and its Secret is signed by ``issuer``; its revision."""
    kube = ctx.kube
    namespace, name = cert["metadata"]["namespace"], cert["metadata"]["name"]
    old = revision_of(cert)

    def reissued(obj):
        if not (cm.is_ready(obj) and revision_of(obj) > old):
            return False
        pems[name] = tls_crt(kube, namespace, obj["spec"]["secretName"])  # kept for the evidence
        return signed_by(pems[name], issuer)

    done, now = kube.wait(namespaced_path(cm.API_VERSION, "certificates", namespace, name), reissued, wait_timeout)
    if not done:
        raise PKIError(
            "wait_timeout",
            "Certificate %s/%s was not re-issued by the new CA within %ss" % (namespace, name, wait_timeout),
            "check that issuer %s uses the new CA Secret and is Ready" % issuer_name,
        )
    return (now.get("status") or {}).get("revision")
