# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubernetes_pki_configs: one host's kubeconfigs and flag files, checked before any is written, written once."""
from __future__ import annotations

import os
import shlex
import stat
import types

import pytest
import yaml

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import kubernetes_configs
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import kubernetes
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError


def params(tmp_path, **overrides):
    out = {
        "config_dir": str(tmp_path / "etc"),
        "pki_dir": str(tmp_path / "pki"),
        "server": "https://10.0.0.10:6443",
        "cluster_name": "prod",
        "host": "cp1.example.test",
        "kubeconfigs": [{"file": "scheduler.conf", "certificate": "scheduler", "user": "system:kube-scheduler"}],
        "flags": [{"name": "kube-scheduler", "variable": "KUBE_SCHEDULER_PKI_ARGS",
                   "flags": ["--kubeconfig=%s/etc/scheduler.conf" % tmp_path, "--bind-address=127.0.0.1"]}],
    }
    out.update(overrides)
    return out


def run(p, check_mode=False, diff=False):
    return kubernetes_configs.kubernetes_pki_configs(types.SimpleNamespace(params=p, check_mode=check_mode, diff=diff))


def test_writes_each_file_once_with_its_mode_and_a_rerun_changes_nothing(tmp_path):
    first = run(params(tmp_path))
    conf, env = tmp_path / "etc" / "scheduler.conf", tmp_path / "etc" / "pki-flags" / "kube-scheduler.env"
    assert first["changed"] and first["changed_files"] == [str(conf), str(env)]
    document = yaml.safe_load(conf.read_text())
    assert document["clusters"][0]["cluster"] == {"server": "https://10.0.0.10:6443",
                                                  "certificate-authority": str(tmp_path / "pki" / "ca-bundle.crt")}
    assert document["users"][0] == {"name": "system:kube-scheduler", "user": {
        "client-certificate": str(tmp_path / "pki" / "scheduler-fullchain.crt"),
        "client-key": str(tmp_path / "pki" / "scheduler.key")}}
    assert document["current-context"] == "system:kube-scheduler"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600 and stat.S_IMODE(env.stat().st_mode) == 0o644
    line = [raw for raw in env.read_text().splitlines() if raw and not raw.startswith("#")]
    assert len(line) == 1 and line[0].startswith("KUBE_SCHEDULER_PKI_ARGS=")
    value = "--kubeconfig=%s/etc/scheduler.conf --bind-address=127.0.0.1" % tmp_path
    assert shlex.split(line[0].split("=", 1)[1]) == [value]
    again = run(params(tmp_path))
    assert not again["changed"] and again["changed_files"] == []


def test_check_mode_writes_nothing_and_diff_shows_the_change(tmp_path):
    run(params(tmp_path))
    changed = params(tmp_path, server="https://10.0.0.11:6443")
    dry = run(changed, check_mode=True, diff=True)
    conf = tmp_path / "etc" / "scheduler.conf"
    assert dry["changed"] and dry["changed_files"] == [str(conf)]
    assert "10.0.0.10" in conf.read_text()  # untouched
    assert dry["diff"][0]["before_header"] == str(conf)
    assert "10.0.0.10" in dry["diff"][0]["before"] and "10.0.0.11" in dry["diff"][0]["after"]


def test_a_loosened_mode_is_restored_without_rewriting(tmp_path):
    run(params(tmp_path))
    conf = tmp_path / "etc" / "scheduler.conf"
    inode = conf.stat().st_ino
    os.chmod(conf, 0o644)
    fixed = run(params(tmp_path))
    assert fixed["changed_files"] == [str(conf)]
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600 and conf.stat().st_ino == inode


def test_a_link_planted_at_a_destination_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "etc").mkdir()
    target = tmp_path / "elsewhere"
    target.write_text("keep me\n")
    os.symlink(target, tmp_path / "etc" / "scheduler.conf")
    with pytest.raises(PKIError) as refused:
        run(params(tmp_path))
    assert refused.value.field == "config_dir" and "not a regular file" in str(refused.value)
    assert target.read_text() == "keep me\n"
    assert not (tmp_path / "etc" / "pki-flags").exists()  # the flag file, later in the list, was not written either


@pytest.mark.parametrize("override, field", [
    ({"flags": [{"name": "kube-scheduler", "variable": "X", "flags": ["--kubeconfig=/a b/c"]}]}, "flags[0].flags[0]"),
    ({"flags": [{"name": "kube-scheduler", "variable": "X", "flags": ["--v=$(id)"]}]}, "flags[0].flags[0]"),
    ({"flags": [{"name": "kube-scheduler", "variable": "X", "flags": ["--a='b'"]}]}, "flags[0].flags[0]"),
    ({"flags": [{"name": "kube-scheduler", "variable": "lower case", "flags": []}]}, "flags[0].variable"),
    ({"flags": [{"name": "../kube-scheduler", "variable": "X", "flags": []}]}, "flags[0].name"),
    ({"kubeconfigs": [{"file": "../scheduler.conf", "certificate": "scheduler", "user": "u"}]}, "kubeconfigs[0].file"),
    ({"kubeconfigs": [{"file": "a.conf", "certificate": "a/b", "user": "u"}]}, "kubeconfigs[0].certificate"),
    ({"kubeconfigs": [{"file": "a.conf", "certificate": "a", "user": "u"}] * 2}, "kubeconfigs[1].file"),
    ({"server": "http://10.0.0.10:6443"}, "server"),
    ({"config_dir": "etc"}, "config_dir"),
    ({"pki_dir": "/srv/my pki"}, "pki_dir"),
])
def test_bad_input_names_the_field_and_writes_nothing(tmp_path, override, field):
    with pytest.raises(PKIError) as refused:
        run(params(tmp_path, **override))
    assert refused.value.field == field
    assert not (tmp_path / "etc").exists()


def test_a_kubeconfig_alone_may_live_in_any_absolute_directory(tmp_path):
    home = tmp_path / "home of admin"
    p = params(tmp_path, config_dir=str(home), pki_dir=str(home), flags=[],
               kubeconfigs=[{"file": "admin.conf", "certificate": "admin", "user": "kubernetes-admin"}])
    run(p)
    document = yaml.safe_load((home / "admin.conf").read_text())
    assert document["users"][0]["user"]["client-key"] == str(home / "admin.key")


def test_names_cannot_change_the_structure_of_a_kubeconfig():
    text = kubernetes.kubeconfig_text('evil", kind: Pod, x: {', "https://a:6443", "/p", "u # - name: x: y", "c")
    document = yaml.safe_load(text)
    assert document["kind"] == "Config" and document["clusters"][0]["name"] == 'evil", kind: Pod, x: {'
    assert document["users"][0]["name"] == "u # - name: x: y"
    with pytest.raises(PKIError) as refused:
        kubernetes.kubeconfig_text("prod", "https://a:6443", "/p", "u\n  - name: x", "c")
    assert refused.value.field == "user"


def test_diff_never_shows_a_file_this_module_did_not_write(tmp_path):
    (tmp_path / "etc").mkdir()
    kubeadm = "users:\n- name: x\n  user:\n    client-key-data: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t\n"
    (tmp_path / "etc" / "scheduler.conf").write_text(kubeadm)
    shown = run(params(tmp_path), diff=True)["diff"][0]
    assert "client-key-data" not in shown["before"] and "not shown" in shown["before"]
    assert "client-key-data" not in (tmp_path / "etc" / "scheduler.conf").read_text()


@pytest.mark.parametrize("override, field", [
    ({"flags": [{"name": "etcd", "variable": "ETCD_PKI_ARGS\n", "flags": []}]}, "flags[0].variable"),
    ({"flags": [{"name": "etcd\n", "variable": "ETCD_PKI_ARGS", "flags": []}]}, "flags[0].name"),
    ({"flags": [{"name": "etcd", "variable": "X", "flags": ["--a=b\n"]}]}, "flags[0].flags[0]"),
    ({"server": "https://h\n"}, "server"),
    ({"cluster_name": "prod\u2028# x"}, "cluster_name"),
    ({"kubeconfigs": [{"file": "pki-flags", "certificate": "a", "user": "u"}]}, "kubeconfigs[0].file"),
])
def test_a_trailing_line_break_or_a_line_separator_is_refused(tmp_path, override, field):
    with pytest.raises(PKIError) as refused:
        run(params(tmp_path, **override))
    assert refused.value.field == field


def test_a_rewritten_file_keeps_its_owner_and_group(tmp_path):
    run(params(tmp_path))
    conf = tmp_path / "etc" / "scheduler.conf"
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    os.chown(conf, 4242, 4243)
    run(params(tmp_path, server="https://10.0.0.11:6443"))
    assert "10.0.0.11" in conf.read_text() and (conf.stat().st_uid, conf.stat().st_gid) == (4242, 4243)
