# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the use cases on the in-memory API: options checked by the module's own argument spec."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


class FakeModule:
    """What runner.Context reads of an AnsibleModule."""

    def __init__(self, params, check_mode, diff):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff


@pytest.fixture
def kube():
    from fake_kube import FakeKube  # pylint: disable=import-outside-toplevel

    return FakeKube()


@pytest.fixture
def context(kube):
    """context(ARGUMENT_SPEC, params, check_mode=False) -> a runner Context on the fake API.

    The params go through the module's argument spec (defaults, aliases, deprecations) as AnsibleModule does.
    """
    # the use cases run on the controller: ansible is imported only where it is (not on the nodes' python3)
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import (  # noqa: E501 pylint: disable=import-outside-toplevel
        CAOptions, Context, _ca_store)

    def make(spec, params, check_mode=False, diff=True):
        validated = ArgumentSpecValidator(spec).validate(dict(params))
        assert not validated.error_messages, validated.error_messages
        ctx = Context(FakeModule(validated.validated_parameters, check_mode, diff))
        ctx._kube = kube  # pylint: disable=protected-access
        ctx.deprecations = validated._deprecations  # pylint: disable=protected-access
        if ctx.params.get("ca_path") or ctx.params.get("ca_secret"):  # as runner.run(ca=CAOptions()) does
            ctx.store = _ca_store(ctx, CAOptions())
        return ctx
    return make
