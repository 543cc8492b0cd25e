# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One grammar of names: a cert-manager Certificate and a host certificate accept and refuse the same names."""
from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import certmanager as cm
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import identity
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

DNS_NAMES = [
    "web.prod.svc.cluster.local", "WEB.Prod.example.", "a-b.example", "xn--bcher-kva.example", "bücher.example",
    "*.com", "*.prod.example", "a.*.example", "*", "-web.example", "web-.example", "bad_name.example",
    "web..example", "a" * 64 + ".example", "web example.org", "web.example\n", "",
]
IP_ADDRESSES = ["10.0.0.7", "fd00::1", "::ffff:10.0.0.7", "10.0.0.300", "10.0.0", "1.2.3.4 "]
URIS = ["spiffe://cluster.local/ns/prod/sa/web", "spiffe://Cluster.Local/x", "spiffe://cluster.local/",
        "https://web.example/path", "HTTPS://web.example", "https://user@web.example", "spiffe://td/a/../b"]


def verdict(call):
    """(accepted value, None) or (None, field of the refusal)."""
    try:
        return call(), None
    except PKIError as exc:
        return None, exc.field


def through_cert_manager(kind, value, allow_wildcard=False):
    params = {"name": "web", "issuer_name": "ca", kind: [value], "allow_wildcard": allow_wildcard}
    spec_key = {"dns_names": "dnsNames", "ip_addresses": "ipAddresses", "uris": "uris"}[kind]
    return verdict(lambda: cm.certificate_spec(params)[0][spec_key][0])


def through_identity(kind, value, allow_wildcard=False):
    """parse_name, as a host certificate's names go: accepted for ``kind`` if it parses as that kind of name."""
    def parse():
        parsed = identity.parse_name(value, kind, allow_wildcard)
        found = ("ip_addresses" if isinstance(parsed, (ipaddress.IPv4Address, ipaddress.IPv6Address))
                 else "uris" if "://" in parsed else "dns_names")
        if found != kind:
            raise PKIError(kind, "%r is not one of the %s" % (value, kind), "")
        return str(parsed)
    return verdict(parse)


@pytest.mark.parametrize("allow_wildcard", [False, True])
@pytest.mark.parametrize("name", DNS_NAMES)
def test_dns_names_same_verdict(name, allow_wildcard):
    expected = through_identity("dns_names", name, allow_wildcard)
    assert through_cert_manager("dns_names", name, allow_wildcard) == expected


@pytest.mark.parametrize("value", IP_ADDRESSES)
def test_ip_addresses_same_verdict(value):
    assert through_cert_manager("ip_addresses", value) == through_identity("ip_addresses", value)


@pytest.mark.parametrize("value", URIS)
def test_uris_same_verdict(value):
    assert through_cert_manager("uris", value) == through_identity("uris", value)


def test_the_former_differences_are_gone():
    # cert-manager's path used to accept a two-label wildcard and upper-case SPIFFE trust domains
    assert through_cert_manager("dns_names", "*.com", True) == (None, "dns_names")
    assert through_cert_manager("uris", "spiffe://Cluster.Local/x") == (None, "uris")
    # and to refuse internationalised names that host certificates take (as A-labels)
    assert through_cert_manager("dns_names", "bücher.example") == ("xn--bcher-kva.example", None)
    # an IPv4-mapped IPv6 address has one spelling
    assert through_cert_manager("ip_addresses", "::ffff:10.0.0.7") == (None, "ip_addresses")


# The verdicts themselves, fixed: a change to the one grammar that both paths share must show here too.
ACCEPTED_DNS = {"web.prod.svc.cluster.local": "web.prod.svc.cluster.local", "WEB.Prod.example.": "web.prod.example",
                "a-b.example": "a-b.example", "xn--bcher-kva.example": "xn--bcher-kva.example",
                "bücher.example": "xn--bcher-kva.example"}
ACCEPTED_WITH_WILDCARD = {"*.prod.example": "*.prod.example"}


@pytest.mark.parametrize("name", DNS_NAMES)
def test_dns_name_verdicts_are_the_documented_ones(name):
    assert through_cert_manager("dns_names", name) == (
        (ACCEPTED_DNS[name], None) if name in ACCEPTED_DNS else (None, "dns_names"))
    with_wildcard = dict(ACCEPTED_DNS, **ACCEPTED_WITH_WILDCARD)
    assert through_cert_manager("dns_names", name, True) == (
        (with_wildcard[name], None) if name in with_wildcard else (None, "dns_names"))


@pytest.mark.parametrize("value, accepted", [
    ("10.0.0.7", "10.0.0.7"), ("fd00::1", "fd00::1"), ("::ffff:10.0.0.7", None), ("10.0.0.300", None),
    ("10.0.0", None), ("1.2.3.4 ", None), ("fe80::1%eth0", None),
    ("spiffe://cluster.local/ns/prod/sa/web", "spiffe://cluster.local/ns/prod/sa/web"),
    ("spiffe://Cluster.Local/x", None), ("spiffe://cluster.local/", None),
    ("https://web.example/path", "https://web.example/path"), ("HTTPS://web.example", None),
    ("https://user@web.example", None), ("spiffe://td/a/../b", None),
])
def test_address_and_uri_verdicts_are_the_documented_ones(value, accepted):
    kind = "uris" if "://" in value else "ip_addresses"
    assert through_cert_manager(kind, value) == ((accepted, None) if accepted else (None, kind))
