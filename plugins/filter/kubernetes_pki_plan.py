# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: kubernetes_pki_plan
short_description: The plan of a Kubernetes cluster's own PKI, decided on the controller from the inventory
version_added: 0.4.0
description:
  - Used by the M(securebydefault.pki.kubernetes_pki) role before anything is written. Returns the three CAs
    (cluster, etcd, front-proxy) with their name constraints, and for every host the certificates its components
    use - names, subject and usages of each - or fails naming the variable to fix.
  - Names come from the inventory only (inventory name, node name, C(kubernetes_pki_addresses)), never from what a
    node reports about itself.
options:
  _input:
    description:
      - C(groups) (C(etcd), C(control_plane), C(nodes), each a list of inventory hosts), C(cluster_domain),
        C(service_cidr), C(service_ip), C(apiserver_names),
        C(constraints) (per CA C(permitted_dns) and C(permitted_ip_ranges)) and C(admin) (C(common_name),
        C(groups)).
    type: dict
    required: true
  hostvars:
    description:
      - The inventory's variables per host (C(hostvars)); of each host in C(groups), only C(kubernetes_pki_node_name),
        C(kubernetes_pki_addresses) and C(ansible_host) are read.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Plan the cluster PKI
  ansible.builtin.set_fact:
    plan: >-
      {{ {'groups': {'etcd': groups['etcd'], 'control_plane': groups['kube_control_plane'],
          'nodes': groups['kube_node']},
          'cluster_domain': 'cluster.local', 'service_cidr': '10.96.0.0/12', 'service_ip': '',
          'apiserver_names': [], 'constraints': {},
          'admin': {'common_name': 'kubernetes-admin', 'groups': ['system:masters']}}
       | securebydefault.pki.kubernetes_pki_plan(hostvars) }}
"""

RETURN = r"""
_value:
  description: C(cas), C(hosts) (per host C(node_name), C(groups), C(certificates)), C(service_ip) and C(admin).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.kubernetes import plan


HOST_VARIABLES = {"node_name": "kubernetes_pki_node_name", "addresses": "kubernetes_pki_addresses",
                  "ansible_host": "ansible_host"}


def kubernetes_pki_plan(settings, hostvars):
    members = set()
    for hosts in ((settings or {}).get("groups") or {}).values():
        members.update(hosts or [])
    hosts = {}
    for host in sorted(members):
        variables = hostvars.get(host) or {}
        # facts override inventory variables: a host (in this play or not, with cached facts) that reports facts
        # named like these would choose its own names
        shadowing = sorted(k for k in (variables.get("ansible_facts") or {}) if str(k).startswith("kubernetes_pki_")
                           or k in ("host", "ansible_host"))
        if shadowing:
            raise AnsibleFilterError(
                "inventory host %s reported facts named like the variables its names come from (%s); nothing was "
                "planned. Find what on that host reports them, and set inject_facts_as_vars = False"
                % (host, ", ".join(shadowing)))
        hosts[host] = {key: variables.get(name) for key, name in HOST_VARIABLES.items()}
    try:
        return plan(dict(settings, hosts=hosts))
    except PKIError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"kubernetes_pki_plan": kubernetes_pki_plan}
