# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keyring stage machine and its directory back end, including runs killed mid-step."""
from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import keyring as kr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import keyring_files as kf
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

T0 = datetime.datetime(2026, 11, 1, 12, 0, tzinfo=datetime.timezone.utc)
H = datetime.timedelta(hours=1)
GATES = kr.Gates(promote_after=H, retire_after=24 * H, rotate_every=30 * 24 * H)


def run(path, state, now, kind="symmetric", gates=GATES, force=False, retire_id=None):
    """What the module does: recover, parse, plan, apply."""
    kf.recover(str(path))
    ring = kr.parse(kf.read_entries(str(path)), kind, kf.read_meta(str(path)), str(path))
    plan = kr.plan(ring, state, gates, now, lambda: kr.generate(kind, None, "raw"), force=force,
                   retire_id=retire_id)
    kf.apply(str(path), plan, 0o600, 0o644)
    return plan


def names(path):
    return sorted(n for n in os.listdir(path) if not n.startswith("."))


def test_a_full_rotation_by_the_convention(tmp_path):
    run(tmp_path, "present", T0)
    assert names(tmp_path) == ["r1.key.primary"]
    r1 = (tmp_path / "r1.key.primary").read_bytes()
    assert len(r1) == 32 and oct(os.stat(tmp_path / "r1.key.primary").st_mode & 0o777) == "0o600"

    plan = run(tmp_path, "added", T0 + H)
    assert names(tmp_path) == ["r1.key.primary", "r2.key"] and plan.after.stage == "added"
    assert (plan.next_action, plan.next_due) == ("promote", "2026-11-01T14:00:00Z")
    r2 = (tmp_path / "r2.key").read_bytes()
    assert r2 != r1

    plan = run(tmp_path, "promoted", T0 + 2 * H)
    assert names(tmp_path) == ["r1.key", "r2.key.primary"]
    assert (tmp_path / "r1.key").read_bytes() == r1 and (tmp_path / "r2.key.primary").read_bytes() == r2
    assert plan.next_action == "retire"

    plan = run(tmp_path, "retired", T0 + 26 * H)
    assert names(tmp_path) == ["r2.key.primary"] and plan.after.stage == "single"
    meta = json.loads((tmp_path / ".keyring.json").read_text())
    assert [h["action"] for h in meta["history"]] == ["create", "add", "promote", "retire"]
    assert "transition" not in meta


def test_every_stage_is_idempotent(tmp_path):
    run(tmp_path, "present", T0)
    for state, at in (("added", T0 + H), ("promoted", T0 + 3 * H), ("retired", T0 + 30 * H)):
        first = run(tmp_path, state, at)
        assert first.changed
        snapshot = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
        again = run(tmp_path, state, at + H)
        assert not again.changed and again.steps == []
        assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == snapshot


def test_rotated_advances_as_far_as_the_gates_allow(tmp_path):
    run(tmp_path, "present", T0)
    assert not run(tmp_path, "rotated", T0 + 29 * 24 * H).changed  # primary not old enough
    plan = run(tmp_path, "rotated", T0 + 31 * 24 * H)
    assert [s.action for s in plan.steps] == ["add"] and plan.next_action == "promote"
    assert not run(tmp_path, "rotated", T0 + 31 * 24 * H + 30 * 60 * datetime.timedelta(seconds=1)).changed
    plan = run(tmp_path, "rotated", T0 + 31 * 24 * H + 2 * H)
    assert [s.action for s in plan.steps] == ["promote"]
    plan = run(tmp_path, "rotated", T0 + 33 * 24 * H)
    assert [s.action for s in plan.steps] == ["retire"] and names(tmp_path) == ["r2.key.primary"]
    # the next rotation starts only when r2 is 30 days old
    assert not run(tmp_path, "rotated", T0 + 34 * 24 * H).changed


def test_rotated_with_open_gates_completes_in_one_run(tmp_path):
    gates = kr.Gates(promote_after=datetime.timedelta(0), retire_after=datetime.timedelta(0),
                     rotate_every=datetime.timedelta(0))
    run(tmp_path, "present", T0, gates=gates)
    plan = run(tmp_path, "rotated", T0 + H, gates=gates)
    assert [s.action for s in plan.steps] == ["add", "promote", "retire"]
    assert names(tmp_path) == ["r2.key.primary"]


@pytest.mark.parametrize("setup,state,at,field,words", [
    ([], "promoted", T0, "state", "does not exist yet"),
    (["present"], "promoted", T0 + H, "state", "no pending key to promote"),
    (["present", "added"], "promoted", T0 + 90 * datetime.timedelta(minutes=1), "promote_after",
     "promotion is allowed from 2026-11-01T14:00:00Z"),
    (["present", "added"], "retired", T0 + 5 * H, "state", "not yet promoted"),
    (["present", "added", "promoted"], "retired", T0 + 4 * H, "retire_after", "may be retired from"),
    (["present", "added", "promoted"], "added", T0 + 4 * H, "state", "cannot add a key in stage promoted"),
])
def test_misuse_is_refused_and_loses_nothing(tmp_path, setup, state, at, field, words):
    times = [T0, T0 + H, T0 + 3 * H]
    for step, when in zip(setup, times):
        run(tmp_path, step, when)
    snapshot = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
    with pytest.raises(PKIError) as err:
        run(tmp_path, state, at)
    assert err.value.field == field and words in str(err.value) and err.value.fix
    assert {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)} == snapshot


def test_retiring_the_only_key_is_refused(tmp_path):
    run(tmp_path, "present", T0)
    with pytest.raises(PKIError, match="r1 is the primary key and the only one"):
        run(tmp_path, "retired", T0 + H, retire_id="r1")
    assert names(tmp_path) == ["r1.key.primary"]


def test_force_passes_a_gate(tmp_path):
    run(tmp_path, "present", T0)
    run(tmp_path, "added", T0)
    plan = run(tmp_path, "promoted", T0, force=True)
    assert plan.after.stage == "promoted"


@pytest.mark.parametrize("files,words", [
    ({"r1.key.primary": b"a", "r2.key.primary": b"b"}, "2 primary ids (r1, r2)"),
    ({"r1.key": b"a"}, "no primary ids"),
    ({"r1.key.primary": b"a", "notes.txt": b"x"}, "'notes.txt', which is not <id>.<part>[.primary]"),
    ({"r1.private.primary": b"a"}, "'r1.private.primary' is not a part of a symmetric keyring"),
    ({"r1.key.primary": b"a", "r1.key": b"b"}, "has both r1.key and r1.key.primary"),
    ({"r1.key.primary": b"a", "r2.key": b"b", "r3.key": b"c"}, "holds 3 ids"),
    ({"r1.key.primary": b""}, "r1.key is empty"),
])
def test_a_hand_edited_invalid_state_is_refused(tmp_path, files, words):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(PKIError) as err:
        run(tmp_path, "rotated", T0)
    assert words in str(err.value) and err.value.fix
    assert sorted(os.listdir(tmp_path)) == sorted(files)  # nothing written, nothing removed


def test_key_pairs_have_both_parts_and_they_match(tmp_path):
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel
    run(tmp_path, "present", T0, kind="ec")
    assert names(tmp_path) == ["r1.private.primary", "r1.public.primary"]
    private = serialization.load_pem_private_key((tmp_path / "r1.private.primary").read_bytes(), None)
    public = (tmp_path / "r1.public.primary").read_bytes()
    assert private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo) == public
    assert oct(os.stat(tmp_path / "r1.public.primary").st_mode & 0o777) == "0o644"
    run(tmp_path, "added", T0 + H, kind="ec")
    run(tmp_path, "promoted", T0 + 3 * H, kind="ec")
    assert names(tmp_path) == ["r1.private", "r1.public", "r2.private.primary", "r2.public.primary"]
    os.unlink(tmp_path / "r1.public")
    with pytest.raises(PKIError, match="r1 lacks its public"):
        run(tmp_path, "rotated", T0 + 4 * H, kind="ec")


class Killed(Exception):
    pass


def kill_after(monkeypatch, target, name, calls):
    """Let `calls` calls of target.name through, then 'kill' the run."""
    real = getattr(target, name)
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        if count["n"] >= calls:
            raise Killed()
        count["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)


def test_a_promotion_killed_between_renames_is_finished(tmp_path, monkeypatch):
    run(tmp_path, "present", T0, kind="ec")
    run(tmp_path, "added", T0 + H, kind="ec")
    before = {n: (tmp_path / n).read_bytes() for n in names(tmp_path)}
    kill_after(monkeypatch, kf.os, "rename", 2)  # r2 is primary, r1 still too: two primaries on disk
    with pytest.raises(Killed):
        run(tmp_path, "promoted", T0 + 3 * H, kind="ec")
    monkeypatch.undo()
    assert len([n for n in names(tmp_path) if n.endswith(".primary")]) == 4
    plan = run(tmp_path, "promoted", T0 + 4 * H, kind="ec")
    assert names(tmp_path) == ["r1.private", "r1.public", "r2.private.primary", "r2.public.primary"]
    assert (tmp_path / "r2.private.primary").read_bytes() == before["r2.private"]
    assert (tmp_path / "r1.private").read_bytes() == before["r1.private.primary"]
    assert plan.after.stage == "promoted" and not plan.steps  # finished by recovery, nothing left to do


def test_an_add_killed_mid_write_is_undone_and_redone(tmp_path, monkeypatch):
    run(tmp_path, "present", T0, kind="rsa")
    r1 = (tmp_path / "r1.private.primary").read_bytes()
    kill_after(monkeypatch, kf, "atomic_write", 2)  # journal + the first part of r2
    with pytest.raises(Killed):
        run(tmp_path, "added", T0 + H, kind="rsa")
    monkeypatch.undo()
    assert "r2.private" in names(tmp_path) and "r2.public" not in names(tmp_path)  # torn id on disk
    plan = run(tmp_path, "added", T0 + 2 * H, kind="rsa")
    assert names(tmp_path) == ["r1.private.primary", "r1.public.primary", "r2.private", "r2.public"]
    assert (tmp_path / "r1.private.primary").read_bytes() == r1
    assert [s.action for s in plan.steps] == ["add"]


def test_a_retirement_killed_mid_removal_is_finished(tmp_path, monkeypatch):
    run(tmp_path, "present", T0, kind="ed25519")
    run(tmp_path, "added", T0 + H, kind="ed25519")
    run(tmp_path, "promoted", T0 + 3 * H, kind="ed25519")
    kill_after(monkeypatch, kf, "remove_quietly", 1)
    with pytest.raises(Killed):
        run(tmp_path, "retired", T0 + 30 * H, kind="ed25519")
    monkeypatch.undo()
    run(tmp_path, "rotated", T0 + 31 * H, kind="ed25519")
    assert names(tmp_path) == ["r2.private.primary", "r2.public.primary"]


def test_lost_metadata_restarts_the_gate_never_shortens_it(tmp_path):
    run(tmp_path, "present", T0)
    run(tmp_path, "added", T0 + H)
    os.unlink(tmp_path / ".keyring.json")
    # 10 hours after the add, but the add time is lost: the clock restarts now
    plan = run(tmp_path, "rotated", T0 + 11 * H)
    assert plan.after.stage == "added" and not plan.steps
    assert (plan.next_action, plan.next_due) == ("promote", "2026-11-02T00:00:00Z")
    assert kr.parse(kf.read_entries(str(tmp_path)), "symmetric", kf.read_meta(str(tmp_path)), "x").meta[
        "stage_times"]["added"] == "2026-11-01T23:00:00Z"
    assert run(tmp_path, "rotated", T0 + 12 * H + H).steps[0].action == "promote"


def test_another_kind_in_the_directory_is_refused(tmp_path):
    run(tmp_path, "present", T0, kind="password")
    assert len((tmp_path / "r1.password.primary").read_bytes()) == 32
    with pytest.raises(PKIError, match="holds a password keyring, not symmetric"):
        run(tmp_path, "present", T0, kind="symmetric")
