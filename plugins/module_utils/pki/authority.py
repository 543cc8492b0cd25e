# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate authorities: create a scoped root (and intermediate), sign CSRs under a policy.

The CA signs only the identity and subject the caller approved, never a subject or
extensions copied from a CSR; it refuses names outside its X.509 name constraints,
wildcards unless its policy allows them, weak keys, and validity beyond its policy.
A leaf without names (a client certificate with a chosen subject) has no
SubjectAlternativeName extension at all.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from dataclasses import dataclass, field as dc_field
from typing import Iterable, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

try:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
except ImportError:  # modules report it through _ops.runner.require_cryptography()
    pass

from .errors import PKIError
from .identity import Identity, Subject, check_names_or_subject, identity_of_certificate, normalize_dns_name
from .keys import check_public_key_strength, public_key_der, signature_hash_for
from .timeutil import format_duration, isoformat, not_valid_after, not_valid_before, utcnow

USAGE_NAMES = ("server", "client")


def _usage_oids() -> dict:
    return {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}


IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
# A common name OpenSSL takes for a host name (labels of letters, digits, _ and inner -, at least one dot): with
# no DNS name in the certificate it holds such a name to the CA's DNS name constraints.
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_CN_AS_HOST_NAME = re.compile(r"%s(?:\.%s)+" % (_HOST_LABEL, _HOST_LABEL))
# Leaves start slightly in the past so hosts with a little clock skew accept them at once.
BACKDATE = datetime.timedelta(minutes=5)


def _dns_within(name: str, subtree: str) -> bool:
    name, subtree = name.lower().lstrip("*."), subtree.lower().lstrip(".")
    return name == subtree or name.endswith("." + subtree)


def _uri_host_within(host: str, subtree: str) -> bool:
    # RFC 5280: ".domain" permits hosts below it, "domain" exactly that host.
    host, subtree = host.lower(), subtree.lower()
    if subtree.startswith("."):
        return host.endswith(subtree)
    return host == subtree


@dataclass(frozen=True)
class NameConstraintsSpec:
    """Permitted / excluded subtrees, per name type, as in RFC 5280.

    A name type with no permitted subtree is unconstrained; set a permitted
    list for every type you issue to keep the trust zone tight.
    """

    permitted_dns: Tuple[str, ...] = ()
    permitted_ip_ranges: Tuple[IPNetwork, ...] = ()
    permitted_uri_domains: Tuple[str, ...] = ()
    excluded_dns: Tuple[str, ...] = ()
    excluded_ip_ranges: Tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(
        cls,
        permitted_dns: Sequence[str] = (),
        permitted_ip_ranges: Sequence[str] = (),
        permitted_uri_domains: Sequence[str] = (),
        excluded_dns: Sequence[str] = (),
        excluded_ip_ranges: Sequence[str] = (),
    ) -> "NameConstraintsSpec":
        def dns(values: Sequence[str], field: str) -> Tuple[str, ...]:
            out = []
            for i, v in enumerate(values or ()):
                out.append(normalize_dns_name(str(v).lstrip("."), "%s[%d]" % (field, i)))
            return tuple(sorted(set(out)))

        def nets(values: Sequence[str], field: str) -> Tuple[IPNetwork, ...]:
            out = []
            for i, v in enumerate(values or ()):
                try:
                    out.append(ipaddress.ip_network(str(v), strict=True))
                except ValueError as exc:
                    raise PKIError(
                        "%s[%d]" % (field, i),
                        "%r is not a network (%s)" % (v, exc),
                        "write it as CIDR with host bits zero, e.g. 10.20.0.0/16",
                    ) from None
            return tuple(sorted(set(out), key=lambda n: (n.version, int(n.network_address), n.prefixlen)))

        uris = []
        for i, v in enumerate(permitted_uri_domains or ()):
            text = str(v).strip().lower()
            normalize_dns_name(text.lstrip("."), "permitted_uri_domains[%d]" % i)
            uris.append(text)
        return cls(
            dns(permitted_dns, "permitted_dns"),
            nets(permitted_ip_ranges, "permitted_ip_ranges"),
            tuple(sorted(set(uris))),
            dns(excluded_dns, "excluded_dns"),
            nets(excluded_ip_ranges, "excluded_ip_ranges"),
        )

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> "NameConstraintsSpec":
        try:
            ext = cert.extensions.get_extension_for_oid(ExtensionOID.NAME_CONSTRAINTS).value
        except x509.ExtensionNotFound:
            return cls()

        def split(trees):
            trees = trees or []
            return (
                tuple(t.value for t in trees if isinstance(t, x509.DNSName)),
                tuple(t.value for t in trees if isinstance(t, x509.IPAddress)),
                tuple(t.value for t in trees if isinstance(t, x509.UniformResourceIdentifier)),
            )

        p_dns, p_ip, p_uri = split(ext.permitted_subtrees)
        e_dns, e_ip, _excluded_uris = split(ext.excluded_subtrees)  # not issued by this collection
        return cls(p_dns, p_ip, p_uri, e_dns, e_ip)

    def is_empty(self) -> bool:
        return not (
            self.permitted_dns
            or self.permitted_ip_ranges
            or self.permitted_uri_domains
            or self.excluded_dns
            or self.excluded_ip_ranges
        )

    def extension(self) -> Optional[x509.NameConstraints]:
        if self.is_empty():
            return None
        permitted: List[x509.GeneralName] = [x509.DNSName(d) for d in self.permitted_dns]
        permitted += [x509.IPAddress(n) for n in self.permitted_ip_ranges]
        permitted += [x509.UniformResourceIdentifier(u) for u in self.permitted_uri_domains]
        excluded: List[x509.GeneralName] = [x509.DNSName(d) for d in self.excluded_dns]
        excluded += [x509.IPAddress(n) for n in self.excluded_ip_ranges]
        return x509.NameConstraints(permitted_subtrees=permitted or None, excluded_subtrees=excluded or None)

    def violations(self, identity: Identity) -> List[str]:
        """Every name of ``identity`` this spec does not permit, with the reason."""
        out = []
        for name in identity.dns_names:
            if any(_dns_within(name, e) for e in self.excluded_dns):
                out.append("DNS name %s is in an excluded subtree %s" % (name, list(self.excluded_dns)))
            elif self.permitted_dns and not any(_dns_within(name, p) for p in self.permitted_dns):
                out.append("DNS name %s is outside the permitted DNS subtrees %s" % (name, list(self.permitted_dns)))
        for ip in identity.ip_addresses:
            if any(ip in n for n in self.excluded_ip_ranges if n.version == ip.version):
                out.append("IP address %s is in an excluded range" % ip)
            elif self.permitted_ip_ranges and not any(
                ip in n for n in self.permitted_ip_ranges if n.version == ip.version
            ):
                out.append(
                    "IP address %s is outside the permitted IP ranges %s"
                    % (ip, [str(n) for n in self.permitted_ip_ranges])
                )
        for uri in identity.uris:
            host = urlsplit(uri).hostname or ""
            if self.permitted_uri_domains:
                if not any(_uri_host_within(host, p) for p in self.permitted_uri_domains):
                    out.append(
                        "URI %s is outside the permitted URI domains %s" % (uri, list(self.permitted_uri_domains))
                    )
            elif self.permitted_dns and not any(_dns_within(host, p) for p in self.permitted_dns):
                # X.509 leaves URIs unconstrained here; this CA's policy scopes them by its DNS subtrees
                out.append(
                    "URI %s has a host outside the permitted DNS subtrees %s (this CA has no "
                    "permitted_uri_domains, so its URIs stay within its DNS scope)" % (uri, list(self.permitted_dns))
                )
            elif any(_dns_within(host, e) for e in self.excluded_dns):
                out.append("URI %s has a host in an excluded DNS subtree %s" % (uri, list(self.excluded_dns)))
        return out

    def describe(self) -> dict:
        return {
            "permitted_dns": list(self.permitted_dns),
            "permitted_ip_ranges": [str(n) for n in self.permitted_ip_ranges],
            "permitted_uri_domains": list(self.permitted_uri_domains),
            "excluded_dns": list(self.excluded_dns),
            "excluded_ip_ranges": [str(n) for n in self.excluded_ip_ranges],
        }


def key_usage(**allowed: bool) -> "x509.KeyUsage":
    """The KeyUsage extension with only the usages named true (every other one false)."""
    flags = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{flag: bool(allowed.get(flag)) for flag in flags})


# The longest leaf a CA signs unless told otherwise (the CA/Browser Forum's 397 days), also cluster_ca's default.
DEFAULT_MAX_LEAF_VALIDITY = datetime.timedelta(days=397)


@dataclass(frozen=True)
class SigningPolicy:
    max_validity: datetime.timedelta = DEFAULT_MAX_LEAF_VALIDITY
    allow_wildcard: bool = False


def _name(common_name: str, organization: Optional[str] = None) -> x509.Name:
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _ski(public_key) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def create_ca_certificate(
    key,
    common_name: str,
    valid_for: datetime.timedelta,
    constraints: NameConstraintsSpec,
    path_length: Optional[int],
    issuer_key=None,
    issuer_cert: Optional[x509.Certificate] = None,
    organization: Optional[str] = None,
    now: Optional[datetime.datetime] = None,
) -> x509.Certificate:
    """A root (self-signed) or, with issuer_key/issuer_cert, an intermediate CA certificate."""
    now = now or utcnow()
    signer_key = issuer_key or key
    subject = _name(common_name, organization)
    not_after = now + valid_for
    if issuer_cert is not None:
        not_after = min(not_after, not_valid_after(issuer_cert))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True),
            critical=True,
        )
        .add_extension(_ski(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False)
    )
    nc = constraints.extension()
    if nc is not None:
        builder = builder.add_extension(nc, critical=True)
    return builder.sign(signer_key, signature_hash_for(signer_key))


def verify_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer``'s key made ``cert``'s signature and the names chain (works on cryptography 38)."""
    if cert.issuer != issuer.subject:
        return False
    public = issuer.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            from cryptography.hazmat.primitives.asymmetric import padding

            public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except Exception:  # InvalidSignature or an algorithm mismatch both mean "not signed by it"
        return False
    return True


def chains_to(chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate]) -> bool:
    """The leaf (first) was signed by an anchor, or by a CA later in ``chain`` that an anchor signed.

    One intermediate between the leaf and the anchors is enough here: a CA directory's root signs its
    issuing CA and the per-issuer intermediates of cert-manager (issuer_ca.py), nothing deeper.
    """
    if not chain:
        return False
    leaf = chain[0]
    try:  # a CA certificate is not a leaf: a node that reports the new CA's own certificate proves nothing
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        pass
    if any(verify_signed_by(leaf, anchor) for anchor in anchors):
        return True
    for middle in chain[1:]:
        try:
            basic = middle.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            continue
        if (
            basic.ca
            and basic.path_length == 0
            and verify_signed_by(leaf, middle)
            and any(verify_signed_by(middle, a) for a in anchors)
        ):
            return True
    return False


def check_identity(
    identity: Identity,
    ca_certificates: Sequence[x509.Certificate],
    allow_wildcard: bool,
    field: str = "names",
    subject: Optional[Subject] = None,
    usages: Iterable[str] = (),
) -> None:
    """Refuse an identity that is empty (unless ``check_names_or_subject`` allows it), has a wildcard the
    policy forbids, or breaks any CA's constraints."""
    check_names_or_subject(identity, subject or Subject(), usages, field)
    if not allow_wildcard:
        wild = [n for n in identity.dns_names if n.startswith("*")]
        if wild:
            raise PKIError(
                field,
                "the CA's policy refuses wildcard names %s" % wild,
                "name each host explicitly, or create the CA with allow_wildcard: true",
            )
    problems: List[str] = []
    for cert in ca_certificates:
        for problem in NameConstraintsSpec.from_certificate(cert).violations(identity):
            if problem not in problems:
                problems.append(problem)
    if problems:
        raise PKIError(
            field,
            "outside the CA's name constraints: " + "; ".join(problems),
            "use names inside the CA's permitted subtrees, or widen the CA's constraints "
            "(permitted_dns / permitted_ip_ranges / permitted_uri_domains)",
        )
    common_name = subject.common_name if subject is not None else None
    if common_name and not identity.dns_names and _CN_AS_HOST_NAME.fullmatch(common_name):
        as_name = Identity(dns_names=(common_name.lower(),))
        problems = []
        for cert in ca_certificates:
            for problem in NameConstraintsSpec.from_certificate(cert).violations(as_name):
                if problem not in problems:
                    problems.append(problem)
        if problems:
            raise PKIError(
                "subject.common_name",
                "%r reads as a host name, and OpenSSL holds it to the CA's name constraints when the certificate "
                "has no DNS name: %s" % (common_name, "; ".join(problems)),
                "choose a common name inside the permitted DNS subtrees or one without a dot "
                "(e.g. system:node:node1), or add a DNS name",
            )


@dataclass
class CertificateAuthority:
    """An issuing CA: its key, its certificate, the certificates above it, and its policy."""

    key: object
    certificate: x509.Certificate
    chain: List[x509.Certificate] = dc_field(default_factory=list)  # issuing CA's issuers, excluding the root
    root: Optional[x509.Certificate] = None
    policy: SigningPolicy = dc_field(default_factory=SigningPolicy)
    path: Optional[str] = None  # the CA directory it was loaded from, if any

    def __post_init__(self) -> None:
        if self.root is None:
            self.root = self.certificate

    def check_usable(self, now: Optional[datetime.datetime] = None, field: str = "ca_path") -> None:
        now = now or utcnow()
        if public_key_der(self.key) != public_key_der(self.certificate.public_key()):
            raise PKIError(
                field,
                "the CA key does not match the CA certificate (%s)" % self.certificate.subject.rfc4514_string(),
                "restore the matching ca.key/ca.crt pair from backup",
            )
        for cert in [self.certificate] + list(self.chain) + [self.root]:
            if not_valid_after(cert) <= now:
                raise PKIError(
                    field,
                    "CA certificate %s expired on %s"
                    % (cert.subject.rfc4514_string(), isoformat(not_valid_after(cert))),
                    "create a new CA (cluster_ca with a new path, or rotate the CA) and re-issue",
                )
            if not_valid_before(cert) > now + BACKDATE:
                raise PKIError(
                    field,
                    "CA certificate %s is not valid before %s"
                    % (cert.subject.rfc4514_string(), isoformat(not_valid_before(cert))),
                    "check the clock of the CA host",
                )

    def check_identity(
        self, identity: Identity, field: str = "names", subject: Optional[Subject] = None, usages: Iterable[str] = ()
    ) -> None:
        check_identity(
            identity,
            [self.certificate] + list(self.chain) + [self.root],
            self.policy.allow_wildcard,
            field,
            subject,
            usages,
        )

    def check_request(
        self,
        csr: x509.CertificateSigningRequest,
        identity: Identity,
        usages: Iterable[str],
        valid_for: datetime.timedelta,
        now: Optional[datetime.datetime] = None,
        subject: Optional[Subject] = None,
    ) -> None:
        """Every check ``sign`` makes before it signs: usable CA, the CSR's signature, key and names, policy.

        The CSR's subject is not looked at: the certificate gets ``subject`` (the default: CN=one of the names).
        """
        now = now or utcnow()
        self.check_usable(now)
        if not csr.is_signature_valid:
            raise PKIError("csr", "the CSR's signature does not verify", "generate a new CSR with the node's key")
        check_public_key_strength(csr.public_key(), "key_type")
        requested = identity_of_certificate(csr)
        if requested != identity:
            extra, missing = requested.difference(identity)
            raise PKIError(
                "csr",
                "the CSR names %s but the approved identity is %s (extra: %s, missing: %s)"
                % (requested.names(), identity.names(), extra, missing),
                "let node_certificate build the CSR from the approved identity",
            )
        usages = list(usages)
        self.check_identity(identity, subject=subject, usages=usages)
        usage_set = sorted(set(usages))
        unknown = [u for u in usage_set if u not in USAGE_NAMES]
        if not usage_set or unknown:
            raise PKIError(
                "usages", "unknown or empty usages %s" % (unknown or usage_set), "use server, client or both"
            )
        if valid_for > self.policy.max_validity:
            raise PKIError(
                "valid_for",
                "%s exceeds the CA's maximum leaf validity %s"
                % (format_duration(valid_for), format_duration(self.policy.max_validity)),
                "shorten valid_for, or raise max_leaf_validity on the CA",
            )

    def sign(
        self,
        csr: x509.CertificateSigningRequest,
        identity: Identity,
        usages: Iterable[str],
        valid_for: datetime.timedelta,
        now: Optional[datetime.datetime] = None,
        subject: Optional[Subject] = None,
    ) -> x509.Certificate:
        """Issue a leaf for ``identity`` and ``subject`` (default: CN=one of the names) to the CSR's key,
        after every policy check."""
        now = now or utcnow()
        usages = list(usages)
        self.check_request(csr, identity, usages, valid_for, now, subject)
        usage_set = sorted(set(usages))
        not_after = min(now + valid_for, *[not_valid_after(c) for c in [self.certificate] + self.chain])
        public = csr.public_key()
        usage = key_usage(digital_signature=True, key_encipherment=isinstance(public, rsa.RSAPublicKey))
        builder = (
            x509.CertificateBuilder()
            .subject_name((subject or Subject()).x509_name(identity))
            .issuer_name(self.certificate.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([_usage_oids()[u] for u in usage_set]), critical=False)
        )
        if not identity.is_empty():  # an empty SubjectAlternativeName is invalid: then none at all
            builder = builder.add_extension(x509.SubjectAlternativeName(identity.general_names()), critical=False)
        builder = builder.add_extension(_ski(public), critical=False).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
        return builder.sign(self.key, signature_hash_for(self.key))

    def issuer_chain(self) -> List[x509.Certificate]:
        """Certificates a leaf presents after itself: the issuing CA and intermediates, not the root."""
        if self.certificate is self.root or self.certificate == self.root:
            return []
        return [self.certificate] + list(self.chain)


def usages_of(cert: x509.Certificate) -> List[str]:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return []
    return sorted(name for name, oid in _usage_oids().items() if oid in eku)


def build_csr(key, identity: Identity, subject: Optional[Subject] = None) -> x509.CertificateSigningRequest:
    """A CSR for ``identity``; its subject is informational only (the CA never takes it from the CSR)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name((subject or Subject()).x509_name(identity))
    if not identity.is_empty():
        builder = builder.add_extension(x509.SubjectAlternativeName(identity.general_names()), critical=False)
    return builder.sign(key, signature_hash_for(key))
