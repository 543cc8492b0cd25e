# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a module finds its CA: a directory on the host it runs on, or a Kubernetes Secret.

The modules that keep a CA (cluster_ca, ca_info, sign_csr, revoke) take either
a path option or a secret option ({namespace, name}) plus the Kubernetes
connection options, and work on the store this returns; the rest of their code
does not know which it is.
"""
from __future__ import annotations

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.certmanager import check_k8s_name
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s_support import (
    K8S_CONNECTION_SPEC, Session, require_kubernetes)
from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import fail_pki
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

CA_SECRET_OPTION = dict(type="dict", no_log=False,
                        options=dict(namespace=dict(type="str", required=True), name=dict(type="str", required=True)))
# Only what reaching the API server takes; these modules write with conditional updates, not apply.
K8S_ACCESS_SPEC = {k: K8S_CONNECTION_SPEC[k] for k in ("kubeconfig", "context", "in_cluster", "api_timeout")}


def location_of(params, path_option: str, secret_option: str):
    """What to report as the CA's place: {'path': ...} or {'secret': {'namespace', 'name'}}."""
    if params.get(secret_option):
        return {"secret": {"namespace": params[secret_option]["namespace"], "name": params[secret_option]["name"]}}
    return {"path": params[path_option]}


def run_with_ca(module, path_option: str, secret_option: str, work, dry_run: bool = False) -> None:
    """Exit with ``work(store)``; a PKIError fails naming the option and the fix; the API connection is closed."""
    params = module.params
    secret = params.get(secret_option)
    if secret:
        require_kubernetes(module)
    session = Session(module)
    try:
        if secret:
            from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.ca_secret import SecretStore

            namespace = check_k8s_name(secret["namespace"], "%s.namespace" % secret_option)
            name = check_k8s_name(secret["name"], "%s.name" % secret_option)
            store = SecretStore(session.kube, namespace, name, secret_option, dry_run)
        else:
            from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import DirectoryStore

            store = DirectoryStore(params[path_option], path_option, dry_run)
        result = work(store)
    except (PKIError, ValueError) as exc:
        fail_pki(module, exc)
    finally:
        if session.client is not None:
            session.client.close()
    module.exit_json(**result)
