# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""k8s_keyring: the keyring convention on a real Secret, through every stage."""

from __future__ import annotations

import base64
import json

from kubernetes import client

ANNOTATION = "pki.securebydefault.io/keyring-state"


def read(api_client, namespace, name):
    try:
        obj = client.CoreV1Api(api_client).read_namespaced_secret(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None, None
        raise
    return {k: base64.b64decode(v) for k, v in (obj.data or {}).items()}, obj


def test_a_secret_goes_through_every_stage(api_client, run_module, namespace):
    args = {"name": "jwt", "namespace": namespace, "kind": "ed25519", "promote_after": "0", "retire_after": "0"}
    check = run_module("k8s_keyring", args, check=True)
    assert check["_status"] == "CHANGED" and check["entries"] == ["r1.private.primary", "r1.public.primary"]
    assert read(api_client, namespace, "jwt")[0] is None  # the dry run stored nothing

    created = run_module("k8s_keyring", args)
    data, obj = read(api_client, namespace, "jwt")
    assert created["changed"] and sorted(data) == ["r1.private.primary", "r1.public.primary"]
    assert b"BEGIN PRIVATE KEY" in data["r1.private.primary"] and b"BEGIN PUBLIC KEY" in data["r1.public.primary"]
    assert "PRIVATE KEY" not in created["_stdout"]  # material never in results
    meta = json.loads(obj.metadata.annotations[ANNOTATION])
    assert meta["stage"] == "single" and meta["primary"] == "r1"
    assert obj.metadata.labels["app.kubernetes.io/managed-by"] == "securebydefault.pki"
    assert run_module("k8s_keyring", args)["changed"] is False

    stages = [("added", ["r1.private.primary", "r1.public.primary", "r2.private", "r2.public"]),
              ("promoted", ["r1.private", "r1.public", "r2.private.primary", "r2.public.primary"]),
              ("retired", ["r2.private.primary", "r2.public.primary"])]
    r1 = data["r1.private.primary"]
    for state, expected in stages:
        result = run_module("k8s_keyring", dict(args, state=state))
        assert result["changed"] and result["entries"] == expected, result
        data, obj = read(api_client, namespace, "jwt")
        assert sorted(data) == expected
        assert json.loads(obj.metadata.annotations[ANNOTATION])["stage"] == result["stage"]
        assert run_module("k8s_keyring", dict(args, state=state))["changed"] is False
    assert data["r2.private.primary"] != r1


def test_rotated_completes_a_rotation_and_misuse_loses_nothing(api_client, run_module, namespace):
    args = {"name": "session", "namespace": namespace, "kind": "symmetric", "encoding": "base64"}
    assert run_module("k8s_keyring", dict(args, state="rotated"))["stage"] == "single"
    refused = run_module("k8s_keyring", dict(args, state="promoted"))
    assert refused["_status"] == "FAILED!" and "no pending key to promote" in refused["msg"]
    assert run_module("k8s_keyring", dict(args, state="added"))["stage"] == "added"
    early = run_module("k8s_keyring", dict(args, state="promoted", promote_after="1h"))
    assert early["_status"] == "FAILED!" and early["field"] == "promote_after"
    before = read(api_client, namespace, "session")[0]
    assert sorted(before) == ["r1.key.primary", "r2.key"]
    done = run_module("k8s_keyring", dict(args, state="rotated", promote_after="0", retire_after="0"))
    assert [s["action"] for s in done["steps"]] == ["promote", "retire"]
    after = read(api_client, namespace, "session")[0]
    assert after == {"r2.key.primary": before["r2.key"]}
    assert len(base64.b64decode(after["r2.key.primary"])) == 32


def test_a_hand_edited_secret_is_refused(api_client, run_module, namespace):
    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "edited"}, "data": {
        "r1.key.primary": base64.b64encode(b"a" * 32).decode(),
        "r2.key.primary": base64.b64encode(b"b" * 32).decode()}})
    result = run_module("k8s_keyring", {"name": "edited", "namespace": namespace, "kind": "symmetric",
                                        "state": "rotated"})
    assert result["_status"] == "FAILED!" and "2 primary ids (r1, r2)" in result["msg"] and "Fix:" in result["msg"]
    data, obj = read(api_client, namespace, "edited")
    assert sorted(data) == ["r1.key.primary", "r2.key.primary"] and not (obj.metadata.annotations or {})

    core.create_namespaced_secret(namespace, {"metadata": {"name": "mixed"}, "data": {
        "r1.key.primary": base64.b64encode(b"a" * 32).decode(), "config.yaml": base64.b64encode(b"x").decode()}})
    mixed = run_module("k8s_keyring", {"name": "mixed", "namespace": namespace, "kind": "symmetric"})
    assert mixed["_status"] == "FAILED!" and "'config.yaml', which is not <id>.<part>[.primary]" in mixed["msg"]


def test_the_reader_reads_the_secret_as_mounted(api_client, run_module, namespace, tmp_path):
    """The Secret's keys become files in a volume; the consumer reader sees the primary and all ids."""
    import sys  # pylint: disable=import-outside-toplevel
    from pathlib import Path  # pylint: disable=import-outside-toplevel
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "plugins" / "module_utils"))
    import keyring_reader  # pylint: disable=import-outside-toplevel

    args = {"name": "hmac", "namespace": namespace, "kind": "password", "promote_after": "0"}
    run_module("k8s_keyring", args)
    run_module("k8s_keyring", dict(args, state="added"))
    data = read(api_client, namespace, "hmac")[0]
    for name, content in data.items():
        (tmp_path / name).write_bytes(content)
    snap = keyring_reader.load(str(tmp_path))
    assert snap.primary_id == "r1" and [entry[0] for entry in snap.all()] == ["r1", "r2"]
    assert snap.primary["password"] == data["r1.password.primary"]
