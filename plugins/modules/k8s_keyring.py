#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_keyring
short_description: Staged rotation of a secret kept in a Kubernetes Secret (add, promote, retire), gated by time
version_added: 0.2.0
description:
  - The keyring convention of M(securebydefault.pki.keyring) on the keys of one Kubernetes C(Secret) - C(r1.key.primary)
    then C(r1.key.primary) with C(r2.key), then C(r1.key) with C(r2.key.primary), then C(r2.key.primary). Mounted as a
    volume, the Secret gives pods exactly the files of the directory convention, and kubelet refreshes them in place.
  - When each stage was reached is recorded in the annotation C(keyring.securebydefault.pki/state) and gates the next
    stage. Every change is one update of the whole Secret, conditional on the C(resourceVersion) read - atomic, and a
    concurrent change fails instead of being overwritten.
  - A Secret edited by hand into an invalid state, or one holding other keys, is refused with the reason; nothing is
    written. Check mode is the API server's dry run.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s
  - securebydefault.pki.k8s.access
  - securebydefault.pki.keyring
options:
  name:
    description: Name of the Secret.
    type: str
    required: true
  namespace:
    description: Namespace of the Secret.
    type: str
    required: true
  labels:
    description: Labels of the Secret (besides C(app.kubernetes.io/managed-by)).
    type: dict
seealso:
  - module: securebydefault.pki.keyring
"""

EXAMPLES = r"""
- name: The session key of the shop, rotated by an AWX schedule
  securebydefault.pki.k8s_keyring:
    name: shop-session-keys
    namespace: shop
    kind: symmetric
    state: rotated
    rotate_every: 30d
    promote_after: 10m   # kubelet refreshes mounted Secrets within about a minute
    retire_after: 1d
"""

RETURN = r"""
stage:
  description: C(single), C(added) or C(promoted) after this run.
  returned: success
  type: str
primary:
  description: The id in use.
  returned: success
  type: str
ids:
  description: Every id.
  returned: success
  type: list
  elements: str
entries:
  description: The Secret's keys after this run.
  returned: success
  type: list
  elements: str
steps:
  description: What this run did (or would do in check mode).
  returned: success
  type: list
  elements: dict
next_action:
  description: The next step, or null.
  returned: success
  type: str
next_due:
  description: When the next step may run (UTC).
  returned: success
  type: str
api_calls:
  description: API requests this task made.
  returned: always
  type: int
"""

import base64
import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.certmanager import check_k8s_name
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import MANAGED_BY, namespaced_path
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s_support import (
    K8S_CONNECTION_SPEC, require_kubernetes, run_k8s)
from ansible_collections.securebydefault.pki.plugins.module_utils.keyring_support import (
    KEYRING_OPTIONS, diff_of, gates_from, result_of)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import keyring as kr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import utcnow

ANNOTATION = "keyring.securebydefault.pki/state"

ARGUMENT_SPEC = dict(
    K8S_CONNECTION_SPEC,
    **KEYRING_OPTIONS,
    name=dict(type="str", required=True),
    namespace=dict(type="str", required=True),
    labels=dict(type="dict"),
)


def read(secret, where):
    if secret is None:
        return {}, {}
    try:
        entries = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    except ValueError:
        raise PKIError("name", "%s holds data that is not base64" % where, "fix or delete the Secret") from None
    try:
        meta = json.loads(((secret.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION) or "{}")
    except ValueError:
        meta = {}  # unreadable times restart the gates; the keys are the truth
    return entries, meta if isinstance(meta, dict) else {}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    require_kubernetes(module)
    p = module.params

    def work(session):
        name = check_k8s_name(p["name"], "name")
        namespace = check_k8s_name(p["namespace"], "namespace")
        gates = gates_from(p)
        if p["kind"] != "symmetric" and p["encoding"] != "raw":
            raise PKIError("encoding", "only applies to kind symmetric", "remove encoding")
        kube = session.kube
        path = namespaced_path("v1", "secrets", namespace, name)
        where = "Secret %s/%s" % (namespace, name)
        secret = kube.get(path)
        entries, meta = read(secret, where)
        ring = kr.parse(entries, p["kind"], meta, where, field_name="name")
        plan = kr.plan(ring, p["state"], gates, utcnow(), lambda: kr.generate(p["kind"], p["size"], p["encoding"]),
                       force=p["force"], retire_id=p["retire_id"])
        labels = dict(MANAGED_BY, **{str(k): str(v) for k, v in (p["labels"] or {}).items()})
        current_labels = ((secret or {}).get("metadata") or {}).get("labels") or {}
        label_change = any(current_labels.get(k) != v for k, v in labels.items())
        changed = plan.changed or plan.after.meta != meta or label_change
        result = result_of(plan)
        result["changed"] = changed
        if changed:
            result["diff"] = diff_of(plan, where)
            body = secret or {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                              "metadata": {"name": name, "namespace": namespace}}
            body = json.loads(json.dumps(body))
            metadata = body["metadata"]
            metadata.pop("managedFields", None)
            metadata["labels"] = dict(metadata.get("labels") or {}, **labels)
            metadata["annotations"] = dict(metadata.get("annotations") or {},
                                           **{ANNOTATION: json.dumps(plan.after.meta, sort_keys=True)})
            body["data"] = {k: base64.b64encode(v).decode() for k, v in plan.after.entries().items()}
            query = {"dryRun": "All"} if module.check_mode else None
            if secret is None:
                status, reply = kube.request("POST", namespaced_path("v1", "secrets", namespace), body=body,
                                             query=query)
            else:
                # PUT with the resourceVersion read: the whole change or nothing, and no lost update
                status, reply = kube.request("PUT", path, body=body, query=query)
            if status == 409:
                raise PKIError("name", "%s changed while this task ran (%s)" % (where, (reply or {}).get("message")),
                               "run the task again; it starts from the Secret as it is now")
            kube.check(status, reply, "write", path)
        return result

    run_k8s(module, work)


if __name__ == "__main__":
    main()
