# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Glue between Ansible modules and the PKI engine: dependency check and error reporting."""
from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import cryptography  # noqa: F401 pylint: disable=unused-import
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

MIN_CRYPTOGRAPHY = "38.0"


def require_cryptography(module) -> None:
    if CRYPTOGRAPHY_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("cryptography >= %s" % MIN_CRYPTOGRAPHY),
                         exception=CRYPTOGRAPHY_IMPORT_ERROR)


def fail_pki(module, exc, **extra) -> None:
    """Report a PKIError the same way everywhere: message, field and fix as data."""
    module.fail_json(msg=str(exc), field=getattr(exc, "field", None), fix=getattr(exc, "fix", None), **extra)
