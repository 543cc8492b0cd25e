# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's services as cert_manager_certificates items: each valid for the module, with the role's defaults."""
from __future__ import annotations

import pytest

pytest.importorskip("ansible")

from ansible.errors import AnsibleFilterError  # noqa: E402
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: E402

from ansible_collections.securebydefault.pki.plugins.filter.cert_manager_service_certificates import (  # noqa: E402
    cert_manager_service_certificates as items_of)
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.cert_manager_spec import (  # noqa: E402
    CERTIFICATE_SPEC)

SETTINGS = {"domain": "svc.cluster.local", "issuer_name": "zone-ca", "spiffe_trust_domain": "zone.example",
            "usages": ["server auth", "client auth"], "valid_for": "24h", "renew_before": "16h"}


def test_each_service_becomes_a_valid_certificate_with_the_role_defaults():
    items = items_of([{"name": "api", "namespace": "prod"},
                      {"name": "seed", "namespace": "akka", "pkcs12": True, "reloader": True, "valid_for": "8h",
                       "renew_before": "4h", "dns_names": ["seed.internal"], "ip_addresses": ["10.0.0.5"]}],
                     SETTINGS)
    for item in items:
        result = ArgumentSpecValidator(CERTIFICATE_SPEC).validate(item)
        assert not result.error_messages, result.error_messages
    api, seed = items
    assert api["dns_names"] == ["api.prod.svc.cluster.local"] and api["common_name"] == "api.prod.svc.cluster.local"
    assert api["uris"] == ["spiffe://zone.example/ns/prod/sa/api"] and api["secret_name"] == "api-tls"
    assert api["valid_for"] == "24h" and "keystores" not in api and "secret_annotations" not in api
    assert api["private_key"] == {"algorithm": "ECDSA", "size": 256, "rotation_policy": "Always"}
    assert seed["dns_names"] == ["seed.akka.svc.cluster.local", "seed.internal"]
    assert seed["valid_for"] == "8h" and seed["renew_before"] == "4h" and seed["ip_addresses"] == ["10.0.0.5"]
    assert seed["keystores"]["pkcs12"]["password_secret_name"] == "seed-keystore-password"
    assert seed["secret_annotations"] == {"reloader.stakater.com/match": "true"}


@pytest.mark.parametrize("services, settings, words", [
    ([{"name": "api"}], SETTINGS, "cert_manager_pki_services[0]"),
    (["api"], SETTINGS, "cert_manager_pki_services[0]"),
    ([{"name": "api", "namespace": "prod"}], {"domain": "x"}, "settings lack"),
])
def test_bad_services_name_the_entry(services, settings, words):
    with pytest.raises(AnsibleFilterError, match=words.replace("[", r"\[").replace("]", r"\]")):
        items_of(services, settings)
