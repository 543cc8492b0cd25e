# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's quick path answers a run with nothing due without importing cryptography."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import node
from ansible_collections.securebydefault.pki.tests.unit.plugins.module_utils.pki.test_node import converge, request_for

SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["cryptography"] = None  # any import of cryptography now raises ImportError
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops import node_files as m
    params = json.loads(sys.argv[1])
    names, discovered = m.requested_names(params["names"], params["discover"])
    print(json.dumps(m.quick_result(params, names, discovered)))
""")


def params_for(req, **overrides):
    params = dict(stage="prepare", path=os.path.dirname(req.cert.path), name="node", names=["n.pki.test"],
                  discover=[], issuer=req.issuer_pem, bundle=req.bundle_pem, truststore=None, certificate=None,
                  allow_wildcard=False, usages=["server", "client"], renew_before="30d", key_passphrase=None,
                  regenerate_key="on_renewal", force=False, backup=False, pkcs12_keystore=False,
                  pkcs12_passphrase=None, key_type="ec", key_size=None, owner=None, group=None,
                  key_mode="0600", cert_mode="0644", revoked_serials=[], host="", allow_group_readable_key=False,
                  subject=None)
    params.update(overrides)
    return params


def quick(params):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(params)], capture_output=True, text=True,
                          check=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    return json.loads(proc.stdout)


@pytest.mark.controller  # the runner imports ansible's module_utils (AnsiballZ ships them to nodes)
def test_quick_path_needs_no_cryptography(make_ca, tmp_path):
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"])
    converge(ca, req)
    answer = quick(params_for(req))
    assert answer["changed"] is False and answer["reasons"] == []
    assert answer["certificate"]["names"] == ["n.pki.test"]
    # anything due or different falls through to the full check (None), still without cryptography
    assert quick(params_for(req, names=["n.pki.test", "10.1.1.1"])) is None
    assert quick(params_for(req, force=True)) is None
    assert quick(params_for(req, renew_before="100d")) is None
    assert quick(params_for(req, revoked_serials=[answer["certificate"]["serial"]])) is None
    # a subject asked for now was not asked for when the certificate was issued
    assert quick(params_for(req, subject={"common_name": "system:node:n", "organizations": ["system:nodes"]})) is None
    assert quick(params_for(req, subject={"common_name": None, "organizations": None})) == answer


def test_abort_removes_the_pending_key(make_ca, tmp_path):
    ca = make_ca()
    req = request_for(ca, tmp_path / "n", ["n.pki.test"])
    prepared = node.prepare(req)
    assert prepared.pending_created and os.path.exists(req.pending_key_path)
    node.abort(req)
    assert not os.path.exists(req.pending_key_path)
    again = node.prepare(req)  # the next run starts clean
    assert again.pending_created
