# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # Modules that apply objects; they extend securebydefault.pki.k8s.access too.
    DOCUMENTATION = r"""
options:
  field_manager:
    description: Field manager of the server-side apply; the fields this collection owns are recorded under it.
    type: str
    default: securebydefault.pki
  force_conflicts:
    description:
      - Take over fields that another field manager (kubectl, Helm, Argo CD) set.
      - Without it such a conflict fails with the manager's name and nothing is changed.
    type: bool
    default: false
requirements:
  - PyYAML, for a kubeconfig written in YAML (ansible-core brings it).
  - kubernetes (the Python client) >= 24, only for a kubeconfig whose user runs a credential plugin (C(exec)), an
    C(auth-provider) or a username and password, or whose cluster has a C(proxy-url). Client certificates and
    tokens (inline or in files) and the in-cluster service account need nothing but Python.
attributes:
  check_mode:
    support: full
    description: Sent to the API server as a dry run, so validation and admission run and nothing is stored.
  diff_mode:
    support: full
    description: Shows the object (spec, labels, annotations) before and after.
"""

    # How a module reaches the API server.
    ACCESS = r"""
options:
  kubeconfig:
    description:
      - Path of the kubeconfig file.
      - Unset means E(K8S_AUTH_KUBECONFIG), then E(KUBECONFIG), then C(~/.kube/config), then the in-cluster
        service account.
      - The API server is authenticated against the context's C(certificate-authority) only (the system's trusted
        CAs only when the context names none), its name (or C(tls-server-name)) checked, TLS 1.2 at least.
        C(insecure-skip-tls-verify) is honoured with a warning. Plain C(http://) is refused but to this host
        (C(kubectl proxy)) and without credentials; a user that impersonates (C(as)) is refused.
    type: path
    aliases: [kubeconfig_path]
  context:
    description: Context of the kubeconfig to use; unset means its current context.
    type: str
  in_cluster:
    description: Use the pod's service account instead of a kubeconfig. Unset means only when no kubeconfig is found.
    type: bool
  api_timeout:
    description: Seconds to wait for each API request.
    type: int
    default: 30
"""
