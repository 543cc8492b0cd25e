# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed requests from module options: the fields of a dataclass taken from the options of the same names."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Type, TypeVar

Request = TypeVar("Request")


def request_from(cls: Type[Request], params: Mapping[str, Any], **converted: Any) -> Request:
    """``cls`` with every field of the same name as an option taken from ``params``; ``converted`` wins."""
    values = {f.name: params[f.name] for f in dataclasses.fields(cls) if f.name in params}  # type: ignore[arg-type]
    values.update(converted)
    return cls(**values)
