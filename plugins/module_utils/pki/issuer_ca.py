# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A per-issuer intermediate CA for a cert-manager CA Issuer backed by a CA directory.

cert-manager needs the key of the CA it signs with in a Secret, readable by whoever may read
Secrets in that namespace. That key should not be the CA's own: a leaked Secret would then sign
for every host the CA serves, and only replacing the CA everywhere would end it. So the Secret
gets an intermediate of its own, signed by the directory's root (which must have room for one:
a CA made with ``intermediate: true``), with path length 0 (it cannot make further CAs) and name
constraints no wider than the root's (narrowed to what that cluster may sign when asked). Its key
is made on the CA host and goes only into the Secret; the root key never leaves the CA host.

The intermediate is kept while it still has a third of its life, the key in the Secret matches it
and its constraints are the ones asked for; otherwise a new one replaces it. Every certificate it
signed still chains to the same root, so pods notice nothing.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from .errors import PKIError

if TYPE_CHECKING:  # cryptography is imported where it is used
    from cryptography import x509

    from .authority import NameConstraintsSpec

DEFAULT_VALID_FOR = datetime.timedelta(days=365)
# A permitted IP range that matches no address a certificate carries: give both to permit no IP address at all.
NO_ADDRESSES = ("0.0.0.0/32", "::/128")
MAX_KEY_PEM = 4096  # an EC P-256 key in PEM is a few hundred bytes; anything larger is not ours
SUBJECT_SUFFIX = " cert-manager issuer"
RENEW_FRACTION = 3  # renewed when less than 1/3 of its life is left


@dataclass
class Signer:
    """The root of a CA directory, which signs the per-issuer intermediates."""

    key: object
    certificate: "x509.Certificate"
    constraints: "NameConstraintsSpec"


def load_signer(path: str, passphrase: Optional[str], now: Optional[datetime.datetime] = None) -> Signer:
    """The root key and certificate of the CA directory ``path``; refused when the root may not sign a CA."""
    from .ca_store import DirectoryStore

    return load_signer_in(DirectoryStore(path), passphrase, now)


def load_signer_in(
    store, passphrase: Optional[str], now: Optional[datetime.datetime] = None, passphrase_field: str = "ca_passphrase"
) -> Signer:
    """The root key and certificate of the CA a store keeps (a directory, or a Secret); see load_signer."""
    from cryptography import x509

    from .authority import NameConstraintsSpec
    from .bundle import load_certificate
    from .keys import load_private_key, public_key_der
    from .timeutil import not_valid_after, utcnow

    path = store.where
    files = store.read(("root.crt", "root.key"))
    if not files.get("root.crt"):
        raise PKIError(store.field, "%s holds no CA (root.crt is missing)" % path, "create it with cluster_ca first")
    root = load_certificate(files["root.crt"], "%s: root.crt" % path)
    basic = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    if not files.get("root.key") or (basic.path_length is not None and basic.path_length < 1):
        raise PKIError(
            store.field,
            "the CA in %s is a root that cannot sign an intermediate (it was made without intermediate: true), "
            "so cert-manager would get the root key itself" % path,
            "make the cluster's CA with cluster_ca intermediate: true (its root then signs a per-issuer intermediate "
            "and stays where the CA is kept), or set ca_secret_holds: signing_ca to put this CA's own key into the "
            "Secret knowingly",
        )
    try:
        key = load_private_key(files["root.key"] or b"", passphrase, "%s: root.key" % path)
    except PKIError as exc:
        raise PKIError(passphrase_field if "passphrase" in exc.problem else store.field, exc.problem, exc.fix) from None
    if public_key_der(key) != public_key_der(root.public_key()):
        raise PKIError(store.field, "root.key in %s does not match root.crt" % path, "restore the pair from backup")
    if not_valid_after(root) <= (now or utcnow()):
        raise PKIError(store.field, "the root of %s has expired" % path, "rotate the CA (ca_rotation)")
    return Signer(key, root, NameConstraintsSpec.from_certificate(root))


def _nets_within(child, parents) -> bool:
    return any(child.version == p.version and child.subnet_of(p) for p in parents)


def narrowed(
    signer: Signer,
    permitted_dns: Sequence[str] = (),
    permitted_ip_ranges: Sequence[str] = (),
    permitted_uri_domains: Sequence[str] = (),
    field: str = "intermediate_",
):
    """The intermediate's name constraints: the root's, each kind narrowed where asked, never wider."""
    from .authority import NameConstraintsSpec, _dns_within

    parent = signer.constraints
    asked = NameConstraintsSpec.parse(permitted_dns, permitted_ip_ranges, permitted_uri_domains)
    for name in asked.permitted_dns:
        if parent.permitted_dns and not any(_dns_within(name, p) for p in parent.permitted_dns):
            raise PKIError(
                field + "permitted_dns",
                "%s is outside the root's permitted DNS names %s" % (name, list(parent.permitted_dns)),
                "narrow the intermediate to names within the root's, or rotate to a CA that permits it",
            )
        if any(_dns_within(name, e) for e in parent.excluded_dns):
            raise PKIError(field + "permitted_dns", "%s is excluded by the root" % name, "choose another domain")
    for net in asked.permitted_ip_ranges:
        if str(net) in NO_ADDRESSES:
            continue  # permits nothing: narrower than any root
        if parent.permitted_ip_ranges and not _nets_within(net, parent.permitted_ip_ranges):
            raise PKIError(
                field + "permitted_ip_ranges",
                "%s is outside the root's permitted ranges %s" % (net, [str(p) for p in parent.permitted_ip_ranges]),
                "narrow the intermediate to ranges within the root's",
            )
    for domain in asked.permitted_uri_domains:
        # RFC 5280: ".domain" permits hosts below it, "domain" exactly that host
        below = domain.startswith(".")
        if parent.permitted_uri_domains and not any(
            (p.startswith(".") and (domain.endswith(p) or (not below and ("." + domain).endswith(p))))
            or (not p.startswith(".") and not below and domain == p)
            for p in parent.permitted_uri_domains
        ):
            raise PKIError(
                field + "permitted_uri_domains",
                "%s is outside the root's permitted URI domains %s" % (domain, list(parent.permitted_uri_domains)),
                "narrow the intermediate to URI domains within the root's",
            )
    return replace(
        parent,
        permitted_dns=asked.permitted_dns or parent.permitted_dns,
        permitted_ip_ranges=asked.permitted_ip_ranges or parent.permitted_ip_ranges,
        permitted_uri_domains=asked.permitted_uri_domains or parent.permitted_uri_domains,
    )


def _constraints_of(cert) -> Tuple[List[str], ...]:
    from .authority import NameConstraintsSpec

    return _constraints_of_spec(NameConstraintsSpec.from_certificate(cert))


def is_ours(cert, signer: Signer) -> bool:
    """``cert`` is a CA certificate that ``signer``'s root signed (an intermediate of this CA)."""
    from cryptography import x509

    from .authority import verify_signed_by

    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return basic.ca and cert.issuer == signer.certificate.subject and verify_signed_by(cert, signer.certificate)


def still_good(
    cert,
    key_pem: Optional[bytes],
    signer: Signer,
    constraints,
    now: datetime.datetime,
    own: Sequence = (),
) -> Optional[str]:
    """Why the intermediate in the Secret must be replaced (None: keep it).

    ``own``: certificates whose keys must never be in the Secret (the CA directory's issuing CA and root).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from .keys import load_private_key, public_key_der
    from .timeutil import not_valid_after, not_valid_before

    if not is_ours(cert, signer):
        return "it is not an intermediate of this CA"
    if any(
        public_key_der(cert.public_key()) == public_key_der(o.public_key()) for o in list(own) + [signer.certificate]
    ):
        return "it is the CA's own certificate, whose key must stay on the CA host"
    names = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    if not names or not str(names[0].value).endswith(SUBJECT_SUFFIX):
        return "it is not a per-issuer intermediate"
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    if basic.path_length != 0:
        return "it may sign further CAs"
    if _constraints_of(cert) != _constraints_of_spec(constraints):
        return "its name constraints differ from the ones asked for"
    life = not_valid_after(cert) - not_valid_before(cert)
    if not_valid_after(cert) - now < life / RENEW_FRACTION:
        return "less than a third of its life is left"
    if not key_pem or len(key_pem) > MAX_KEY_PEM:
        return "the key in the Secret cannot be read"
    try:
        key = load_private_key(key_pem, None, "tls.key")
    except Exception:  # a planted key of any kind: made again, never a crash
        return "the key in the Secret cannot be read"
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return "the key in the Secret is not the EC key this module makes"
    if public_key_der(key) != public_key_der(cert.public_key()):
        return "the key in the Secret does not match it"
    return None


def _constraints_of_spec(spec) -> Tuple[List[str], ...]:
    return (
        sorted(spec.permitted_dns),
        sorted(str(n) for n in spec.permitted_ip_ranges),
        sorted(spec.permitted_uri_domains),
        sorted(spec.excluded_dns),
        sorted(str(n) for n in spec.excluded_ip_ranges),
    )


def issue(signer: Signer, common_name: str, constraints, valid_for: datetime.timedelta, now: datetime.datetime):
    """(key, certificate) of a new intermediate: EC P-256, path length 0, the given constraints."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from .authority import create_ca_certificate

    key = ec.generate_private_key(ec.SECP256R1())
    cert = create_ca_certificate(
        key,
        common_name,
        valid_for,
        constraints,
        path_length=0,
        issuer_key=signer.key,
        issuer_cert=signer.certificate,
        now=now,
    )
    return key, cert


def check_valid_for(valid_for: datetime.timedelta, field: str = "intermediate_valid_for") -> None:
    if valid_for < datetime.timedelta(days=1):
        raise PKIError(field, "is shorter than a day", "give cert-manager an intermediate that lives days or more")
