#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which directory of each CA of a Kubernetes cluster's PKI signs, and which one is being rotated."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kubernetes_pki_cas
short_description: Which generation of each CA of a cluster PKI signs, and which CA is being rotated
version_added: 0.4.0
description:
  - Runs on the CA host for the M(securebydefault.pki.kubernetes_pki) role and changes nothing. The cluster, etcd and
    front-proxy CAs each have numbered generations - generation 1 in C(<ca_dir>/cluster) (C(etcd), C(front-proxy)),
    later ones in C(<ca_dir>/cluster.<n>). Raising a generation by one starts that CA's rotation from the previous
    directory; its stages (trust both, switch, drop the old root) are kept by M(securebydefault.pki.ca_rotation) in
    C(<new directory>.rotation.json), and the generation is in force once that rotation is done.
  - Fails, naming the variable, when a generation skips one (the previous rotation is not done), goes back to an
    older one than a rotation already started, or when a second CA would rotate while another one is - each CA
    rotation needs its own restarts.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
options:
  ca_dir:
    description: The directory of the cluster's CAs on the CA host (the role's C(kubernetes_pki_ca_dir)).
    type: path
    required: true
  generations:
    description: The generation asked for each CA - keys C(cluster), C(etcd), C(front_proxy) (default 1 each).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    description: It only reads.
  diff_mode:
    support: none
    description: It changes nothing.
"""

EXAMPLES = r"""
- name: Which CA directories sign in this run
  securebydefault.pki.kubernetes_pki_cas:
    ca_dir: /srv/pki/prod-k8s
    generations: {cluster: 2, etcd: 1, front_proxy: 1}
  delegate_to: localhost
  run_once: true
  register: cas
# cas.rotating == 'cluster'; cas.cas.cluster.previous_path == '/srv/pki/prod-k8s/cluster'
"""

RETURN = r"""
cas:
  description:
    - Per CA (C(cluster), C(etcd), C(front_proxy)) - C(generation), its C(path), C(previous_path) (the directory it
      rotates from, or null), C(rotating) and the C(stage) its rotation state records (null before the first step or
      for generation 1).
  returned: success
  type: dict
  sample:
    cluster: {generation: 2, path: /srv/pki/prod-k8s/cluster.2, previous_path: /srv/pki/prod-k8s/cluster,
              rotating: true, stage: trust_both}
    etcd: {generation: 1, path: /srv/pki/prod-k8s/etcd, previous_path: null, rotating: false, stage: null}
    front_proxy: {generation: 1, path: /srv/pki/prod-k8s/front-proxy, previous_path: null, rotating: false,
                  stage: null}
rotating:
  description: The CA being rotated, or null.
  returned: success
  type: str
  sample: cluster
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import rotation as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run

ARGUMENT_SPEC = dict(
    ca_dir=dict(type="path", required=True),
    generations=dict(type="dict", default={}),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.kubernetes_pki_cas)


if __name__ == "__main__":
    main()
