# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

pytest.importorskip("ansible")

from ansible.errors import AnsibleFilterError  # noqa: E402

from ansible_collections.securebydefault.pki.plugins.filter.kubernetes_pki_plan import FilterModule  # noqa: E402

plan = FilterModule().filters()["kubernetes_pki_plan"]

SETTINGS = {"groups": {"etcd": ["cp1.k8s.test"], "control_plane": ["cp1.k8s.test"], "nodes": ["node1.k8s.test"]},
            "cluster_domain": "cluster.local", "service_cidr": "10.96.0.0/12", "service_ip": "",
            "apiserver_names": [], "constraints": {}, "admin": {"common_name": "kubernetes-admin", "groups": []}}


def test_only_the_inventory_variables_of_planned_hosts_are_read():
    hostvars = {"cp1.k8s.test": {"ansible_host": "10.0.0.11", "kubernetes_pki_addresses": ["10.0.0.21"],
                                 "ansible_default_ipv4": {"address": "192.0.2.66"}},
                "node1.k8s.test": {"kubernetes_pki_node_name": "node1"},
                "other": {"kubernetes_pki_addresses": ["not read"]}}
    result = plan(SETTINGS, hostvars)
    apiserver = [c for c in result["hosts"]["cp1.k8s.test"]["certificates"] if c["name"] == "apiserver"][0]
    assert "10.0.0.11" in apiserver["ip_addresses"] and "10.0.0.21" in apiserver["ip_addresses"]
    assert "192.0.2.66" not in apiserver["ip_addresses"]  # a fact is not a name
    assert result["hosts"]["node1.k8s.test"]["node_name"] == "node1" and "other" not in result["hosts"]


def test_a_bad_variable_is_a_filter_error_naming_it():
    with pytest.raises(AnsibleFilterError, match="kubernetes_pki_node_name"):
        plan(SETTINGS, {"node1.k8s.test": {"kubernetes_pki_node_name": "node9"}})


def test_a_host_whose_facts_shadow_its_name_variables_is_refused():
    hostvars = {"node1.k8s.test": {"ansible_facts": {"kubernetes_pki_addresses": ["10.96.0.1"]},
                                   "kubernetes_pki_addresses": ["10.96.0.1"]}}
    with pytest.raises(AnsibleFilterError, match="node1.k8s.test reported facts"):
        plan(SETTINGS, hostvars)
