# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # Modules that use a CA (sign_csr, revoke): ca_path or ca_secret.
    DOCUMENTATION = r"""
options:
  ca_secret:
    description:
      - The Kubernetes Secret that keeps the CA, as O(securebydefault.pki.cluster_ca#module:ca_secret) created it.
      - Exactly one of O(ca_path) and O(ca_secret) is required.
    type: dict
    suboptions:
      namespace:
        description: Namespace of the Secret.
        type: str
        required: true
      name:
        description: Name of the Secret.
        type: str
        required: true
notes:
  - A CA kept in a Kubernetes Secret needs the C(kubernetes) Python client (>= 24) where the task runs, and RBAC
    permission to C(get) the Secret (and to C(update) it, for modules that write). O(kubeconfig), O(context),
    O(in_cluster) and O(api_timeout) are used only for a CA kept in a Secret.
"""

    # Modules that keep or read a CA (cluster_ca, ca_info), whose option was called secret before 0.3.0.
    SECRET = r"""
options:
  ca_secret:
    description:
      - Keep (or find) the CA in this Kubernetes Secret instead of a directory. The namespace must exist.
      - Exactly one of O(ca_path) and O(ca_secret) is required.
      - The alias C(secret) is deprecated and will be removed in 1.0.0.
    type: dict
    aliases: [secret]
    suboptions:
      namespace:
        description: Namespace of the Secret.
        type: str
        required: true
      name:
        description: Name of the Secret.
        type: str
        required: true
notes:
  - A CA kept in a Kubernetes Secret needs the C(kubernetes) Python client (>= 24) where the task runs, and RBAC
    permission to C(get) the Secret (and to C(create) and C(update) it, for M(securebydefault.pki.cluster_ca)).
    O(kubeconfig), O(context), O(in_cluster) and O(api_timeout) are used only for a CA kept in a Secret.
"""
