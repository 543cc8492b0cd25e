#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: ca_rotation
short_description: The stage machine of a CA rotation (trust both, switch, drop old), gated by time and evidence
version_added: 0.2.0
description:
  - Runs on the CA host and keeps the state of one rotation from O(old_ca_path) to O(new_ca_path) in O(path). It
    decides which stage the nodes must be in now; the role C(securebydefault.pki.ca_rotation) then applies it.
  - B(trust_both) - nodes keep certificates from the old CA and trust both roots.
  - B(switched) - nodes get certificates from the new CA and still trust both. It is reached only after
    O(switch_after), and only when every node's bundle already holds the new root.
  - B(done) - nodes trust only the new root. It is reached only after O(drop_after), and only when every node's
    certificate chains to the new CA.
  - Evidence is what the nodes hold (their bundle and certificate, O(evidence)); a node that lacks it blocks the
    next stage and is named. A node of the play that gave no evidence (O(hosts_without_evidence)) blocks every
    stage. Re-running any stage is harmless; the state file is written atomically.
  - B(Live gates.) Files say what a service should use; only a handshake says what it uses. With O(endpoints),
    this module probes every endpoint from the CA host before the next stage - before C(switched), each must
    accept a client certificate of the new CA (a service still running on its old bundle refuses it); before
    C(done), each must present a certificate that a client trusting only the new root accepts (a service that
    never reloaded still serves the old one). An endpoint that fails blocks the stage and is named with the
    reason in RV(blocked_by) and RV(endpoints). The client certificate is a probe identity made for this run -
    a fresh key in memory and a certificate of the new CA valid for 10 minutes, for client authentication only,
    with no subject alternative name and the fixed subject C(CN=securebydefault.pki rotation probe) (grant that
    subject nothing); on Linux its files are memory files that never reach a disk. It needs the new CA's key,
    hence O(new_ca_passphrase).
  - B(CAs kept in Kubernetes Secrets) (O(old_ca_secret), O(new_ca_secret)) - the state is kept in the new CA's Secret
    (key C(rotation.json)), signed with the new CA's key (a state it did not sign is refused); each run first checks
    that both Secrets still hold the keys of their certificates
    (O(old_ca_passphrase), O(new_ca_passphrase)), and returns each Secret with the fingerprint of its root, so that
    the tasks that read the roots later refuse one swapped in meanwhile. A new CA that already signed certificates
    but holds no state is refused (the state was lost; restore it) rather than started over.
  - Only endpoints at the node's inventory name or at a name a CA here certified to that node (the CA host's
    ledgers) are probed; anything else fails before any connection. A node's facts can override its host
    variables, so this keeps a compromised node from pointing the probes at other addresses.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
  - securebydefault.pki.k8s.access
options:
  path:
    description:
      - State file of this rotation on the CA host. Required with O(new_ca_path).
      - A rotation between CAs kept in Secrets keeps its state in the new CA's Secret (key C(rotation.json)) instead,
        so that a controller that does not last (an AWX execution environment) finds it on the next run.
    type: path
  old_ca_path:
    description:
      - Directory of the CA being replaced.
      - Exactly one of O(old_ca_path) and O(old_ca_secret) is required; both CAs are kept the same way.
    type: path
  new_ca_path:
    description: Directory of the new CA (create it first with M(securebydefault.pki.cluster_ca)).
    type: path
  old_ca_secret:
    description:
      - The Kubernetes Secret that keeps the CA being replaced, as
        O(securebydefault.pki.cluster_ca#module:ca_secret) created it (a CA for controllers that do not last).
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
  new_ca_secret:
    description:
      - The Kubernetes Secret that keeps the new CA (create it first with
        M(securebydefault.pki.cluster_ca) O(securebydefault.pki.cluster_ca#module:ca_secret)). The state of the
        rotation is kept in it.
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
  cross_sign:
    description:
      - B(Cross-signed transition.) The old root issues the new CA's certificate again (same subject and key, path
        length 0, the new CA's name constraints), kept in the new CA as C(cross.crt). While C(switched), leaves of
        the new CA are served with it as their chain (RV(issuer_chain)), so a peer that has not reread its bundle
        yet - it trusts only the old root - still accepts them; a peer that trusts the new root accepts them as
        before. At C(done) leaves are served with the new CA's own chain again.
      - Use it when some peers reread their trust bundle rarely or only on restart (Java services, long-lived
        clients, devices) and O(switch_after) cannot wait for all of them; it does not help a peer that never
        trusts the new root, which fails at C(done) as without it.
      - The old CA must have been made with C(intermediate=true) (its root may sign an intermediate), the new CA may
        not permit names the old root does not, and the old root's key is needed once, to make C(cross.crt)
        (O(old_ca_passphrase)). Each run checks C(cross.crt) against both CAs and refuses one it did not make.
      - The live gate before C(done) then asks each endpoint for a leaf of the new CA's key that chains to the new
        root when given the new CA's own certificate.
    type: bool
    default: false
  old_ca_passphrase:
    description:
      - Passphrase of the old CA's keys - to make the cross-signed certificate (O(cross_sign)), and for CAs kept in
        Secrets to check that the old CA's Secret still holds the key of its certificates.
    type: str
  stage:
    description:
      - C(auto) advances one stage when its gate and evidence allow. C(trust_both), C(switched), C(done) ask for
        that stage and fail with the reason when it cannot be reached yet (unless O(force=true) for the time gate).
    type: str
    choices: [auto, trust_both, switched, done]
    default: auto
  switch_after:
    description: Time from trust_both to switched, so every consumer has reloaded its bundle (C(0) for none).
    type: str
    default: 1h
  drop_after:
    description: Time from switched to done, so every consumer has reloaded its new certificate.
    type: str
    default: 1h
  evidence:
    description: One entry per node - C(host), and the PEM text of its C(bundle) and C(certificate) (empty if absent).
    type: list
    elements: dict
    default: []
  force:
    description: Pass a time gate now (never the evidence check nor the live gates).
    type: bool
    default: false
  hosts_without_evidence:
    description:
      - Nodes of the play that gave no evidence this run (failed or unreachable); each blocks every stage as a node
        without the new root and without a certificate of the new CA would. The role passes the hosts of the play
        that are no longer active.
    type: list
    elements: str
    default: []
  endpoints:
    description:
      - The TLS endpoints each node serves, probed from the CA host for the live gates (see the description).
      - Each endpoint is C(host:port) (an IPv6 address in brackets); none may be listed twice. Its host part must
        be the node's inventory name or a name its certificate from the old or new CA carries.
    type: list
    elements: dict
    default: []
    suboptions:
      host:
        description: The node (inventory host) that serves these endpoints; named in messages.
        type: str
        required: true
      endpoints:
        description: Its endpoints, C(host:port) each.
        type: list
        elements: str
        required: true
      server_name:
        description: The name sent (SNI) and verified before C(done); default the host part of each endpoint.
        type: str
  new_ca_passphrase:
    description: Passphrase of the new CA's key, to sign the probe identity (only with O(endpoints)).
    type: str
  probe_timeout:
    description: Seconds for each connection and handshake of a live probe, together (more than 0, at most 60).
    type: float
    default: 5
attributes:
  check_mode:
    support: full
    description: Decides and reports without writing the state file.
  diff_mode:
    support: none
    description: The stage and its reasons are in the result.
"""

EXAMPLES = r"""
- name: Decide the stage of the rotation
  securebydefault.pki.ca_rotation:
    path: /srv/pki/prod-2027.rotation.json
    old_ca_path: /srv/pki/prod
    new_ca_path: /srv/pki/prod-2027
    switch_after: 2h
    drop_after: 1d
    evidence:  # the role reads these from every node; here from files fetched earlier
      - host: node1.example.internal
        bundle: "{{ lookup('ansible.builtin.file', 'fetched/node1/ca-bundle.crt') }}"
        certificate: "{{ lookup('ansible.builtin.file', 'fetched/node1/node.crt') }}"
  delegate_to: localhost
  run_once: true
  register: rotation

- name: The same, gated on what the services present (probed from the CA host)
  securebydefault.pki.ca_rotation:
    path: /srv/pki/prod-2027.rotation.json
    old_ca_path: /srv/pki/prod
    new_ca_path: /srv/pki/prod-2027
    new_ca_passphrase: "{{ vault_prod_2027_ca_passphrase }}"
    evidence: "{{ ansible_play_hosts | map('extract', hostvars, 'rotation_evidence') | list }}"
    endpoints:
      - host: node1.example.internal
        endpoints: [node1.example.internal:8443, node1.example.internal:2379]
      - host: node2.example.internal
        endpoints: ["10.20.0.12:8443"]
        server_name: node2.example.internal
  delegate_to: localhost
  run_once: true
  register: rotation

- name: A rotation between CAs kept in Kubernetes Secrets (state in the new CA's Secret)
  securebydefault.pki.ca_rotation:
    old_ca_secret: {namespace: pki, name: prod-ca}
    new_ca_secret: {namespace: pki, name: prod-ca-2027}
    evidence: "{{ ansible_play_hosts | map('extract', hostvars, 'rotation_evidence') | list }}"
  delegate_to: localhost
  run_once: true
  register: rotation
"""

RETURN = r"""
stage:
  description: C(trust_both), C(switched) or C(done) - what the nodes must be configured for now.
  returned: success
  type: str
  sample: switched
signing_ca_path:
  description: The CA that signs node certificates in this stage.
  returned: for CAs kept in directories
  type: str
  sample: /srv/pki/prod-2027
trust_also:
  description: Further CA directories the nodes trust in this stage.
  returned: for CAs kept in directories
  type: list
  elements: str
  sample: [/srv/pki/prod]
signing_ca_secret:
  description:
    - The Secret of the CA that signs node certificates in this stage, with the SHA-256 C(fingerprint) of its root as
      checked here (M(securebydefault.pki.k8s_trust_bundle) and M(securebydefault.pki.ca_info) refuse another root).
  returned: for CAs kept in Secrets
  type: dict
  sample: {namespace: pki, name: prod-ca-2027, fingerprint: "5F:1E:...:9C"}
trust_also_secrets:
  description: The Secrets of further CAs the nodes trust in this stage, each with the fingerprint of its root.
  returned: for CAs kept in Secrets
  type: list
  elements: dict
  sample: [{namespace: pki, name: prod-ca, fingerprint: "0B:77:...:D2"}]
signs_new:
  description: Whether the new CA signs in this stage (C(switched), C(done)); the old one signs in C(trust_both).
  returned: success
  type: bool
  sample: true
advanced:
  description: Whether this run moved to a new stage.
  returned: success
  type: bool
  sample: true
times:
  description: When each stage was reached (UTC).
  returned: success
  type: dict
  sample: {trust_both: "2027-01-10T08:00:00Z", switched: "2027-01-10T10:05:12Z"}
next_stage:
  description: The stage after this one.
  returned: when not done
  type: str
  sample: done
blocked_by:
  description: Why the next stage was not reached (gate time or the nodes that lack evidence).
  returned: when not done
  type: str
  sample: "nodes still hold certificates not from the new CA: node2.prod.example.internal"
next_due:
  description: When the time gate of the next stage opens (UTC).
  returned: when not done
  type: str
  sample: "2027-01-11T10:05:12Z"
issuer_chain:
  description:
    - With O(cross_sign) - the PEM that leaves present after themselves in this stage. The cross-signed certificate
      while C(switched); empty otherwise (leaves present their CA's own chain). The role gives it to
      M(securebydefault.pki.node_certificate) as O(securebydefault.pki.node_certificate#module:issuer_chain).
  returned: with cross_sign
  type: str
uncross:
  description:
    - With O(cross_sign) at C(done) - how a node that still serves the cross-signed certificate (C(cross_certificate))
      first gets its CA's own chain while it still trusts both roots (C(trust_also) or C(trust_also_secrets), as in
      C(switched)), before any node drops the old root. The role does this for every such node first.
  returned: with cross_sign, at done
  type: dict
hosts_missing_new_root:
  description: Nodes whose bundle lacks the new root.
  returned: success
  type: list
  elements: str
  sample: []
hosts_on_old_ca:
  description: Nodes whose certificate does not chain to the new CA.
  returned: success
  type: list
  elements: str
  sample: [node2.prod.example.internal]
endpoints:
  description:
    - The live gate of the next stage, one entry per endpoint - C(host), C(endpoint), C(gate) (the stage it leads
      to), C(check), C(passed), C(reason) and what it C(served) (serial, issuer, fingerprint, not_after). Empty when no
      endpoints are given, before the rotation starts and once it is done.
  returned: success
  type: list
  elements: dict
  sample:
    - host: node3.prod.example.internal
      endpoint: "10.20.0.13:8443"
      gate: done
      check: presents a certificate of the new CA
      passed: false
      reason: "a client trusting only the new root refuses what it serves (unable to get local issuer certificate)"
      served: {serial: "5f1e0c", issuer: "CN=prod CA", fingerprint: "9c41...", not_after: "2027-03-01T00:00:00Z"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import rotation as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import CAOptions, run
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import secret_option
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_ACCESS_SPEC
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.rotation import ORDER

ARGUMENT_SPEC = dict(
    K8S_ACCESS_SPEC,
    path=dict(type="path"),
    old_ca_path=dict(type="path"),
    new_ca_path=dict(type="path"),
    old_ca_secret=secret_option(),
    new_ca_secret=secret_option(),
    stage=dict(type="str", choices=["auto"] + ORDER, default="auto"),
    switch_after=dict(type="str", default="1h"),
    drop_after=dict(type="str", default="1h"),
    evidence=dict(type="list", elements="dict", default=[]),
    force=dict(type="bool", default=False),
    hosts_without_evidence=dict(type="list", elements="str", default=[]),
    endpoints=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            host=dict(type="str", required=True),
            endpoints=dict(type="list", elements="str", required=True),
            server_name=dict(type="str"),
        ),
    ),
    new_ca_passphrase=dict(type="str", no_log=True),
    cross_sign=dict(type="bool", default=False),
    old_ca_passphrase=dict(type="str", no_log=True),
    probe_timeout=dict(type="float", default=5),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        mutually_exclusive=[("old_ca_path", "old_ca_secret"), ("new_ca_path", "new_ca_secret"),
                            ("old_ca_path", "new_ca_secret"), ("path", "new_ca_secret")],
        required_one_of=[("old_ca_path", "old_ca_secret"), ("new_ca_path", "new_ca_secret")],
        required_together=[("old_ca_secret", "new_ca_secret")],
        required_by={"new_ca_path": "path"},
    )
    run(module, ops.ca_rotation, ca=CAOptions(path="new_ca_path", secret="new_ca_secret"), crypto=True)


if __name__ == "__main__":
    main()
