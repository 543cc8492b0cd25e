# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who holds which name: the CA's ledger decides, so no host can take another host's identity.

A name (DNS name, IP address, URI) belongs to the inventory host whose live certificate names
it: signed by this CA, recorded in its ledger, not expired, not revoked. Signing a name that
another live host holds is refused, naming both hosts, unless the name is released (the other
host's certificates revoked, e.g. decommissioned, or expired) or shared by configuration
(``shared_names``, recorded in the ledger entry). Decided under the store's exclusion, from
the ledger and revocation record as they are at that moment, so two runs cannot both take a
name. Standard library only.
"""

from __future__ import annotations

import datetime
from typing import Dict, Iterable, List, Optional, Sequence, Set

from . import ledger
from .errors import PKIError
from .identity import build_identity
from .timeutil import parse_isoformat


def entry_names(entry: Dict, key: str = "names") -> Set[str]:
    """The names of a ledger entry in the one spelling identity.py gives them (older entries kept them as given)."""
    out = set()
    for name in entry.get(key) or []:
        if not isinstance(name, str):
            continue
        try:
            out.update(build_identity([name], "ledger", allow_wildcard=True).names())
        except PKIError:
            out.add(name)
    return out


def _revoked(revoked_json: Optional[bytes]) -> Set[str]:
    from .revocation import serials_of, state_of

    return set(serials_of(state_of(revoked_json, "the CA")))


def _live(entry: Dict, revoked: Set[str], now: datetime.datetime) -> bool:
    if str(entry.get("serial", "")).lower() in revoked:
        return False
    try:
        return parse_isoformat(entry["not_after"]) > now
    except (KeyError, TypeError, ValueError, AttributeError):
        return True  # an entry we cannot date is held to be live: the safe side


def holders(entries: Iterable[Dict], revoked: Set[str], now: datetime.datetime) -> Dict[str, Set[str]]:
    """name -> inventory hosts holding it with a live certificate (shared names left out)."""
    out: Dict[str, Set[str]] = {}
    for entry in entries:
        host = entry.get("host") or ""
        if not host or not _live(entry, revoked, now):
            continue
        for name in entry_names(entry) - entry_names(entry, "shared"):
            out.setdefault(name, set()).add(host)
    return out


def conflicts(
    ledger_bytes: bytes,
    revoked_json: Optional[bytes],
    host: str,
    names: Sequence[str],
    shared: Sequence[str],
    now: datetime.datetime,
) -> List[str]:
    """'<name> (held by <host>)' for every name of ``names`` another live host holds."""
    held = holders(ledger.parse(ledger_bytes or b"")[0], _revoked(revoked_json), now)
    out = []
    for name in names:
        if name in shared:
            continue
        others = sorted(h for h in held.get(name, ()) if h != host)
        if others:
            out.append("%s (held by %s)" % (name, ", ".join(others)))
    return out


def check_free(
    ledger_bytes: bytes,
    revoked_json: Optional[bytes],
    host: str,
    names: Sequence[str],
    shared: Sequence[str],
    now: datetime.datetime,
    where: str,
) -> None:
    """Refuse (PKIError) when another live host holds one of ``names``."""
    taken = conflicts(ledger_bytes, revoked_json, host, names, shared, now)
    if taken:
        raise PKIError(
            "names",
            "%s may not be signed a certificate for names that other hosts hold in the ledger "
            "of %s: %s" % (host or "this request", where, "; ".join(taken)),
            "a name belongs to one live host: decommission (revoke) the other host first, drop the "
            "name, or list it in shared_names if every host may carry it (e.g. a service VIP)",
        )


def names_of_host(entries: Iterable[Dict], host: str, revoked: Set[str], now: datetime.datetime) -> Set[str]:
    """The names ``host`` holds alone through its live certificates, plus its inventory name."""
    out = {host}
    for entry in entries:
        if entry.get("host") == host and _live(entry, revoked, now):
            out.update(entry_names(entry) - entry_names(entry, "shared"))
    return out
