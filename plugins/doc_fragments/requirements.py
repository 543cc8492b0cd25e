# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # Every module (and the action plugin) that runs the PKI engine. The version is compared when the module
    # starts (plugins/module_utils/_ops/runner.py MIN_CRYPTOGRAPHY); an older one fails naming the fix.
    DOCUMENTATION = r"""
options: {}
requirements:
  - cryptography >= 38.0 where the module runs (Debian 12's python3-cryptography is enough)
"""
