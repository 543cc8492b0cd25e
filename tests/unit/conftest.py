# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ca_store
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import NameConstraintsSpec


def pytest_configure(config):
    config.addinivalue_line("markers", "controller: needs the controller's cryptography (>= 45); the rest of the "
                                       "engine suite also runs on the nodes' Debian python3-cryptography 38")


@pytest.fixture
def make_ca(tmp_path):
    """Create a CA directory; returns the loaded CA (its directory is ``ca.path``)."""
    counter = {"n": 0}

    def factory(common_name="Test CA", passphrase="correct horse", intermediate=False, permitted_dns=(),
                permitted_ip_ranges=(), permitted_uri_domains=(), excluded_dns=(), now=None, **kwargs):
        counter["n"] += 1
        path = str(tmp_path / ("ca%d" % counter["n"]))
        settings = ca_store.CASettings(
            common_name=common_name, intermediate=intermediate,
            constraints=NameConstraintsSpec.parse(permitted_dns, permitted_ip_ranges, permitted_uri_domains,
                                                  excluded_dns),
            **kwargs)
        ca_store.write_new_ca(path, ca_store.build_ca_files(settings, passphrase, now=now))
        return ca_store.load_ca(path, passphrase, now=now)

    return factory
