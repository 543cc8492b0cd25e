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
  - When each stage was reached is recorded in the annotation C(pki.securebydefault.io/keyring-state) and gates the
    next stage. Secrets written by 0.2.0 carry C(keyring.securebydefault.pki/state) instead; it is read, and replaced
    by the new key at the next write.
  - Every change is one update of the whole Secret, conditional on the C(resourceVersion) read - atomic, and never
    overwrites a concurrent change - if another writer changed the Secret meanwhile (HTTP 409), the step is planned
    again from the Secret as it is then, a bounded number of times, as for a CA kept in a Secret.
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
  sample: added
primary:
  description: The id in use.
  returned: success
  type: str
  sample: r1
ids:
  description: Every id.
  returned: success
  type: list
  elements: str
  sample: [r1, r2]
entries:
  description: The Secret's keys after this run.
  returned: success
  type: list
  elements: str
  sample: [r1.key.primary, r2.key]
steps:
  description: What this run did (or would do in check mode).
  returned: success
  type: list
  elements: dict
  contains:
    action:
      description: One of C(create), C(add), C(promote), C(retire).
      type: str
      returned: always
      sample: add
    id: {description: The id the step concerns., type: str, returned: always, sample: r2}
    at: {description: When the step was taken (UTC)., type: str, returned: always, sample: "2026-05-01T10:00:00Z"}
  sample: [{action: add, id: r2, at: "2026-05-01T10:00:00Z"}]
next_action:
  description: The next step, or null.
  returned: success
  type: str
  sample: promote
next_due:
  description: When the next step may run (UTC).
  returned: success
  type: str
  sample: "2026-05-01T10:10:00Z"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import k8s_keyring as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_CONNECTION_SPEC
from ansible_collections.securebydefault.pki.plugins.module_utils.keyring_support import KEYRING_OPTIONS
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keyring import KEY_PAIR_KINDS

ARGUMENT_SPEC = dict(
    K8S_CONNECTION_SPEC,
    **KEYRING_OPTIONS,
    name=dict(type="str", required=True),
    namespace=dict(type="str", required=True),
    labels=dict(type="dict"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    # key pairs are made with cryptography; symmetric keys and passwords need only the standard library
    run(module, ops.keyring_step, kube=True, crypto=module.params["kind"] in KEY_PAIR_KINDS)


if __name__ == "__main__":
    main()
