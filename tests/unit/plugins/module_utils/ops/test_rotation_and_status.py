# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The use cases of ca_rotation and rotation_status on real CA directories: state file, evidence, report."""
from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import rotation, status
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

pytestmark = pytest.mark.controller
NOW = datetime.datetime.now(datetime.timezone.utc)


def request(old, new, tmp_path, **kwargs):
    kwargs.setdefault("switch_after", datetime.timedelta(0))
    return rotation.RotationRequest(path=str(tmp_path / "r.rotation.json"), old_ca_path=old.path,
                                    new_ca_path=new.path, **kwargs)


def evidence_of(host, bundle_pem, cert_pem=""):
    return {"host": host, "bundle": bundle_pem, "certificate": cert_pem}


def root_pem(ca):
    with open(os.path.join(ca.path, "root.crt")) as handle:
        return handle.read()


def test_a_step_records_the_state_and_check_mode_records_nothing(make_ca, tmp_path):
    old, new = make_ca("old"), make_ca("new")
    req = request(old, new, tmp_path)
    dry = rotation.step(req, check_mode=True, now=NOW)
    assert dry["changed"] and dry["stage"] == "trust_both" and not os.path.exists(req.path)
    first = rotation.step(req, check_mode=False, now=NOW)
    assert first["stage"] == "trust_both" and first["trust_also"] == [new.path]
    assert first["signing_ca_path"] == old.path and first["next_stage"] == "switched"
    assert rotation.load_state(req.path)["stage"] == "trust_both"
    # no node has reported the new root yet: the next stage waits and names why
    held = rotation.step(req, check_mode=False, now=NOW)
    assert held["stage"] == "trust_both" and not held["changed"] and held["blocked_by"] == "no evidence from any node"
    req.evidence = [evidence_of("node1", root_pem(old)), evidence_of("node2", root_pem(old) + root_pem(new))]
    held = rotation.step(req, check_mode=False, now=NOW)
    assert held["hosts_missing_new_root"] == ["node1"] and "node1" in held["blocked_by"]
    req.evidence = [evidence_of("node1", root_pem(new))]
    moved = rotation.step(req, check_mode=False, now=NOW)
    assert moved["stage"] == "switched" and moved["signing_ca_path"] == new.path and moved["trust_also"] == [old.path]


def test_a_state_file_of_another_rotation_or_a_foreign_file_is_refused(make_ca, tmp_path):
    old, new, other = make_ca("old"), make_ca("new"), make_ca("other")
    req = request(old, new, tmp_path)
    rotation.step(req, check_mode=False, now=NOW)
    with pytest.raises(PKIError, match="records a rotation between other CAs"):
        rotation.step(request(old, other, tmp_path), check_mode=False, now=NOW)
    with open(req.path, "w") as handle:
        json.dump({"stage": "done", "times": {}, "evil": True}, handle)
    with pytest.raises(PKIError, match="not a rotation state"):
        rotation.load_state(req.path)
    with open(req.path, "w") as handle:
        json.dump({"stage": "finished", "times": {}}, handle)
    with pytest.raises(PKIError, match="not a rotation state"):
        rotation.load_state(req.path)


def test_a_linked_state_file_is_not_followed(make_ca, tmp_path):
    old, new = make_ca("old"), make_ca("new")
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    req = request(old, new, tmp_path)
    os.symlink(str(target), req.path)
    with pytest.raises(PKIError) as caught:
        rotation.step(req, check_mode=False, now=NOW)
    assert caught.value.field == "path" and target.read_text() == "{}"


def test_the_same_ca_twice_is_refused(make_ca, tmp_path):
    ca = make_ca("one")
    with pytest.raises(PKIError, match="same CA"):
        rotation.step(request(ca, ca, tmp_path), check_mode=False, now=NOW)


class FakeKube:
    """The two list calls the report makes, answered from memory."""

    def __init__(self, certificates, secrets, issuers=()):
        self.answers = {"certificates": {"items": certificates}, "secrets": {"items": secrets},
                        "issuers": {"items": list(issuers)}}
        self.paths = []

    def get(self, path):
        self.paths.append(path)
        for kind in ("certificates", "issuers"):
            if "/" + kind in path:
                return self.answers[kind]
        return self.answers["secrets"]


def test_the_report_sorts_by_urgency_and_writes_only_what_changed(make_ca, tmp_path):
    soon = NOW + datetime.timedelta(days=2)
    ca = make_ca("status")
    rotation.step(request(make_ca("older"), ca, tmp_path), check_mode=False, now=NOW)
    os.rename(str(tmp_path / "r.rotation.json"), rotation.default_state_path(ca.path))
    nodes = [{"host": "node1", "certificate": {"exists": True, "subject": "CN=node1",
                                               "not_after": soon.strftime("%Y-%m-%dT%H:%M:%SZ")}},
             {"host": "node2", "certificate": {"exists": False}},
             {"host": "node3", "keyrings": [{"path": "/etc/app/keys", "meta": {"stage": "added", "primary": "r1"}}]}]
    kube = FakeKube(
        [{"metadata": {"name": "web", "namespace": "prod"}, "status": {"conditions": []}}],
        [{"metadata": {"name": "ring", "namespace": "prod",
                       "annotations": {"keyring.securebydefault.pki/state": json.dumps(
                           {"stage": "promoted", "primary": "r2"})}},
          "data": {"r2.key.primary": "", "r1.key": ""}}])
    path = str(tmp_path / "status.md")
    req = status.StatusRequest(ca_paths=[ca.path, str(tmp_path / "absent")], nodes=nodes, kubernetes=True,
                               report_path=path)
    out = status.report(req, kube=kube, check_mode=True, now=NOW)
    assert out["changed"] and not os.path.exists(path)
    kinds = [(e["status"], e["kind"]) for e in out["items"]]
    assert kinds[0] == ("expired", "node_certificate") and ("missing", "ca") in kinds
    assert ("not_ready", "cert_manager_certificate") in kinds and ("due", "ca_rotation") in kinds
    assert ("due", "node_certificate") in kinds and ("ok", "ca") in kinds
    ring = next(e for e in out["items"] if e["kind"] == "k8s_keyring")
    assert ring["stage"] == "promoted" and ring["next_action"] == "retire" and "r1.key, r2.key.primary" in ring["note"]
    assert out["summary"]["expired"] == 1 and out["summary"]["missing"] == 1
    assert "| status | kind | name | where | expires | stage | next action | due | note |" in out["report"]
    written = status.report(req, kube=kube, now=NOW)
    assert written["changed"] and open(path).read() == written["report"]
    later = status.report(req, kube=kube, now=NOW + datetime.timedelta(seconds=5))
    assert not later["changed"]  # only the time line differs


def test_a_listed_state_file_that_does_not_exist_is_named(tmp_path):
    req = status.StatusRequest(rotation_states=[str(tmp_path / "none.rotation.json")])
    with pytest.raises(PKIError) as caught:
        status.report(req, now=NOW)
    assert caught.value.field == "rotation_states"


def test_a_report_path_that_is_no_regular_file_is_refused_but_check_mode_only_reports(tmp_path):
    req = status.StatusRequest(report_path="/dev/null")
    assert status.report(req, check_mode=True, now=NOW)["changed"]
    with pytest.raises(PKIError) as caught:
        status.report(req, now=NOW)
    assert caught.value.field == "report_path"


def test_a_link_planted_at_the_report_path_in_a_shared_directory_is_replaced_not_followed(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (shared / "status.md").symlink_to(victim)
    out = status.report(status.StatusRequest(report_path=str(shared / "status.md")), now=NOW)
    assert out["changed"] and not (shared / "status.md").is_symlink()
    assert (shared / "status.md").read_text() == out["report"] and victim.read_text() == "precious"
    # in a directory nobody else can write, a link is a mistake to name, not something to replace
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "status.md").symlink_to(victim)
    with pytest.raises(PKIError) as caught:
        status.report(status.StatusRequest(report_path=str(private / "status.md")), now=NOW)
    assert caught.value.field == "report_path" and victim.read_text() == "precious"


def test_an_edited_keyring_state_does_not_hide_the_keyring():
    kube = FakeKube([], [{"metadata": {"name": "ring", "namespace": "prod",
                                       "annotations": {"pki.securebydefault.io/keyring-state": "{not json"}},
                          "data": {"r1.key.primary": ""}}])
    out = status.report(status.StatusRequest(kubernetes=True), kube=kube, now=NOW)
    ring = next(e for e in out["items"] if e["kind"] == "k8s_keyring")
    assert ring["status"] == "blocked" and "not a state" in ring["note"]


def test_a_socket_or_fifo_planted_in_a_shared_directory_is_replaced(tmp_path):
    import socket

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    os.mkfifo(str(shared / "fifo.md"))
    with socket.socket(socket.AF_UNIX) as planted:
        planted.bind(str(shared / "socket.md"))
        for name in ("fifo.md", "socket.md"):
            out = status.report(status.StatusRequest(report_path=str(shared / name)), now=NOW)
            assert out["changed"] and (shared / name).read_text() == out["report"]


def test_a_planted_report_is_not_adopted_even_with_the_right_content(tmp_path):
    """Someone else's file with the expected bytes is written again (it becomes ours), a huge one not read."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    path = shared / "status.md"
    first = status.report(status.StatusRequest(report_path=str(path)), now=NOW)
    assert first["changed"]
    path.chmod(0o666)  # the right bytes, but writable by anyone: not what this module writes
    assert status.report(status.StatusRequest(report_path=str(path)), now=NOW)["changed"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert not status.report(status.StatusRequest(report_path=str(path)), now=NOW)["changed"]
    with open(str(path), "r+b") as handle:
        handle.truncate(1 << 34)  # 16 GiB, sparse: never read whole
    assert status.report(status.StatusRequest(report_path=str(path)), now=NOW)["changed"]
    assert path.stat().st_size < 4096


def test_the_report_lists_rotations_of_ca_issuers_and_edited_states():
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.cert_manager_rotation import ANNOTATION

    state = {"from": "zone-ca", "to": "zone-ca-2", "stage": "trust_both", "since": "2026-01-01T00:00:00Z"}
    issuers = [{"metadata": {"name": "zone", "namespace": "prod", "annotations": {ANNOTATION: json.dumps(state)}}},
               {"metadata": {"name": "edited", "namespace": "prod", "annotations": {ANNOTATION: "{not json"}}},
               {"metadata": {"name": "plain", "namespace": "prod"}}]
    items = status.k8s_items(FakeKube([], [], issuers), ["prod"], NOW, datetime.timedelta(days=1))
    rotations = [e for e in items if e["kind"] == "ca_rotation"]
    assert len(rotations) == 2
    ours = next(e for e in rotations if e["where"] == "k8s:prod/zone")
    assert ours["stage"] == "trust_both" and ours["status"] == "due" and ours["name"] == "zone-ca -> zone-ca-2"
    assert ours["next_action"] == "run cert_manager_ca_rotation (stage switched)"
    assert ours["stage_since"] == "2026-01-01T00:00:00Z"
    edited = next(e for e in rotations if e["where"] == "k8s:prod/edited")
    assert edited["status"] == "blocked"
