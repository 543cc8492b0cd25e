# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Use cases on plain Kubernetes objects: a namespace, a trust bundle ConfigMap.

Each function takes the runner's context (``ctx.params``, ``ctx.kube``,
``ctx.check_mode``) and returns the module's result; input is checked before
the first request. cryptography is imported only by the trust bundle, where it
reads CA roots.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import objects
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.certmanager import check_k8s_name
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import (
    namespaced_path,
    without_managed_fields,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.labels import MANAGED_BY
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
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import fingerprint, load_certificate
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import read_public

    roots, prints = [], []
    for path in paths:
        root = read_public(path, "ca_paths")[1]
        digest = fingerprint(load_certificate(root, "ca_paths"))
        if digest not in prints:
            roots.append(root if root.endswith("\n") else root + "\n")
            prints.append(digest)
    return "".join(roots), prints


def ensure_trust_bundle(ctx) -> Dict:
    """The ConfigMap's key holds exactly the roots of ``ca_paths``; the diff shows the PEM text."""
    params = ctx.params
    name = check_k8s_name(params["name"], "name")
    namespace = check_k8s_name(params["namespace"], "namespace")
    if not params["ca_paths"]:
        raise PKIError("ca_paths", "is empty", "list at least one CA directory")
    pem, prints = bundle_of(params["ca_paths"])
    key = params["key"]
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "data": {key: pem},
    }
    applied = objects.ensure(
        ctx.kube, namespaced_path("v1", "configmaps", namespace, name), body, params, ctx.check_mode
    )
    result = dict(changed=applied.changed, fingerprints=prints, bundle=pem)
    if applied.changed:
        result["diff"] = applied.diff(
            "ConfigMap %s/%s" % (namespace, name), show=lambda obj: ((obj or {}).get("data") or {}).get(key, "")
        )
    return result
