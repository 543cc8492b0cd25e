# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of the modules that talk to Kubernetes (doc fragment securebydefault.pki.k8s).

Pure data: importable without the kubernetes package (ansible-test's import sanity test).
"""
from __future__ import annotations

DEFAULT_FIELD_MANAGER = "securebydefault.pki"

# How a module reaches the API server (securebydefault.pki.k8s.access).
K8S_ACCESS_SPEC = dict(
    kubeconfig=dict(type="path", aliases=["kubeconfig_path"]),
    context=dict(type="str"),
    in_cluster=dict(type="bool"),
    api_timeout=dict(type="int", default=30),
)

# How a module applies objects (securebydefault.pki.k8s).
K8S_CONNECTION_SPEC = dict(
    K8S_ACCESS_SPEC,
    field_manager=dict(type="str", default=DEFAULT_FIELD_MANAGER),
    force_conflicts=dict(type="bool", default=False),
)
