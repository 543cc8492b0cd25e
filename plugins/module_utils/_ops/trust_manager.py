# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A trust-manager Bundle: CA roots distributed to every namespace (or those a label selector picks).

Everything the options name is checked and read before the first write: the API is served, every source
exists in the trust namespace and holds at least one certificate, the namespace selector picks at least one
namespace. Then the Bundle is applied server-side (check mode: the server's dry run) and, with ``wait``, the
use case waits until trust-manager reports it Synced for its current generation and every picked namespace
holds a target whose certificates are the sources' (trust-manager may leave out expired and non-CA ones).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Dict, List, Optional, Set, Tuple

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import objects
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.certmanager import check_k8s_name
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import (
    comparable,
    namespaced_path,
    without_managed_fields,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.labels import MANAGED_BY, TRUST_BUNDLE_LABEL
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

API_VERSION = "trust.cert-manager.io/v1alpha1"
BUNDLE_LABEL = "trust.cert-manager.io/bundle"
_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def served(kube) -> bool:
    """Whether the API server serves trust-manager's Bundle API (its CRD is installed)."""
    status, reply = kube.request("GET", "/apis/" + API_VERSION)
    if status == 404:
        return False
    kube.check(status, reply, "discover", "/apis/" + API_VERSION, field="kubeconfig")
    return "bundles" in {r.get("name") for r in (reply or {}).get("resources") or []}


def check_key(value: str, field: str) -> str:
    if not value or not _KEY.fullmatch(value):
        raise PKIError(
            field,
            "%r is not a valid ConfigMap or Secret key" % value,
            "use letters, digits, '-', '_' and '.' only (e.g. ca.crt)",
        )
    return value


def selector_of(params: Dict) -> Optional[Dict[str, str]]:
    """namespace_selector as matchLabels, checked; None: every namespace."""
    labels = params.get("namespace_selector")
    if labels is None:
        return None
    if not labels:
        raise PKIError("namespace_selector", "is empty", "leave it out to reach every namespace, or name labels")
    out = {}
    for key, value in labels.items():
        key, value = str(key), str(value)
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise PKIError(
                "namespace_selector",
                "%r: %r is not a valid label selector" % (key, value),
                "use Kubernetes label keys and values (e.g. trust: cluster)",
            )
        out[key] = value
    return out


def _certificates(pem: str, field: str) -> List:
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificates

    certs = load_certificates(pem, field)
    if not certs:
        raise PKIError(field, "holds no PEM certificate", "point it at a CA bundle (PEM)")
    return certs


def read_sources(ctx, trust_namespace: str) -> Tuple[List[Dict], List]:
    """The Bundle's sources (spec form) and every certificate they hold; each one checked to exist."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.k8s_objects import bundle_of

    params, kube = ctx.params, ctx.kube
    spec, certs = [], []
    if params.get("ca_paths"):
        pem, _prints = bundle_of(params["ca_paths"])
        certs += _certificates(pem, "ca_paths")
        spec.append({"inLine": pem})
    if params.get("inline"):  # roots read by the caller (not a module option)
        certs += _certificates(params["inline"], "ca_paths")
        spec.append({"inLine": params["inline"]})
    for index, source in enumerate(params.get("sources") or []):
        field = "sources[%d]" % index
        kind = source["kind"]
        name = check_k8s_name(source["name"], field + ".name")
        key = check_key(source["key"], field + ".key")
        plural = "configmaps" if kind == "configmap" else "secrets"
        obj = kube.get(namespaced_path("v1", plural, trust_namespace, name))
        if obj is None:
            raise PKIError(
                field + ".name",
                "%s %s/%s does not exist" % (kind, trust_namespace, name),
                "create it first, or fix the name; trust-manager reads sources only from the trust "
                "namespace (trust_namespace=%s)" % trust_namespace,
            )
        data = (obj.get("data") or {}).get(key)
        if data is None:
            raise PKIError(
                field + ".key",
                "%s %s/%s has no key %r" % (kind, trust_namespace, name, key),
                "name one of its keys: %s" % (", ".join(sorted(obj.get("data") or {})) or "(none)"),
            )
        if kind == "secret":
            data = base64.b64decode(data).decode("ascii", "replace")
        certs += _certificates(data, field)
        spec.append({"configMap" if kind == "configmap" else "secret": {"name": name, "key": key}})
    if not spec:
        raise PKIError("ca_paths", "no source given", "list CA directories in ca_paths or objects in sources")
    return spec, certs


def names_of(params: Dict) -> Optional[List[str]]:
    """The ``namespaces`` option (a list of names the Bundle is limited to), checked; None: not limited by name."""
    names = params.get("namespaces")
    if names is None:
        return None
    if not names:
        raise PKIError("namespaces", "is empty", "leave it out, or list the namespaces that get the bundle")
    return sorted({check_k8s_name(str(n), "namespaces") for n in names})


def target_spec(params: Dict, selector: Optional[Dict[str, str]], names: Optional[List[str]] = None) -> Dict:
    target: Dict = {}
    keys = []
    if params.get("configmap_key"):
        target["configMap"] = {"key": check_key(params["configmap_key"], "configmap_key")}
        keys.append(params["configmap_key"])
    if params.get("secret_key"):
        target["secret"] = {"key": check_key(params["secret_key"], "secret_key")}
        keys.append(params["secret_key"])
    if not target:
        raise PKIError("configmap_key", "no target", "set configmap_key and/or secret_key")
    formats = {}
    for name, field in (("pkcs12", "pkcs12"), ("jks", "jks")):
        option = params.get(field)
        if not option:
            continue
        key = check_key(option["key"], field + ".key")
        if key in keys:
            raise PKIError(
                field + ".key",
                "%r is also the key of another target" % key,
                "give the %s truststore a key of its own (e.g. bundle.%s)" % (field, field[:3]),
            )
        keys.append(key)
        entry = {"key": key}
        if option.get("password") is not None:
            entry["password"] = option["password"]
        if field == "pkcs12" and option.get("profile"):
            entry["profile"] = option["profile"]
        formats[name] = entry
    if formats:
        target["additionalFormats"] = formats
    if selector is not None or names is not None:
        target["namespaceSelector"] = {}
        if selector is not None:
            target["namespaceSelector"]["matchLabels"] = selector
        if names is not None:  # the API server labels every namespace with its name
            target["namespaceSelector"]["matchExpressions"] = [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": names}
            ]
    return target


def selected_namespaces(kube, selector: Optional[Dict[str, str]], names: Optional[List[str]] = None) -> List[str]:
    query = {"labelSelector": ",".join("%s=%s" % kv for kv in sorted(selector.items()))} if selector else None
    path = namespaced_path("v1", "namespaces", None)
    status, reply = kube.request("GET", path, query=query)
    kube.check(status, reply, "list", path, "namespace_selector")
    found = sorted(str(((item or {}).get("metadata") or {}).get("name")) for item in (reply or {}).get("items") or [])
    return [n for n in found if names is None or n in names]


def masked(obj):
    """A Bundle (or its spec) with the truststore passwords replaced: they are never returned or diffed."""
    if not isinstance(obj, dict):
        return obj
    out = json.loads(json.dumps(obj))
    spec = out.get("spec") if "spec" in out else out
    formats = ((spec or {}).get("target") or {}).get("additionalFormats") if isinstance(spec, dict) else None
    for entry in (formats or {}).values() if isinstance(formats, dict) else ():
        if isinstance(entry, dict) and "password" in entry:
            entry["password"] = "********"
    return out


def synced(obj: Optional[Dict]) -> bool:
    """trust-manager reports the Bundle Synced for its current generation."""
    generation = ((obj or {}).get("metadata") or {}).get("generation")
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Synced":
            observed = cond.get("observedGeneration")
            if not isinstance(observed, int) or not isinstance(generation, int):  # absent, or not a number
                return cond.get("status") == "True" and observed is None
            return cond.get("status") == "True" and observed >= generation
    return False


def fingerprints_of(pem: str) -> Set[str]:
    """SHA-256 fingerprints of the certificates in a PEM text (none if it does not parse)."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import fingerprint, load_certificates

    try:
        return {fingerprint(c) for c in load_certificates(pem, "target")}
    except PKIError:
        return set()


def targets_now(kube, name: str, plural: str, key: str) -> Dict[str, Set[str]]:
    """namespace -> fingerprints in the Bundle's target of that kind (objects trust-manager labelled as its)."""
    path = namespaced_path("v1", plural, None)
    status, reply = kube.request("GET", path, query={"labelSelector": "%s=%s" % (BUNDLE_LABEL, name)})
    kube.check(status, reply, "list", path, "name")
    out = {}
    for item in (reply or {}).get("items") or []:
        meta = item.get("metadata") or {}
        if meta.get("name") != name:
            continue
        data = (item.get("data") or {}).get(key)
        if data is not None and plural == "secrets":
            data = base64.b64decode(data).decode("ascii", "replace")
        out[meta.get("namespace")] = fingerprints_of(data or "")
    return out


def expected_prints(certs) -> Tuple[Set[str], Set[str]]:
    """(every source certificate, those trust-manager keeps whatever its filters: unexpired CAs)."""
    # pylint: disable=import-outside-toplevel
    import datetime

    from cryptography import x509

    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import fingerprint

    now = datetime.datetime.now(datetime.timezone.utc)
    every, kept = set(), set()
    for cert in certs:
        digest = fingerprint(cert)
        every.add(digest)
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        not_after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(
            tzinfo=datetime.timezone.utc
        )
        if is_ca and not_after > now:
            kept.add(digest)
    return every, kept


def delivered(kube, name: str, target: Dict, namespaces: List[str], every: Set[str], kept: Set[str]) -> List[str]:
    """What still differs: a namespace without the target, or with certificates other than the sources'."""
    problems = []
    for plural, key in (
        ("configmaps", (target.get("configMap") or {}).get("key")),
        ("secrets", (target.get("secret") or {}).get("key")),
    ):
        if not key:
            continue
        found = targets_now(kube, name, plural, key)
        for namespace in namespaces:
            prints = found.get(namespace)
            if prints is None:
                problems.append("%s: no %s %s" % (namespace, plural[:-1], name))
            elif not kept <= prints or not prints <= every:
                problems.append("%s: %s %s holds other certificates than the sources" % (namespace, plural[:-1], name))
    return problems


def check_takeover(kube, name: str, target: Dict, namespaces: List[str], every: Set[str]) -> None:
    """trust-manager force-applies its targets over any ConfigMap or Secret of the Bundle's name in a selected
    namespace. Refuse (before writing) unless each such object already is this Bundle's target, or is one this
    collection made (a trust bundle ConfigMap) whose certificates the Bundle keeps: a namespace never loses a
    root it trusted, and nobody else's object is overwritten."""
    selected = set(namespaces)
    for plural, key in (
        ("configmaps", (target.get("configMap") or {}).get("key")),
        ("secrets", (target.get("secret") or {}).get("key")),
    ):
        if not key:
            continue
        path = namespaced_path("v1", plural, None)
        status, reply = kube.request("GET", path, query={"fieldSelector": "metadata.name=%s" % name})
        kube.check(status, reply, "list", path, "name")
        for item in (reply or {}).get("items") or []:
            meta = item.get("metadata") or {}
            if meta.get("name") != name or meta.get("namespace") not in selected:
                continue
            labels = meta.get("labels") or {}
            if labels.get(BUNDLE_LABEL) == name:
                continue
            where = "%s %s/%s" % (plural[:-1], meta.get("namespace"), name)
            # a trust bundle ConfigMap of this collection (labelled, or of an older release: ours, the key alone);
            # never a Secret (this collection's CA Secrets carry its label too, with their keys)
            ours = (
                plural == "configmaps"
                and all(labels.get(k) == v for k, v in MANAGED_BY.items())
                and (labels.get(TRUST_BUNDLE_LABEL) == "true" or set(item.get("data") or {}) == {key})
            )
            data = (item.get("data") or {}).get(key)
            if data is not None and plural == "secrets":
                data = base64.b64decode(data).decode("ascii", "replace")
            if not ours or data is None:
                raise PKIError(
                    "name",
                    "%s exists and is not made by this collection; trust-manager would overwrite it" % where,
                    "choose another Bundle name, or narrow namespace_selector so that it leaves %s out"
                    % meta.get("namespace"),
                )
            lost = fingerprints_of(data) - every
            if lost:
                raise PKIError(
                    "name",
                    "%s holds %d certificate(s) the Bundle's sources do not; trust-manager would drop them"
                    % (where, len(lost)),
                    "add their CAs to ca_paths or sources first, or choose another Bundle name",
                )


def ensure_bundle(ctx) -> Dict:
    """The Bundle as the options describe it; with ``wait``, synced into every namespace it selects."""
    params, kube = ctx.params, ctx.kube
    name = check_k8s_name(params["name"], "name")
    if len(name) > 253:
        raise PKIError("name", "is longer than 253 characters", "use a shorter name")
    path = namespaced_path(API_VERSION, "bundles", None, name)
    if params["state"] == "absent":
        kube.require_api(API_VERSION, "bundles", "trust-manager")
        applied = objects.delete(kube, path, ctx.check_mode)
        result = dict(changed=applied.changed)
        if applied.changed:
            result["diff"] = applied.diff("Bundle %s" % name, show=lambda obj: masked(comparable(obj)))
        return result
    trust_namespace = check_k8s_name(params["trust_namespace"], "trust_namespace")
    selector = selector_of(params)
    names = names_of(params)
    target = target_spec(params, selector, names)
    kube.require_api(API_VERSION, "bundles", "trust-manager")
    sources, certs = read_sources(ctx, trust_namespace)
    namespaces = selected_namespaces(kube, selector, names)
    if not namespaces:
        raise PKIError(
            "namespace_selector",
            "matches no namespace (%s)" % selector,
            "label the namespaces that should trust these CAs, or fix the selector",
        )
    required = params.get("required_namespace")
    if required and required not in namespaces:
        raise PKIError(
            "namespace_selector",
            "does not select namespace %s (%s), whose pods this bundle is for" % (required, selector),
            "label namespace %s to match, or widen the selector" % required,
        )
    every, kept = expected_prints(certs)
    if not kept:
        raise PKIError("sources", "hold no unexpired CA certificate", "a trust bundle is made of CA roots")
    check_takeover(kube, name, target, namespaces, every)
    existing = kube.get(path)
    labels = ((existing or {}).get("metadata") or {}).get("labels") or {}
    if (
        existing is not None
        and not params.get("force_conflicts")
        and any(labels.get(k) != v for k, v in MANAGED_BY.items())
    ):
        raise PKIError(
            "name",
            "trust-manager Bundle %s exists and was not made by this collection" % name,
            "choose another name, or set force_conflicts: true to take it over",
        )
    body = {
        "apiVersion": API_VERSION,
        "kind": "Bundle",
        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
        "spec": {"sources": sources, "target": target},
    }
    applied = objects.ensure(kube, path, body, params, ctx.check_mode, before=existing)
    after = applied.after
    result = dict(changed=applied.changed, namespaces=namespaces, fingerprints=sorted(kept))
    if applied.changed:
        result["diff"] = applied.diff("Bundle %s" % name, show=lambda obj: masked(comparable(obj)))
    if params["wait"] and not ctx.check_mode:
        state = {"problems": []}

        def done(obj):
            if not synced(obj):
                state["problems"] = ["Bundle not Synced for its generation: %s" % _conditions(obj)]
                return False
            state["problems"] = delivered(kube, name, target, namespaces, every, kept)
            return not state["problems"]

        ok, after = kube.wait(path, done, params["wait_timeout"])
        if not ok:
            exc = PKIError(
                "wait_timeout",
                "Bundle %s not delivered after %ss: %s"
                % (name, params["wait_timeout"], "; ".join(state["problems"][:10])),
                "check trust-manager's log (is it running, with secret targets enabled if secret_key is set?), "
                "or raise wait_timeout",
            )
            exc.result = dict(result, bundle=masked(without_managed_fields(after)), synced=False)
            raise exc
    result.update(bundle=masked(without_managed_fields(after)), synced=synced(after))
    return result


def _conditions(obj: Optional[Dict]) -> str:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return (
        "; ".join("%s=%s (%s)" % (c.get("type"), c.get("status"), c.get("message") or c.get("reason")) for c in conds)
        or "no conditions yet"
    )
