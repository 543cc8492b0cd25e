# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The metrics files of rotation_status and certificate_info, read back with Prometheus' own parser."""
from __future__ import annotations

import datetime
import os

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import certificate_info, rotation, status
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import metrics
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import build_csr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, generate_private_key
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import isoformat, not_valid_after

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
DAY = datetime.timedelta(days=1)


@pytest.fixture
def parse():
    parser = pytest.importorskip("prometheus_client.parser")

    def read(text):
        """{family name: {frozenset of label pairs: value}}, node_exporter's view minus instance/job."""
        out = {}
        for family in parser.text_string_to_metric_families(text):
            assert family.type == "gauge" and family.documentation
            series = out.setdefault(family.name, {})
            for sample in family.samples:
                key = frozenset(sample.labels.items())
                assert key not in series, "series written twice: %s %s" % (family.name, sample.labels)
                series[key] = sample.value
        return out

    return read


def one(series, **labels):
    """The value of the one series having these labels (among others)."""
    found = [value for key, value in series.items() if set(labels.items()) <= key]
    assert len(found) == 1, (labels, series)
    return found[0]


def pem_of(cert):
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def status_setup(make_ca, tmp_path):
    """A CA in rotation (state file beside it), a node certificate due, one missing, a keyring half-rotated."""
    ca = make_ca("status")
    rotation.step(rotation.RotationRequest(path=str(tmp_path / "r.rotation.json"), old_ca_path=make_ca("older").path,
                                           new_ca_path=ca.path, switch_after=datetime.timedelta(0)),
                  check_mode=False, now=NOW - 2 * DAY)
    os.rename(str(tmp_path / "r.rotation.json"), rotation.default_state_path(ca.path))
    nodes = [
        {"host": "node1", "certificate": {"exists": True, "subject": "CN=node1",
                                          "not_after": isoformat(NOW + 2 * DAY)}},
        {"host": "node2", "certificate": {"exists": False}},
        {"host": "node3", "certificate": {"exists": True, "subject": "CN=node3",
                                          "not_after": isoformat(NOW + 90 * DAY)},
         "keyrings": [{"path": "/etc/app/keys",
                       "meta": {"stage": "added", "primary": "r1",
                                "stage_times": {"single": isoformat(NOW - 40 * DAY),
                                                "added": isoformat(NOW - 9 * DAY)}}},
                      {"path": "/etc/app/lost", "meta": {}}]},
    ]
    return ca, nodes


@pytest.mark.controller
def test_rotation_status_writes_expiry_due_and_stages(make_ca, tmp_path, parse):
    ca, nodes = status_setup(make_ca, tmp_path)
    path = str(tmp_path / "textfile" / "pki.prom")
    req = status.StatusRequest(ca_paths=[ca.path, str(tmp_path / "absent")], nodes=nodes, metrics_path=path)
    dry = status.report(req, check_mode=True, now=NOW)
    assert dry["changed"] and not os.path.exists(path) and not os.path.exists(os.path.dirname(path))
    out = status.report(req, now=NOW)
    assert out["changed"] and out["metrics"] == dry["metrics"]
    with open(path) as handle:
        text = handle.read()
    assert text == out["metrics"] and "T" not in "".join(line.split(" ")[-1] for line in text.splitlines())
    found = parse(text)

    not_after = found[metrics.CERTIFICATE_NOT_AFTER]
    assert one(not_after, kind="ca", where=ca.path) == int(not_valid_after(ca.certificate).timestamp())
    assert one(not_after, kind="node_certificate", host="node1", name="CN=node1") == int((NOW + 2 * DAY).timestamp())
    due = found[metrics.CERTIFICATE_RENEWAL_DUE]
    assert one(due, kind="ca", where=ca.path) == 0
    assert one(due, kind="node_certificate", host="node1") == 1  # inside warn_within (30d)
    assert one(due, kind="node_certificate", host="node3") == 0
    assert one(due, kind="node_certificate", host="node2") == 1  # no certificate: due, and no notAfter
    assert not [key for key in not_after if ("host", "node2") in key]
    assert one(due, kind="ca", where=str(tmp_path / "absent")) == 1  # a CA still to be created

    stages = {dict(key)["stage"]: value for key, value in found[metrics.CA_ROTATION_STAGE].items()}
    assert stages == {"trust_both": 1, "switched": 0, "done": 0}
    state = rotation.load_state(rotation.default_state_path(ca.path))
    assert one(found[metrics.CA_ROTATION_STAGE_SINCE], kind="ca_rotation") == int((NOW - 2 * DAY).timestamp())
    assert state["times"]["trust_both"] == isoformat(NOW - 2 * DAY)

    ring = {dict(key)["stage"]: value for key, value in found[metrics.KEYRING_STAGE].items()
            if ("name", "/etc/app/keys") in key}
    assert ring == {"empty": 0, "single": 0, "added": 1, "promoted": 0}
    since = found[metrics.KEYRING_STAGE_SINCE]
    assert one(since, name="/etc/app/keys", host="node3") == int((NOW - 9 * DAY).timestamp())
    # a keyring without its record: every stage 0, no made-up time
    assert {v for k, v in found[metrics.KEYRING_STAGE].items() if ("name", "/etc/app/lost") in k} == {0}
    assert not [key for key in since if ("name", "/etc/app/lost") in key]
    for family in found.values():  # nothing that changes on renewal is a label
        for key in family:
            assert not {"serial", "fingerprint"} & {pair[0] for pair in key}


@pytest.mark.controller
def test_rotation_status_rerun_is_unchanged_and_a_real_change_rewrites(make_ca, tmp_path, parse):
    ca, nodes = status_setup(make_ca, tmp_path)
    path = str(tmp_path / "pki.prom")
    req = status.StatusRequest(ca_paths=[ca.path], nodes=nodes, metrics_path=path)
    assert status.report(req, now=NOW)["changed"]
    before = os.stat(path)
    later = status.report(req, now=NOW + datetime.timedelta(hours=1))
    assert not later["changed"] and os.stat(path).st_ino == before.st_ino
    assert not status.report(req, check_mode=True, now=NOW + datetime.timedelta(hours=2))["changed"]
    # the node's certificate was renewed: a new notAfter, no longer due
    nodes[0]["certificate"]["not_after"] = isoformat(NOW + 90 * DAY)
    dry = status.report(req, check_mode=True, now=NOW)
    assert dry["changed"] and os.stat(path).st_ino == before.st_ino
    assert status.report(req, now=NOW)["changed"]
    due = parse(open(path).read())[metrics.CERTIFICATE_RENEWAL_DUE]
    assert one(due, host="node1") == 0


@pytest.mark.controller
def test_rotation_status_metrics_beside_an_unchanged_report(make_ca, tmp_path):
    ca, nodes = status_setup(make_ca, tmp_path)
    req = status.StatusRequest(ca_paths=[ca.path], nodes=nodes, report_path=str(tmp_path / "status.md"))
    status.report(req, now=NOW)
    req.metrics_path = str(tmp_path / "pki.prom")
    assert status.report(req, now=NOW)["changed"]  # the report is the same, the metrics file is new
    assert not status.report(req, now=NOW)["changed"]


@pytest.mark.controller
def test_a_host_listed_twice_is_one_series(make_ca, tmp_path, parse):
    twice = [{"host": "node1", "certificate": {"exists": True, "subject": "CN=node1", "not_after": isoformat(NOW + d)}}
             for d in (90 * DAY, 2 * DAY)]
    req = status.StatusRequest(nodes=twice, metrics_path=str(tmp_path / "pki.prom"))
    found = parse(status.report(req, now=NOW)["metrics"])
    assert one(found[metrics.CERTIFICATE_RENEWAL_DUE], host="node1") == 1  # the more urgent one
    assert one(found[metrics.CERTIFICATE_NOT_AFTER], host="node1") == int((NOW + 2 * DAY).timestamp())


def status_params(**overrides):
    params = dict(ca_paths=[], cas=[], rotation_states=[], nodes=[], kubernetes=False, namespaces=[],
                  warn_within="30d", report_path=None, metrics_path=None)
    params.update(overrides)
    return params


@pytest.mark.controller
def test_rotation_status_refuses_a_path_the_collector_would_not_read(tmp_path):
    for bad in (str(tmp_path / "pki.txt"), str(tmp_path / "pki.prom.new"), "pki.prom"):
        with pytest.raises(PKIError) as caught:
            status.StatusRequest.from_params(status_params(metrics_path=bad))
        assert caught.value.field == "metrics_path" and ".prom" in str(caught.value)
    assert status.StatusRequest.from_params(status_params(metrics_path=str(tmp_path / "a.prom"))).metrics_path


@pytest.mark.controller
def test_rotation_status_does_not_follow_a_link(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep\n")
    path = tmp_path / "pki.prom"
    os.symlink(str(target), str(path))
    req = status.StatusRequest(nodes=[{"host": "n", "certificate": {"exists": False}}], metrics_path=str(path))
    assert status.report(req, check_mode=True, now=NOW)["changed"]
    with pytest.raises(PKIError) as caught:
        status.report(req, now=NOW)
    assert caught.value.field == "metrics_path"
    assert target.read_text() == "keep\n" and os.path.islink(str(path))


# ------------------------------------------------------------------ certificate_info on a node


class Ctx:
    def __init__(self, check_mode=False, **params):
        self.params = dict(path=None, bundle_path=None, chain_path=None, key_path=None, key_passphrase=None,
                           renew_before="30d", names=None, crl_path=None, metrics_path=None, metrics_labels=None)
        self.params.update(params)
        self.check_mode = check_mode


def node_cert(make_ca, tmp_path, valid_for):
    ca = make_ca("node CA")
    key = generate_private_key(KeySpec())
    ident = build_identity(["n1.pki.test"])
    cert = ca.sign(build_csr(key, ident), ident, ["server"], valid_for)
    path = tmp_path / "node.crt"
    path.write_bytes(pem_of(cert))
    return cert, str(path)


def test_certificate_info_writes_not_after_and_due(make_ca, tmp_path, parse):
    cert, cert_path = node_cert(make_ca, tmp_path, 90 * DAY)
    path = str(tmp_path / "pki.prom")
    ctx = Ctx(path=cert_path, metrics_path=path, metrics_labels={"host": "node1", "cluster": "a"})
    dry = certificate_info.certificate_info(Ctx(check_mode=True, **ctx.params))
    assert dry["changed"] and not os.path.exists(path)
    out = certificate_info.certificate_info(ctx)
    assert out["changed"] and open(path).read() == out["metrics"] == dry["metrics"]
    found = parse(out["metrics"])
    labels = {"host": "node1", "cluster": "a", "kind": "node_certificate", "path": cert_path}
    assert found[metrics.CERTIFICATE_NOT_AFTER] == {frozenset(labels.items()): int(not_valid_after(cert).timestamp())}
    assert found[metrics.CERTIFICATE_RENEWAL_DUE] == {frozenset(labels.items()): 0}
    assert set(found) == {metrics.CERTIFICATE_NOT_AFTER, metrics.CERTIFICATE_RENEWAL_DUE}  # no "seconds left"
    # a rerun (seconds later, expires_in_seconds differs) leaves the file alone
    inode = os.stat(path).st_ino
    assert not certificate_info.certificate_info(ctx)["changed"] and os.stat(path).st_ino == inode
    assert not certificate_info.certificate_info(Ctx(check_mode=True, **ctx.params))["changed"]
    # inside renew_before: due
    ctx.params["renew_before"] = "100d"
    due = certificate_info.certificate_info(ctx)
    assert due["changed"] and due["renewal_reasons"]
    assert parse(open(path).read())[metrics.CERTIFICATE_RENEWAL_DUE] == {frozenset(labels.items()): 1}


def test_certificate_info_without_metrics_is_read_only_and_a_missing_certificate_is_due(tmp_path, parse):
    assert certificate_info.certificate_info(Ctx(path=str(tmp_path / "none.crt"))) == {"changed": False,
                                                                                       "exists": False}
    out = certificate_info.certificate_info(Ctx(path=str(tmp_path / "none.crt"),
                                                metrics_path=str(tmp_path / "pki.prom")))
    assert out["changed"] and not out["exists"]
    found = parse(out["metrics"])
    assert list(found) == [metrics.CERTIFICATE_RENEWAL_DUE]
    assert list(found[metrics.CERTIFICATE_RENEWAL_DUE].values()) == [1]


def test_certificate_info_refuses_bad_paths_labels_and_links(make_ca, tmp_path):
    _cert, cert_path = node_cert(make_ca, tmp_path, 90 * DAY)
    for params, field in ((dict(metrics_path=str(tmp_path / "pki.json")), "metrics_path"),
                          (dict(metrics_path=str(tmp_path / "a.prom"), metrics_labels={"bad-name": "x"}),
                           "metrics_labels"),
                          (dict(metrics_path=str(tmp_path / "a.prom"), metrics_labels={"path": "x"}),
                           "metrics_labels"),
                          (dict(metrics_labels={"host": "x"}), "metrics_labels")):
        with pytest.raises(PKIError) as caught:
            certificate_info.certificate_info(Ctx(path=cert_path, **params))
        assert caught.value.field == field
    assert not os.path.exists(str(tmp_path / "a.prom"))
    target = tmp_path / "target"
    target.write_text("keep\n")
    os.symlink(str(target), str(tmp_path / "link.prom"))
    with pytest.raises(PKIError) as caught:
        certificate_info.certificate_info(Ctx(path=cert_path, metrics_path=str(tmp_path / "link.prom")))
    assert caught.value.field == "metrics_path" and target.read_text() == "keep\n"


def test_a_ca_certificate_is_kind_ca(make_ca, tmp_path, parse):
    ca = make_ca("root")
    path = tmp_path / "root.crt"
    path.write_bytes(pem_of(ca.certificate))
    out = certificate_info.certificate_info(Ctx(path=str(path), metrics_path=str(tmp_path / "pki.prom")))
    found = parse(out["metrics"])
    assert one(found[metrics.CERTIFICATE_NOT_AFTER], kind="ca") == int(not_valid_after(ca.certificate).timestamp())
