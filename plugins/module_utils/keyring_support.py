# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options and results shared by the keyring modules (directory and Kubernetes Secret)."""
from __future__ import annotations

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import keyring as kr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_duration, utcnow

KEYRING_OPTIONS = dict(
    kind=dict(type="str", required=True, choices=list(kr.KINDS)),
    size=dict(type="int"),
    encoding=dict(type="str", choices=["raw", "base64", "hex"], default="raw"),
    state=dict(type="str", choices=["present", "rotated", "added", "promoted", "retired"], default="present"),
    promote_after=dict(type="str", default="1h"),
    retire_after=dict(type="str", default="1d"),
    rotate_every=dict(type="str"),
    retire_id=dict(type="str"),
    force=dict(type="bool", default=False),
)


def gates_from(params) -> kr.Gates:
    return kr.Gates(
        promote_after=parse_duration(params["promote_after"], "promote_after", allow_zero=True),
        retire_after=parse_duration(params["retire_after"], "retire_after", allow_zero=True),
        rotate_every=parse_duration(params["rotate_every"], "rotate_every", allow_zero=True)
        if params.get("rotate_every") else None)


def result_of(plan: kr.Plan) -> dict:
    info = kr.describe(plan.after)
    return dict(changed=plan.changed, stage=info["stage"], primary=info["primary"], ids=info["ids"],
                entries=info["entries"], steps=[vars(s) for s in plan.steps], next_action=plan.next_action,
                next_due=plan.next_due)


def diff_of(plan: kr.Plan, header: str) -> dict:
    def text(ring):
        info = kr.describe(ring)
        return "stage: %s\nentries:\n%s" % (info["stage"], "".join("  %s\n" % n for n in info["entries"]))
    return dict(before=text(plan.before), after=text(plan.after), before_header=header, after_header=header)


def check_encoding(params) -> None:
    if params["kind"] != "symmetric" and params["encoding"] != "raw":
        raise PKIError("encoding", "only applies to kind symmetric", "remove encoding")


def plan_step(ring: kr.Keyring, params, gates: kr.Gates) -> kr.Plan:
    """The step the options ask of ``ring`` now (the same for a directory and a Secret)."""
    def generate():
        return kr.generate(params["kind"], params["size"], params["encoding"])

    return kr.plan(ring, params["state"], gates, utcnow(), generate, force=params["force"],
                   retire_id=params["retire_id"])
