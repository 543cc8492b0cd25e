# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Use cases on plain Kubernetes objects: a namespace, a trust bundle ConfigMap.

Each function takes the runner's context (``ctx.params``, ``ctx.kube``,
``ctx.check_mode``) and returns the module's result; input is checked before
the first request. cryptography is imported only by the trust bundle, where it
reads CA roots.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import objects
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.certmanager import check_k8s_name
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import (
    namespaced_path,
    without_managed_fields,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.labels import MANAGED_BY, TRUST_BUNDLE_LABEL
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError


def namespace_name(name: str) -> str:
    """A namespace name is a DNS label: no dots, at most 63 characters."""
    check_k8s_name(name, "name")
    if len(name) > 63 or "." in name:
        raise PKIError(
            "name", "%r is not a valid namespace name" % name, "use at most 63 lower-case letters, digits and '-'"
        )
    return name


def ensure_namespace(ctx) -> Dict:
    """The namespace exists with the given labels (others left alone); it is never deleted."""
    params = ctx.params
    name = namespace_name(params["name"])
    metadata = {"name": name}
    if params.get("labels"):
        metadata["labels"] = {str(k): str(v) for k, v in params["labels"].items()}
    applied = objects.ensure(
        ctx.kube,
        namespaced_path("v1", "namespaces", None, name),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata},
        params,
        ctx.check_mode,
    )
    result = dict(changed=applied.changed, namespace=without_managed_fields(applied.after))
    if applied.changed:
        result["diff"] = applied.diff()
    return result


def bundle_of(paths: Sequence[str]) -> Tuple[str, List[str]]:
    """The roots of the CA directories, in order, each once -> (PEM text, SHA-256 fingerprints)."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import DirectoryStore

    return roots_in([DirectoryStore(path, "ca_paths") for path in paths])


def roots_in(stores, pins: Sequence[Optional[str]] = ()) -> Tuple[str, List[str]]:
    """The roots of the CAs that ``stores`` keep (directories, Secrets), in order, each once; see bundle_of.

    ``pins``: per store, the fingerprint its root must have (None: any).
    """
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.ca import pinned_root

    roots, prints = [], []
    pins = list(pins) + [None] * (len(stores) - len(pins))
    for store, pin in zip(stores, pins):
        root, digest = pinned_root(store, pin, store.field)
        if digest not in prints:
            roots.append(root if root.endswith("\n") else root + "\n")
            prints.append(digest)
    return "".join(roots), prints


def ensure_trust_bundle(ctx) -> Dict:
    """The ConfigMap's key holds exactly the roots of ``ca_paths``; the diff shows the PEM text."""
    params = ctx.params
    name = check_k8s_name(params["name"], "name")
    namespace = check_k8s_name(params["namespace"], "namespace")
    if not params["ca_paths"] and not params.get("ca_secrets"):
        raise PKIError("ca_paths", "is empty", "list at least one CA directory (or CA Secret in ca_secrets)")
    pins = [None] * len(params["ca_paths"] or []) + [s.get("fingerprint") for s in params.get("ca_secrets") or []]
    return deliver_roots(ctx, params, name, namespace, lambda: roots_in(ca_stores(ctx), pins))


def ca_stores(ctx) -> List:
    """The CAs of ca_paths (directories) then of ca_secrets (Secrets, read only), in that order."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.ca import secret_store_of
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import DirectoryStore

    stores = [DirectoryStore(path, "ca_paths") for path in ctx.params["ca_paths"] or []]
    for index, secret in enumerate(ctx.params.get("ca_secrets") or []):
        stores.append(secret_store_of(ctx, secret, "ca_secrets[%d]" % index))
    return stores


def deliver_roots(ctx, params: Dict, name: str, namespace: str, roots: Callable[[], Tuple[str, List[str]]]) -> Dict:
    """Pods of ``namespace`` get the roots (``roots()`` -> PEM text, fingerprints) in ConfigMap ``name``: written
    there, or (``params["distribution"]``) by a trust-manager Bundle of that name into every selected namespace.
    ``params``: key, distribution, namespace_selector, trust_namespace, wait_timeout, field_manager,
    force_conflicts."""
    distribution = params.get("distribution") or "configmap"
    if distribution != "configmap":
        # pylint: disable=import-outside-toplevel
        from ansible_collections.securebydefault.pki.plugins.module_utils._ops import trust_manager

        if trust_manager.served(ctx.kube):
            return _through_trust_manager(ctx, params, name, namespace, *roots())
        if distribution == "trust_manager":
            raise PKIError(
                "distribution",
                "trust-manager's Bundle API (%s) is not served by this cluster" % trust_manager.API_VERSION,
                "install trust-manager, or use distribution=auto or configmap",
            )
    if params.get("namespace_selector") or params.get("namespaces"):
        raise PKIError(
            "namespace_selector" if params.get("namespace_selector") else "namespaces",
            "applies only when trust-manager distributes the bundle",
            "leave it out, or set distribution=trust_manager (or auto, with trust-manager installed)",
        )
    pem, prints = roots()
    key = params["key"]
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY, **{TRUST_BUNDLE_LABEL: "true"})},
        "data": {key: pem},
    }
    applied = objects.ensure(
        ctx.kube, namespaced_path("v1", "configmaps", namespace, name), body, params, ctx.check_mode
    )
    result = dict(changed=applied.changed, fingerprints=prints, bundle=pem, distribution="configmap")
    if applied.changed:
        result["diff"] = applied.diff(
            "ConfigMap %s/%s" % (namespace, name), show=lambda obj: ((obj or {}).get("data") or {}).get(key, "")
        )
    return result


def _through_trust_manager(ctx, params: Dict, name: str, namespace: str, pem: str, prints: List[str]) -> Dict:
    """The same roots as a trust-manager Bundle of that name: a ConfigMap of that name (and key) in every
    namespace, or in those ``namespace_selector`` picks, which must include ``namespace``."""
    # pylint: disable=import-outside-toplevel
    from types import SimpleNamespace

    from ansible_collections.securebydefault.pki.plugins.module_utils._ops import trust_manager

    # A Bundle is cluster-wide: one of the same name made for another CA would be taken over. A rotation always
    # keeps a root the Bundle had (trust both, then drop the old), so sharing none means "someone else's".
    existing = ctx.kube.get(namespaced_path(trust_manager.API_VERSION, "bundles", None, name))
    spec = (existing or {}).get("spec") or {}
    sources = spec.get("sources") if isinstance(spec.get("sources"), list) else []
    target = spec.get("target") if isinstance(spec.get("target"), dict) else {}
    if (
        existing is not None
        and not params.get("force_conflicts")
        and (
            any(not isinstance(s, dict) or set(s) != {"inLine"} for s in sources)
            or target.get("secret")
            or target.get("additionalFormats")
        )
    ):
        raise PKIError(
            "name",
            "trust-manager Bundle %s has sources or targets beyond CA roots inline (made with trust_manager_bundle "
            "or by hand); this would drop them" % name,
            "give this bundle a name of its own, or set force_conflicts: true to replace that Bundle",
        )
    had = set()
    for source in sources:
        if isinstance(source, dict):
            had |= trust_manager.fingerprints_of(str(source.get("inLine") or ""))
    if had and not had & set(prints):
        raise PKIError(
            "name",
            "trust-manager Bundle %s exists and holds none of these roots (another CA's bundle?)" % name,
            "give this CA's bundle a name of its own, or delete that Bundle first if it is stale",
        )
    bundle_params = dict(
        name=name,
        state="present",
        ca_paths=None,
        inline=pem,
        sources=None,
        trust_namespace=params.get("trust_namespace") or "cert-manager",
        configmap_key=params["key"],
        secret_key=None,
        namespace_selector=params.get("namespace_selector"),
        namespaces=params.get("namespaces"),
        pkcs12=None,
        jks=None,
        wait=True,
        wait_timeout=params.get("wait_timeout") or 60,
        field_manager=params.get("field_manager"),
        force_conflicts=params.get("force_conflicts"),
        required_namespace=namespace,
    )
    inner = SimpleNamespace(params=bundle_params, kube=ctx.kube, check_mode=ctx.check_mode)
    result = trust_manager.ensure_bundle(inner)
    return dict(
        changed=result["changed"],
        fingerprints=prints,
        bundle=pem,
        distribution="trust_manager",
        namespaces=result["namespaces"],
        **({"diff": result["diff"]} if "diff" in result else {}),
    )
