# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of a cert-manager Certificate (cert_manager_certificate, each item of cert_manager_certificates) and
of an Issuer (cert_manager_issuer); cert_manager_pki checks the objects it makes against them too."""

from __future__ import annotations

import copy

from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import deprecated
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import secret_option
from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.certmanager import GROUP

_NAMES = dict(
    dns_domains=dict(type="list", elements="str"),
    ip_ranges=dict(type="list", elements="str"),
    email_addresses=dict(type="list", elements="str"),
    uri_domains=dict(type="list", elements="str"),
)
_STORE = dict(
    create=dict(type="bool", default=True),
    password_secret_name=dict(type="str", no_log=False),
    password_secret_key=dict(type="str", default="password", no_log=False),
    create_password_secret=dict(type="bool", default=False),
)

# The options of one Certificate (cert_manager_certificate; each item of cert_manager_certificates).
CERTIFICATE_SPEC = dict(
    name=dict(type="str", required=True),
    namespace=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    secret_name=dict(type="str"),
    issuer_name=dict(type="str"),
    issuer_kind=dict(type="str", choices=["Issuer", "ClusterIssuer"], default="Issuer"),
    issuer_group=dict(type="str", default=GROUP),
    common_name=dict(type="str"),
    dns_names=dict(type="list", elements="str"),
    ip_addresses=dict(type="list", elements="str"),
    uris=dict(type="list", elements="str"),
    email_addresses=dict(type="list", elements="str"),
    subject_organizations=dict(type="list", elements="str"),
    allow_wildcard=dict(type="bool", default=False, **deprecated("allow_wildcard", "allow_wildcards")),
    usages=dict(type="list", elements="str"),
    is_ca=dict(type="bool", default=False),
    valid_for=dict(type="str", default="24h", **deprecated("valid_for", "duration")),
    renew_before=dict(type="str"),
    renew_before_percentage=dict(type="int"),
    private_key=dict(
        type="dict",
        no_log=False,
        options=dict(
            algorithm=dict(type="str", choices=["ECDSA", "RSA", "Ed25519"], default="ECDSA"),
            size=dict(type="int"),
            encoding=dict(type="str", choices=["PKCS1", "PKCS8"], default="PKCS1"),
            rotation_policy=dict(type="str", choices=["Always", "Never"], default="Always"),
        ),
    ),
    name_constraints=dict(
        type="dict",
        options=dict(
            critical=dict(type="bool", default=True),
            permitted=dict(type="dict", options=copy.deepcopy(_NAMES)),
            excluded=dict(type="dict", options=copy.deepcopy(_NAMES)),
        ),
    ),
    keystores=dict(
        type="dict",
        no_log=False,
        options=dict(
            pkcs12=dict(
                type="dict",
                no_log=False,
                options=dict(
                    copy.deepcopy(_STORE), profile=dict(type="str", choices=["LegacyRC2", "LegacyDES", "Modern2023"])
                ),
            ),
            jks=dict(type="dict", no_log=False, options=dict(copy.deepcopy(_STORE), alias=dict(type="str"))),
        ),
    ),
    secret_labels=dict(type="dict", no_log=False),
    secret_annotations=dict(type="dict", no_log=False),
    revision_history_limit=dict(type="int"),
    renew=dict(type="bool", default=False),
)
# Waiting for Ready: per Certificate in cert_manager_certificate, for all of them in cert_manager_certificates.
WAIT_SPEC = dict(
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=120),
)

# The options of an Issuer or ClusterIssuer (cert_manager_issuer, without the connection options).
ISSUER_SPEC = dict(
    name=dict(type="str", required=True),
    kind=dict(type="str", choices=["Issuer", "ClusterIssuer"], default="Issuer"),
    namespace=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    type=dict(type="str", choices=["self_signed", "ca"], default="self_signed"),
    ca_secret_name=dict(type="str", no_log=False),
    ca_path=dict(type="path", **deprecated("ca_path", "cluster_ca_path")),
    ca_secret=secret_option(),
    ca_passphrase=dict(type="str", no_log=True),
    replace_ca_secret=dict(type="bool", default=False),
    ca_secret_holds=dict(type="str", choices=["intermediate", "signing_ca"], default="intermediate"),
    intermediate_permitted_dns=dict(type="list", elements="str", default=[]),
    intermediate_permitted_ip_ranges=dict(type="list", elements="str", default=[]),
    intermediate_permitted_uri_domains=dict(type="list", elements="str", default=[]),
    intermediate_valid_for=dict(type="str", default="365d"),
    cluster_resource_namespace=dict(type="str", default="cert-manager"),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=60),
)
ISSUER_RULES = dict(
    required_if=[("kind", "Issuer", ["namespace"]), ("type", "ca", ["ca_secret_name"])],
    mutually_exclusive=[("ca_path", "ca_secret")],
    required_by={"ca_path": "ca_secret_name", "ca_secret": "ca_secret_name"},
)
