# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Reports what would change, with reasons, and writes nothing.
  diff_mode:
    support: full
    description: Shows the certificate (names, issuer, expiry, fingerprint) before and after.
"""

    FILES = r"""
options:
  owner:
    description: Owner of every file written (name or uid). Unset keeps the current owner (root when created by root).
    type: str
  group:
    description: Group of every file written (name or gid). Unset keeps the current group.
    type: str
  key_mode:
    description:
      - Mode of private key files and keystores. Quote it.
      - A mode that lets other users read or write the key is refused; a group-readable mode such as
        C("0640") only with O(allow_group_readable_key).
    type: raw
    default: "0600"
  allow_group_readable_key:
    description:
      - Accept a O(key_mode) that lets the file's group read the private key (e.g. C("0640") with
        O(group) C(ssl-cert)). World access and group write are always refused.
    type: bool
    default: false
  cert_mode:
    description: Mode of certificate, chain and bundle files. Quote it.
    type: raw
    default: "0644"
"""

    KEY = r"""
options:
  key_type:
    description: Algorithm of the node key. C(ec) is ECDSA (P-256 by default).
    type: str
    choices: [ec, rsa, ed25519]
    default: ec
  key_size:
    description:
      - Size for C(ec) (256 or 384) or C(rsa) (2048 to 4096, a multiple of 256; default 3072).
      - Anything weaker is refused before anything is written.
    type: int
"""
