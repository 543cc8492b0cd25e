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
    next stage and is named. Re-running any stage is harmless; the state file is written atomically.
author: securebydefault.pki contributors (@securebydefault)
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
    description: Pass a time gate now (never the evidence check).
    type: bool
    default: false
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
"""

RETURN = r"""
stage:
  description: C(trust_both), C(switched) or C(done) - what the nodes must be configured for now.
  returned: success
  type: str
signing_ca_path:
  description: The CA that signs node certificates in this stage.
  returned: success
  type: str
trust_also:
  description: Further CA directories the nodes trust in this stage.
  returned: success
  type: list
  elements: str
advanced:
  description: Whether this run moved to a new stage.
  returned: success
  type: bool
blocked_by:
  description: Why the next stage was not reached (gate time or the nodes that lack evidence).
  returned: when not done
  type: str
next_due:
  description: When the time gate of the next stage opens (UTC).
  returned: when not done
  type: str
hosts_missing_new_root:
  description: Nodes whose bundle lacks the new root.
  returned: success
  type: list
  elements: str
hosts_on_old_ca:
  description: Nodes whose certificate does not chain to the new CA.
  returned: success
  type: list
  elements: str
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils.module_support import fail_pki, require_cryptography
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import FileSpec, atomic_write, read_bytes
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.rotation import ORDER, Evidence, decide
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_duration, utcnow


def evidence_report(evidence, new_root_pem, new_issuer_pem):
    """(hosts whose bundle lacks the new root, hosts whose certificate is not signed by the new CA)."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import verify_signed_by
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import (
        fingerprint, load_certificate, load_certificates)

    new_root = fingerprint(load_certificate(new_root_pem, "new_ca_path/root.crt"))
    issuer = load_certificate(new_issuer_pem, "new_ca_path/ca.crt")  # the signing CA: first in the chain
    missing, old = [], []
    for item in evidence:
        host = str(item.get("host"))
        try:
            roots = {fingerprint(c) for c in load_certificates(item.get("bundle") or "", "evidence")}
        except PKIError:
            roots = set()
        if new_root not in roots:
            missing.append(host)
        try:
            cert = load_certificate(item.get("certificate") or "", "evidence")
            if cert.issuer != issuer.subject or not verify_signed_by(cert, issuer):
                old.append(host)
        except PKIError:
            old.append(host)
    return missing, old


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type="path", required=True),
        old_ca_path=dict(type="path", required=True),
        new_ca_path=dict(type="path", required=True),
        stage=dict(type="str", choices=["auto"] + ORDER, default="auto"),
        switch_after=dict(type="str", default="1h"),
        drop_after=dict(type="str", default="1h"),
        evidence=dict(type="list", elements="dict", default=[]),
        force=dict(type="bool", default=False),
    ), supports_check_mode=True)
    require_cryptography(module)
    p = module.params
    try:
        # pylint: disable=import-outside-toplevel
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import read_public
        old_root = read_public(p["old_ca_path"], "old_ca_path")[1]
        new_issuer, new_root = read_public(p["new_ca_path"], "new_ca_path")
        if old_root == new_root:
            raise PKIError("new_ca_path", "is the same CA as old_ca_path", "create a new CA at another path first")
        waits = {"switched": parse_duration(p["switch_after"], "switch_after", allow_zero=True),
                 "done": parse_duration(p["drop_after"], "drop_after", allow_zero=True)}
        now = utcnow()
        try:
            state = json.loads((read_bytes(p["path"], "path") or b"{}").decode("utf-8"))
        except ValueError:
            raise PKIError("path", "%s is not valid JSON" % p["path"], "restore it from backup") from None
        if not isinstance(state, dict):
            raise PKIError("path", "%s is not a rotation state this module wrote" % p["path"],
                           "restore it from backup")
        if state and (state.get("old_root") != old_root or state.get("new_root") != new_root):
            raise PKIError("path", "%s records a rotation between other CAs" % p["path"],
                           "finish that rotation, or give this rotation its own state file")
        missing, old = evidence_report(p["evidence"], new_root, new_issuer)
        decision = decide(state.get("stage"), state.get("times") or {}, p["stage"], now, waits,
                          Evidence(hosts=len(p["evidence"]), missing_new_root=missing, on_old_ca=old), p["force"])
        stage, times = decision.stage, decision.times
        new_state = {"old_ca_path": p["old_ca_path"], "new_ca_path": p["new_ca_path"], "old_root": old_root,
                     "new_root": new_root, "stage": stage, "times": times}
        if new_state != state and not module.check_mode:
            atomic_write(FileSpec(p["path"], 0o644), (json.dumps(new_state, indent=2) + "\n").encode())
        signing = p["new_ca_path"] if stage in ("switched", "done") else p["old_ca_path"]
        trust_also = {"trust_both": [p["new_ca_path"]], "switched": [p["old_ca_path"]], "done": []}[stage]
        result = dict(changed=new_state != state, stage=stage, advanced=decision.advanced, signing_ca_path=signing,
                      trust_also=trust_also, hosts_missing_new_root=missing, hosts_on_old_ca=old,
                      times=times)
        if stage != "done":
            result.update(blocked_by=decision.blocked_by, next_due=decision.next_due)
        module.exit_json(**result)
    except PKIError as exc:
        fail_pki(module, exc)


if __name__ == "__main__":
    main()
