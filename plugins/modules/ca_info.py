#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ca_info: the public side of a CA, read where it lives (a directory on the CA host, or a Kubernetes Secret).

Read-only and public only: certificates, policy and revoked serials. The CA
key is never read, so the result may travel to the controller and the nodes.
"""
from __future__ import annotations

DOCUMENTATION = r"""
module: ca_info
short_description: Read a CA's public material on the CA host (issuer, trust bundle, policy, revoked serials)
version_added: 0.2.0
description:
  - Reads the CA made by M(securebydefault.pki.cluster_ca), kept in a directory on the CA host (O(path)) or in a
    Kubernetes Secret (O(secret)). It returns what nodes need to request and trust certificates, and nothing
    secret. The CA key is never opened (in a Secret it is never decoded).
  - With a CA on a designated CA host (not the controller), RV(public) goes to
    M(securebydefault.pki.node_certificate)'s O(securebydefault.pki.node_certificate#module:ca) option, and the
    node's CSR is signed there by M(securebydefault.pki.sign_csr). The C(node_certificate) role does all three
    when C(node_certificate_ca_host) or C(node_certificate_ca_secret) is set.
  - Standard library only for a CA directory.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.k8s.access
  - securebydefault.pki.ca_secret.secret
attributes:
  check_mode:
    support: full
    description: Runs normally; it never changes anything.
  diff_mode:
    support: none
    description: Nothing to diff.
options:
  path:
    description:
      - The CA directory on the CA host.
      - Exactly one of O(path) and O(secret) is required.
    type: path
  trust_also:
    description:
      - Further CA directories on the CA host whose roots join the trust bundle (CA rotation, trust both).
      - Only with O(path).
    type: list
    elements: path
    default: []
  passphrase:
    description:
      - The CA key's passphrase. With it, C(ca.key) is decrypted here (in memory) and checked to be the key
        of C(ca.crt) before anything is returned, so a certificate pair swapped in by someone who does not
        know the passphrase never reaches a trust bundle.
      - Without it the certificates and C(ca.json) are still checked against each other, but not the key.
    type: str
"""

EXAMPLES = r"""
- name: Read the CA's public material on the CA host
  securebydefault.pki.ca_info:
    path: /var/lib/pki/cluster-a
  delegate_to: ca1.example.internal
  run_once: true
  register: cluster_ca_public

- name: Read the public material of a CA kept in a Kubernetes Secret
  securebydefault.pki.ca_info:
    secret:
      namespace: pki
      name: cluster-a-ca
  delegate_to: localhost
  run_once: true
  register: cluster_ca_public
"""

RETURN = r"""
public:
  description: What node_certificate's C(ca) option takes.
  returned: always
  type: dict
  contains:
    issuer:
      description: PEM of the issuing CA certificate, followed by the root when they differ.
      type: str
    bundle:
      description: PEM trust bundle (the root, plus the roots of O(trust_also)).
      type: str
    policy:
      description: The CA's signing policy (maximum leaf validity in seconds, wildcards) and expiry.
      type: dict
    revoked_serials:
      description: Serials the CA has revoked.
      type: list
      elements: str
metadata:
  description: The CA's C(ca.json) (common name, key type, constraints, created, not_after).
  returned: always
  type: dict
crl:
  description: The CRL the CA published last (PEM), for distribution and the status report.
  returned: when the CA has published one (M(securebydefault.pki.revoke))
  type: str
location:
  description: "Where the CA is kept: C({path}) or C({secret: {namespace, name}})."
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.ca_location import (
    CA_SECRET_OPTION, K8S_ACCESS_SPEC, location_of, run_with_ca)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import (
    metadata_of, policy_of, public_of, read_public)
from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import require_cryptography
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import check_public_files, load_ca_from
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.revocation import CRL, STATE, serials_of, state_of


def read(params, store):
    if params["passphrase"]:
        # root <-> intermediate <-> key <-> ca.json; the key is decrypted in memory and dropped
        files = store.read(("ca.crt", "root.crt", "ca.json", "ca.key", STATE, CRL))
        load_ca_from(files, store.where, params["passphrase"], store.field, passphrase_field="passphrase",
                     check=False)
    else:
        files = store.read(("ca.crt", "root.crt", "ca.json", STATE, CRL))
        check_public_files(files, store.where, store.field)  # root <-> intermediate <-> ca.json
    issuer, bundle = public_of(files, store.where, store.field)
    for other in params["trust_also"]:
        root = read_public(other, "trust_also")[1]
        if root not in bundle:
            bundle += root
    meta = metadata_of(files["ca.json"], store.where, store.field)
    public = {"issuer": issuer, "bundle": bundle, "policy": policy_of(meta),
              "revoked_serials": serials_of(state_of(files[STATE], store.where, store.field))}
    result = {"changed": False, "public": public, "metadata": meta, "location": location_of(params, "path", "secret")}
    if files[CRL] is not None:
        result["crl"] = files[CRL].decode("ascii")
    return result


def main():
    module = AnsibleModule(argument_spec=dict(K8S_ACCESS_SPEC,
                                              path=dict(type="path"),
                                              secret=CA_SECRET_OPTION,
                                              trust_also=dict(type="list", elements="path", default=[]),
                                              passphrase=dict(type="str", no_log=True)),
                           mutually_exclusive=[("path", "secret"), ("secret", "trust_also")],
                           required_one_of=[("path", "secret")],
                           supports_check_mode=True)
    require_cryptography(module)
    run_with_ca(module, "path", "secret", lambda store: read(module.params, store))


if __name__ == "__main__":
    main()
