# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The issuance record vouches for the files only while they are exactly what was installed."""
from __future__ import annotations

import datetime
import json
import os

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import record
from ansible_collections.securebydefault.pki.tests.unit.plugins.module_utils.pki.test_node import converge, request_for

DAY = datetime.timedelta(days=1)


@pytest.fixture
def installed(make_ca, tmp_path):
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"])
    converge(ca, req)
    return req


def valid(req, **overrides):
    args = dict(cert_path=req.cert.path, key_path=req.key.path, chain_path=req.chain.path,
                bundle_path=req.bundle.path, bundle_pem=req.bundle_pem, issuer_pem=req.issuer_pem,
                names=["n.pki.test"], usages=req.usages, key="ec/256", renew_before=30 * DAY,
                modes={"key": 0o600, "cert": 0o644}, uid=-1, gid=-1,
                now=datetime.datetime.now(datetime.timezone.utc))
    args.update(overrides)
    return record.still_valid(record.load(req.cert.path), **args)


def test_record_written_with_key_mode(installed):
    path = record.record_path(installed.cert.path)
    assert path.endswith("node.issued.json")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert valid(installed)
    assert record.load(installed.cert.path)["subject"] == "CN=n.pki.test"


def test_record_of_an_earlier_format_is_not_believed(installed):
    """Format 2 had no subject: its record cannot say which subject was asked for."""
    path = record.record_path(installed.cert.path)
    data = record.load(installed.cert.path)
    data["format"] = 2
    del data["subject"], data["requested_subject"]
    data["mac"] = record._mac(record.mac_key(installed.cert.path), data)
    with open(path, "w") as handle:
        handle.write(json.dumps(data))
    assert record.load(installed.cert.path) is None and not valid(installed)


@pytest.mark.parametrize("change", ["names", "usages", "key", "issuer", "window", "bundle", "subject"])
def test_any_difference_in_what_is_wanted_invalidates(installed, change):
    overrides = {"names": {"names": ["n.pki.test", "10.0.0.1"]}, "usages": {"usages": ["server"]},
                 "subject": {"requested_subject": {"common_name": "system:node:n", "organizations": ["system:nodes"]}},
                 "key": {"key": "rsa/3072"}, "issuer": {"issuer_pem": installed.issuer_pem + "\n#"},
                 "window": {"renew_before": 95 * DAY}, "bundle": {"bundle_pem": "other"}}[change]
    assert not valid(installed, **overrides)


@pytest.mark.parametrize("target", ["cert", "key", "chain"])
def test_any_edit_of_the_files_invalidates(installed, target):
    path = getattr(installed, target).path
    with open(path, "ab") as handle:
        handle.write(b"\n")
    assert not valid(installed)


def test_mode_drift_invalidates(installed):
    os.chmod(installed.key.path, 0o644)
    assert not valid(installed)


def test_missing_or_garbled_record(installed):
    path = record.record_path(installed.cert.path)
    with open(path, "w") as handle:
        handle.write("{not json")
    assert record.load(installed.cert.path) is None
    os.unlink(path)
    assert not valid(installed)
