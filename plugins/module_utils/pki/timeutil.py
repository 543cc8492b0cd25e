# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Durations ("24h", "30d", "1y") and certificate validity in UTC.

Works with cryptography 38 (naive datetimes) and with releases that add the
``*_utc`` properties.
"""

from __future__ import annotations

import datetime
import re
from typing import Union

from .errors import PKIError

UTC = datetime.timezone.utc
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_PART = re.compile(r"(\d+)\s*([smhdwy])")


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(UTC)


MAX_DURATION_SECONDS = 100 * 366 * 86400


def parse_duration(value: Union[str, int, float], field: str, allow_zero: bool = False) -> datetime.timedelta:
    """Parse "90d", "24h", "1y", "1d12h" or a number of seconds; 0 only where ``allow_zero`` (an open gate)."""
    if isinstance(value, bool):
        raise PKIError(field, "expected a duration, got a boolean", 'write it like "30d", "24h" or "3600"')
    if isinstance(value, (int, float)):
        try:
            seconds = int(value)
        except (OverflowError, ValueError):
            raise PKIError(field, "%r is not a duration" % (value,), 'write it like "30d", "24h" or "3600"') from None
    else:
        text = str(value).strip().lower()
        if text.isdigit():
            seconds = int(text)
        else:
            compact = text.replace(" ", "")
            parts = _PART.findall(compact)
            if not parts or "".join(n + u for n, u in parts) != compact:
                raise PKIError(
                    field,
                    "%r is not a duration" % (value,),
                    'write it like "30d", "24h", "1y", "1d12h" or a number of seconds',
                )
            seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds > MAX_DURATION_SECONDS:
        raise PKIError(
            field,
            "%r is longer than 100 years" % (value,),
            'use a realistic duration, e.g. "90d" for a leaf or "10y" for a CA',
        )
    if seconds == 0 and allow_zero:
        return datetime.timedelta(0)
    if seconds <= 0:
        raise PKIError(field, "duration must be positive, got %r" % (value,), 'use e.g. "30d"')
    return datetime.timedelta(seconds=seconds)


def format_duration(delta: datetime.timedelta) -> str:
    """Short human form: "3d4h", "45m", "-2d" for the past."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            out.append("%d%s" % (seconds // size, unit))
            seconds %= size
        if len(out) == 2:
            break
    if not out:
        out.append("%ds" % seconds)
    return sign + "".join(out)


def not_valid_before(cert) -> datetime.datetime:
    value = getattr(cert, "not_valid_before_utc", None)
    if value is None:
        value = cert.not_valid_before.replace(tzinfo=UTC)
    return value


def not_valid_after(cert) -> datetime.datetime:
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:
        value = cert.not_valid_after.replace(tzinfo=UTC)
    return value


ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def isoformat(value: datetime.datetime) -> str:
    return value.astimezone(UTC).strftime(ISO_FORMAT)


def parse_isoformat(text: str) -> datetime.datetime:
    """The inverse of isoformat(); ValueError for anything else."""
    return datetime.datetime.strptime(text, ISO_FORMAT).replace(tzinfo=UTC)
