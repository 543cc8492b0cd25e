# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keyring steps (add, promote, retire) on the keys of one Kubernetes Secret.

The Secret is read, the keyring planned, and the whole Secret written in one
conditional request (k8s/objects.write_with_retry): a concurrent writer makes
the API server answer 409, and the step is planned again from the Secret as it
is then - the same retry every CA Secret gets. The stage times are recorded in
the annotation labels.KEYRING_STATE (the legacy key is read and removed). Key
material never appears in results or diffs.
"""

from __future__ import annotations

import base64
import json
from typing import Dict, Optional, Tuple

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import labels as keys
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.certmanager import check_k8s_name
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import namespaced_path, secret_where
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.objects import write_with_retry
from ansible_collections.securebydefault.pki.plugins.module_utils.keyring_support import (
    check_encoding,
    diff_of,
    gates_from,
    plan_step,
    result_of,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import keyring as kr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError


def read_keyring(secret: Optional[Dict], where: str) -> Tuple[Dict[str, bytes], Dict]:
    """(entries, recorded state) of a keyring Secret; ({}, {}) when there is none."""
    if secret is None:
        return {}, {}
    try:
        entries = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    except ValueError:
        raise PKIError("name", "%s holds data that is not base64" % where, "fix or delete the Secret") from None
    return entries, keys.keyring_state_of(secret) or {}


def keyring_secret(secret: Optional[Dict], name: str, namespace: str, labels: Dict[str, str], plan: kr.Plan) -> Dict:
    """The whole Secret after ``plan``: its entries, our labels added, the state under the current key."""
    body = (
        json.loads(json.dumps(secret))
        if secret
        else {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace},
        }
    )
    metadata = body["metadata"]
    metadata["labels"] = dict(metadata.get("labels") or {}, **labels)
    metadata["annotations"] = keys.with_keyring_state(metadata.get("annotations"), plan.after.meta)
    body["data"] = {k: base64.b64encode(v).decode() for k, v in plan.after.entries().items()}
    return body


def keyring_step(ctx) -> Dict:
    """Bring the keyring Secret to ``state`` as far as the time gates allow; one conditional write at most."""
    params = ctx.params
    name = check_k8s_name(params["name"], "name")
    namespace = check_k8s_name(params["namespace"], "namespace")
    gates = gates_from(params)
    check_encoding(params)
    # the managed-by label last: rotation_status finds keyring Secrets by it, a user label cannot hide one
    labels = dict({str(k): str(v) for k, v in (params.get("labels") or {}).items()}, **keys.MANAGED_BY)
    where = secret_where(namespace, name)
    outcome: Dict = {}

    def step(secret: Optional[Dict]) -> Optional[Dict]:
        """Planned again from each read: after a 409 the step starts from the Secret as it is now."""
        entries, meta = read_keyring(secret, where)
        ring = kr.parse(entries, params["kind"], meta, where, field_name="name")
        plan = plan_step(ring, params, gates)
        current = (secret or {}).get("metadata") or {}
        # the state under its 0.2.0 key is still read; it moves to the new key with the next real write
        outdated = any((current.get("labels") or {}).get(k) != v for k, v in labels.items())
        outcome.update(plan=plan, changed=plan.changed or plan.after.meta != meta or outdated)
        return keyring_secret(secret, name, namespace, labels, plan) if outcome["changed"] else None

    write_with_retry(ctx.kube, namespaced_path("v1", "secrets", namespace, name), step, ctx.check_mode, "name", where)
    result = result_of(outcome["plan"])
    result["changed"] = outcome["changed"]
    if outcome["changed"]:
        result["diff"] = diff_of(outcome["plan"], where)
    return result
