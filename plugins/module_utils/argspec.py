# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs shared by the node_certificate action plugin, its node-side module and the roles."""
from __future__ import annotations

KEY_OPTIONS = dict(
    key_type=dict(type="str", default="ec", choices=["ec", "rsa", "ed25519"]),
    key_size=dict(type="int"),
)

FILE_OPTIONS = dict(
    owner=dict(type="str"),
    group=dict(type="str"),
    key_mode=dict(type="raw", default="0600", no_log=False),
    allow_group_readable_key=dict(type="bool", default=False),
    cert_mode=dict(type="raw", default="0644"),
)

IDENTITY_SOURCES = ["inventory_hostname", "hostname", "fqdn", "ipv4", "ipv6"]

# The subject the controller chooses for a certificate (node_certificate, its node-side module, sign_csr);
# the engine checks it (pki/identity.py parse_subject).
SUBJECT_OPTION = dict(type="dict", options=dict(common_name=dict(type="str"),
                                                organizations=dict(type="list", elements="str")))

# Options the node_certificate action hands unchanged to its node-side module.
NODE_SHARED_OPTIONS = dict(
    path=dict(type="path", required=True),
    name=dict(type="str", default="node"),
    allow_wildcard=dict(type="bool", default=False),
    usages=dict(type="list", elements="str", default=["server", "client"], choices=["server", "client"]),
    subject=SUBJECT_OPTION,
    renew_before=dict(type="str", default="30d"),
    key_passphrase=dict(type="str", no_log=True),
    regenerate_key=dict(type="str", default="on_renewal", choices=["on_renewal", "never"]),
    force=dict(type="bool", default=False),
    backup=dict(type="bool", default=False),
    pkcs12_keystore=dict(type="bool", default=False),
    pkcs12_passphrase=dict(type="str", no_log=True),
    **KEY_OPTIONS,
    **FILE_OPTIONS,
)

NODE_CERTIFICATE_SPEC = dict(
    ca_path=dict(type="path"),
    ca_passphrase=dict(type="str", no_log=True),
    # a CA on a designated CA host: its public material (ca_info) in, the signed certificate (sign_csr) back
    ca=dict(type="dict"),
    certificate=dict(type="str"),
    trust_also=dict(type="list", elements="path", default=[]),
    issuer_chain=dict(type="str"),
    identity_from=dict(type="list", elements="str", default=list(IDENTITY_SOURCES), choices=IDENTITY_SOURCES),
    dns_names=dict(type="list", elements="str", default=[]),
    ip_addresses=dict(type="list", elements="str", default=[]),
    uris=dict(type="list", elements="str", default=[]),
    spiffe_id=dict(type="str"),
    shared_names=dict(type="list", elements="str", default=[]),
    valid_for=dict(type="str", default="90d"),
    pkcs12_truststore=dict(type="bool", default=False),
    **NODE_SHARED_OPTIONS,
)

# The rules between node_certificate's options (the action plugin validates them before touching the node).
NODE_CERTIFICATE_RULES = dict(
    required_if=[("pkcs12_keystore", True, ("pkcs12_passphrase",)),
                 ("pkcs12_truststore", True, ("pkcs12_passphrase",))],
    mutually_exclusive=[("ca_path", "ca")], required_one_of=[("ca_path", "ca")],
    required_by={"certificate": ("ca",)},
)

# node_certificates: one certificate of its list. Options left out (None) are the task's.
NODE_CERTIFICATES_ITEM = dict(
    name=dict(type="str", required=True),
    path=dict(type="path"),
    ca_path=dict(type="path"),
    trust_also=dict(type="list", elements="path"),
    issuer_chain=dict(type="str"),
    dns_names=dict(type="list", elements="str"),
    ip_addresses=dict(type="list", elements="str"),
    uris=dict(type="list", elements="str"),
    spiffe_id=dict(type="str"),
    shared_names=dict(type="list", elements="str"),
    subject=SUBJECT_OPTION,
    usages=dict(type="list", elements="str", choices=["server", "client"]),
)

# node_certificates: node_certificate's options (those of a CA on the controller) for every certificate,
# and the list of certificates, each with what sets it apart.
NODE_CERTIFICATES_SPEC = dict(
    {k: v for k, v in NODE_CERTIFICATE_SPEC.items() if k not in ("ca", "certificate", "name", "path")},
    path=dict(type="path"),
    certificates=dict(type="list", elements="dict", required=True, options=NODE_CERTIFICATES_ITEM),
)
NODE_CERTIFICATES_RULES = dict(
    required_if=[("pkcs12_keystore", True, ("pkcs12_passphrase",)),
                 ("pkcs12_truststore", True, ("pkcs12_passphrase",))],
)

# What the action plugin hands the node-side module; see node_certificate_files.
NODE_FILES_SPEC = dict(
    stage=dict(type="str", required=True, choices=["prepare", "install", "abort"]),
    names=dict(type="list", elements="str", default=[]),
    discover=dict(type="list", elements="str", default=[], choices=IDENTITY_SOURCES),
    issuer=dict(type="str", required=True),
    bundle=dict(type="str", required=True),
    truststore=dict(type="str"),
    certificate=dict(type="str"),
    revoked_serials=dict(type="list", elements="str", default=[]),
    host=dict(type="str", default=""),
    **NODE_SHARED_OPTIONS,
)


# node_certificates_files: node_certificate_files for several certificates in one call; each element of
# certificates is checked against NODE_FILES_SPEC in the module (the passphrases are options of the call).
NODE_FILES_MANY_SPEC = dict(
    stage=dict(type="str", required=True, choices=["prepare", "install", "abort"]),
    certificates=dict(type="list", elements="dict", required=True),
    key_passphrase=dict(type="str", no_log=True),
    pkcs12_passphrase=dict(type="str", no_log=True),
)


def node_file_names(name: str) -> dict:
    """File names below ``path`` for a node certificate called ``name`` (a plain file name)."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import plain_name

    plain_name(name, "name")
    return {"key": "%s.key" % name, "cert": "%s.crt" % name, "chain": "%s-fullchain.crt" % name,
            "bundle": "ca-bundle.crt", "keystore": "%s.p12" % name, "truststore": "truststore.p12"}


def secret_option(**extra) -> dict:
    """A Kubernetes Secret that keeps a CA: {namespace, name} (option ca_secret, old_ca_secret, new_ca_secret...)."""
    return dict(type="dict", no_log=False, options=dict(namespace=dict(type="str", required=True),
                                                        name=dict(type="str", required=True)), **extra)


def pinned_secrets_option() -> dict:
    """A list of CA Secrets, each optionally with the SHA-256 fingerprint its root must have (trust bundles)."""
    option = secret_option()
    option["options"]["fingerprint"] = dict(type="str")
    return dict(option, type="list", elements="dict", default=[])


def ca_options(legacy: bool = False) -> dict:
    """Where a module finds its CA (ca_path or ca_secret) and the passphrase of its key.

    ``legacy``: the module (cluster_ca, ca_info) took path/secret/passphrase up to 0.2.0; those names stay as
    deprecated aliases until 1.0.0.
    """
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import deprecated
    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.options import K8S_ACCESS_SPEC

    spec = dict(K8S_ACCESS_SPEC)
    spec.update(
        ca_path=dict(type="path", **(deprecated("ca_path", "path") if legacy else {})),
        ca_secret=secret_option(**(deprecated("ca_secret", "secret") if legacy else {})),
        ca_passphrase=dict(type="str", no_log=True, **(deprecated("ca_passphrase", "passphrase") if legacy else {})),
    )
    return spec


# Exactly one place of the CA, for every module that takes ca_options().
CA_CHOICE = dict(mutually_exclusive=[("ca_path", "ca_secret")], required_one_of=[("ca_path", "ca_secret")])
