# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The use case of a CA rotation step (module ca_rotation) and the rotation state file.

The state file is read and written only here (``load_state``/``save_state``);
the status report (``_ops.status``) reads it through ``load_state`` too.
The stage machine itself is ``pki.rotation.decide``.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.securebydefault.pki.plugins.module_utils._ops.params import request_from
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import FileSpec, atomic_write, read_bytes
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.rotation import (
    NEXT,
    ORDER,
    Evidence,
    decide,
    signing_and_trust,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_duration, utcnow

STATE_SUFFIX = ".rotation.json"
STATE_KEYS = ("old_ca_path", "new_ca_path", "old_root", "new_root", "stage", "times")


def default_state_path(new_ca_path: str) -> str:
    """Where the roles keep the state of a rotation to ``new_ca_path`` (ca_rotation_state_path's default)."""
    return new_ca_path.rstrip("/") + STATE_SUFFIX


def load_state(path: str, field_name: str = "path") -> Dict[str, Any]:
    """The recorded state ({} before the first step); refuses anything this module did not write."""
    data = read_bytes(path, field_name)
    if data is None:
        return {}
    try:
        state = json.loads(data.decode("utf-8"))
    except ValueError:
        raise PKIError(field_name, "%s is not valid JSON" % path, "restore it from backup") from None
    if not isinstance(state, dict) or (
        state
        and (
            set(state) - set(STATE_KEYS) or state.get("stage") not in ORDER or not isinstance(state.get("times"), dict)
        )
    ):
        raise PKIError(field_name, "%s is not a rotation state this collection wrote" % path, "restore it from backup")
    if state:
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_isoformat

        try:
            for stage in ORDER[: ORDER.index(state["stage"]) + 1]:
                parse_isoformat(state["times"][stage])
        except (KeyError, TypeError, ValueError):
            raise PKIError(
                field_name, "%s lacks the time a stage was reached" % path, "restore it from backup"
            ) from None
    return state


def save_state(path: str, state: Dict[str, Any]) -> None:
    atomic_write(FileSpec(path, 0o644), (json.dumps(state, indent=2) + "\n").encode())


@dataclass
class RotationRequest:
    path: str
    old_ca_path: str
    new_ca_path: str
    stage: str = "auto"
    switch_after: datetime.timedelta = datetime.timedelta(hours=1)
    drop_after: datetime.timedelta = datetime.timedelta(hours=1)
    evidence: List[Dict[str, Any]] = field(default_factory=list)
    force: bool = False
    # hosts of the play that gave no evidence (failed or unreachable): each holds every gate
    hosts_without_evidence: List[str] = field(default_factory=list)
    # live endpoints per node ({host, endpoints, server_name}); probed from here with the new CA's probe identity
    endpoints: List[Dict[str, Any]] = field(default_factory=list)
    new_ca_passphrase: Optional[str] = None
    probe_timeout: float = 5.0

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> "RotationRequest":
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.live_gate import MAX_TIMEOUT

        timeout = params.get("probe_timeout", 5.0)
        if not 0 < timeout <= MAX_TIMEOUT:
            raise PKIError("probe_timeout", "%r is not between 0 and %d seconds" % (timeout, MAX_TIMEOUT), "give 5")
        return request_from(
            cls,
            params,
            switch_after=parse_duration(params["switch_after"], "switch_after", allow_zero=True),
            drop_after=parse_duration(params["drop_after"], "drop_after", allow_zero=True),
        )


def evidence_report(evidence, new_root_pem: str, new_issuer_pem: str) -> Tuple[List[str], List[str]]:
    """(hosts whose bundle lacks the new root, hosts whose certificate is not signed by the new CA)."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import chains_to
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import (
        fingerprint,
        load_certificate,
        load_certificates,
    )

    root = load_certificate(new_root_pem, "new_ca_path/root.crt")
    new_root = fingerprint(root)
    # the signing CA, and the root for leaves of a per-issuer intermediate (cert-manager CA Issuers)
    anchors = [load_certificate(new_issuer_pem, "new_ca_path/ca.crt"), root]
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
            if not chains_to(load_certificates(item.get("certificate") or "", "evidence"), anchors):
                old.append(host)
        except PKIError:
            old.append(host)
    return missing, old


def step(request: RotationRequest, check_mode: bool, now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
    """One round of the rotation: decide the stage, record it (not in check mode), say what nodes need."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import read_public

    old_root = read_public(request.old_ca_path, "old_ca_path")[1]
    new_issuer, new_root = read_public(request.new_ca_path, "new_ca_path")
    if old_root == new_root:
        raise PKIError("new_ca_path", "is the same CA as old_ca_path", "create a new CA at another path first")
    now = now or utcnow()
    state = load_state(request.path)
    if state and (state.get("old_root") != old_root or state.get("new_root") != new_root):
        raise PKIError(
            "path",
            "%s records a rotation between other CAs" % request.path,
            "finish that rotation, or give this rotation its own state file",
        )
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import live_gate

    targets = live_gate.targets_of(request.endpoints)
    check_certified(targets, [request.old_ca_path, request.new_ca_path], now)
    missing, old = evidence_report(request.evidence, new_root, new_issuer)
    silent = [host for host in request.hosts_without_evidence if host not in missing + old]
    missing, old = missing + silent, old + silent
    verdicts = _live_verdicts(request, state, targets, new_root, now)
    decision = decide(
        state.get("stage"),
        state.get("times") or {},
        request.stage,
        now,
        {"switched": request.switch_after, "done": request.drop_after},
        Evidence(
            hosts=len(request.evidence) + len(request.hosts_without_evidence),
            missing_new_root=missing,
            on_old_ca=old,
            endpoints=len(verdicts),
            endpoints_holding_back=list(live_gate.holding_back(verdicts)),
        ),
        request.force,
    )
    stage = decision.stage
    new_state = {
        "old_ca_path": request.old_ca_path,
        "new_ca_path": request.new_ca_path,
        "old_root": old_root,
        "new_root": new_root,
        "stage": stage,
        "times": decision.times,
    }
    if new_state != state and not check_mode:
        save_state(request.path, new_state)
    signing, trust_also = signing_and_trust(stage, request.old_ca_path, request.new_ca_path)
    result = dict(
        changed=new_state != state,
        stage=stage,
        advanced=decision.advanced,
        signing_ca_path=signing,
        trust_also=trust_also,
        hosts_missing_new_root=missing,
        hosts_on_old_ca=old,
        endpoints=verdicts,
        times=decision.times,
    )
    if stage != "done":
        result.update(blocked_by=decision.blocked_by, next_due=decision.next_due, next_stage=NEXT[stage])
    return result


def check_certified(targets, ca_paths: List[str], now: datetime.datetime) -> None:
    """Every endpoint's host part is the node's inventory name or a name a CA here certified to that node.

    Endpoints come from host variables, which a node's own facts can override: without this check a
    compromised node could point the CA host's probes, with a client certificate of the new CA, at any
    address (the CA host's loopback, internal services). The ledgers on the CA host are what it vetted.
    """
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ledger
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.probe import parse_endpoint
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_isoformat

    if not targets:
        return
    certified: Dict[str, set] = {}
    for path in ca_paths:
        data = read_bytes(os.path.join(path, ledger.LEDGER), "new_ca_path") or b""
        for entry in ledger.parse(data)[0]:
            try:
                live = parse_isoformat(entry["not_after"]) > now
            except (KeyError, TypeError, ValueError):
                live = False
            if live and isinstance(entry.get("host"), str) and isinstance(entry.get("names"), list):
                certified.setdefault(entry["host"], set()).update(str(n).lower() for n in entry["names"])
    for target in targets:
        host = parse_endpoint(target.endpoint).host.lower()
        if host != target.host.lower() and host not in certified.get(target.host, set()):
            raise PKIError(
                "endpoints",
                "%s: %s is neither the node's inventory name nor a name its certificate carries"
                % (target.host, target.endpoint),
                "list endpoints at the node's own names or addresses (those in its certificate); the CA host "
                "probes nothing else",
            )


def _live_verdicts(
    request: RotationRequest, state: Dict[str, Any], targets, new_root: str, now: datetime.datetime
) -> List[Dict[str, Any]]:
    """Probe the endpoints for the gate after the recorded stage, once its time gate has opened.

    None before the rotation starts, once it is done, or when this run does not ask for the next stage.
    """
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import live_gate
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import load_ca
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_isoformat

    gate = NEXT.get(state.get("stage") or "")
    if not targets or gate is None:
        return []
    if request.stage != "auto" and ORDER.index(request.stage) < ORDER.index(gate):
        return []
    wait = request.switch_after if gate == "switched" else request.drop_after
    if now < parse_isoformat(state["times"][state["stage"]]) + wait and not request.force:
        return []  # the time gate holds the stage anyway
    ca = load_ca(request.new_ca_path, request.new_ca_passphrase, "new_ca_path", "new_ca_passphrase")
    return live_gate.check(targets, gate, ca, new_root, request.probe_timeout)


def ca_rotation(ctx) -> Dict[str, Any]:
    """Module ca_rotation."""
    return step(RotationRequest.from_params(ctx.params), ctx.check_mode)


def states_beside(ca_paths: List[str]) -> List[str]:
    """The state files of rotations to these CAs that exist (rotation_status's default)."""
    return [default_state_path(path) for path in ca_paths if os.path.lexists(default_state_path(path))]


def kubernetes_pki_cas(ctx) -> Dict[str, Any]:
    """Module kubernetes_pki_cas: which directory of each cluster CA signs, from the generations and state files."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import kubernetes

    ca_dir = ctx.params["ca_dir"]
    generations = {ca: ctx.params["generations"].get(ca, 1) for ca in kubernetes.CAS}
    unknown = sorted(set(ctx.params["generations"]) - set(kubernetes.CAS))
    if unknown:
        raise PKIError(
            "generations", "names no CA of the cluster: %s" % ", ".join(unknown), "use %s" % ", ".join(kubernetes.CAS)
        )
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ledger

    stages = {}
    for path in kubernetes.ca_state_paths(ca_dir, generations):
        state = load_state(default_state_path(path), "ca_dir")
        stages[path] = state.get("stage")
    decided = kubernetes.ca_generations(ca_dir, generations, stages)
    rotating = decided["rotating"]
    if rotating:
        entry = decided["cas"][rotating]
        field_name = "kubernetes_pki_%s_ca_generation" % rotating
        if not os.path.isfile(os.path.join(entry["previous_path"], "ca.crt")):
            # a rotation starts from the CA in force; a missing one would be made afresh, trusted by nobody
            raise PKIError(
                field_name,
                "generation %d of this CA (%s) does not exist, so there is nothing to rotate from"
                % (entry["generation"] - 1, entry["previous_path"]),
                "restore that CA directory from backup, or start a new cluster at generation 1",
            )
        if entry["stage"] is None and (read_bytes(os.path.join(entry["path"], ledger.LEDGER), "ca_dir") or b"").strip():
            # only a rotation past trust_both signs with the new CA: its state file was lost, and starting
            # over would sign with the old CA again after the hosts may have dropped it
            raise PKIError(
                "ca_dir",
                "%s is missing, but generation %d of this CA already signed certificates"
                % (default_state_path(entry["path"]), entry["generation"]),
                "restore the rotation state file from backup (or the CA directory's backup with it)",
            )
    return dict(changed=False, **decided)
