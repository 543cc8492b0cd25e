# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, strategies as st

from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import (
    build_identity, host_names_from_facts, parse_name)

label = st.from_regex(r"\A[a-z]([a-z0-9-]{0,20}[a-z0-9])?\Z", fullmatch=True)  # a letter first: never an IP
dns_name = st.lists(label, min_size=1, max_size=5).map(".".join)
# an IPv4 address written as IPv6 (::ffff:a.b.c.d) is refused: one address, one spelling
addresses = st.ip_addresses().filter(lambda a: a.version == 4 or a.ipv4_mapped is None)


@given(dns_name)
def test_dns_names_parse_to_themselves(name):
    assert parse_name(name, "dns_names") == name
    assert parse_name(name.upper() + ".", "dns_names") == name


@given(addresses)
def test_addresses_parse_as_ip(address):
    assert parse_name(str(address), "ip_addresses") == address


@given(st.lists(st.one_of(dns_name, addresses.map(str)), max_size=8))
def test_identity_is_order_independent_and_deduplicated(names):
    forward = build_identity(names)
    backward = build_identity(list(reversed(names)) + names)
    assert forward == backward
    assert len(forward.names()) == len(set(forward.names()))


@given(label, dns_name)
def test_wildcards_refused_unless_allowed(first, rest):
    name = "*.%s.%s" % (first, rest)
    with pytest.raises(PKIError, match="wildcard") as err:
        parse_name(name, "dns_names[0]")
    assert err.value.field == "dns_names[0]"
    assert "allow_wildcard" in err.value.fix
    assert parse_name(name, "dns_names[0]", allow_wildcard=True) == name


@pytest.mark.parametrize("bad", ["-bad.example", "bad-.example", "under_score.example", "a..b", "a" * 64 + ".x",
                                 "*.com", "foo.*.example.com"])
def test_invalid_dns_names(bad):
    with pytest.raises(PKIError):
        parse_name(bad, "dns_names", allow_wildcard=True)


def test_spiffe_ids():
    assert parse_name("spiffe://cluster.local/ns/web/sa/api", "uris") == "spiffe://cluster.local/ns/web/sa/api"
    for bad in ["spiffe://Cluster.Local/x", "spiffe://td/a/../b", "spiffe://td/x?y=1", "spiffe://td:443/x",
                "spiffe:///x", "spiffe://td//x"]:
        with pytest.raises(PKIError):
            parse_name(bad, "spiffe_id")


def test_identity_types_are_split():
    ident = build_identity(["node1.example", "10.0.0.7", "spiffe://example/node1", "::1"])
    assert ident.dns_names == ("node1.example",)
    assert ident.ip_addresses == (ipaddress.ip_address("10.0.0.7"), ipaddress.ip_address("::1"))
    assert ident.uris == ("spiffe://example/node1",)
    assert ident.subject_common_name() == "node1.example"


FACTS = {
    "hostname": "node1", "fqdn": "node1.pki.test",
    "default_ipv4": {"address": "127.250.0.11", "interface": "eth0"},
    "all_ipv4_addresses": [], "all_ipv6_addresses": ["fe80::1"],
    "interfaces": ["lo", "eth0", "eth1"],
    "lo": {"type": "loopback", "ipv4": {"address": "127.0.0.1"}, "ipv6": [{"address": "::1"}]},
    "eth0": {"type": "ether", "ipv4": {"address": "127.250.0.11"},
             "ipv4_secondaries": [{"address": "10.9.9.9"}], "ipv6": [{"address": "fe80::2"}]},
    "eth1": {"type": "ether", "ipv4": {"address": "192.0.2.5"}, "ipv6": [{"address": "2001:db8::5"}]},
}


def test_host_names_from_facts_names_this_host_only():
    names = host_names_from_facts(FACTS, "node1.pki.test", ["inventory_hostname", "hostname", "fqdn", "ipv4", "ipv6"])
    ident = build_identity(names)
    assert ident.dns_names == ("node1", "node1.pki.test")
    assert [str(a) for a in ident.ip_addresses] == ["10.9.9.9", "127.250.0.11", "192.0.2.5", "2001:db8::5"]


def test_host_names_from_facts_respects_sources():
    assert build_identity(host_names_from_facts(FACTS, "x", ["fqdn", "ipv4"])).names() == [
        "node1.pki.test", "10.9.9.9", "127.250.0.11", "192.0.2.5"]


@pytest.mark.parametrize("hostname, fqdn, kept", [
    ("node1", "node1.pki.test", ["node1", "node1.pki.test"]),
    ("localhost", "localhost.localdomain", []),
    ("localhost6", "LOCALHOST.", []),
    ("localhost-build1", "localhost-build1.pki.test", ["localhost-build1", "localhost-build1.pki.test"]),
    ("", None, []),
])
def test_facts_and_node_discovery_keep_the_same_host_names(monkeypatch, hostname, fqdn, kept):
    """One rule for hostname/FQDN: from gathered facts and from what the node discovers itself."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import identity as ident

    facts = {"hostname": hostname, "fqdn": fqdn}
    assert ident.host_names_from_facts(facts, "", ["hostname", "fqdn"]) == kept
    monkeypatch.setattr(ident, "discover_host", lambda sources: dict(facts))
    assert ident.requested_names([], ["hostname", "fqdn"])[0] == kept
    assert ident.host_names_of(facts, ["fqdn"]) == [n for n in kept if "." in n]
