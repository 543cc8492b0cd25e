# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Why must this certificate be (re)issued? Answers as a list of human-readable reasons.

An empty list means the certificate is fine; it drives idempotency, the diff
and what operators read in the task result.
"""

from __future__ import annotations

import datetime
from typing import Iterable, List, Optional, Sequence

try:
    from cryptography import x509
except ImportError:  # modules report it through _ops.runner.require_cryptography()
    pass

from .authority import NameConstraintsSpec, usages_of, verify_signed_by
from .identity import Identity, Subject, identity_of_certificate
from .keys import KeySpec, public_key_der, spec_of_key
from .timeutil import format_duration, isoformat, not_valid_after, not_valid_before, utcnow


def renewal_reasons(
    cert: Optional[x509.Certificate],
    *,
    private_key=None,
    identity: Optional[Identity] = None,
    issuers: Sequence[x509.Certificate] = (),
    renew_before: Optional[datetime.timedelta] = None,
    key_spec: Optional[KeySpec] = None,
    usages: Optional[Iterable[str]] = None,
    subject: Optional[Subject] = None,
    now: Optional[datetime.datetime] = None,
) -> List[str]:
    """Every reason ``cert`` no longer fits what is wanted; [] when it does.

    ``issuers`` are the acceptable issuing CA certificates (the current one
    first); a certificate signed by none of them has "issuer changed".
    ``subject`` (``Subject()`` for the default one) is checked with ``subject_reason``.
    """
    if cert is None:
        return ["no certificate yet"]
    now = now or utcnow()
    reasons: List[str] = []
    not_after = not_valid_after(cert)
    left = not_after - now
    if left <= datetime.timedelta(0):
        reasons.append("expired %s ago (%s)" % (format_duration(-left), isoformat(not_after)))
    elif renew_before is not None and left <= renew_before:
        reasons.append(
            "expires in %s (%s) <= renew_before %s"
            % (format_duration(left), isoformat(not_after), format_duration(renew_before))
        )
    if not_valid_before(cert) > now + datetime.timedelta(minutes=5):
        reasons.append("not valid before %s (clock skew or future certificate)" % isoformat(not_valid_before(cert)))
    if identity is not None:
        have = identity_of_certificate(cert)
        extra, missing = have.difference(identity)
        for name in missing:
            reasons.append("name %s missing from certificate" % name)
        for name in extra:
            reasons.append("name %s in certificate no longer wanted" % name)
    if private_key is not None and public_key_der(private_key) != public_key_der(cert.public_key()):
        reasons.append("private key does not match certificate")
    if issuers and not any(verify_signed_by(cert, issuer) for issuer in issuers):
        reasons.append(
            "issuer changed: certificate signed by %s, current CA is %s"
            % (cert.issuer.rfc4514_string(), issuers[0].subject.rfc4514_string())
        )
    if key_spec is not None:
        have_spec = spec_of_key(cert.public_key())
        if have_spec != KeySpec(key_spec.type, key_spec.effective_size):
            reasons.append("key algorithm changed: %s -> %s" % (have_spec.describe(), key_spec.describe()))
    if usages is not None:
        want, have_usages = sorted(set(usages)), usages_of(cert)
        if want != have_usages:
            reasons.append("usages changed: %s -> %s" % (",".join(have_usages) or "none", ",".join(want)))
    if subject is not None:
        changed = subject_reason(cert, subject, identity)
        if changed:
            reasons.append(changed)
    return reasons


def subject_reason(cert: x509.Certificate, subject: Subject, identity: Optional[Identity] = None) -> Optional[str]:
    """``subject changed: <old> -> <new>`` (RFC 4514) when ``cert`` is not issued to ``subject``; None when it is.

    A chosen subject matches on its common name and the set of its organizations. The default subject matches
    what this collection issues without one: a lone common name that is one of the certificate's own names,
    so a certificate issued before subjects could be chosen is never renewed for it, while one issued to a
    chosen subject is, once the subject is dropped.
    """
    from cryptography.x509.oid import NameOID

    attributes = list(cert.subject)
    kinds = {a.oid for a in attributes}
    common = [str(a.value) for a in attributes if a.oid == NameOID.COMMON_NAME]
    own = identity_of_certificate(cert)
    if subject.is_default():
        names = {n.lower() for n in own.names()}
        if kinds <= {NameOID.COMMON_NAME} and len(common) == 1 and common[0].lower() in names:
            return None
        wanted = identity if identity is not None and not identity.is_empty() else own
        if wanted.is_empty():
            return "subject changed: %s -> none chosen, and the certificate has no names" % (
                cert.subject.rfc4514_string() or "empty"
            )
        new = subject.x509_name(wanted).rfc4514_string()
    else:
        organizations = {str(a.value) for a in attributes if a.oid == NameOID.ORGANIZATION_NAME}
        if (
            kinds <= {NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME}
            and common == [subject.common_name]
            and organizations == set(subject.organizations)
        ):
            return None
        new = subject.x509_name().rfc4514_string()
    return "subject changed: %s -> %s" % (cert.subject.rfc4514_string() or "empty", new)


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: Optional[datetime.datetime] = None,
) -> Optional[str]:
    """Build leaf -> ... -> root and check signatures, validity, CA flags and name constraints.

    Returns None when the chain is valid, else what is wrong. Works on
    cryptography 38 (which has no X.509 verifier); TLS libraries remain the
    final judges at handshake time.
    """
    now = now or utcnow()
    path = [leaf]
    pool = list(intermediates) + list(roots)
    current = leaf
    for _depth in range(8):
        if any(verify_signed_by(current, root) for root in roots):
            path.append(next(r for r in roots if verify_signed_by(current, r)))
            break
        issuer = next((c for c in pool if c is not current and verify_signed_by(current, c)), None)
        if issuer is None:
            return "no issuer of %s found in the chain or the trust bundle" % current.subject.rfc4514_string()
        path.append(issuer)
        current = issuer
    else:
        return "chain longer than 8 certificates"
    for cert in path:
        if not_valid_after(cert) <= now:
            return "%s expired on %s" % (cert.subject.rfc4514_string(), isoformat(not_valid_after(cert)))
        if not_valid_before(cert) > now + datetime.timedelta(minutes=5):
            return "%s is not valid yet" % cert.subject.rfc4514_string()
    ident = identity_of_certificate(leaf)
    for ca in path[1:]:
        try:
            is_ca = ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            return "%s is not a CA certificate" % ca.subject.rfc4514_string()
        problems = NameConstraintsSpec.from_certificate(ca).violations(ident)
        if problems:
            return "name constraints of %s: %s" % (ca.subject.rfc4514_string(), "; ".join(problems))
    return None
