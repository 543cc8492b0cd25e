# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role variable is in the role's argument spec with a description, as AWX surveys and ansible-doc show them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())


def test_every_role_has_an_argument_spec():
    assert ROLES == sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_spec_agree(role):
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    undocumented = sorted(set(defaults) - set(options))
    assert not undocumented, "%s: defaults without an argument spec entry: %s" % (role, undocumented)
    for name, option in options.items():
        assert name.startswith(role + "_"), "%s: %s does not carry the role's prefix" % (role, name)
        assert option.get("description"), "%s: %s has no description" % (role, name)
        if name not in defaults:
            assert option.get("required"), "%s: %s has neither a default nor required: true" % (role, name)
            continue
        value = defaults[name]
        if isinstance(value, str) and "{{" in value:
            continue  # templated defaults are computed at run time
        if "default" in option:
            assert option["default"] == value or (value is None and option["default"] in ("", None)), \
                "%s: %s documents default %r, defaults/main.yml has %r" % (role, name, option["default"], value)


def test_ansible_doc_shows_every_option():
    names = ["securebydefault.pki.%s" % role for role in ROLES]
    shown = subprocess.run(["ansible-doc", "-t", "role", "--json"] + names, capture_output=True, text=True,
                           check=False)
    assert shown.returncode == 0, shown.stderr
    docs = json.loads(shown.stdout)
    for role in ROLES:
        spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        want = set(spec["argument_specs"]["main"]["options"])
        entry = docs["securebydefault.pki.%s" % role]["entry_points"]["main"]
        assert set(entry["options"]) == want
        assert all(entry["options"][name].get("description") for name in want)
