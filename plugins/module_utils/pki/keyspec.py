# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which private keys are allowed: EC P-256 (default) and P-384, RSA 2048-4096, Ed25519.

Standard library only, so options can be checked before ``cryptography`` is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .errors import PKIError

KEY_TYPES = ("ec", "rsa", "ed25519")
EC_SIZES = (256, 384)
RSA_MIN, RSA_MAX = 2048, 4096


@dataclass(frozen=True)
class KeySpec:
    """What kind of key is wanted: ``ec``/256 (default), ``ec``/384, ``rsa``/2048..4096, ``ed25519``."""

    type: str = "ec"
    size: Optional[int] = None

    @property
    def effective_size(self) -> Optional[int]:
        if self.type == "ed25519":
            return None
        if self.size is not None:
            return self.size
        return 256 if self.type == "ec" else 3072

    def describe(self) -> str:
        return self.type if self.effective_size is None else "%s/%d" % (self.type, self.effective_size)


def validate_key_spec(spec: KeySpec, field: str = "key_type") -> KeySpec:
    size_field = field.replace("key_type", "key_size") if "key_type" in field else field + ".size"
    if spec.type not in KEY_TYPES:
        raise PKIError(field, "unknown key type %r" % (spec.type,), "use one of %s" % ", ".join(KEY_TYPES))
    size = spec.effective_size
    if spec.type == "ec" and size not in EC_SIZES:
        raise PKIError(
            size_field,
            "EC keys come in sizes 256 (P-256) and 384 (P-384), not %r" % (spec.size,),
            "set %s to 256 or 384" % size_field,
        )
    if spec.type == "rsa":
        if size is None or size < RSA_MIN:
            raise PKIError(
                size_field,
                "RSA %s is below the minimum of %d bits" % (size, RSA_MIN),
                "set %s to 2048, 3072 or 4096, or use key_type ec" % size_field,
            )
        if size > RSA_MAX or size % 256:
            raise PKIError(
                size_field,
                "RSA keys must be a multiple of 256 bits between %d and %d, not %s" % (RSA_MIN, RSA_MAX, size),
                "set %s to 2048, 3072 or 4096" % size_field,
            )
    if spec.type == "ed25519" and spec.size not in (None, 255, 256):
        raise PKIError(size_field, "Ed25519 keys have a fixed size", "leave %s unset" % size_field)
    return KeySpec(spec.type, size)
