# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options and glue shared by the modules that talk to Kubernetes."""
from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import (
    DEFAULT_FIELD_MANAGER, KUBERNETES_IMPORT_ERROR, Kube)
from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import fail_pki
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

K8S_CONNECTION_SPEC = dict(
    kubeconfig=dict(type="path", aliases=["kubeconfig_path"]),
    context=dict(type="str"),
    in_cluster=dict(type="bool"),
    api_timeout=dict(type="int", default=30),
    field_manager=dict(type="str", default=DEFAULT_FIELD_MANAGER),
    force_conflicts=dict(type="bool", default=False),
)


def require_kubernetes(module) -> None:
    if KUBERNETES_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)


def connect(module) -> Kube:
    params = module.params
    return Kube(kubeconfig=params.get("kubeconfig"), context=params.get("context"),
                in_cluster=params.get("in_cluster"), timeout=params.get("api_timeout") or 30)


class Session:
    """The API connection of one task, made on first use (so input is checked before connecting)."""

    def __init__(self, module) -> None:
        self.module = module
        self.client = None

    @property
    def kube(self) -> Kube:
        if self.client is None:
            self.client = connect(self.module)
        return self.client

    @property
    def calls(self) -> int:
        return self.client.calls if self.client is not None else 0


def run_k8s(module, work) -> None:
    """Run ``work(session)`` -> result; exit with it, or fail naming the option and the fix; always disconnect."""
    session = Session(module)
    result = {}
    try:
        result = work(session)
    except PKIError as exc:
        fail_pki(module, exc, api_calls=session.calls)
    finally:
        if session.client is not None:
            session.client.close()
    result.setdefault("api_calls", session.calls)
    for note in session.client.notes if session.client is not None else []:
        module.warn(note)
    module.exit_json(**result)
