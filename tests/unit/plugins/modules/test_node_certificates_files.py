# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_certificates_files: several certificates in one call; a failure leaves no pending key behind."""
from __future__ import annotations

import datetime
import os
from types import SimpleNamespace

import pytest

pytest.importorskip("ansible")

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import node_files  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import signing  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError  # noqa: E402

PASS = "correct horse"


def item_for(ca, directory, name, names):
    with open(os.path.join(ca.path, "ca.crt")) as handle:
        issuer = handle.read()
    with open(os.path.join(ca.path, "root.crt")) as handle:
        bundle = handle.read()
    return dict(path=str(directory), name=name, names=names, issuer=issuer, bundle=bundle, usages=["server"])


def call(stage, certificates, check_mode=False):
    ctx = SimpleNamespace(params=dict(stage=stage, certificates=certificates, key_passphrase=None,
                                      pkcs12_passphrase=None), check_mode=check_mode, diff=False, module=None)
    return node_files.node_files_many(ctx)


def pending(directory):
    return sorted(f for f in os.listdir(directory) if f.endswith(".pending")) if os.path.isdir(directory) else []


@pytest.mark.controller
def test_prepare_then_install_several_certificates(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    items = [item_for(ca, tmp_path / "n", "a", ["a.pki.test"]), item_for(ca, tmp_path / "n", "b", ["b.pki.test"])]
    assert [r["reasons"] for r in call("prepare", items, check_mode=True)["certificates"]] == [
        ["no certificate yet"]] * 2
    assert not (tmp_path / "n").exists()
    prepared = call("prepare", items)["certificates"]
    assert pending(tmp_path / "n") == ["a.key.pending", "b.key.pending"]
    signed = [signing.sign_csr(ca.path, PASS, p["csr"], p["identity"], ["server"],
                               datetime.timedelta(days=90), False)[0] for p in prepared]
    done = call("install", [dict(i, certificate=c) for i, c in zip(items, signed)])
    assert done["changed"] and [r["identity"] for r in done["certificates"]] == [["a.pki.test"], ["b.pki.test"]]
    assert pending(tmp_path / "n") == []
    again = call("prepare", items)
    assert not again["changed"] and [r["reasons"] for r in again["certificates"]] == [[], []]


@pytest.mark.controller
def test_a_name_outside_the_constraints_is_refused_before_any_key_is_made(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    items = [item_for(ca, tmp_path / "n", "a", ["a.pki.test"]), item_for(ca, tmp_path / "n", "b", ["b.other.test"])]
    with pytest.raises(PKIError) as err:
        call("prepare", items)
    assert err.value.field == "certificates[1].names"
    assert not (tmp_path / "n").exists()


@pytest.mark.controller
def test_an_install_that_fails_installs_nothing_after_it(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    items = [item_for(ca, tmp_path / "n", "a", ["a.pki.test"]), item_for(ca, tmp_path / "n", "b", ["b.pki.test"]),
             item_for(ca, tmp_path / "n", "c", ["c.pki.test"])]
    prepared = call("prepare", items)["certificates"]
    signed = [signing.sign_csr(ca.path, PASS, p["csr"], p["identity"], ["server"],
                               datetime.timedelta(days=90), False)[0] for p in prepared]
    signed[1] = signed[2]  # b gets c's certificate: another key and name
    with pytest.raises(PKIError) as err:
        call("install", [dict(i, certificate=c) for i, c in zip(items, signed)])
    assert err.value.field.startswith("certificates[1].")
    assert os.path.exists(tmp_path / "n" / "a.crt")
    assert not os.path.exists(tmp_path / "n" / "b.crt") and not os.path.exists(tmp_path / "n" / "c.crt")
    assert pending(tmp_path / "n") == []


@pytest.mark.parametrize("items, field, words", [
    ([{"path": "/x", "name": "a", "key_passphrase": "s"}], "certificates[0].key_passphrase", "of the whole call"),
    ([{"path": "/x", "name": "a"}], "certificates[0]", "issuer"),
    (["not a mapping"], "certificates[0]", "not a mapping"),
])
def test_bad_items_fail_before_anything_is_read(items, field, words):
    with pytest.raises(PKIError) as err:
        call("prepare", items)
    assert err.value.field == field and words in str(err.value)


@pytest.mark.controller
def test_the_same_file_twice_is_refused(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    one = item_for(ca, tmp_path / "n", "a", ["a.pki.test"])
    twin = item_for(ca, str(tmp_path / "n") + "/.", "a", ["b.pki.test"])
    with pytest.raises(PKIError) as err:
        call("prepare", [one, twin])
    assert err.value.field == "certificates[1].name" and "certificates[0]" in str(err.value)
    assert not (tmp_path / "n").exists()


@pytest.mark.controller
def test_files_are_kept_apart_as_the_node_resolves_them(make_ca, tmp_path):
    cluster = make_ca(permitted_dns=["pki.test"])
    etcd = make_ca("etcd CA", permitted_dns=["pki.test"])
    (tmp_path / "n").mkdir()
    os.symlink(str(tmp_path / "n"), str(tmp_path / "n" / "etcd"))  # etcd/ is the cluster's directory
    items = [item_for(cluster, tmp_path / "n", "a", ["a.pki.test"]),
             item_for(etcd, tmp_path / "n" / "etcd", "b", ["b.pki.test"])]
    with pytest.raises(PKIError) as err:
        call("prepare", items)
    assert err.value.field == "certificates[1].path" and "trust bundle differs" in str(err.value)
    items = [item_for(cluster, tmp_path / "n", "a", ["a.pki.test"]),
             item_for(cluster, tmp_path / "n", "a-fullchain", ["b.pki.test"])]
    with pytest.raises(PKIError) as err:
        call("prepare", items)
    assert err.value.field == "certificates[1].name" and "a-fullchain.crt" in str(err.value)
    assert sorted(os.listdir(tmp_path / "n")) == ["etcd"]


@pytest.mark.controller
def test_every_certificate_is_checked_before_the_first_file_is_written(make_ca, tmp_path):
    ca = make_ca(permitted_dns=["pki.test"])
    (tmp_path / "file").write_text("not a directory")
    items = [item_for(ca, tmp_path / "n", "a", ["a.pki.test"]), item_for(ca, tmp_path / "file", "b", ["b.pki.test"])]
    with pytest.raises(PKIError) as err:
        call("prepare", items)
    assert err.value.field.startswith("certificates[1].")
    assert not (tmp_path / "n").exists()  # not even the first certificate's trust bundle


@pytest.mark.controller
def test_an_error_that_is_no_pki_error_still_takes_back_the_keys(make_ca, tmp_path, monkeypatch):
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import node

    ca = make_ca(permitted_dns=["pki.test"])
    items = [item_for(ca, tmp_path / "n", "a", ["a.pki.test"]), item_for(ca, tmp_path / "n", "b", ["b.pki.test"])]
    real = node.prepare

    def full_disk(request):
        if request.key.path.endswith("b.key"):
            raise OSError(28, "No space left on device")
        return real(request)

    monkeypatch.setattr(node, "prepare", full_disk)
    with pytest.raises(PKIError) as err:
        call("prepare", items)
    assert err.value.field == "certificates[1]" and "No space left" in str(err.value)
    assert err.value.result["index"] == 1 and pending(tmp_path / "n") == []
