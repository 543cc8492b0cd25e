# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CA rotation stage machine: gates, evidence, no way back, resumable from its record."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.rotation import Evidence, decide

T0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.timezone.utc)
H = datetime.timedelta(hours=1)
WAITS = {"switched": 2 * H, "done": 24 * H}
ALL_GOOD = Evidence(hosts=3)


def step(state, at, requested="auto", evidence=ALL_GOOD, force=False):
    decision = decide(state.get("stage"), state.get("times") or {}, requested, at, WAITS, evidence, force)
    return {"stage": decision.stage, "times": decision.times}, decision


def test_a_whole_rotation_by_schedule():
    state, d = step({}, T0)
    assert d.stage == "trust_both" and d.advanced and d.next_due == "2026-11-01T14:00:00Z"
    state, d = step(state, T0 + H)
    assert d.stage == "trust_both" and not d.advanced and "switched gate opens at 2026-11-01T14:00:00Z" in d.blocked_by
    state, d = step(state, T0 + 2 * H)
    assert d.stage == "switched" and d.advanced and d.next_due == "2026-11-02T14:00:00Z"
    state, d = step(state, T0 + 3 * H)
    assert d.stage == "switched" and not d.advanced
    state, d = step(state, T0 + 26 * H)
    assert d.stage == "done" and d.advanced and d.next_due is None and d.blocked_by is None
    again, d = step(state, T0 + 27 * H)
    assert again == state and not d.advanced  # re-running the last stage is harmless


def test_one_stage_per_call_even_with_open_gates():
    state, d = step({}, T0, evidence=ALL_GOOD, force=True)
    assert d.stage == "trust_both"  # a new CA's root must reach the nodes before anyone switches


def test_evidence_holds_the_rotation_and_names_the_nodes():
    state, _d = step({}, T0)
    lacking = Evidence(hosts=3, missing_new_root=["node2"])
    state, d = step(state, T0 + 3 * H, evidence=lacking)
    assert d.stage == "trust_both" and "node2" in d.blocked_by
    state, d = step(state, T0 + 3 * H)
    assert d.stage == "switched"
    old = Evidence(hosts=3, on_old_ca=["node3"])
    state, d = step(state, T0 + 30 * H, evidence=old, force=True)  # force passes time, never evidence
    assert d.stage == "switched" and "node3" in d.blocked_by
    state, d = step(state, T0 + 30 * H, evidence=Evidence(hosts=0))
    assert d.stage == "switched" and d.blocked_by == "no evidence from any node"


def test_explicit_stages_fail_with_the_reason():
    state, _d = step({}, T0)
    with pytest.raises(PKIError, match="cannot reach switched yet: the switched gate opens at"):
        step(state, T0 + H, requested="switched")
    with pytest.raises(PKIError, match="nodes lack the new root in their bundle: node1"):
        step(state, T0 + 3 * H, requested="done", evidence=Evidence(hosts=1, missing_new_root=["node1"]))
    state, d = step(state, T0 + H, requested="switched", force=True)
    assert d.stage == "switched"
    with pytest.raises(PKIError, match="never goes back to trust_both"):
        step(state, T0 + 2 * H, requested="trust_both")


def test_resumed_from_the_record_after_an_interrupted_run():
    """The record is all that carries over: a run killed after deciding resumes from it."""
    state, _d = step({}, T0)
    persisted = dict(state)  # what the state file holds
    state, d = step(persisted, T0 + 2 * H)
    assert d.stage == "switched"
    # the run that switched was killed before any node was re-issued: the next run stays at switched,
    # re-applies it, and moves on only when every node's certificate comes from the new CA
    state, d = step(state, T0 + 30 * H, evidence=Evidence(hosts=2, on_old_ca=["node1", "node2"]))
    assert d.stage == "switched"
    state, d = step(state, T0 + 31 * H)
    assert d.stage == "done"


def test_an_unknown_recorded_stage_is_refused():
    with pytest.raises(PKIError, match="unknown stage"):
        step({"stage": "halfway", "times": {}}, T0)
