# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type of the PKI engine.

Every failure names the option (or file) at fault, says what is wrong and how
to fix it, so modules can hand the message straight to ``fail_json``.
"""

from __future__ import annotations


class PKIError(Exception):
    """Bad input or state, detected before anything was written."""

    # what the use case knew when it failed, returned with the failure (modules' run wrapper)
    result = None

    def __init__(self, field: str, problem: str, fix: str = "") -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        message = "%s: %s" % (field, problem)
        if fix:
            message += ". Fix: %s" % fix
        super().__init__(message)

    def within(self, where: str) -> "PKIError":
        """The same error naming the item it is about (``certificates[3]`` + ``dns_names``), with what the use
        case knew when it failed (``result``)."""
        renamed = PKIError("%s.%s" % (where, self.field), self.problem, self.fix)
        renamed.result = self.result
        return renamed
