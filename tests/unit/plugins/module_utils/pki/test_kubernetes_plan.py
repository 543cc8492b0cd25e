# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster PKI plan: what each host gets, from the inventory only, and the bad input it refuses."""

from __future__ import annotations

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.kubernetes import plan


def settings(**changes):
    base = {
        "groups": {"etcd": ["cp1.k8s.test", "cp2.k8s.test"], "control_plane": ["cp1.k8s.test", "cp2.k8s.test"],
                   "nodes": ["node1.k8s.test"]},
        "hosts": {"cp1.k8s.test": {"addresses": ["10.1.0.11"]}, "cp2.k8s.test": {"ansible_host": "10.1.0.12"},
                  "node1.k8s.test": {"node_name": "node1", "ansible_host": "node1.example.org"}},
        "cluster_domain": "cluster.local",
        "service_cidr": "10.96.0.0/12",
        "service_ip": "",
        "apiserver_names": [],
        "constraints": {},
        "admin": {"common_name": "kubernetes-admin", "groups": ["system:masters"]},
    }
    base.update(changes)
    return base


def certificates(result, host):
    return {c["name"]: c for c in result["hosts"][host]["certificates"]}


def test_each_host_gets_the_certificates_of_its_components():
    result = plan(settings())
    cp1 = certificates(result, "cp1.k8s.test")
    assert sorted(cp1) == sorted(["server", "peer", "apiserver", "apiserver-kubelet-client", "apiserver-etcd-client",
                                  "front-proxy-client", "controller-manager", "scheduler"])
    node1 = certificates(result, "node1.k8s.test")
    assert sorted(node1) == ["kube-proxy", "kubelet", "kubelet-client"]
    assert node1["kubelet-client"]["subject"] == {"common_name": "system:node:node1", "organizations": ["system:nodes"]}
    assert node1["kubelet-client"]["names"] == [] and node1["kubelet-client"]["usages"] == ["client"]
    # the node's names are the inventory's: a DNS ansible_host is a way in, not a name to certify
    assert node1["kubelet"]["names"] == ["node1.k8s.test", "node1"]
    assert cp1["controller-manager"]["subject"]["common_name"] == "system:kube-controller-manager"
    assert cp1["apiserver-etcd-client"]["ca"] == "etcd" and cp1["front-proxy-client"]["ca"] == "front_proxy"


def test_the_apiserver_certificate_names_the_service_and_the_host():
    result = plan(settings())
    apiserver = certificates(result, "cp2.k8s.test")["apiserver"]
    assert result["service_ip"] == "10.96.0.1"
    for name in ("cp2.k8s.test", "10.1.0.12", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local", "10.96.0.1"):
        assert name in apiserver["names"]
    assert "10.96.0.1" in apiserver["ip_addresses"] and "kubernetes" in apiserver["dns_names"]
    # both control-plane nodes carry the Service's names: shared, not stolen
    assert "kubernetes.default.svc" in apiserver["shared_names"] and "cp2.k8s.test" not in apiserver["shared_names"]
    assert "cp1.k8s.test" not in apiserver["names"]


def test_constraints_are_derived_from_the_inventory():
    result = plan(settings())
    assert "k8s.test" in result["cas"]["etcd"]["permitted_dns"]
    assert "10.1.0.0/24" in result["cas"]["etcd"]["permitted_ip_ranges"]
    assert "127.0.0.1/32" in result["cas"]["etcd"]["permitted_ip_ranges"]
    assert "10.96.0.0/24" in result["cas"]["cluster"]["permitted_ip_ranges"]
    assert "k8s.test" in result["cas"]["cluster"]["permitted_dns"]
    # the Service's names stay exact: the CA cannot sign other names of the service domain
    assert "kubernetes.default.svc.cluster.local" in result["cas"]["cluster"]["permitted_dns"]
    assert "default.svc.cluster.local" not in result["cas"]["cluster"]["permitted_dns"]


@pytest.mark.parametrize("changes, field, words", [
    ({"hosts": {"node1.k8s.test": {"node_name": "node2"}}}, "kubernetes_pki_node_name", "not the name of inventory"),
    ({"hosts": {"node1.k8s.test": {"node_name": "Node1"}}}, "kubernetes_pki_node_name", "not the name of inventory"),
    ({"service_cidr": "10.96.0.0/16", "service_ip": "10.97.0.1"}, "kubernetes_pki_service_ip", "not an address"),
    ({"service_cidr": "10.96.0.1/12"}, "kubernetes_pki_service_cidr", "not a network"),
    ({"constraints": {"etcd": {"permitted_dns": ["etcd.k8s.test"]}}}, "kubernetes_pki_etcd_ca_permitted_dns",
     "outside the etcd CA's constraints"),
    ({"constraints": {"cluster": {"permitted_ip_ranges": ["10.1.0.0/24"]}}},
     "kubernetes_pki_cluster_ca_permitted_ip_ranges", "10.96.0.1 is outside"),
    ({"groups": {"etcd": [], "control_plane": ["cp1.k8s.test"], "nodes": []}}, "kubernetes_pki_etcd_group", "no host"),
    ({"hosts": {"cp1.k8s.test": {"addresses": ["cp1"]}}}, "kubernetes_pki_addresses[0]", "not an IP address"),
    # a node must not carry what only the apiservers carry, nor another host's names
    ({"hosts": {"node1.k8s.test": {"node_name": "node1", "addresses": ["10.96.0.1"]}}}, "kubernetes_pki_addresses",
     "a name of the kubernetes Service"),
    ({"hosts": {"node1.k8s.test": {"addresses": ["10.100.3.4"]}}}, "kubernetes_pki_addresses", "service CIDR"),
    ({"apiserver_names": ["api.k8s.test"],
      "hosts": {"node1.k8s.test": {"node_name": "node1"}, "cp1.k8s.test": {"addresses": ["10.1.0.11"]}},
      "groups": {"etcd": ["cp1.k8s.test"], "control_plane": ["cp1.k8s.test"], "nodes": ["api.k8s.test"]}},
     "kubernetes_pki_node_name", "a name of the kubernetes Service"),
    ({"hosts": {"node1.k8s.test": {"addresses": ["10.1.0.11"]}, "cp1.k8s.test": {"addresses": ["10.1.0.11"]}}},
     "kubernetes_pki_addresses", "a name of both cp1.k8s.test and node1.k8s.test"),
    ({"groups": {"etcd": ["cp1.k8s.test"], "control_plane": ["cp1.k8s.test"],
                 "nodes": ["node1.rack1.k8s.test", "node1.rack2.k8s.test"]},
      "hosts": {"node1.rack1.k8s.test": {"node_name": "node1"}, "node1.rack2.k8s.test": {"node_name": "node1"}}},
     "kubernetes_pki_node_name", "the node name of both"),
    ({"cluster_name": "prod #2"}, "kubernetes_pki_cluster_name", "not a DNS label"),
])
def test_bad_input_names_the_variable(changes, field, words):
    with pytest.raises(PKIError) as err:
        plan(settings(**changes))
    assert err.value.field == field and words in str(err.value)


def test_constraints_the_user_gives_are_kept_when_every_name_fits():
    result = plan(settings(constraints={"etcd": {"permitted_dns": ["k8s.test", "localhost"],
                                                 "permitted_ip_ranges": ["10.1.0.0/16", "127.0.0.0/8", "::1/128"]}}))
    assert result["cas"]["etcd"]["permitted_dns"] == ["k8s.test", "localhost"]
    assert result["cas"]["etcd"]["permitted_ip_ranges"] == ["10.1.0.0/16", "127.0.0.0/8", "::1/128"]
