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
  - Only endpoints at the node's inventory name or at a name a CA here certified to that node (the CA host's
    ledgers) are probed; anything else fails before any connection. A node's facts can override its host
    variables, so this keeps a compromised node from pointing the probes at other addresses.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
options:
  path:
    description: State file of this rotation on the CA host.
    type: path
    required: true
  old_ca_path:
    description: Directory of the CA being replaced.
    type: path
    required: true
  new_ca_path:
    description: Directory of the new CA (create it first with M(securebydefault.pki.cluster_ca)).
    type: path
    required: true
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
"""

RETURN = r"""
stage:
  description: C(trust_both), C(switched) or C(done) - what the nodes must be configured for now.
  returned: success
  type: str
  sample: switched
signing_ca_path:
  description: The CA that signs node certificates in this stage.
  returned: success
  type: str
  sample: /srv/pki/prod-2027
trust_also:
  description: Further CA directories the nodes trust in this stage.
  returned: success
  type: list
  elements: str
  sample: [/srv/pki/prod]
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
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.rotation import ORDER

ARGUMENT_SPEC = dict(
    path=dict(type="path", required=True),
    old_ca_path=dict(type="path", required=True),
    new_ca_path=dict(type="path", required=True),
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
    probe_timeout=dict(type="float", default=5),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    run(module, ops.ca_rotation)


if __name__ == "__main__":
    main()
