# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Revocation on the CA host: which certificates the CA has revoked, and the CRL that says so.

Two files of the CA (its directory, or keys of its Kubernetes Secret), written under the
store's exclusion (ca_store.DirectoryStore / k8s.ca_secret.SecretStore)::

    revoked.json  {"format": 1, "crl_number": N, "revoked": [{serial, host, subject, names,
                   not_after, revoked_at, reason}, ...]}  - the record; the CRL is made from it
    crl.pem       the CRL, signed by the issuing CA key: every revoked serial with its date and
                  reason, CRL number N, the authority key identifier, thisUpdate and nextUpdate

In a directory the record is written first, the CRL second, each atomically (a Secret takes
both in one conditional update). A run killed between the two
leaves a CRL that no longer matches the record, and the next run publishes a new one with a
higher number: CRL numbers only ever grow. Certificates are chosen from the ledger of
signatures (by inventory host or by serial), so an operator never has to find serials by hand.
The CA key is used here and nowhere else; it never leaves the CA host.

A store with a size limit (a Secret) is compacted here as its ledger is when it signs: the
record drops the certificates that expired more than ledger.COMPACT_AFTER ago, and the CRL
published with it no longer lists them (RFC 5280 5.1.2.6 allows that after expiry). A CA
directory keeps every revocation.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field as dc_field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

try:
    from cryptography import x509
except ImportError:  # modules report it through _ops.runner.require_cryptography()
    pass

from . import files as fs
from . import ledger, ownership
from .authority import BACKDATE
from .errors import PKIError
from .keys import signature_hash_for
from .timeutil import format_duration, isoformat, parse_isoformat

STATE = "revoked.json"
CRL = "crl.pem"
# How long before its next update a CRL is published again (revoke's crl_renew_before, rotation_status's "due").
DEFAULT_CRL_RENEW_BEFORE = "3d"
FORMAT = 1
# RFC 5280 reason codes a decommissioning operator would pick; "unspecified" is written as no reason code.
REASONS = (
    "unspecified",
    "key_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "privilege_withdrawn",
)


def normalize_serial(value, field_name: str = "serials") -> str:
    """'0x1A2B', '1a:2b' and '1A2B' are one serial: lower-case hex without leading zeros."""
    text = str(value).strip().lower().replace(":", "")
    if text.startswith("0x"):
        text = text[2:]
    try:
        number = int(text, 16)
    except ValueError:
        raise PKIError(
            field_name,
            "%r is not a hexadecimal serial number" % (value,),
            "give the serial as certificate_info reports it, e.g. 5f3a09c1...",
        ) from None
    if number <= 0:
        raise PKIError(field_name, "%r is not a certificate serial number" % (value,), "serials are positive")
    return format(number, "x")


def empty_state() -> Dict:
    return {"format": FORMAT, "crl_number": 0, "revoked": []}


def state_of(data: Optional[bytes], where: str, field_name: str = "ca_path") -> Dict:
    """The revocation record from revoked.json's bytes (None: nothing revoked yet)."""
    if data is None:
        return empty_state()
    try:
        state = json.loads(data.decode("utf-8"))
        if state.get("format") != FORMAT or not isinstance(state.get("revoked"), list):
            raise ValueError("format")
        int(state["crl_number"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise PKIError(
            field_name,
            "%s of %s is not a revocation record this collection wrote" % (STATE, where),
            "restore it from backup; never edit it by hand",
        ) from None
    return state


def read_state(ca_path: str) -> Dict:
    return state_of(fs.read_bytes(os.path.join(ca_path, STATE)), ca_path)


def serials_of(state: Dict) -> List[str]:
    return sorted({entry["serial"] for entry in state["revoked"]})


def revoked_serials(ca_path: str) -> List[str]:
    """Serials the CA has revoked (standard library only: node_certificate calls it on every run)."""
    return serials_of(read_state(ca_path))


@dataclass
class RevocationPlan:
    """What a revoke run does: certificates newly revoked, and why a CRL is (re)published."""

    newly_revoked: List[Dict] = dc_field(default_factory=list)
    crl_reasons: List[str] = dc_field(default_factory=list)
    before: Dict = dc_field(default_factory=empty_state)
    after: Dict = dc_field(default_factory=empty_state)

    @property
    def changed(self) -> bool:
        return bool(self.newly_revoked or self.crl_reasons)


def _select(
    ledger_entries: Sequence[Dict],
    hosts: Iterable[str],
    serials: Iterable[str],
    allow_unlisted: bool,
    now: datetime.datetime,
    where: str,
    already_revoked: Sequence[Dict] = (),
) -> List[Dict]:
    """Ledger entries (or bare serials) to revoke; unknown hosts and serials are errors, not no-ops."""
    chosen: Dict[str, Dict] = {}
    by_serial = {}
    for entry in ledger_entries:
        if entry.get("serial"):
            by_serial[normalize_serial(entry["serial"], "ledger")] = entry
    revoked_before = {str(e.get("serial", "")).lower() for e in already_revoked}
    for host in hosts:
        entries = [e for e in ledger_entries if e.get("host") == host]
        if not entries:
            known = sorted({e.get("host") for e in ledger_entries if e.get("host")})
            raise PKIError(
                "hosts",
                "the ledger of %s lists no certificate for host %r" % (where, host),
                "use the inventory name the certificate was issued to (the ledger knows: %s)"
                % (", ".join(known[:20]) or "no hosts yet"),
            )
        # every live certificate naming the host goes too, whoever it was issued to: a name is an identity
        names = ownership.names_of_host(ledger_entries, host, revoked_before, now)
        for entry in ledger_entries:
            mine = entry.get("host") == host
            if not mine and not (ownership.entry_names(entry) - ownership.entry_names(entry, "shared")) & names:
                continue
            try:
                expired = parse_isoformat(entry["not_after"]) <= now
            except (KeyError, TypeError, ValueError):
                expired = False
            if not expired:  # an expired certificate is refused anyway; listing it only grows the CRL
                chosen[normalize_serial(entry["serial"], "ledger")] = entry
    for value in serials:
        serial = normalize_serial(value)
        if serial in by_serial:
            chosen[serial] = by_serial[serial]
        elif allow_unlisted:
            chosen[serial] = {"serial": serial}
        else:
            raise PKIError(
                "serials",
                "serial %s is not in the ledger of %s" % (serial, where),
                "check the serial (certificate_info reports it); a certificate signed before the "
                "ledger existed can be revoked with allow_unlisted: true (a CA in a Secret also drops "
                "the entries of certificates a day after they expired: those need no revocation)",
            )
    return [dict(chosen[s], serial=s) for s in sorted(chosen)]


def _crl_next_update(crl) -> Optional[datetime.datetime]:
    value = getattr(crl, "next_update_utc", None)
    if value is None and crl.next_update is not None:
        value = crl.next_update.replace(tzinfo=datetime.timezone.utc)
    return value


def _crl_number(crl) -> Optional[int]:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def load_crl(data: bytes, field_name: str = "crl_path"):
    try:
        if data.lstrip().startswith(b"-----"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise PKIError(
            field_name, "not a CRL (%s)" % exc, "point it at the crl.pem the revoke module publishes"
        ) from None


def crl_serials(crl) -> List[str]:
    return sorted(format(entry.serial_number, "x") for entry in crl)


def publish_reasons(
    existing: Optional[bytes], ca, state: Dict, now: datetime.datetime, renew_before: datetime.timedelta
) -> List[str]:
    """Why the CRL on disk is not the one the record and the CA call for (empty: it is)."""
    if existing is None:
        return ["no CRL published yet"]
    try:
        crl = load_crl(existing)
    except PKIError:
        return ["the published CRL is unreadable"]
    if crl.issuer != ca.certificate.subject or not crl.is_signature_valid(ca.certificate.public_key()):
        return ["the published CRL is not signed by the current issuing CA"]
    reasons = []
    if _crl_number(crl) != int(state["crl_number"]):
        reasons.append("the published CRL has number %s, the record %s" % (_crl_number(crl), state["crl_number"]))
    want = sorted(e["serial"] for e in state["revoked"])
    if crl_serials(crl) != want:
        reasons.append("the published CRL lists %d serials, the record %d" % (len(crl_serials(crl)), len(want)))
    next_update = _crl_next_update(crl)
    if next_update is None or next_update - now <= renew_before:
        reasons.append(
            "the CRL's next update %s is within crl_renew_before %s"
            % (isoformat(next_update) if next_update else "(none)", format_duration(renew_before))
        )
    return reasons


def plan(
    ca,
    where: str,
    files: Dict[str, Optional[bytes]],
    hosts: Sequence[str],
    serials: Sequence[str],
    reason: str,
    now: datetime.datetime,
    renew_before: datetime.timedelta,
    allow_unlisted: bool = False,
    compact: bool = False,
) -> RevocationPlan:
    """Decide everything from the CA's files (ledger, record, CRL) without writing: check mode reports this.

    ``compact`` (a store with a size limit): certificates that expired more than ledger.COMPACT_AFTER
    ago leave the record and the CRL, and are not added to them.
    """
    if reason not in REASONS:
        raise PKIError("reason", "unknown reason %r" % reason, "use one of %s" % ", ".join(REASONS))
    before = state_of(files.get(STATE), where)
    ledger_entries = ledger.parse(files.get(ledger.LEDGER) or b"")[0]
    already = {e["serial"] for e in before["revoked"]}
    newly = []
    for entry in _select(ledger_entries, hosts, serials, allow_unlisted, now, where, before["revoked"]):
        if entry["serial"] in already:
            continue
        newly.append(
            {
                "serial": entry["serial"],
                "host": entry.get("host", ""),
                "subject": entry.get("subject", ""),
                "names": entry.get("names", []),
                "not_after": entry.get("not_after", ""),
                "revoked_at": isoformat(now),
                "reason": reason,
            }
        )
    kept = before["revoked"]
    if compact:
        cutoff = now - ledger.COMPACT_AFTER
        kept = [e for e in kept if not ledger.expired_before(e, cutoff)]
        newly = [e for e in newly if not ledger.expired_before(e, cutoff)]
    after = {"format": FORMAT, "crl_number": int(before["crl_number"]), "revoked": kept + newly}
    reasons = (
        ["revoking %s" % ", ".join("%s (%s)" % (e["serial"], e["host"] or "unlisted") for e in newly)] if newly else []
    )
    if len(kept) < len(before["revoked"]):
        reasons.append(
            "dropping %d revoked certificates that expired before %s"
            % (len(before["revoked"]) - len(kept), isoformat(now - ledger.COMPACT_AFTER))
        )
    reasons += publish_reasons(files.get(CRL), ca, after, now, renew_before)
    if reasons:
        after["crl_number"] = int(before["crl_number"]) + 1
    return RevocationPlan(newly_revoked=newly, crl_reasons=reasons, before=before, after=after)


def build_crl(ca, state: Dict, now: datetime.datetime, valid_for: datetime.timedelta):
    """The CRL for ``state``, signed by the issuing CA key, with CRL number and authority key identifier."""
    flags = {
        "key_compromise": x509.ReasonFlags.key_compromise,
        "affiliation_changed": x509.ReasonFlags.affiliation_changed,
        "superseded": x509.ReasonFlags.superseded,
        "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
        "privilege_withdrawn": x509.ReasonFlags.privilege_withdrawn,
    }
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - BACKDATE)  # a peer whose clock lags a little must not see a future CRL
        .next_update(now + valid_for)
        .add_extension(x509.CRLNumber(int(state["crl_number"])), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
    )
    for entry in state["revoked"]:
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(entry["serial"], 16))
            .revocation_date(parse_isoformat(entry["revoked_at"]))
        )
        if entry.get("reason") in flags:  # RFC 5280: "unspecified" is better left out
            revoked = revoked.add_extension(x509.CRLReason(flags[entry["reason"]]), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    return builder.sign(ca.key, signature_hash_for(ca.key))


def render(ca, revocation: RevocationPlan, now: datetime.datetime, valid_for: datetime.timedelta) -> Dict[str, bytes]:
    """The record, then the CRL as PEM: the files to write, in the order to write them."""
    from cryptography.hazmat.primitives import serialization

    pem = build_crl(ca, revocation.after, now, valid_for).public_bytes(serialization.Encoding.PEM)
    state = (json.dumps(revocation.after, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return {STATE: state, CRL: pem}


def revoke(
    store,
    ca,
    hosts: Sequence[str],
    serials: Sequence[str],
    reason: str,
    now: datetime.datetime,
    renew_before: datetime.timedelta,
    valid_for: datetime.timedelta,
    allow_unlisted: bool = False,
) -> Tuple[RevocationPlan, Optional[bytes]]:
    """Decide and write under the store's exclusion; returns (the plan, the CRL now published or None)."""
    outcome: Dict = {}

    compact = getattr(store, "size_limit", None) is not None

    def change(files):
        decided = plan(ca, store.where, files, hosts, serials, reason, now, renew_before, allow_unlisted, compact)
        written = render(ca, decided, now, valid_for) if decided.changed else {}
        # a dry run reports the CRL that is published, not the one it would publish
        outcome.update(decided=decided, crl=files.get(CRL) if store.dry_run else written.get(CRL, files.get(CRL)))
        return written

    store.update(change, (ledger.LEDGER, STATE, CRL))
    return outcome["decided"], outcome["crl"]


def crl_summary(crl) -> Dict:
    next_update = _crl_next_update(crl)
    last = getattr(crl, "last_update_utc", None) or crl.last_update.replace(tzinfo=datetime.timezone.utc)
    return {
        "crl_number": _crl_number(crl),
        "issuer": crl.issuer.rfc4514_string(),
        "this_update": isoformat(last),
        "next_update": isoformat(next_update) if next_update else None,
        "revoked_count": len(crl_serials(crl)),
    }


def check_crl(crl, issuers: Sequence, now: datetime.datetime) -> Tuple[bool, Optional[str]]:
    """(signed by one of ``issuers``, why the CRL cannot be relied on or None).

    An expired CRL is still signed: what it lists stays revoked, but it proves nothing about the rest.
    """
    signer = next((c for c in issuers if c.subject == crl.issuer), None)
    if signer is None:
        return False, "the CRL's issuer %s is none of the certificate's issuers" % crl.issuer.rfc4514_string()
    if not crl.is_signature_valid(signer.public_key()):
        return False, "the CRL's signature does not verify with %s" % signer.subject.rfc4514_string()
    next_update = _crl_next_update(crl)
    if next_update is not None and next_update <= now:
        return True, "the CRL expired at %s (publish a fresh one with the revoke module)" % isoformat(next_update)
    return True, None


def revocation_of(crl, cert) -> Optional[Dict]:
    """{'revoked_at', 'reason'} when the CRL lists the certificate, else None."""
    if crl.issuer != cert.issuer:
        return None
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None:
        return None
    try:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
    except x509.ExtensionNotFound:
        reason = "unspecified"
    date = getattr(entry, "revocation_date_utc", None) or entry.revocation_date.replace(tzinfo=datetime.timezone.utc)
    return {"revoked_at": isoformat(date), "reason": reason}
