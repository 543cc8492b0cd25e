# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cross-signed certificate of a CA rotation (ca_rotation cross_sign).

During ``switched`` leaves are signed with the new CA's key. A peer that has not reread its trust
bundle yet trusts only the old root, and refuses them. The cross-signed certificate is the new
CA's issuing certificate issued again by the **old root**: same subject, same key, same key
identifier and name constraints, path length 0. A leaf served with it as its chain verifies for
both kinds of peers: one that trusts the old root (leaf -> cross -> old root), and one that
trusts the new root too (OpenSSL tries the trusted store first: leaf -> new issuing CA, or the
new root itself). At ``done`` leaves are served with the new CA's own chain again, and a peer
that still trusts only the old root stops accepting them - by then every bundle holds the new root.

The old root must be allowed to sign an intermediate (a CA made with ``intermediate: true``:
path length 1, its key kept beside it), and the new CA may not permit names the old root does not
(a peer checking the old root's name constraints would refuse those leaves anyway).

It is kept in the new CA (file or Secret key ``cross.crt``) and checked whenever it is read.
"""

from __future__ import annotations

import datetime
from typing import List, Optional

from .errors import PKIError

CROSS_FILE = "cross.crt"
# How long a cross certificate lives beyond switch_after + drop_after, and when it is made again before it expires.
CROSS_MARGIN = datetime.timedelta(days=30)
CROSS_RENEW = datetime.timedelta(days=7)


def wider_than(new, old) -> List[str]:
    """What the new CA's name constraints permit that the old root's do not (each kind the old one constrains)."""
    from .authority import NameConstraintsSpec, _dns_within, _uri_host_within
    from .issuer_ca import _nets_within

    new_spec, old_spec = NameConstraintsSpec.from_certificate(new), NameConstraintsSpec.from_certificate(old)
    out = []
    if old_spec.permitted_dns:
        if not new_spec.permitted_dns:
            out.append("any DNS name (the old root permits only %s)" % ", ".join(old_spec.permitted_dns))
        out += [
            "DNS %s" % n for n in new_spec.permitted_dns if not any(_dns_within(n, p) for p in old_spec.permitted_dns)
        ]
    if old_spec.permitted_ip_ranges:
        if not new_spec.permitted_ip_ranges:
            allowed = ", ".join(map(str, old_spec.permitted_ip_ranges))
            out.append("any IP address (the old root permits only %s)" % allowed)
        out += ["IP %s" % n for n in new_spec.permitted_ip_ranges if not _nets_within(n, old_spec.permitted_ip_ranges)]
    if old_spec.permitted_uri_domains:
        if not new_spec.permitted_uri_domains:
            out.append("any URI (the old root permits only %s)" % ", ".join(old_spec.permitted_uri_domains))
        out += [
            "URI %s" % n
            for n in new_spec.permitted_uri_domains
            if not any(_uri_host_within(n, p) for p in old_spec.permitted_uri_domains)
        ]
    return out


def cross_constraints(new, old):
    """The cross certificate's name constraints: the new CA's, and every subtree the old root excludes.

    Peers that ignore the constraints of a trusted root (Java's default) still see the old root's exclusions.
    """
    from .authority import NameConstraintsSpec

    new_spec, old_spec = NameConstraintsSpec.from_certificate(new), NameConstraintsSpec.from_certificate(old)
    return NameConstraintsSpec(
        new_spec.permitted_dns,
        new_spec.permitted_ip_ranges,
        new_spec.permitted_uri_domains,
        tuple(sorted(set(new_spec.excluded_dns) | set(old_spec.excluded_dns))),
        tuple(
            sorted(
                set(new_spec.excluded_ip_ranges) | set(old_spec.excluded_ip_ranges),
                key=lambda n: (n.version, int(n.network_address), n.prefixlen),
            )
        ),
    )


def cross_certificate(
    old_root_key,
    old_root,
    new_issuing,
    now: Optional[datetime.datetime] = None,
    lifetime: Optional[datetime.timedelta] = None,
):
    """``new_issuing`` (subject, key, constraints) issued by ``old_root``; never valid beyond either of them, nor
    beyond ``lifetime`` from now (it should outlive the rotation, not the CAs: a peer that still trusts the old
    root accepts every leaf served with it while it is valid)."""
    from cryptography import x509

    from .authority import BACKDATE, key_usage
    from .keys import signature_hash_for
    from .timeutil import not_valid_after, utcnow

    now = now or utcnow()
    problems = wider_than(new_issuing, old_root)
    if problems:
        raise PKIError(
            "cross_sign",
            "the new CA permits names the old root does not: %s; peers that trust only the old root would refuse "
            "leaves with them" % "; ".join(problems),
            "give the new CA name constraints within the old root's, or rotate without cross_sign",
        )
    builder = (
        x509.CertificateBuilder()
        .subject_name(new_issuing.subject)
        .issuer_name(old_root.subject)
        .public_key(new_issuing.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(
            min([not_valid_after(new_issuing), not_valid_after(old_root)] + ([now + lifetime] if lifetime else []))
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(new_issuing.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(old_root_key.public_key()), critical=False)
    )
    constraints = cross_constraints(new_issuing, old_root).extension()
    if constraints is not None:
        builder = builder.add_extension(constraints, critical=True)
    return builder.sign(old_root_key, signature_hash_for(old_root_key))


def problem_with(cross, old_root, new_issuing, now: Optional[datetime.datetime]) -> Optional[str]:
    """Why ``cross`` is not the cross-signed certificate of ``new_issuing`` by ``old_root`` (None: it is)."""
    from cryptography import x509

    from .authority import verify_signed_by
    from .keys import public_key_der
    from .timeutil import not_valid_after

    if cross.subject != new_issuing.subject or public_key_der(cross.public_key()) != public_key_der(
        new_issuing.public_key()
    ):
        return "it does not certify the new CA's key and name"
    if not verify_signed_by(cross, old_root):
        return "the old root did not sign it"
    try:
        basic = cross.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "it is not a CA certificate"
    if not basic.ca or basic.path_length != 0:
        return "it is not a CA certificate of path length 0"
    if now is not None and not_valid_after(cross) <= now:
        return "it has expired"
    return None
