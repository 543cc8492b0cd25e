#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host's kubeconfigs and component certificate flags for the kubernetes_pki role, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kubernetes_pki_configs
short_description: Write one host's kubeconfigs and component certificate flags of a cluster PKI in one pass
version_added: 0.4.0
description:
  - Runs on each host of the M(securebydefault.pki.kubernetes_pki) role. Writes a kubeconfig per client identity of
    the host (C(<config_dir>/<file>), mode 0600, naming C(<pki_dir>/ca-bundle.crt), C(<certificate>-fullchain.crt)
    and C(<certificate>.key)) and, per component, its certificate flags as one environment variable
    (C(<config_dir>/pki-flags/<name>.env), mode 0644, for C(EnvironmentFile=) of a systemd unit).
  - Every name, flag and destination is checked before the first file is written. A flag with whitespace, a
    quote, C($) or a backslash is refused (systemd splits the variable on whitespace and does not unquote). Each
    file is written atomically, never through a link planted at its path, and only when its content or mode
    differs; a directory another user could write to is refused.
  - The files hold paths and names only, no key, so C(--diff) shows every change; of a file found on disk it shows
    only one this module wrote (kubeadm's kubeconfigs embed their client keys). A rewritten file keeps its owner
    and group.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
options:
  config_dir:
    description: Directory of the kubeconfigs; the flag files go to its C(pki-flags) subdirectory.
    type: path
    required: true
  pki_dir:
    description: Directory of the host's certificates and keys, as the kubeconfigs name them.
    type: path
    required: true
  server:
    description: The apiserver's C(https://) URL the kubeconfigs name.
    type: str
    default: ""
  cluster_name:
    description: Name of the cluster entry in each kubeconfig.
    type: str
    default: kubernetes
  host:
    description: Inventory name of the host, written in each kubeconfig's comment.
    type: str
    default: ""
  kubeconfigs:
    description: The kubeconfigs to write.
    type: list
    elements: dict
    default: []
    suboptions:
      file:
        description: File name in O(config_dir).
        type: str
        required: true
      certificate:
        description: Base name of the identity's certificate and key in O(pki_dir).
        type: str
        required: true
      user:
        description: Name of the user entry (the identity).
        type: str
        required: true
  flags:
    description: The flag files to write, one per component.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The component (the file is C(pki-flags/<name>.env)).
        type: str
        required: true
      variable:
        description: The environment variable that holds the flags.
        type: str
        required: true
      flags:
        description: The flags, each C(--name=value).
        type: list
        elements: str
        required: true
attributes:
  check_mode:
    support: full
    description: Reports which files would change and writes none.
  diff_mode:
    support: full
    description: Each changed file, before (only if this module wrote it) and after.
"""

EXAMPLES = r"""
- name: The scheduler's kubeconfig and its flags
  securebydefault.pki.kubernetes_pki_configs:
    config_dir: /etc/kubernetes
    pki_dir: /etc/kubernetes/pki
    server: https://10.0.0.10:6443
    cluster_name: prod
    kubeconfigs:
      - {file: scheduler.conf, certificate: scheduler, user: "system:kube-scheduler"}
    flags:
      - name: kube-scheduler
        variable: KUBE_SCHEDULER_PKI_ARGS
        flags: [--kubeconfig=/etc/kubernetes/scheduler.conf]
"""

RETURN = r"""
files:
  description: Every file this host should have, in the order written.
  returned: success
  type: list
  elements: str
  sample: [/etc/kubernetes/scheduler.conf, /etc/kubernetes/pki-flags/kube-scheduler.env]
changed_files:
  description: The files written (or, in check mode, that would be).
  returned: success
  type: list
  elements: str
  sample: [/etc/kubernetes/pki-flags/kube-scheduler.env]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import kubernetes_configs as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run

ARGUMENT_SPEC = dict(
    config_dir=dict(type="path", required=True),
    pki_dir=dict(type="path", required=True),
    server=dict(type="str", default=""),
    cluster_name=dict(type="str", default="kubernetes"),
    host=dict(type="str", default=""),
    kubeconfigs=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            file=dict(type="str", required=True),
            certificate=dict(type="str", required=True),
            user=dict(type="str", required=True),
        ),
    ),
    flags=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            name=dict(type="str", required=True),
            variable=dict(type="str", required=True),
            flags=dict(type="list", elements="str", required=True),
        ),
    ),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.kubernetes_pki_configs, crypto=False)


if __name__ == "__main__":
    main()
