# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: keyring
short_description: Read a keyring directory on the controller (primary id and every id's parts)
version_added: 0.2.0
description:
  - Reads a keyring written by M(securebydefault.pki.keyring) (on the controller, e.g. C(delegate_to=localhost))
    and returns, per directory, the primary id and the parts of every id, primary first, for templates that render
    a service's configuration (sign with the primary, accept all).
  - Binary parts are returned base64-encoded (C(encoding=base64)); text parts (passwords, PEM) as text by default.
author: securebydefault.pki contributors (@securebydefault)
options:
  _terms:
    description: Keyring directories.
    required: true
    type: list
    elements: path
  encoding:
    description: C(text) decodes parts as UTF-8; C(base64) encodes them (for raw symmetric keys).
    type: str
    choices: [text, base64]
    default: text
"""

EXAMPLES = r"""
- name: Render the app's key list, primary first
  ansible.builtin.template:
    src: keys.json.j2
    dest: /etc/app/keys.json
    mode: "0600"
  vars:
    ring: "{{ lookup('securebydefault.pki.keyring', '/srv/keys/app', encoding='base64') }}"
# keys.json.j2:
#   {"sign_with": "{{ ring.primary }}", "keys": {{ ring.ids | to_json }}}
"""

RETURN = r"""
_raw:
  description: One dict per directory.
  type: list
  elements: dict
  contains:
    primary:
      description: The id in use.
      type: str
    ids:
      description: Every id with its parts, primary first, then newest first.
      type: list
      elements: dict
"""

import base64

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.securebydefault.pki.plugins.module_utils.keyring_reader import KeyringError, load


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        encoding = self.get_option("encoding")
        out = []
        for term in terms:
            try:
                snapshot = load(term)
            except KeyringError as exc:
                raise AnsibleLookupError(str(exc)) from None
            ids = []
            for key_id, parts in snapshot.all():
                entry = {"id": key_id, "primary": key_id == snapshot.primary_id}
                for part, content in parts.items():
                    if encoding == "base64":
                        entry[part] = base64.b64encode(content).decode()
                    else:
                        try:
                            entry[part] = content.decode("utf-8")
                        except UnicodeDecodeError:
                            raise AnsibleLookupError("%s/%s.%s is binary; use encoding=base64"
                                                     % (term, key_id, part)) from None
                ids.append(entry)
            out.append({"primary": snapshot.primary_id, "ids": ids})
        return out
