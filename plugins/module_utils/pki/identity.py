# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Identities: the exact set of names a certificate carries, and the subject it is issued to.

Plain strings are parsed into the right SAN type (``10.0.0.7`` is an IP,
``spiffe://...`` a URI, anything else a DNS name). Wildcards are refused unless
explicitly allowed.

The subject is the controller's choice, never the CSR's: by default ``CN=<one of the
names>``; a chosen subject (``Subject``) is ``O=<each organization>, CN=<common name>``, as
Kubernetes reads client identities. A certificate without names is a client certificate
with a chosen subject, and nothing else (``check_names_or_subject``).

Standard library only at import time (``cryptography`` is imported by the few
functions that build or read X.509 names), so a run with nothing due can
check names without paying for it. An identity built from host facts names only that host:
its inventory name, hostname, FQDN and the addresses of its non-loopback
interfaces.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import subprocess
from dataclasses import dataclass, field as dc_field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from .errors import PKIError

if TYPE_CHECKING:  # pragma: no cover
    from cryptography import x509

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
# No whitespace or control character may hide in a name: a newline inside a SAN was signed once.
_UNPRINTABLE = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
_SPIFFE_TD = re.compile(r"^[a-z0-9._-]+$")
_SPIFFE_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
HOST_SOURCES = ("inventory_hostname", "hostname", "fqdn", "ipv4", "ipv6")
SUBJECT_KEYS = ("common_name", "organizations")
# X.520's upper bound of commonName and organizationName
SUBJECT_VALUE_MAX = 64
SUBJECT_ORGANIZATIONS_MAX = 8


@dataclass(frozen=True)
class Identity:
    """Sorted, de-duplicated names of one subject; ``common_name`` is informational."""

    dns_names: Tuple[str, ...] = ()
    ip_addresses: Tuple[IPAddress, ...] = ()
    uris: Tuple[str, ...] = ()
    common_name: Optional[str] = dc_field(default=None, compare=False)

    def is_empty(self) -> bool:
        return not (self.dns_names or self.ip_addresses or self.uris)

    def names(self) -> List[str]:
        """All names as plain strings, in a stable order."""
        return list(self.dns_names) + [str(ip) for ip in self.ip_addresses] + list(self.uris)

    def general_names(self) -> List[x509.GeneralName]:
        from cryptography import x509

        out: List[x509.GeneralName] = [x509.DNSName(n) for n in self.dns_names]
        out += [x509.IPAddress(ip) for ip in self.ip_addresses]
        out += [x509.UniformResourceIdentifier(u) for u in self.uris]
        return out

    def subject_common_name(self) -> str:
        if self.common_name:
            return self.common_name
        if self.dns_names:
            return max(self.dns_names, key=lambda n: (n.count("."), len(n)))
        return self.names()[0]

    def difference(self, other: "Identity") -> Tuple[List[str], List[str]]:
        """(names in self but not other, names in other but not self)."""
        mine, theirs = set(self.names()), set(other.names())
        return sorted(mine - theirs), sorted(theirs - mine)


@dataclass(frozen=True)
class Subject:
    """The subject a certificate is issued to, as the controller chose it.

    ``Subject()`` is the default: ``CN=<one of the certificate's names>`` and nothing else. A chosen subject
    has a common name and up to eight organizations, kept in the order given.
    """

    common_name: Optional[str] = None
    organizations: Tuple[str, ...] = ()

    def is_default(self) -> bool:
        return self.common_name is None

    def describe(self) -> Optional[Dict[str, Any]]:
        """What a certificate must match (the issuance record keeps it): None for the default subject.

        Organizations are compared as a set, so they are sorted here.
        """
        if self.common_name is None:
            return None
        return {"common_name": self.common_name, "organizations": sorted(self.organizations)}

    def x509_name(self, identity: Optional["Identity"] = None) -> x509.Name:
        """The X.509 name: organizations first, in the given order, then the common name (as kubeadm does)."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        if self.common_name is None:
            if identity is None or identity.is_empty():
                raise PKIError(
                    "subject.common_name",
                    "a certificate without names needs a chosen subject",
                    "set subject.common_name (a client certificate only)",
                )
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.subject_common_name())])
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in self.organizations]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, self.common_name))
        return x509.Name(attributes)


def _subject_value(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise PKIError(field, "empty or not a string (%r)" % (value,), "give a non-empty string, or drop the entry")
    _check_printable(value, field)
    if not value.isprintable():
        raise PKIError(
            field,
            "%r contains an invisible or formatting character" % (value,),
            "write the value with visible characters only",
        )
    if len(value) > SUBJECT_VALUE_MAX:
        raise PKIError(
            field,
            "%r has %d characters, more than the %d X.509 allows" % (value, len(value), SUBJECT_VALUE_MAX),
            "shorten it to at most %d characters" % SUBJECT_VALUE_MAX,
        )
    return value


def parse_subject(value: Optional[Mapping], field: str = "subject") -> Subject:
    """The subject option as given (None, {} or {common_name, organizations}) -> a checked Subject.

    No common name and no organizations is the default subject. Standard library only.
    """
    if value is None:
        return Subject()
    if not isinstance(value, Mapping):
        raise PKIError(field, "%r is not a mapping" % (value,), "give {common_name: ..., organizations: [...]}")
    unknown = sorted(str(k) for k in value if k not in SUBJECT_KEYS)
    if unknown:
        raise PKIError(field, "unknown keys %s" % unknown, "use only %s" % " and ".join(SUBJECT_KEYS))
    common_name, organizations = value.get("common_name"), value.get("organizations")
    if organizations is None:
        organizations = []
    if common_name is None and not organizations:
        return Subject()
    if common_name is None:
        raise PKIError(
            field + ".common_name",
            "organizations are given without a common name",
            "set subject.common_name too, e.g. system:node:<host> with organizations [system:nodes]",
        )
    common_name = _subject_value(common_name, field + ".common_name")
    if not isinstance(organizations, (list, tuple)):
        raise PKIError(field + ".organizations", "%r is not a list" % (organizations,), "give a list of strings")
    if len(organizations) > SUBJECT_ORGANIZATIONS_MAX:
        raise PKIError(
            field + ".organizations",
            "%d organizations, more than %d" % (len(organizations), SUBJECT_ORGANIZATIONS_MAX),
            "give at most %d organizations" % SUBJECT_ORGANIZATIONS_MAX,
        )
    chosen: List[str] = []
    for index, organization in enumerate(organizations):
        item = "%s.organizations[%d]" % (field, index)
        text = _subject_value(organization, item)
        if text in chosen:
            raise PKIError(item, "%r is listed twice" % (text,), "list each organization once")
        chosen.append(text)
    return Subject(common_name, tuple(chosen))


def check_names_or_subject(identity: Identity, subject: Subject, usages: Iterable[str], field: str = "names") -> None:
    """A certificate names something: at least one name, or, for a client certificate only, a chosen subject.

    A certificate without names carries no SubjectAlternativeName at all (an empty one is invalid), so no
    server name or address can ever match it.
    """
    if not identity.is_empty():
        return
    if subject.is_default():
        raise PKIError(
            field,
            "the certificate would name nothing",
            "keep identity_from or add dns_names / ip_addresses / uris; a client certificate may instead be "
            "named by its subject alone (subject.common_name with usages: [client])",
        )
    usage_set = sorted(set(usages))
    if usage_set != ["client"]:
        raise PKIError(
            "usages",
            "a certificate without names is a client certificate only, not %s" % (",".join(usage_set) or "none"),
            "set usages: [client], or give the host's names (identity_from, dns_names, ip_addresses, uris)",
        )


def _check_printable(name: str, field: str) -> None:
    if not isinstance(name, str) or _UNPRINTABLE.search(name):
        raise PKIError(
            field,
            "%r contains whitespace or a control character" % (name,),
            "remove spaces, tabs, newlines and other control characters from the name",
        )


def normalize_dns_name(name: str, field: str, allow_wildcard: bool = False) -> str:
    _check_printable(name, field)
    text = name.rstrip(".").lower()
    try:
        text = text.encode("idna").decode("ascii") if not text.isascii() else text
    except UnicodeError:
        raise PKIError(field, "%r is not a valid DNS name" % (name,), "use letters, digits and hyphens") from None
    labels = text.split(".")
    if not text or len(text) > 253:
        raise PKIError(field, "%r is not a valid DNS name" % (name,), "use a name like node1.example.internal")
    for position, label in enumerate(labels):
        if label == "*":
            if position != 0 or len(labels) < 3:
                raise PKIError(
                    field,
                    "wildcard %r is only valid as the leftmost label of a name with at least three labels" % (name,),
                    "name each host explicitly",
                )
            if not allow_wildcard:
                raise PKIError(
                    field,
                    "wildcard name %r refused: every certificate names exactly one host" % (name,),
                    "list the host names explicitly, or set allow_wildcard: true if you really need a wildcard",
                )
            continue
        if not _LABEL.fullmatch(label):
            raise PKIError(
                field,
                "%r is not a valid DNS name (label %r)" % (name, label),
                "use letters, digits and inner hyphens, 1-63 characters per label",
            )
    return text


def validate_spiffe_id(uri: str, field: str) -> str:
    _check_printable(uri, field)
    parts = urlsplit(uri)
    if not uri.startswith("spiffe://"):
        raise PKIError(
            field, "%r must start with spiffe:// in lower case" % (uri,), "write it as spiffe://trust-domain/path"
        )
    if parts.scheme != "spiffe":
        raise PKIError(field, "%r is not a SPIFFE ID" % (uri,), "write it as spiffe://trust-domain/path")
    if not parts.netloc or not _SPIFFE_TD.match(parts.netloc) or parts.port or "@" in parts.netloc:
        raise PKIError(
            field,
            "%r has an invalid trust domain" % (uri,),
            "use lowercase letters, digits, dots, hyphens and underscores, no port or user",
        )
    if parts.query or parts.fragment:
        raise PKIError(field, "%r must not carry a query or fragment" % (uri,), "drop everything after ? or #")
    if parts.path:
        segments = parts.path.split("/")[1:]
        for segment in segments:
            if segment in ("", ".", "..") or not _SPIFFE_SEGMENT.fullmatch(segment):
                raise PKIError(
                    field,
                    "%r has an invalid path segment %r" % (uri, segment),
                    "use non-empty segments of letters, digits, dots, hyphens, underscores",
                )
    return uri


_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def validate_uri(uri: str, field: str) -> str:
    """A URI SAN: a scheme, a host that is a valid DNS name or IP, no user part, nothing unprintable."""
    _check_printable(uri, field)
    parts = urlsplit(uri)
    if uri.split("://", 1)[0] != parts.scheme or parts.netloc != parts.netloc.lower():
        raise PKIError(
            field,
            "%r has upper-case letters in its scheme or host" % (uri,),
            "write the scheme and host in lower case: one name has one spelling in a certificate",
        )
    if not _SCHEME.fullmatch(parts.scheme or "") or not parts.netloc:
        raise PKIError(field, "%r is not a valid URI" % (uri,), "write it as scheme://host/path")
    if "@" in parts.netloc:
        raise PKIError(field, "%r carries a user part" % (uri,), "drop user@ from the URI")
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        normalize_dns_name(host, field)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise PKIError(field, "%r has an invalid port" % (uri,), "use a port number 1-65535")
    return uri


def _address(value: str, field: str) -> Optional[IPAddress]:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if address.version == 6 and getattr(address, "scope_id", None):
        raise PKIError(
            field,
            "%r carries a zone (%%%s)" % (value, address.scope_id),
            "drop the zone: a certificate names an address, not an interface",
        )
    if address.version == 6 and address.ipv4_mapped is not None:
        raise PKIError(
            field,
            "%r is an IPv4 address written as IPv6" % (value,),
            "write it as %s: one address has one spelling in a certificate" % address.ipv4_mapped,
        )
    return address


def _uri(value: str, field: str) -> str:
    if value.split("://", 1)[0].lower() == "spiffe":
        return validate_spiffe_id(value, field)
    return validate_uri(value, field)


def parse_name(text: str, field: str, allow_wildcard: bool = False) -> Union[str, IPAddress]:
    """One plain string → a normalised DNS name (str), an IP address, or a URI (str with '://').

    The one grammar of names in the collection: host identities, CSRs, ledger entries and cert-manager
    Certificates all go through it (or through the typed checks below, which are this function by kind).
    """
    if not isinstance(text, str) or not text.strip():
        raise PKIError(field, "empty name", "remove the empty entry")
    _check_printable(text, field)
    address = _address(text, field)
    if address is not None:
        return address
    if "://" in text:
        return _uri(text, field)
    return normalize_dns_name(text, field, allow_wildcard)


def check_dns_name(name: str, field: str, allow_wildcard: bool = False) -> str:
    """A name given where only a DNS name belongs (e.g. a Certificate's dnsNames): normalised, or a PKIError."""
    parsed = parse_name(name, field, allow_wildcard)
    if not isinstance(parsed, str) or "://" in parsed:
        raise PKIError(field, "%r is not a DNS name" % (name,), "give a name like web.prod.svc.cluster.local")
    return parsed


def check_ip_address(value: str, field: str) -> str:
    """A value given where only an IP address belongs: its canonical text, or a PKIError."""
    if not isinstance(value, str) or not value.strip():
        raise PKIError(field, "empty address", "remove the empty entry")
    _check_printable(value, field)
    address = _address(value, field)
    if address is None:
        raise PKIError(field, "%r is not an IP address" % (value,), "give an IPv4 or IPv6 address")
    return str(address)


def check_uri(value: str, field: str) -> str:
    """A value given where only a URI belongs (SPIFFE IDs checked as such), or a PKIError."""
    if not isinstance(value, str) or "://" not in value:
        raise PKIError(
            field, "%r is not an absolute URI" % (value,), "give a URI such as spiffe://cluster.local/ns/prod/sa/web"
        )
    _check_printable(value, field)
    return _uri(value, field)


def build_identity(
    names: Iterable[str], field: str = "names", allow_wildcard: bool = False, common_name: Optional[str] = None
) -> Identity:
    dns, ips, uris = set(), set(), set()
    for index, name in enumerate(names):
        parsed = parse_name(name, "%s[%d]" % (field, index), allow_wildcard)
        if isinstance(parsed, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            ips.add(parsed)
        elif "://" in parsed:
            uris.add(parsed)
        else:
            dns.add(parsed)
    return Identity(
        tuple(sorted(dns)), tuple(sorted(ips, key=lambda a: (a.version, int(a)))), tuple(sorted(uris)), common_name
    )


def merge(*identities: Identity) -> Identity:
    names: List[str] = []
    for ident in identities:
        names.extend(ident.names())
    common = next((i.common_name for i in identities if i.common_name), None)
    return build_identity(names, allow_wildcard=True, common_name=common)


def is_host_address(address: IPAddress) -> bool:
    """Addresses worth naming: not ::1/127.0.0.1, not link-local, not unspecified or multicast."""
    if address.is_link_local or address.is_unspecified or address.is_multicast:
        return False
    if address.version == 6 and address == ipaddress.IPv6Address("::1"):
        return False
    return address != ipaddress.IPv4Address("127.0.0.1")


def names_this_host(value) -> bool:
    """Whether a hostname or FQDN (a fact, or what a node discovered) names this host, not any host (localhost)."""
    text = str(value or "").strip().lower().rstrip(".")
    return bool(text) and text.split(".", maxsplit=1)[0] not in ("localhost", "localhost4", "localhost6")


def host_names_of(found: Mapping, sources: Sequence[str]) -> List[str]:
    """The hostname and FQDN among ``found`` (facts, or a node's discoveries) that ``sources`` asks for.

    The one rule for both: the controller's facts and the node's own discovery (which the controller then
    re-checks, see the node_certificate action) keep the same names.
    """
    return [str(found[key]) for key in ("hostname", "fqdn") if key in sources and names_this_host(found.get(key))]


def host_names_from_facts(facts: Mapping, inventory_hostname: str, sources: Sequence[str]) -> List[str]:
    """Names and addresses of one host, taken from Ansible facts.

    Addresses come from the default route facts, the all_ipv*_addresses facts
    and every interface that is not of type loopback, so an address such as
    127.250.0.5 on a veth is kept while ``lo`` is not.
    """
    out: List[str] = []
    if "inventory_hostname" in sources and inventory_hostname:
        out.append(inventory_hostname)
    out.extend(host_names_of(facts, sources))
    for version in (4, 6):
        if "ipv%d" % version not in sources:
            continue
        found: List[str] = []
        default = facts.get("default_ipv%d" % version) or {}
        if default.get("address"):
            found.append(default["address"])
        found.extend(facts.get("all_ipv%d_addresses" % version) or [])
        for iface in facts.get("interfaces") or []:
            data = facts.get(str(iface).replace("-", "_")) or {}
            if iface == "lo" or data.get("type") == "loopback":
                continue
            entries = data.get("ipv%d" % version) or []
            entries = [entries] if isinstance(entries, dict) else list(entries)
            if version == 4:
                entries += list(data.get("ipv4_secondaries") or [])
            found.extend(e["address"] for e in entries if isinstance(e, dict) and e.get("address"))
        for text in found:
            try:
                address = ipaddress.ip_address(str(text).split("%", maxsplit=1)[0])
            except ValueError:
                continue
            if is_host_address(address):
                out.append(str(address))
    return out


def identity_of_certificate(cert: Union[x509.Certificate, x509.CertificateSigningRequest]) -> Identity:
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID, NameOID

    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        san = x509.SubjectAlternativeName([])
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return Identity(
        tuple(sorted(n.lower() for n in san.get_values_for_type(x509.DNSName))),
        tuple(sorted(san.get_values_for_type(x509.IPAddress), key=lambda a: (a.version, int(a)))),
        tuple(sorted(san.get_values_for_type(x509.UniformResourceIdentifier))),
        str(common[0].value) if common else None,
    )


def discover_host(sources: Sequence[str]) -> Dict[str, object]:
    """The few facts node_certificate needs when the play did not gather facts."""
    found: Dict[str, object] = {}
    if "hostname" in sources:
        found["hostname"] = socket.gethostname().split(".")[0]
    if "fqdn" in sources:
        found["fqdn"] = socket.getfqdn()
    versions = [v for v in (4, 6) if "ipv%d" % v in sources]
    if versions:
        found["addresses"] = _interface_addresses(versions)
    return found


def _interface_addresses(versions: Sequence[int]) -> List[str]:
    """Addresses of every interface not flagged LOOPBACK, from ``ip -j addr``."""
    try:
        out = subprocess.run(["ip", "-j", "addr", "show"], check=True, capture_output=True, timeout=10).stdout
        links = json.loads(out.decode("utf-8") or "[]")
    except (OSError, ValueError, subprocess.SubprocessError):
        return []
    result = []
    for link in links:
        if "LOOPBACK" in (link.get("flags") or []):
            continue
        for info in link.get("addr_info") or []:
            family = {"inet": 4, "inet6": 6}.get(info.get("family"))
            if family not in versions:
                continue
            try:
                address = ipaddress.ip_address(info.get("local", ""))
            except ValueError:
                continue
            if is_host_address(address):
                result.append(str(address))
    return result


def requested_names(names: Sequence[str], discover: Sequence[str]) -> Tuple[List[str], Dict[str, object]]:
    """Approved names plus what the node discovers about itself; (names, discovered facts)."""
    unknown = [s for s in discover if s not in HOST_SOURCES]
    if unknown:
        raise PKIError("identity_from", "unknown sources %s" % unknown, "use %s" % ", ".join(HOST_SOURCES))
    out = list(names)
    found = discover_host(discover) if discover else {}
    out.extend(host_names_of(found, discover))
    out.extend(found.get("addresses") or [])  # type: ignore[arg-type]
    return out, found
