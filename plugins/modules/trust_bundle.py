#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""trust_bundle: install CA certificates as a bundle file and, optionally, into the system trust store.

Handles public certificates only; it never sees a private key.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: trust_bundle
short_description: Install one or more CA certificates as a trust bundle (and into the system trust store)
version_added: "0.1.0"
description:
  - Writes the given CA certificates, de-duplicated and in the given order, as one PEM bundle file,
    atomically. Expired CAs are dropped unless O(drop_expired=false).
  - With O(system_store=true) also places the bundle in the operating system's trust anchors
    (C(/usr/local/share/ca-certificates) with C(update-ca-certificates) on Debian/Ubuntu,
    C(/etc/pki/ca-trust/source/anchors) with C(update-ca-trust) on RHEL-like systems).
  - Several bundles can hold several CAs at once, which is how a CA rotation keeps old and new
    trusted during the overlap.
author: securebydefault.pki contributors (@securebydefault)
attributes:
  check_mode:
    support: full
    description: Reports what would change and writes nothing.
  diff_mode:
    support: full
    description: Shows the CA fingerprints before and after.
extends_documentation_fragment:
  - securebydefault.pki.requirements
options:
  path:
    description: The bundle file to write.
    type: path
    required: true
  certificates:
    description: PEM CA certificates; each item may hold several. Required with O(state=present).
    type: list
    elements: str
  state:
    description: C(present) writes the bundle, C(absent) removes the file and the system store entry.
    type: str
    choices: [present, absent]
    default: present
  drop_expired:
    description: Leave expired CA certificates out of the bundle.
    type: bool
    default: true
  system_store:
    description: Also install the bundle as system trust anchors and refresh the system store.
    type: bool
    default: false
  store_name:
    description: File name (without extension) in the system trust store.
    type: str
    default: securebydefault-pki
  owner:
    description: Owner of the bundle file.
    type: str
  group:
    description: Group of the bundle file.
    type: str
  mode:
    description: Mode of the bundle file.
    type: raw
    default: "0644"
  backup:
    description: Keep a timestamped copy of a replaced bundle.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Trust the cluster CA (and, during a rotation, its successor)
  securebydefault.pki.trust_bundle:
    path: /etc/pki/cluster-a/ca-bundle.crt
    certificates:
      - "{{ lookup('ansible.builtin.file', '/srv/pki/cluster-a/root.crt') }}"
    system_store: true

- name: Stop trusting it
  securebydefault.pki.trust_bundle:
    path: /etc/pki/cluster-a/ca-bundle.crt
    state: absent
    system_store: true
"""

RETURN = r"""
fingerprints:
  description: SHA-256 fingerprints of the CAs in the bundle, in order.
  returned: always
  type: list
  elements: str
  sample: ["4F:2A:...:9C"]
dropped:
  description: Subjects of expired CAs left out.
  returned: always
  type: list
  elements: str
  sample: ["CN=cluster-a CA 2016"]
system_store_path:
  description: Where the bundle was placed in the system trust store.
  returned: when system_store is true
  type: str
  sample: /usr/local/share/ca-certificates/securebydefault-pki.crt
backup_file:
  description: Backup copy of the replaced bundle.
  returned: when backup is true and the bundle was replaced
  type: str
  sample: /etc/pki/cluster-a/ca-bundle.crt.2026-11-22@10:00:00~
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import trust as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    certificates=dict(type="list", elements="str"),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    drop_expired=dict(type="bool", default=True),
    system_store=dict(type="bool", default=False),
    store_name=dict(type="str", default="securebydefault-pki"),
    owner=dict(type="str"),
    group=dict(type="str"),
    mode=dict(type="raw", default="0644"),
    backup=dict(type="bool", default=False),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_if=[("state", "present", ("certificates",))])
    run(module, ops.trust_bundle)


if __name__ == "__main__":
    main()
