#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: keyring
short_description: Staged rotation of a secret in a directory (add, promote, retire), gated by time
version_added: 0.2.0
description:
  - Keeps a rotating secret - a symmetric key, a password or a signing key pair - in a directory on the host, by the
    keyring convention; entries are named C(<id>.<part>), and the entries of the id in use end in C(.primary).
  - Rotation moves through three stages, each idempotent. B(add) puts C(r2.key) beside C(r1.key.primary) - it is
    distributed, but not used yet. B(promote) makes it C(r2.key.primary) and C(r1.key) stays accepted. B(retire)
    removes C(r1.key).
  - O(state=rotated) advances as far as the time gates allow, so a scheduled job (cron, an AWX schedule) drives a
    rotation to completion over several runs. The explicit states C(added), C(promoted) and C(retired) are for
    operators, and refuse to skip a gate unless O(force=true).
  - When each stage was reached is recorded in C(.keyring.json) beside the entries. Each step is journaled there
    first, so a run killed in the middle is finished (promote, retire) or undone (a new key no one uses yet) by the
    next run. The material never appears in results or diffs.
  - A directory edited by hand into an invalid state (two primaries, a missing part, foreign files) is refused with
    the reason; nothing is written.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
  - securebydefault.pki.keyring
options:
  path:
    description: Directory of the keyring (created if missing). Holds nothing but the keyring.
    type: path
    required: true
  owner:
    description: Owner of the entries.
    type: str
  group:
    description: Group of the entries.
    type: str
  key_mode:
    description: Mode of secret entries (C(key), C(password), C(private)).
    type: raw
    default: "0600"
  public_mode:
    description: Mode of C(public) entries.
    type: raw
    default: "0644"
  allow_group_readable_key:
    description:
      - Accept a O(key_mode) that lets the group read secret entries (e.g. C("0640")). World access and
        group write are always refused.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports the steps that would be taken and writes nothing.
  diff_mode:
    support: full
    description: Shows the entry names and stage before and after (never the material).
notes:
  - Consumers load every id and use the primary one to sign or encrypt, and accept all of them to verify or
    decrypt; they reread the directory periodically. See docs/keyring.md for readers in Python and for templates.
seealso:
  - module: securebydefault.pki.k8s_keyring
"""

EXAMPLES = r"""
- name: A session-signing key for the app, rotated by schedule
  securebydefault.pki.keyring:
    path: /etc/app/session-keys
    kind: symmetric
    size: 32
    state: rotated
    rotate_every: 30d
    promote_after: 1h
    retire_after: 1d
    owner: app
    group: app
  register: session_keys

- name: An operator adds the next key now
  securebydefault.pki.keyring:
    path: /etc/app/jwt
    kind: ec
    state: added
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
  description: Every id in the keyring.
  returned: success
  type: list
  elements: str
  sample: [r1, r2]
entries:
  description: Entry names after this run.
  returned: success
  type: list
  elements: str
  sample: [r1.key.primary, r2.key]
steps:
  description: What this run did (or would do in check mode), in order.
  returned: success
  type: list
  elements: dict
  sample: [{action: add, id: r2, at: "2026-11-23T14:00:00Z"}]
next_action:
  description: The next step (C(add), C(promote), C(retire)) or null when nothing is scheduled.
  returned: success
  type: str
  sample: promote
next_due:
  description: When the next step may run (UTC).
  returned: success
  type: str
  sample: "2026-11-23T15:00:00Z"
recovered:
  description: What this run finished or undid of a run that was killed mid-step.
  returned: when a journal was found
  type: str
  sample: "finished promoting r2"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import keyring as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.keyring_support import KEYRING_OPTIONS
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keyring import KEY_PAIR_KINDS

ARGUMENT_SPEC = dict(
    KEYRING_OPTIONS,
    path=dict(type="path", required=True),
    owner=dict(type="str"),
    group=dict(type="str"),
    key_mode=dict(type="raw", default="0600", no_log=False),
    public_mode=dict(type="raw", default="0644"),
    allow_group_readable_key=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.directory_keyring, crypto=module.params["kind"] in KEY_PAIR_KINDS)


if __name__ == "__main__":
    main()
