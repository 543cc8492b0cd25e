# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options to cert-manager specs: what is refused before a request is sent, and the secure defaults."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ansible_collections.securebydefault.pki.plugins.module_utils.k8s import certmanager as cm
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError


def base(**extra):
    params = {"name": "web", "issuer_name": "ca", "dns_names": ["web.prod.svc.cluster.local"], "valid_for": "24h"}
    params.update(extra)
    return params


@pytest.mark.parametrize("text,seconds", [
    ("24h", 86400), ("1h30m", 5400), ("90m", 5400), ("2160h", 2160 * 3600), ("1.5h", 5400),
    ("300s", 300), ("1h0m0s", 3600), ("500ms", 0.5),
])
def test_go_durations(text, seconds):
    assert cm.parse_go_duration(text, "duration") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1d", "24", "h", "", "24 h", "-1h", "1h 30m", "1y", "24H"])
def test_not_go_durations(text):
    with pytest.raises(PKIError) as err:
        cm.parse_go_duration(text, "duration")
    assert err.value.field == "duration" and err.value.fix


@given(st.integers(min_value=0, max_value=10 ** 6), st.integers(min_value=0, max_value=59),
       st.integers(min_value=0, max_value=59))
def test_format_and_parse_round_trip(hours, minutes, seconds):
    total = hours * 3600 + minutes * 60 + seconds
    assert cm.parse_go_duration(cm.format_seconds(total) if total else "0s", "d") == total


def test_secure_defaults():
    spec, refs = cm.certificate_spec(base())
    assert spec["privateKey"] == {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always", "encoding": "PKCS1"}
    assert spec["renewBeforePercentage"] == 67 and "renewBefore" not in spec  # 24h -> renewed after 8h
    assert spec["secretName"] == "web" and spec["issuerRef"] == {"name": "ca", "kind": "Issuer",
                                                                 "group": "cert-manager.io"}
    assert refs == []


@pytest.mark.parametrize("params,field,words", [
    (base(renew_before="24h"), "renew_before", "not shorter than duration"),
    (base(renew_before="25h"), "renew_before", "not shorter than duration"),
    (base(renew_before="4m"), "renew_before", "minimum of 5m"),
    (base(valid_for="59m"), "valid_for", "minimum of 1h"),
    (base(valid_for="1x"), "valid_for", "not a duration"),
    (base(valid_for="101y"), "valid_for", "longer than 100 years"),
    (base(renew_before="1h", renew_before_percentage=50), "renew_before", "both set"),
    (base(renew_before_percentage=100), "renew_before_percentage", "between 1 and 99"),
    (base(dns_names=["*.prod.example"]), "dns_names", "wildcard"),
    (base(dns_names=["bad_name.example"]), "dns_names", "not a valid DNS name"),
    (base(dns_names=["a.example", "a.example"]), "dns_names", "twice"),
    (base(dns_names=[]), "dns_names", "names nothing"),
    (base(uris=["spiffe://Cluster.Local/x"]), "uris", "invalid trust domain"),
    (base(dns_names=["*.com"], allow_wildcard=True), "dns_names", "at least three labels"),
    (base(uris=["not a uri"]), "uris", "absolute URI"),
    (base(ip_addresses=["10.0.0.300"]), "ip_addresses", "not an IP"),
    (base(private_key={"algorithm": "ECDSA", "size": 224}), "private_key.size", "256, 384, 521"),
    (base(private_key={"algorithm": "Ed25519", "size": 256}), "private_key.size", "no size"),
    (base(usages=["server-auth"]), "usages", "unknown usage"),
    (base(name_constraints={"permitted": {"dns_domains": ["x"]}}), "name_constraints", "only apply to a CA"),
    (base(is_ca=True, name_constraints={"permitted": {"ip_ranges": ["10.0.0.1/8"]}}),
     "name_constraints.permitted.ip_ranges", "not a CIDR"),
    (base(keystores={"pkcs12": {"create": True}}), "keystores.pkcs12.password_secret_name", "required"),
    (base(name="Web"), "name", "not a valid Kubernetes object name"),
    (base(revision_history_limit=0), "revision_history_limit", "1 or more"),
])
def test_refused_with_the_field_and_a_fix(params, field, words):
    with pytest.raises(PKIError) as err:
        cm.certificate_spec(params)
    assert err.value.field == field
    assert words in err.value.problem
    assert err.value.fix


def test_wildcards_only_when_allowed():
    spec, _refs = cm.certificate_spec(base(dns_names=["*.prod.example"], allow_wildcard=True))
    assert spec["dnsNames"] == ["*.prod.example"]


@pytest.mark.parametrize("valid_for,duration,renew_before,renew", [
    ("24h", "24h", "16h", "16h"),      # cert-manager's Go syntax, passed on as written
    ("1h30m", "1h30m", "5m", "5m"),
    ("90d", "2160h", "30d", "720h"),   # the collection's syntax (node_certificate's valid_for), converted
    ("2w", "336h", "1d12h", "36h"),
    ("1y", "8760h", "720h", "720h"),
])
def test_valid_for_takes_both_duration_forms(valid_for, duration, renew_before, renew):
    spec, _refs = cm.certificate_spec(base(valid_for=valid_for, renew_before=renew_before))
    assert spec["duration"] == duration and spec["renewBefore"] == renew
    assert cm.parse_go_duration(spec["duration"], "d") == cm.lifetime(valid_for, "valid_for")[1]


def test_renew_before_is_checked_against_valid_for_in_either_form():
    with pytest.raises(PKIError) as err:
        cm.certificate_spec(base(valid_for="1d", renew_before="24h"))
    assert err.value.field == "renew_before" and "not shorter than duration 1d (valid_for)" in err.value.problem


def test_ca_with_constraints_and_keystores():
    spec, refs = cm.certificate_spec(base(
        is_ca=True, renew_before="16h",
        name_constraints={"critical": True, "permitted": {"dns_domains": ["prod.svc.cluster.local"],
                                                          "ip_ranges": ["10.0.0.0/8"]}},
        keystores={"pkcs12": {"password_secret_name": "pw", "create": True, "profile": "Modern2023",
                              "create_password_secret": True}},
        secret_annotations={"reloader.stakater.com/match": True}))
    assert spec["isCA"] is True and spec["renewBefore"] == "16h" and "renewBeforePercentage" not in spec
    permitted = {"dnsDomains": ["prod.svc.cluster.local"], "ipRanges": ["10.0.0.0/8"]}
    assert spec["nameConstraints"] == {"critical": True, "permitted": permitted}
    assert spec["keystores"] == {"pkcs12": {"create": True, "profile": "Modern2023",
                                            "passwordSecretRef": {"name": "pw", "key": "password"}}}
    assert refs == [("keystores.pkcs12.password_secret_name", "pw", "password", True)]
    assert spec["secretTemplate"] == {"annotations": {"reloader.stakater.com/match": "True"}}


def test_ready_only_for_the_current_generation():
    obj = {"metadata": {"generation": 2},
           "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]}}
    assert not cm.is_ready(obj)
    obj["status"]["conditions"][0]["observedGeneration"] = 2
    assert cm.is_ready(obj)
    obj["status"]["conditions"][0]["status"] = "False"
    assert not cm.is_ready(obj)
    assert not cm.is_ready(None)


def test_issued_only_once_the_revision_is_written():
    # cert-manager's readiness controller may set Ready before its issuing controller writes status.revision
    obj = {"metadata": {"generation": 1},
           "status": {"conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]}}
    assert cm.is_ready(obj) and not cm.is_issued(obj)
    obj["status"]["revision"] = 1
    assert cm.is_issued(obj)
    obj["status"]["conditions"][0]["status"] = "False"
    assert not cm.is_issued(obj)
    assert not cm.is_issued(None)


def test_issuer_specs():
    assert cm.issuer_spec({"type": "self_signed"}) == {"selfSigned": {}}
    assert cm.issuer_spec({"type": "ca", "ca_secret_name": "prod-ca"}) == {"ca": {"secretName": "prod-ca"}}
    with pytest.raises(PKIError, match="ca_secret_name"):
        cm.issuer_spec({"type": "ca"})
