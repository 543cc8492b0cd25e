# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every EXAMPLES task uses only options that exist, with values of the right type."""
from __future__ import annotations

import ast
import glob
import os

import pytest

pytestmark = pytest.mark.controller  # imports ansible, which only the controller has

MODULES = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "plugins", "modules",
                                        "*.py")))
NAMESPACE = "securebydefault.pki."


def module_source(path):
    with open(path) as handle:
        return handle.read()


def examples_of(source):
    import yaml
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXAMPLES":
            return yaml.safe_load(node.value.value)
    return []


def argument_spec_of(path):
    """Run the module's main() with AnsibleModule captured, to read its real argument spec."""
    import importlib.util
    from unittest import mock

    spec = importlib.util.spec_from_file_location("example_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    captured = {}

    class Stop(Exception):
        pass

    def fake(*args, **kwargs):
        captured.update(kwargs)
        raise Stop()

    with mock.patch.object(module, "AnsibleModule", fake):
        with pytest.raises(Stop):
            module.main()
    return captured["argument_spec"]


def placeholder(value, option):
    """Jinja values cannot be validated here: stand in a value of the option's type."""
    if isinstance(value, str) and "{{" in value:
        if option.get("type") == "list" and option.get("elements") == "dict":
            return []
        return {"list": ["x"], "bool": True, "int": 1, "dict": {}}.get(option.get("type", "str"), "x")
    return value


@pytest.mark.parametrize("path", MODULES, ids=[os.path.basename(m) for m in MODULES])
def test_examples_match_argument_spec(path):
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
    name = os.path.basename(path)[:-3]
    tasks = [t for t in examples_of(module_source(path)) if NAMESPACE + name in t]
    assert tasks, "%s has no EXAMPLES task using it" % name
    spec = argument_spec_of(path)
    for task in tasks:
        args = task[NAMESPACE + name]
        unknown = sorted(set(args) - set(spec))
        assert not unknown, "%s EXAMPLES %r uses unknown options %s" % (name, task.get("name"), unknown)
        values = {k: placeholder(v, spec[k]) for k, v in args.items()}
        result = ArgumentSpecValidator(spec).validate(values)
        assert not result.error_messages, "%s EXAMPLES %r: %s" % (name, task.get("name"), result.error_messages)
