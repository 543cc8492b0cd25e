# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_certificates: each certificate is the task's options with its own on top, checked before the node is touched."""
from __future__ import annotations

import pytest

pytest.importorskip("ansible")

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: E402

from ansible_collections.securebydefault.pki.plugins.action.node_certificates import (  # noqa: E402
    check_directories, check_identities, item_params)
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import NODE_CERTIFICATES_SPEC  # noqa: E402
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError  # noqa: E402


def task(**args):
    validation = ArgumentSpecValidator(NODE_CERTIFICATES_SPEC).validate(args)
    assert not validation.error_messages, validation.error_messages
    return validation.validated_parameters


def test_a_certificate_takes_the_tasks_options_where_it_sets_none():
    params = task(ca_path="/ca/cluster", path="/pki", dns_names=["a.pki.test"], usages=["server"], valid_for="30d",
                  certificates=[{"name": "apiserver"},
                                {"name": "etcd", "ca_path": "/ca/etcd", "path": "/pki/etcd", "usages": ["client"],
                                 "dns_names": []}])
    first, second = (item_params(params, i, item) for i, item in enumerate(params["certificates"]))
    assert (first["ca_path"], first["path"], first["dns_names"], first["usages"]) == (
        "/ca/cluster", "/pki", ["a.pki.test"], ["server"])
    # an empty list is a choice of the certificate, not "inherit"
    assert (second["ca_path"], second["path"], second["dns_names"], second["usages"]) == (
        "/ca/etcd", "/pki/etcd", [], ["client"])
    assert first["valid_for"] == second["valid_for"] == "30d"


@pytest.mark.parametrize("args, field", [
    ({"path": "/pki", "certificates": [{"name": "a"}]}, "certificates[0].ca_path"),
    ({"ca_path": "/ca", "certificates": [{"name": "a", "path": "/pki"}, {"name": "b"}]}, "certificates[1].path"),
])
def test_a_certificate_without_a_ca_or_a_directory_is_named(args, field):
    params = task(**args)
    with pytest.raises(PKIError) as err:
        for index, item in enumerate(params["certificates"]):
            item_params(params, index, item)
    assert err.value.field == field and "Fix:" in str(err.value)


def test_one_directory_holds_one_trust_bundle(tmp_path):
    items = [{"path": str(tmp_path), "name": "a", "pkcs12_keystore": False},
             {"path": str(tmp_path) + "/", "name": "b", "pkcs12_keystore": False},
             {"path": str(tmp_path / "etcd"), "name": "a", "pkcs12_keystore": False}]
    plans = [([], [], {"bundle": "cluster roots"}), ([], [], {"bundle": "cluster roots"}),
             ([], [], {"bundle": "etcd roots"})]
    check_directories(items, plans)
    plans[1] = ([], [], {"bundle": "etcd roots"})
    with pytest.raises(PKIError) as err:
        check_directories(items, plans)
    assert err.value.field == "certificates[1].path" and "certificates[0]" in str(err.value)


@pytest.mark.parametrize("first, second", [
    ("a", "a"),  # the same files
    ("a", "a-fullchain"),  # a's chain is the other's certificate
    ("a", "ca-bundle"),  # its certificate would be the directory's trust bundle
])
def test_no_file_is_two_certificates(tmp_path, first, second):
    items = [{"path": str(tmp_path), "name": first, "pkcs12_keystore": False},
             {"path": str(tmp_path / "." / ""), "name": second, "pkcs12_keystore": False}]
    with pytest.raises(PKIError) as err:
        check_directories(items, [([], [], {"bundle": "roots"})] * 2)
    assert err.value.field == "certificates[1].name"


def test_a_keystore_named_like_the_truststore_is_refused(tmp_path):
    items = [{"path": str(tmp_path), "name": "truststore", "pkcs12_keystore": True}]
    with pytest.raises(PKIError) as err:
        check_directories(items, [([], [], {"bundle": "roots"})])
    assert err.value.field == "certificates[0].name" and "truststore.p12" in str(err.value)


@pytest.mark.controller
def test_every_name_is_checked_against_its_own_cas_constraints_before_the_node(make_ca):
    cluster = make_ca("Cluster CA", permitted_dns=["cluster.test"])
    etcd = make_ca("etcd CA", permitted_dns=["etcd.test"])

    def planned(ca, names):
        with open(ca.path + "/ca.crt") as handle:
            return names, [], {"issuer": handle.read()}

    items = [{"allow_wildcard": False, "subject": None, "usages": ["server"]}] * 2
    check_identities(items, [planned(cluster, ["a.cluster.test"]), planned(etcd, ["a.etcd.test"])])
    with pytest.raises(PKIError) as err:  # a name of one CA's zone on a certificate of the other
        check_identities(items, [planned(cluster, ["a.cluster.test"]), planned(etcd, ["a.cluster.test"])])
    assert err.value.field == "certificates[1].names" and "a.cluster.test" in str(err.value)
