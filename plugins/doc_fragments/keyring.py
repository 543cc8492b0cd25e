# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # The options of the keyring convention shared by keyring (a directory) and k8s_keyring (a Secret).
    DOCUMENTATION = r"""
options:
  kind:
    description:
      - C(symmetric) (part C(key)), C(password) (part C(password)), or a key pair C(ec), C(rsa), C(ed25519)
        (parts C(private), PKCS#8 PEM, and C(public), SubjectPublicKeyInfo PEM).
    type: str
    choices: [symmetric, password, ec, rsa, ed25519]
    required: true
  size:
    description:
      - Bytes of a symmetric key (default 32), characters of a password (default 32), bits of an EC (256, 384,
        521; default 256) or RSA key (default 3072). Not for ed25519.
    type: int
  encoding:
    description: How a symmetric key is stored.
    type: str
    choices: [raw, base64, hex]
    default: raw
  state:
    description:
      - C(present) creates C(r1) if the keyring is empty and changes nothing else.
      - C(rotated) advances as far as the gates allow - starts a rotation when the primary is older than
        O(rotate_every), promotes after O(promote_after), retires after O(retire_after).
      - C(added), C(promoted), C(retired) reach that stage now (the operator's explicit steps); a gate not passed
        fails with the time it opens unless O(force=true).
    type: str
    choices: [present, rotated, added, promoted, retired]
    default: present
  promote_after:
    description: How long a new key is distributed before it is used (C(1h), C(7d), seconds; C(0) for no wait).
    type: str
    default: 1h
  retire_after:
    description: How long the previous key stays accepted after promotion; at least the lifetime of what it made.
    type: str
    default: 1d
  rotate_every:
    description: With O(state=rotated), start a new rotation when the primary is this old. Unset never starts one.
    type: str
  retire_id:
    description: With O(state=retired), the id to retire (e.g. C(r1)); it must be the previous, not the primary, key.
    type: str
  force:
    description: Pass a time gate now.
    type: bool
    default: false
"""
