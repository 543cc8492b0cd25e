# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The consumer-side reader agrees with the writer at every stage and survives a bad moment."""
from __future__ import annotations

import os

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils import keyring_reader as reader
from ansible_collections.securebydefault.pki.tests.unit.plugins.module_utils.pki.test_keyring import T0, H, run


def test_reader_follows_every_stage(tmp_path):
    run(tmp_path, "present", T0, kind="ec")
    snap = reader.load(str(tmp_path))
    assert snap.primary_id == "r1" and set(snap.primary) == {"private", "public"}
    run(tmp_path, "added", T0 + H, kind="ec")
    snap = reader.load(str(tmp_path))
    assert snap.primary_id == "r1" and [entry[0] for entry in snap.all()] == ["r1", "r2"]
    run(tmp_path, "promoted", T0 + 3 * H, kind="ec")
    snap = reader.load(str(tmp_path))
    assert snap.primary_id == "r2" and [entry[0] for entry in snap.all()] == ["r2", "r1"]
    assert snap.get("r1")["public"] == (tmp_path / "r1.public").read_bytes()
    run(tmp_path, "retired", T0 + 30 * H, kind="ec")
    assert [entry[0] for entry in reader.load(str(tmp_path)).all()] == ["r2"]


def test_kubelet_style_mount_is_read(tmp_path):
    """A Secret volume: entries are symlinks into a ..data directory; dot names are skipped."""
    data = tmp_path / "..2026_11_23" / ""
    data.mkdir()
    (data / "r1.key.primary").write_bytes(b"k1")
    (data / "r2.key").write_bytes(b"k2")
    os.symlink("..2026_11_23", tmp_path / "..data")
    for name in ("r1.key.primary", "r2.key"):
        os.symlink(os.path.join("..data", name), tmp_path / name)
    snap = reader.load(str(tmp_path))
    assert snap.primary == {"key": b"k1"} and snap.get("r2") == {"key": b"k2"}


@pytest.mark.parametrize("files", [
    {"r1.key": b"a"},
    {"r1.key.primary": b"a", "r2.key.primary": b"b"},
    {"r1.private.primary": b"a", "r1.public.primary": b"b", "r2.private": b"c"},
])
def test_invalid_states_raise(tmp_path, files):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(reader.KeyringError):
        reader.load(str(tmp_path))


def test_watcher_keeps_the_last_good_snapshot(tmp_path, monkeypatch):
    (tmp_path / "r1.key.primary").write_bytes(b"one")
    clock = {"t": 1000.0}
    monkeypatch.setattr(reader.time, "monotonic", lambda: clock["t"])
    keys = reader.KeyringReader(str(tmp_path), reload_every=30)
    os.rename(tmp_path / "r1.key.primary", tmp_path / "r1.key")  # a bad moment: no primary
    clock["t"] += 31
    assert keys.current().primary == {"key": b"one"} and keys.last_error is not None
    (tmp_path / "r2.key.primary").write_bytes(b"two")
    clock["t"] += 31
    assert keys.current().primary == {"key": b"two"} and keys.last_error is None
