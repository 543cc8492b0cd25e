# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The use case of module cert_manager_pki: the cert_manager_pki role's whole recipe in one run.

Namespaces, the self-signed ClusterIssuer, a name-constrained CA per namespace (a Certificate cert-manager
issues, or a per-namespace intermediate of the Ansible CA), a CA Issuer per namespace and the service
Certificates: each part is the use case of its own module (k8s_namespace, cert_manager_issuer,
cert_manager_certificates) with options checked against that module's argument spec, on one API connection.
Everything that can be checked without the API is checked before the first write; the Issuers of all
namespaces (no Issuer switched back from a CA it was rotated to) and every Certificate are read before the first
write too. Then everything is applied in the order it is needed: without waiting in between in a namespace set
up from nothing, the CA issued and the Issuer Ready before the service Certificates elsewhere; and waited for in
that order (what failed first is named).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Set, Tuple

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import cert_manager as cm_ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.k8s_objects import ensure_namespace
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import certmanager as cm
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import (
    namespaced_path,
    without_managed_fields,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

# how often the waits ask while cert-manager works: every request asks for all objects of a namespace at once
WAIT_INTERVAL = 0.2
CONNECTION_KEYS = ("kubeconfig", "context", "in_cluster", "api_timeout", "field_manager", "force_conflicts")


class Part:
    """The context of one part of the recipe: its own checked options; the run's connection, CA, check and diff
    mode and warnings."""

    def __init__(self, ctx, params: Dict[str, Any]) -> None:
        self._ctx = ctx
        self.params = params
        self.check_mode = ctx.check_mode
        self.diff = ctx.diff
        self.store = ctx.store

    @property
    def kube(self):
        return self._ctx.kube

    def warn(self, message: str) -> None:
        self._ctx.warn(message)


def _checked(spec: Dict, params: Dict, where: str, module: str, rules=None) -> Dict[str, Any]:
    """``params`` as module ``module`` would take them (defaults, types), or a PKIError naming ``where``."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # pylint: disable=import-outside-toplevel

    validated = ArgumentSpecValidator(spec, **(rules or {})).validate(params)
    if validated.error_messages:
        raise PKIError(where, "; ".join(validated.error_messages), "give it the options of %s" % module)
    return dict(validated.validated_parameters)


def _connection(params: Dict[str, Any]) -> Dict[str, Any]:
    return {k: params[k] for k in CONNECTION_KEYS if k in params}


def _check_domain(params: Dict[str, Any], namespaces: List[str]) -> None:
    """<namespace>.<domain> is a DNS name (what each namespace's CA may sign)."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import (  # noqa: E501 pylint: disable=import-outside-toplevel
        normalize_dns_name,
    )

    for namespace in namespaces:
        try:
            normalize_dns_name("%s.%s" % (namespace, params["domain"]), "domain")
        except (PKIError, ValueError):
            raise PKIError(
                "domain", "%r is not a DNS domain" % params["domain"], "give a domain such as svc.cluster.local"
            ) from None


def namespaces_of(params: Dict[str, Any]) -> List[str]:
    """The namespaces that get a CA and a CA Issuer: those listed, then those of the service Certificates."""
    out: List[str] = []
    for index, name in enumerate(params["namespaces"]):
        out.append(cm.check_k8s_name(name, "namespaces[%d]" % index))
    for index, item in enumerate(params["certificates"]):
        namespace = item.get("namespace") if isinstance(item, dict) else None
        if not namespace:
            raise PKIError("certificates[%d].namespace" % index, "is missing", "give every Certificate a namespace")
        out.append(cm.check_k8s_name(namespace, "certificates[%d].namespace" % index))
    return list(dict.fromkeys(out))


def _ca_certificate(params: Dict[str, Any], namespace: str) -> Dict[str, Any]:
    """The long-lived CA Certificate of a namespace: may sign only <anything>.<namespace>.<domain> (and what
    ca_permitted_dns, ca_permitted_ip_ranges and the SPIFFE trust domain add)."""
    permitted: Dict[str, Any] = {"dns_domains": ["%s.%s" % (namespace, params["domain"])] + params["ca_permitted_dns"]}
    if params["ca_permitted_ip_ranges"]:
        permitted["ip_ranges"] = params["ca_permitted_ip_ranges"]
    if params["spiffe_trust_domain"]:
        permitted["uri_domains"] = [params["spiffe_trust_domain"]]
    return dict(
        name=params["ca_certificate"] or params["ca_issuer"],
        namespace=namespace,
        is_ca=True,
        common_name="%s %s" % (params["ca_common_name"], namespace),
        issuer_name=params["selfsigned_issuer"],
        issuer_kind="ClusterIssuer",
        valid_for=params["ca_valid_for"],
        renew_before=params["ca_renew_before"],
        private_key={"algorithm": "ECDSA", "size": 384, "rotation_policy": "Always"},
        name_constraints={"critical": True, "permitted": permitted},
    )


def _ca_issuer(params: Dict[str, Any], namespace: str) -> Dict[str, Any]:
    """The CA Issuer of a namespace: on its CA Certificate's Secret, or on a per-namespace intermediate of the
    Ansible CA (ca_path) constrained like the CA Certificate would be (no IP address unless ca_permitted_ip_ranges,
    URIs only of the trust domain or the namespace)."""
    issuer = dict(name=params["ca_issuer"], namespace=namespace, type="ca", wait=False)
    if params["ca_source"] == "cert_manager":
        return dict(issuer, ca_secret_name=params["ca_certificate"] or params["ca_issuer"])
    trust_domain = params["spiffe_trust_domain"]
    return dict(
        issuer,
        ca_secret_name=params["ca_issuer"],
        ca_path=params["ca_path"],
        ca_passphrase=params["ca_passphrase"],
        ca_secret_holds=params["ca_secret_holds"],
        intermediate_permitted_dns=["%s.%s" % (namespace, params["domain"])] + params["ca_permitted_dns"],
        intermediate_permitted_ip_ranges=params["ca_permitted_ip_ranges"] or ["0.0.0.0/32", "::/128"],
        intermediate_permitted_uri_domains=[trust_domain]
        if trust_domain
        else [".%s.%s" % (namespace, params["domain"])],
    )


# the options of the CA Certificates and CA Issuers this module makes, by the option of this module they come from
MADE_FROM = {
    "ca_certificate": {
        "name": "ca_certificate",
        "common_name": "ca_common_name",
        "valid_for": "ca_valid_for",
        "renew_before": "ca_renew_before",
        "name_constraints": "ca_permitted_dns",
        "name_constraints.permitted.ip_ranges": "ca_permitted_ip_ranges",
        "name_constraints.permitted.uri_domains": "spiffe_trust_domain",
        "issuer_name": "selfsigned_issuer",
    },
    "ca_issuer": {
        "name": "ca_issuer",
        "ca_secret_name": "ca_certificate",
        "intermediate_permitted_dns": "ca_permitted_dns",
        "intermediate_permitted_ip_ranges": "ca_permitted_ip_ranges",
        "intermediate_permitted_uri_domains": "spiffe_trust_domain",
        "permitted_dns": "ca_permitted_dns",
        "permitted_ip_ranges": "ca_permitted_ip_ranges",
        "permitted_uri_domains": "spiffe_trust_domain",
    },
    "selfsigned_issuer": {"name": "selfsigned_issuer"},
}


def _named_as_option(exc: PKIError, where: str) -> PKIError:
    """An error of an object this module made, naming the option it came from (ca_valid_for, not valid_for)."""
    made_from = MADE_FROM.get(where)
    if made_from is None:
        return exc.within(where)
    field = exc.field or ""
    option = made_from.get(field) or made_from.get(field.split(".", 1)[0].split("[", 1)[0], where)
    renamed = PKIError(option, exc.problem, exc.fix)
    renamed.result = getattr(exc, "result", None)
    return renamed


def _check_offline(ctx, parts: Dict[str, Any]) -> None:
    """Every object's options, checked as its own module would before it talks to the API."""
    seen: Dict[Tuple[str, str], str] = {}
    # the Secret each namespace's CA Issuer signs with: no service Certificate may write there
    secrets = {(item["namespace"], item["ca_secret_name"]): "ca_certificate" for _w, item in parts["issuers"]}
    for where, item in parts["ca_certificates"] + parts["certificates"]:
        key = (item["namespace"], item["name"])
        if key in seen:
            raise PKIError(
                "%s.name" % where if where != "ca_certificate" else where,
                "Certificate %s/%s is also %s" % (key[0], key[1], seen[key]),
                "give each Certificate its own name (the namespace's CA Certificate is ca_certificate)",
            )
        seen[key] = where
        try:
            cm.check_k8s_name(item["name"], "name")
            spec = cm.certificate_spec(item)[0]
        except PKIError as exc:
            raise _named_as_option(exc, where) from None
        secret = (item["namespace"], spec["secretName"])
        if secret in secrets and where != "ca_certificate":
            raise PKIError(
                "%s.secret_name" % where,
                "Secret %s/%s is the namespace's CA Secret (%s): cert-manager would write a leaf into it"
                % (secret[0], secret[1], secrets[secret]),
                "give the Certificate another secret_name",
            )
    for entry in [parts["cluster_issuer"]] + parts["issuers"]:
        if entry is not None:
            try:
                cm.check_k8s_name(entry[1]["name"], "name")
                cm.issuer_spec(entry[1])
            except PKIError as exc:
                raise _named_as_option(exc, entry[0]) from None


def _check_not_switched_back(ctx, issuers: List[Tuple[str, Dict[str, Any]]]) -> Set[str]:
    """No namespace's Issuer is switched back from a CA cert_manager_ca_rotation switched it to (read for every
    namespace before anything is written). Returns the namespaces whose Issuer exists."""
    existing = set()
    for where, item in issuers:
        path = namespaced_path(cm.API_VERSION, "issuers", item["namespace"], item["name"])
        before = ctx.kube.get(path)
        if before is not None:
            existing.add(item["namespace"])
        try:
            cm_ops._check_rotated(before, cm.issuer_spec(item), "Issuer", item["name"])  # pylint: disable=protected-access
        except PKIError as exc:
            raise PKIError(
                "ca_certificate" if ctx.params["ca_source"] == "cert_manager" else where, exc.problem, exc.fix
            ) from None
    return existing


def _fresh(ctx, parts: Dict[str, Any], ca_batch, issuers_existing: Set[str]) -> Set[str]:
    """The namespaces this run sets up from nothing: no Issuer, no CA Certificate, no CA Secret. Only there is
    everything applied before anything is waited for (no CA key exists that could sign a service Certificate
    early); where any of them exists, a change is applied in order: the CA issued, then the Issuer Ready, then
    the service Certificates."""
    with_ca = set()
    if ca_batch is not None:
        with_ca = {plan.namespace for plan in ca_batch.plans if plan is not None and plan.before is not None}
    fresh = set()
    for _where, item in parts["issuers"]:
        namespace = item["namespace"]
        if namespace in issuers_existing or namespace in with_ca:
            continue
        if ctx.kube.get(namespaced_path("v1", "secrets", namespace, item["ca_secret_name"])) is None:
            fresh.add(namespace)
    return fresh


def _wait_ready(ctx, plural: str, items: List[Dict[str, Any]], deadline: float) -> List[Dict[str, Any]]:
    """Every Issuer (or ClusterIssuer) of ``items`` Ready, each read by name (RBAC may allow no more)."""
    ready = []
    for item in items:
        namespace = item.get("namespace") if plural == "issuers" else None
        done, obj = ctx.kube.wait(
            namespaced_path(cm.API_VERSION, plural, namespace, item["name"]),
            cm.is_ready,
            max(deadline - time.monotonic(), 0),
            WAIT_INTERVAL,
        )
        if not done:
            cond = cm.condition(obj, "Ready") or {}
            raise PKIError(
                "wait_timeout",
                "%s not Ready after %ss: %s"
                % (
                    "Issuer %s/%s" % (namespace, item["name"]) if namespace else "ClusterIssuer %s" % item["name"],
                    ctx.params["wait_timeout"],
                    cond.get("message") or "no Ready condition yet",
                ),
                "check its CA Secret and cert-manager's log, or raise wait_timeout",
            )
        ready.append(obj)
    return ready


def ensure_pki(ctx) -> Dict[str, Any]:
    """Module cert_manager_pki."""
    params = ctx.params
    connection = _connection(params)
    for option in ("selfsigned_issuer", "ca_issuer", "ca_certificate"):
        if params.get(option) is not None:
            cm.check_k8s_name(params[option], option)
    if params["ca_source"] == "cluster_ca" and not params["ca_path"]:
        raise PKIError("ca_path", "is required with ca_source: cluster_ca", "give the directory cluster_ca made")
    if params["ca_source"] == "cert_manager" and params["ca_path"]:
        raise PKIError("ca_path", "only applies to ca_source: cluster_ca", "remove ca_path, or set ca_source")
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.cert_manager_spec import (  # noqa: E501 pylint: disable=import-outside-toplevel
        ISSUER_RULES,
        ISSUER_SPEC,
    )

    def certificate(where, item):
        return where, cm_ops.item_params(ctx, where, item)

    cert_manager_ca = params["ca_source"] == "cert_manager"
    services = [certificate("certificates[%d]" % i, item) for i, item in enumerate(params["certificates"])]
    namespaces = namespaces_of(dict(params, certificates=[item for _where, item in services]))
    _check_domain(params, namespaces)
    parts: Dict[str, Any] = {
        "cluster_issuer": (
            ("selfsigned_issuer", dict(name=params["selfsigned_issuer"], kind="ClusterIssuer", type="self_signed"))
            if cert_manager_ca
            else None
        ),
        "ca_certificates": (
            [certificate("ca_certificate", _ca_certificate(params, ns)) for ns in namespaces] if cert_manager_ca else []
        ),
        "issuers": [("ca_issuer", _ca_issuer(params, ns)) for ns in namespaces],
        "certificates": services,
    }
    parts["issuers"] = [
        (where, _checked(ISSUER_SPEC, item, where, "securebydefault.pki.cert_manager_issuer", ISSUER_RULES))
        for where, item in parts["issuers"]
    ]
    if parts["cluster_issuer"] is not None:
        where, item = parts["cluster_issuer"]
        parts["cluster_issuer"] = (where, _checked(ISSUER_SPEC, item, where, "securebydefault.pki.cert_manager_issuer"))
    _check_offline(ctx, parts)
    if not cert_manager_ca:  # the CA's key opens with the passphrase, before anything is written
        # pylint: disable=import-outside-toplevel
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki import issuer_ca
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import load_ca_in
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import utcnow

        if params["ca_secret_holds"] == "intermediate":
            signer = issuer_ca.load_signer_in(ctx.store, params["ca_passphrase"], utcnow())
            for where, item in parts["issuers"]:  # each namespace's intermediate fits in the root's constraints
                try:
                    issuer_ca.narrowed(
                        signer,
                        item["intermediate_permitted_dns"],
                        item["intermediate_permitted_ip_ranges"],
                        item["intermediate_permitted_uri_domains"],
                    )
                except PKIError as exc:
                    raise _named_as_option(exc, where) from None
        else:
            load_ca_in(ctx.store, params["ca_passphrase"], "ca_passphrase")
    ctx.kube.require_api(cm.API_VERSION, "issuers", "cert-manager")
    issuers_existing = _check_not_switched_back(ctx, parts["issuers"])

    deadline = time.monotonic() + params["wait_timeout"]
    result: Dict[str, Any] = dict(changed=False, diff=[], namespaces=[], ca_certificates=[], issuers=[])

    def took(part_result: Dict[str, Any], header: str = "") -> Dict[str, Any]:
        if part_result.get("changed"):
            result["changed"] = True
        diff = part_result.pop("diff", None)
        for one in diff if isinstance(diff, list) else [diff] if diff else []:
            result["diff"].append(dict(one, before_header=one.get("before_header") or header))
        return part_result

    # Every Certificate read and planned before the first write. The issuers this run applies count as there: they
    # are applied before the Certificates that name them.
    made = {
        cm_ops.issuer_path(dict(kind="Issuer", name=item["name"]), item["namespace"]): True
        for _where, item in parts["issuers"]
    }
    if parts["cluster_issuer"] is not None:
        made[cm_ops.issuer_path(dict(kind="ClusterIssuer", name=parts["cluster_issuer"][1]["name"]), "")] = True
    cas = _batch(ctx, connection, parts["ca_certificates"], made, deadline) if parts["ca_certificates"] else None
    services = _batch(ctx, connection, parts["certificates"], made, deadline) if parts["certificates"] else None
    fresh = _fresh(ctx, parts, cas, issuers_existing)
    (now_services, now_items), (later_services, later_items) = _split(services, parts["certificates"], fresh)
    issuers_now = [(i, item) for i, (_w, item) in enumerate(parts["issuers"]) if item["namespace"] in fresh]
    issuers_later = [(i, item) for i, (_w, item) in enumerate(parts["issuers"]) if item["namespace"] not in fresh]
    issued: Dict[int, Dict[str, Any]] = {}

    def apply_issuers(chosen) -> None:
        for index, item in chosen:
            issued[index] = took(cm_ops.ensure_issuer(Part(ctx, dict(connection, **item))))

    def applied_so_far() -> Dict[str, Any]:
        """What a failure after the first write returns: what was applied, and that something changed."""
        done = [r for batch in (cas, now_services, later_services) if batch is not None for r in batch.results]
        return dict(
            result,
            changed=result["changed"] or any(r.get("changed") for r in done),
            issuers=[issued[i] for i in sorted(issued)],
            applied_certificates=["%s/%s" % (r["namespace"], r["name"]) for r in done],
        )

    if params["create_namespaces"]:
        for namespace in namespaces:
            done = ensure_namespace(Part(ctx, dict(connection, name=namespace, labels=None)))
            result["namespaces"].append(took(done, "Namespace %s" % namespace))
    try:
        # In the order things are needed. A namespace set up from nothing gets everything at once (cert-manager
        # takes each object up as soon as what it names is Ready, so the CA and the services' keys are made side
        # by side); elsewhere the CA is issued and the Issuer Ready before a service Certificate is applied, so
        # none is signed by the key a changing CA is replacing.
        if parts["cluster_issuer"] is not None:
            item = dict(parts["cluster_issuer"][1], wait=False)
            result["cluster_issuer"] = took(cm_ops.ensure_issuer(Part(ctx, dict(connection, **item))))
        if cas is not None:
            _apply(ctx, connection, cas, parts["ca_certificates"], took, "ca_certificates")
        apply_issuers(issuers_now)
        if now_services is not None:
            _apply(ctx, connection, now_services, now_items, took, "certificates")
        # then waited for in that order: what failed first is named (a CA not issued, an Issuer not Ready)
        if parts["cluster_issuer"] is not None and not ctx.check_mode:
            obj = _wait_ready(ctx, "clusterissuers", [parts["cluster_issuer"][1]], deadline)[0]
            result["cluster_issuer"].update(issuer=without_managed_fields(obj), ready=True)
        if cas is not None:
            issued_cas = _finish(ctx, connection, cas, parts["ca_certificates"], deadline, "ca_certificates")
            result["ca_certificates"] = issued_cas["certificates"]
        apply_issuers(issuers_later)
        result["issuers"] = [issued[i] for i in sorted(issued)]
        if not ctx.check_mode:
            ready = _wait_ready(ctx, "issuers", [item for _where, item in parts["issuers"]], deadline)
            for entry, obj in zip(result["issuers"], ready):
                entry.update(issuer=without_managed_fields(obj), ready=True)
        if later_services is not None:
            _apply(ctx, connection, later_services, later_items, took, "certificates")
        summary = dict(certificates=[], ready=True)
        if services is not None:
            _join(services, now_services, later_services)
            summary = _finish(ctx, connection, services, parts["certificates"], deadline, "certificates")
    except PKIError as exc:  # what was applied before the failure, and what the failing part knew
        known = exc.result or {}
        exc.result = dict(applied_so_far(), **known)
        exc.result["changed"] = bool(applied_so_far()["changed"] or known.get("changed"))
        raise
    result.update(certificates=summary["certificates"], ready=summary["ready"])
    return result


def _split(
    batch: Optional[cm_ops.Batch], items: List[Tuple[str, Dict]], fresh: Set[str]
) -> List[Tuple[Optional[cm_ops.Batch], List[Tuple[str, Dict]]]]:
    """``batch`` as two: the Certificates in the namespaces set up from nothing, and the others; each with its
    entries of ``items`` (how errors name them). A part without Certificates is None."""
    picked: Tuple[List, List] = ([], [])
    if batch is not None:
        for item, plan, entry in zip(batch.items, batch.plans, items):
            picked[0 if item["namespace"] in fresh else 1].append((item, plan, entry))
    return [
        (cm_ops.Batch([i for i, _p, _e in part], [p for _i, p, _e in part], batch.wait_timeout), [e for *_x, e in part])
        if part and batch is not None
        else (None, [])
        for part in picked
    ]


def _join(batch: cm_ops.Batch, *parts: Optional[cm_ops.Batch]) -> None:
    """``batch``'s results and objects, in its own order, from the parts it was split into and applied as."""
    by_item = {}
    for part in parts:
        if part is not None:
            for item, result, after in zip(part.items, part.results, part.afters):
                by_item[id(item)] = (result, after)
    batch.results = [by_item[id(item)][0] for item in batch.items]
    batch.afters = [by_item[id(item)][1] for item in batch.items]


def _batch(ctx, connection, items: List[Tuple[str, Dict]], made: Dict[str, bool], deadline: float) -> cm_ops.Batch:
    """cert_manager_certificates' plan of these (already checked) Certificates; errors name this module's options."""
    try:
        return cm_ops.plan_batch(
            Part(ctx, connection),
            [dict(connection, **item) for _where, item in items],
            max(int(deadline - time.monotonic()), 1),  # what is left of the run's deadline (renew waits)
            dict(made),
        )
    except PKIError as exc:
        raise _where_of(exc, items) from None


def _apply(ctx, connection, batch: cm_ops.Batch, items: List[Tuple[str, Dict]], took, key: str) -> None:
    """The batch applied; its diffs reported now, in the order of the writes. A failure's result names the batch's
    results ``key`` (certificates or ca_certificates)."""
    try:
        cm_ops.apply_batch(Part(ctx, connection), batch)
    except PKIError as exc:
        raise _where_of(exc, items, key) from None
    for result in batch.results:
        diff = result.pop("diff", None)
        took(
            dict(
                changed=result.get("changed"),
                diff=dict(diff, before_header="Certificate %s/%s" % (result["namespace"], result["name"]))
                if diff
                else None,
            )
        )


def _finish(
    ctx, connection, batch: cm_ops.Batch, items: List[Tuple[str, Dict]], deadline: float, key: str
) -> Dict[str, Any]:
    """The batch waited for within the run's deadline."""
    timeout = max(int(deadline - time.monotonic()), 1)
    try:
        summary = cm_ops.finish_batch(Part(ctx, connection), batch, True, timeout, interval=WAIT_INTERVAL)
    except PKIError as exc:
        raise _where_of(exc, items, key) from None
    summary.pop("diff", None)  # reported when applied
    return summary


def _where_of(exc: PKIError, items: List[Tuple[str, Dict]], key: str = "certificates") -> PKIError:
    """An error of cert_manager_certificates (certificates[i].x) named as this module's option; what it returns
    about the Certificates goes under ``key``."""
    field = exc.field or ""
    if field.startswith("certificates["):
        index, rest = field.split("[", 1)[1].split("]", 1)
        field = items[int(index)][0] + rest
    renamed = PKIError(field, exc.problem, exc.fix)
    known = getattr(exc, "result", None)
    renamed.result = {key if k == "certificates" else k: v for k, v in known.items()} if known else None
    return renamed
