# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stage machine of a CA rotation: trust_both -> switched -> done.

Pure: takes the recorded state, the request, the time gates and what the nodes
hold, and returns the next state. A stage is reached only when its gate has
opened and every node holds what it needs; it never goes back.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .errors import PKIError
from .timeutil import isoformat, parse_isoformat

ORDER = ["trust_both", "switched", "done"]
# The stage each stage leads to.
NEXT = {"trust_both": "switched", "switched": "done"}


def signing_and_trust(stage: str, old: str, new: str) -> Tuple[str, List[str]]:
    """(the CA that signs node certificates, the further CAs nodes trust) in ``stage`` of a rotation old -> new."""
    signing = new if stage in ("switched", "done") else old
    return signing, {"trust_both": [new], "switched": [old], "done": []}[stage]


@dataclass
class Evidence:
    hosts: int
    missing_new_root: List[str] = field(default_factory=list)
    on_old_ca: List[str] = field(default_factory=list)
    endpoints: int = 0  # how many live endpoints were probed for the next stage
    endpoints_holding_back: List[str] = field(default_factory=list)  # "host endpoint (reason)" of each that failed


@dataclass
class Decision:
    stage: str
    times: Dict[str, str]
    advanced: bool
    blocked_by: Optional[str]
    next_due: Optional[str]


def decide(
    stage: Optional[str],
    times: Dict[str, str],
    requested: str,
    now: datetime.datetime,
    waits: Dict[str, datetime.timedelta],
    evidence: Evidence,
    force: bool = False,
) -> Decision:
    """One step at most per call (the role calls it once per round)."""
    times = dict(times)
    advanced = False
    blocked = None
    due = None
    if stage is not None and stage not in ORDER:
        raise PKIError("path", "the state file names an unknown stage %r" % stage, "restore it from backup")
    if stage is None:
        stage, advanced = "trust_both", True
        times["trust_both"] = isoformat(now)
    if requested != "auto" and ORDER.index(requested) < ORDER.index(stage):
        raise PKIError(
            "stage",
            "the rotation is already at %s; it never goes back to %s" % (stage, requested),
            "ask for %s or a later stage, or start a new rotation to another CA" % stage,
        )
    if stage != "done" and not advanced:
        target = ORDER[ORDER.index(stage) + 1]
        if requested == "auto" or ORDER.index(requested) >= ORDER.index(target):
            opens = parse_isoformat(times[stage]) + waits[target]
            due = isoformat(opens)
            if now < opens and not force:
                blocked = "the %s gate opens at %s" % (target, due)
            elif evidence.hosts == 0 and evidence.endpoints == 0:
                blocked = "no evidence from any node"
            elif target == "switched" and evidence.missing_new_root:
                blocked = "nodes lack the new root in their bundle: %s" % ", ".join(evidence.missing_new_root)
            elif target == "done" and evidence.on_old_ca:
                blocked = "nodes still hold certificates not from the new CA: %s" % ", ".join(evidence.on_old_ca)
            elif evidence.endpoints_holding_back:
                blocked = "endpoints do not yet %s: %s" % (
                    "accept a client certificate of the new CA" if target == "switched" else "serve the new CA",
                    "; ".join(evidence.endpoints_holding_back),
                )
            if blocked is None:
                stage, advanced = target, True
                times[target] = isoformat(now)
            elif requested != "auto":
                raise PKIError(
                    "stage",
                    "cannot reach %s yet: %s" % (target, blocked),
                    "wait for the gate, or bring the named nodes and endpoints to the current stage (reload their "
                    "services), then run again",
                )
    elif stage != "done" and advanced and requested not in ("auto", "trust_both"):
        raise PKIError(
            "stage",
            "the rotation has just started (trust_both); %s needs the %s gate first" % (requested, ORDER[1]),
            "run again after ca_rotation_switch_after",
        )
    if stage != "done":
        target = ORDER[ORDER.index(stage) + 1]
        due = isoformat(parse_isoformat(times[stage]) + waits[target])
    return Decision(
        stage=stage,
        times=times,
        advanced=advanced,
        blocked_by=blocked if stage != "done" else None,
        next_due=due if stage != "done" else None,
    )
