# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generations of the cluster's CAs: which directory signs, which CA rotates, and the requests refused."""

from __future__ import annotations

import json

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.kubernetes import (
    ca_directory,
    ca_generations,
    ca_state_paths,
)

CA_DIR = "/srv/pki/k8s"


def decide(generations, stages=None):
    return ca_generations(CA_DIR, generations, stages or {})


def test_generation_one_is_the_plain_directory_and_nothing_rotates():
    result = decide({})
    assert result["rotating"] is None
    assert {ca: entry["path"] for ca, entry in result["cas"].items()} == {
        "cluster": "/srv/pki/k8s/cluster", "etcd": "/srv/pki/k8s/etcd", "front_proxy": "/srv/pki/k8s/front-proxy"}
    assert all(not entry["rotating"] and entry["previous_path"] is None for entry in result["cas"].values())


def test_raising_a_generation_rotates_that_ca_from_the_previous_directory():
    result = decide({"etcd": 2}, {"/srv/pki/k8s/etcd.2": "trust_both"})
    assert result["rotating"] == "etcd"
    assert result["cas"]["etcd"] == {"generation": 2, "path": "/srv/pki/k8s/etcd.2",
                                     "previous_path": "/srv/pki/k8s/etcd", "rotating": True, "stage": "trust_both"}
    assert not result["cas"]["cluster"]["rotating"]


def test_a_rotation_that_is_done_puts_the_new_generation_in_force():
    result = decide({"cluster": 2}, {"/srv/pki/k8s/cluster.2": "done"})
    assert result["rotating"] is None
    assert result["cas"]["cluster"]["path"] == "/srv/pki/k8s/cluster.2" and not result["cas"]["cluster"]["rotating"]


def test_the_third_generation_starts_from_the_second_once_that_one_is_done():
    result = decide({"cluster": 3}, {"/srv/pki/k8s/cluster.2": "done"})
    assert result["cas"]["cluster"]["previous_path"] == "/srv/pki/k8s/cluster.2" and result["rotating"] == "cluster"


@pytest.mark.parametrize("stage", [None, "trust_both", "switched"])
def test_a_generation_may_not_skip_an_unfinished_one(stage):
    with pytest.raises(PKIError) as error:
        decide({"cluster": 3}, {"/srv/pki/k8s/cluster.2": stage})
    assert error.value.field == "kubernetes_pki_cluster_ca_generation"
    assert "never finished" in str(error.value) and "set it to 2" in str(error.value)


def test_a_generation_never_goes_back():
    with pytest.raises(PKIError) as error:
        decide({"etcd": 1}, {"/srv/pki/k8s/etcd.2": "switched"})
    assert error.value.field == "kubernetes_pki_etcd_ca_generation" and "never goes back" in str(error.value)


def test_a_second_rotation_is_refused_while_one_is_under_way():
    with pytest.raises(PKIError) as error:
        decide({"cluster": 2, "etcd": 2}, {"/srv/pki/k8s/etcd.2": "switched"})
    # the etcd rotation is under way: the cluster CA is the one refused, and the message says why
    assert error.value.field == "kubernetes_pki_cluster_ca_generation"
    assert "while one of the etcd CA is at switched" in str(error.value)


@pytest.mark.parametrize("value", [0, -1, "two", True, 1.5, "10000"])
def test_a_generation_that_is_not_a_whole_number_from_one_is_refused(value):
    with pytest.raises(PKIError) as error:
        decide({"front_proxy": value})
    assert error.value.field == "kubernetes_pki_front_proxy_ca_generation"


def test_the_state_paths_read_are_the_neighbours_of_each_generation():
    assert ca_state_paths(CA_DIR, {"cluster": 2}) == ["/srv/pki/k8s/cluster.2", "/srv/pki/k8s/cluster.3",
                                                      "/srv/pki/k8s/etcd.2", "/srv/pki/k8s/front-proxy.2"]
    assert ca_directory(CA_DIR + "/", "front_proxy", 4) == "/srv/pki/k8s/front-proxy.4"


def test_the_module_reads_the_states_the_ca_rotation_module_writes(tmp_path):
    from types import SimpleNamespace

    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.rotation import kubernetes_pki_cas

    (tmp_path / "etcd").mkdir()
    (tmp_path / "etcd" / "ca.crt").write_text("the CA in force\n")
    (tmp_path / "etcd.2.rotation.json").write_text(json.dumps({
        "old_ca_path": str(tmp_path / "etcd"), "new_ca_path": str(tmp_path / "etcd.2"), "old_root": "a",
        "new_root": "b", "stage": "switched",
        "times": {"trust_both": "2026-11-30T10:00:00Z", "switched": "2026-11-30T11:00:00Z"}}))
    result = kubernetes_pki_cas(SimpleNamespace(params={"ca_dir": str(tmp_path), "generations": {"etcd": 2}},
                                                check_mode=False))
    assert result["rotating"] == "etcd" and result["cas"]["etcd"]["stage"] == "switched"
    assert result["changed"] is False
    with pytest.raises(PKIError) as error:
        kubernetes_pki_cas(SimpleNamespace(params={"ca_dir": str(tmp_path), "generations": {"etc": 2}},
                                           check_mode=False))
    assert error.value.field == "generations"


def test_a_rotation_from_a_ca_that_does_not_exist_is_refused(tmp_path):
    from types import SimpleNamespace

    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.rotation import kubernetes_pki_cas

    with pytest.raises(PKIError) as error:
        kubernetes_pki_cas(SimpleNamespace(params={"ca_dir": str(tmp_path), "generations": {"cluster": 2}},
                                           check_mode=False))
    assert error.value.field == "kubernetes_pki_cluster_ca_generation" and "nothing to rotate from" in str(error.value)


def test_a_lost_state_file_after_the_new_ca_signed_is_refused_not_started_over(tmp_path):
    from types import SimpleNamespace

    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.rotation import kubernetes_pki_cas

    for directory in ("cluster", "cluster.2"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "ca.crt").write_text("a CA\n")
    params = {"ca_dir": str(tmp_path), "generations": {"cluster": 2}}
    # before the new CA signed anything, a missing state is a rotation not started yet
    assert kubernetes_pki_cas(SimpleNamespace(params=params, check_mode=False))["cas"]["cluster"]["stage"] is None
    (tmp_path / "cluster.2" / "ledger.jsonl").write_text('{"serial": "01"}\n')
    with pytest.raises(PKIError) as error:
        kubernetes_pki_cas(SimpleNamespace(params=params, check_mode=False))
    assert error.value.field == "ca_dir" and "cluster.2.rotation.json is missing" in str(error.value)
