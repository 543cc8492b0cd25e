# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run wrapper: the cryptography version is compared, errors name the option, deprecated aliases."""
from __future__ import annotations

import pytest

pytest.importorskip("ansible")  # the use cases and their runner run on the controller, not on the nodes

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import runner
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

pytestmark = pytest.mark.controller  # the runner imports ansible's module_utils


@pytest.mark.parametrize("version, ok", [("38.0", True), ("38.0.4", True), ("46.0.1", True), ("37.0.4", False),
                                         ("3.4.8", False), ("41.0.0rc1", True), ("38", True)])
def test_the_cryptography_version_is_compared(version, ok):
    problem = runner.cryptography_problem(version=version)
    assert (problem is None) == ok
    if not ok:
        assert version in problem and ">= 38.0" in problem


def test_missing_cryptography_is_named():
    assert "cryptography >= 38.0" in runner.cryptography_problem(version=None, import_error="ImportError")


class FakeModule:
    def __init__(self, params, check_mode=False):
        self.params, self.check_mode, self._diff = params, check_mode, False
        self.warnings, self.exited, self.failed = [], None, None

    def warn(self, message):
        self.warnings.append(message)

    def exit_json(self, **result):
        self.exited = result
        raise SystemExit(0)

    def fail_json(self, **result):
        self.failed = result
        raise SystemExit(1)


def test_a_pki_error_fails_naming_field_and_fix_and_warnings_are_kept():
    def work(ctx):
        ctx.warn("careful")
        raise PKIError("valid_for", "too long", "shorten it")

    module = FakeModule({})
    with pytest.raises(SystemExit):
        runner.run(module, work)
    assert module.failed == {"msg": "valid_for: too long. Fix: shorten it", "field": "valid_for", "fix": "shorten it"}
    assert module.warnings == ["careful"] and module.exited is None


def test_the_result_and_check_mode_reach_the_use_case():
    module = FakeModule({"x": 1}, check_mode=True)
    with pytest.raises(SystemExit):
        runner.run(module, lambda ctx: {"changed": ctx.check_mode, "x": ctx.params["x"]})
    assert module.exited == {"changed": True, "x": 1}


def test_a_ca_directory_store_is_made_from_the_options(tmp_path):
    module = FakeModule({"ca_path": str(tmp_path / "ca"), "ca_secret": None})
    with pytest.raises(SystemExit):
        runner.run(module, lambda ctx: {"where": ctx.store.where, "field": ctx.store.field}, ca=runner.CAOptions())
    assert module.exited == {"where": str(tmp_path / "ca"), "field": "ca_path"}


def test_deprecated_alias_spec():
    spec = runner.deprecated("ca_path", "path")
    assert spec == {"aliases": ["path"], "deprecated_aliases": [
        {"name": "path", "version": "1.0.0", "collection_name": "securebydefault.pki"}]}


def test_what_the_use_case_knew_is_returned_with_its_failure():
    def work(ctx):
        exc = PKIError("wait_timeout", "not Ready", "raise wait_timeout")
        exc.result = {"ready": False}
        raise exc

    module = FakeModule({})
    with pytest.raises(SystemExit):
        runner.run(module, work)
    assert module.failed["ready"] is False and module.failed["field"] == "wait_timeout"


@pytest.mark.parametrize("params, conflict", [
    ({"path": "/srv/old", "ca_path": "/srv/new"}, True),
    ({"path": "/srv/old"}, False),
    ({"ca_path": "/srv/new"}, False),
])
def test_an_option_and_its_deprecated_name_together_are_refused(params, conflict):
    """ansible-core lets the alias win silently; the runner refuses both before anything runs."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec = {"ca_path": dict(type="path", **runner.deprecated("ca_path", "path"))}
    module = FakeModule({})
    module.validation_result = ArgumentSpecValidator(spec).validate(params)
    module.params = module.validation_result.validated_parameters
    ran = []
    with pytest.raises(SystemExit):
        runner.run(module, lambda ctx: ran.append(ctx.params["ca_path"]) or {}, crypto=False)
    if conflict:
        assert module.failed["field"] == "ca_path" and "path" in module.failed["msg"] and not ran
    else:
        assert module.failed is None and ran == [params.get("path") or params.get("ca_path")]
