# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line("markers", "controller: needs the controller's cryptography (>= 45); the rest of the "
                                       "engine suite also runs on the nodes' Debian python3-cryptography 38")
