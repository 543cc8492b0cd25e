# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_certificate: one task per host = key and CSR on the node, signature on the CA host, install on the node.

The CA key is read on the controller (the CA host) and never sent anywhere.
The certificate's names and subject are the controller's: the node's CSR only
carries its key.
The node's private key is made on the node and never comes back: only the CSR
travels here and only the certificate travels back. A run with nothing due is
a single module call on the node, and neither side imports ``cryptography``
for it (see module_utils/pki/record.py); the CA is loaded and fully checked
(passphrase, key match, expiry, name constraints) before every signature.
"""
from __future__ import annotations

import base64
import os

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import (
    NODE_CERTIFICATE_RULES, NODE_CERTIFICATE_SPEC, NODE_SHARED_OPTIONS, node_file_names)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import (
    check_policy, read_policy, read_public, verified_public)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import check_key_mode, parse_mode
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import (
    Identity, build_identity, check_names_or_subject, host_names_from_facts, host_names_of, merge, parse_subject)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keyspec import KeySpec, validate_key_spec
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.revocation import revoked_serials
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_duration, utcnow

NODE_MODULE = "securebydefault.pki.node_certificate_files"


def sign(params, prepared, host="", dry_run=False):
    """Sign the node's CSR with the CA on the controller (see module_utils/pki/signing.py); a dry run makes every
    check of the signature (CA, constraints, the ledger's owners of each name) and signs nothing."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.signing import sign_csr

    return sign_csr(params["ca_path"], params["ca_passphrase"], prepared["csr"], prepared["identity"],
                    params["usages"], parse_duration(params["valid_for"], "valid_for"), params["allow_wildcard"],
                    host, shared_names=params["shared_names"], subject=params["subject"], dry_run=dry_run)[0]


def public_of(ca):
    """(issuer PEM, bundle PEM, policy, revoked serials) from ca_info's ``public`` result."""
    missing = [k for k in ("issuer", "bundle", "policy", "revoked_serials") if k not in (ca or {})]
    if missing or "-----BEGIN CERTIFICATE-----" not in str(ca.get("issuer")):
        raise PKIError("ca", "not the public material of a CA (missing %s)" % (", ".join(missing) or "issuer PEM"),
                       "pass the public result of securebydefault.pki.ca_info run on the CA host")
    return ca["issuer"], ca["bundle"], ca["policy"], [str(s) for s in ca["revoked_serials"]]


def chain_instead(issuer_pem: str, chain_pem: str) -> str:
    """``chain_pem`` (issuer_chain) in place of the CA's chain, once it is a chain: its first certificate the signing
    CA's name and key (the cross-signed certificate of a CA rotation), each one after it a CA that issued the one
    before. The node then presents it after the leaf."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import verify_signed_by
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import (
        is_ca_certificate,
        load_certificates,
    )
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import public_key_der

    fix = "give the cross-signed certificate ca_rotation returned (issuer_chain), or nothing"
    signing = load_certificates(issuer_pem, "issuer")[0]
    chain = load_certificates(chain_pem, "issuer_chain")
    if not chain or chain[0].subject != signing.subject or \
            public_key_der(chain[0].public_key()) != public_key_der(signing.public_key()):
        raise PKIError("issuer_chain", "its first certificate is not of the signing CA (%s) and its key"
                       % signing.subject.rfc4514_string(), fix)
    for index, (cert, issuer) in enumerate(zip(chain, chain[1:]), start=2):
        if not is_ca_certificate(issuer) or not verify_signed_by(cert, issuer):
            raise PKIError("issuer_chain", "certificate #%d (%s) is not a CA that issued certificate #%d: peers "
                           "could not build a path through it" % (index, issuer.subject.rfc4514_string(), index - 1),
                           fix)
    return chain_pem if chain_pem.endswith("\n") else chain_pem + "\n"


def java_truststore(bundle_pem, passphrase):
    """Base64 of a Java PKCS#12 truststore (needs the controller's cryptography >= 45)."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificates
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.formats import truststore

    return base64.b64encode(truststore(load_certificates(bundle_pem, "bundle"), passphrase)).decode("ascii")


def _typed_names(values, field, kind, allow_wildcard):
    """Parse user-supplied names and insist each is of the kind its option promises."""
    identity = build_identity(values, field, allow_wildcard)
    wrong = {"dns": list(identity.ip_addresses) + list(identity.uris),
             "ip": list(identity.dns_names) + list(identity.uris),
             "uri": list(identity.dns_names) + list(identity.ip_addresses)}[kind]
    if wrong:
        raise PKIError(field, "%s are not %s" % ([str(w) for w in wrong], {"dns": "DNS names", "ip": "IP addresses",
                                                                           "uri": "URIs"}[kind]),
                       "put DNS names in dns_names, addresses in ip_addresses and URIs in uris")
    return identity


def plan_identity(params, task_vars):
    """(names approved on the controller, sources the node must discover itself)."""
    sources = params["identity_from"]
    parts = []
    if "inventory_hostname" in sources:
        inventory_name = task_vars.get("inventory_hostname", "")
        parts.append(build_identity([inventory_name], "identity_from (inventory_hostname %r)" % inventory_name,
                                    params["allow_wildcard"]))
    host_sources = [s for s in sources if s != "inventory_hostname"]
    facts = task_vars.get("ansible_facts") or {}
    discover = []
    if host_sources and facts.get("hostname"):
        parts.append(build_identity(host_names_from_facts(facts, "", host_sources), "identity_from (facts)"))
    else:
        discover = host_sources
    parts.append(_typed_names(params["dns_names"], "dns_names", "dns", params["allow_wildcard"]))
    parts.append(_typed_names(params["ip_addresses"], "ip_addresses", "ip", False))
    parts.append(_typed_names(params["uris"], "uris", "uri", False))
    if params["spiffe_id"]:
        parts.append(_typed_names([params["spiffe_id"]], "spiffe_id", "uri", False))
        if not params["spiffe_id"].startswith("spiffe://"):
            raise PKIError("spiffe_id", "%r is not a SPIFFE ID" % params["spiffe_id"],
                           "write it as spiffe://trust-domain/path")
    return merge(*parts) if parts else Identity(), discover


def vetted_identity(approved, prepared, params, discover):
    """The identity to sign: the approved names plus what the node discovered about itself, rebuilt here.

    The node's own list of names is never signed as such: only the facts it was asked to discover
    (``discover``: hostname, FQDN, IPv4/IPv6 addresses) are taken, each checked to be of its kind,
    through the same rules as gathered facts; the CA then checks the CSR names exactly this identity.
    """
    discovered = prepared.get("discovered") or {}
    if not isinstance(discovered, dict):
        raise PKIError("identity_from", "the node reported discoveries that are not a mapping",
                       "gather facts (gather_facts: true) so names come from the controller's facts")
    parts = [build_identity(approved, "names", params["allow_wildcard"])]
    for value in host_names_of(discovered, discover):
        parts.append(_typed_names([value], "identity_from (a name the node reported)", "dns", False))
    addresses = discovered.get("addresses") or []
    if not isinstance(addresses, list):
        raise PKIError("identity_from", "the node reported addresses that are not a list", "gather facts")
    if addresses:
        found = _typed_names([str(a) for a in addresses], "identity_from (addresses the node reported)", "ip", False)
        versions = {int(source[-1]) for source in discover if source in ("ipv4", "ipv6")}
        unasked = [str(a) for a in found.ip_addresses if a.version not in versions]
        if unasked:
            raise PKIError("identity_from", "the node reported addresses it was not asked for: %s" % unasked,
                           "check the node; only the address families in identity_from are discovered")
        parts.append(found)
    identity = merge(*parts)
    reported = sorted(str(n) for n in prepared.get("identity") or [])
    if reported != sorted(identity.names()):
        extra = sorted(set(reported) - set(identity.names()))
        raise PKIError("identity_from", "the node asked for names it did not discover: %s" % (extra or reported),
                       "check the node; its certificate names only what the controller approved and what it "
                       "discovered about itself")
    return identity


def other_hosts_names(task_vars, me):
    """name -> inventory host, for the names the controller knows of every other inventory host.

    Inventory names, ansible_host, and the hostname, FQDN and addresses of hosts whose facts are
    cached. Read from the inventory and the fact cache directly: a lookup per host through
    hostvars would cost a full variable resolution each.
    """
    hostvars = task_vars.get("hostvars")
    inventory = getattr(hostvars, "_inventory", None)
    manager = getattr(hostvars, "_variable_manager", None)
    if inventory is None:
        return {}
    cache = getattr(manager, "_fact_cache", None)
    owners = {}
    # every host of the inventory, not only those a --limit leaves in the play
    for host in list(getattr(inventory, "hosts", {}).values()):
        if host.name == me:
            continue
        names = [host.name]
        address = host.vars.get("ansible_host")
        if isinstance(address, str) and "{" not in address:
            names.append(address)
        facts = {}
        if cache is not None:
            try:
                facts = cache.get(host.name) or {}
            except Exception:  # an unreadable cache entry means: nothing known from facts
                facts = {}
        if facts.get("hostname"):
            names.extend(host_names_from_facts(facts, "", ["hostname", "fqdn", "ipv4", "ipv6"]))
        for name in names:
            try:
                parsed = build_identity([name], "inventory").names()
            except PKIError:
                continue
            for text in parsed:
                if text not in ("localhost", "127.0.0.1", "::1"):
                    owners.setdefault(text, host.name)
    return owners


def check_not_foreign(identity, task_vars, shared_names):
    """Refuse a name the controller knows belongs to another inventory host (unless shared by configuration)."""
    me = task_vars.get("inventory_hostname", "")
    shared = set(build_identity(shared_names, "shared_names", True).names()) if shared_names else set()
    owners = other_hosts_names(task_vars, me)
    taken = ["%s (inventory host %s)" % (n, owners[n]) for n in identity.names() if n in owners and n not in shared]
    if taken:
        raise PKIError("identity_from", "%s would get a certificate naming another host's names: %s"
                       % (me, ", ".join(taken)),
                       "a certificate names exactly its own host: drop those names from dns_names/ip_addresses, "
                       "fix the node's hostname, or list a name every host may carry in shared_names")


def signed_certificate(params, prepared, approved, discover, task_vars):
    """The certificate for the prepared CSR (None: the CA host signs it); the identity is vetted first."""
    identity = vetted_identity(approved, prepared, params, discover)
    check_not_foreign(identity, task_vars, params["shared_names"])
    prepared["identity"] = identity.names()
    if params["ca"] and not params["certificate"]:
        return None
    return params["certificate"] or sign(params, prepared, task_vars.get("inventory_hostname", ""))


def ca_public(params, check_mode, cache=None):
    """(issuer PEM, bundle PEM, policy, revoked serials) of the signing CA, from the controller's CA directory
    (checked against its passphrase) or from ca_info's result; ``cache`` keeps them for other certificates of
    the same run and CA (node_certificates)."""
    if params["ca"]:
        if params["trust_also"]:
            raise PKIError("trust_also", "trust_also names CA directories on the controller, but the CA is on "
                           "a CA host", "pass trust_also to ca_info on the CA host instead")
        return public_of(params["ca"])
    key = (params["ca_path"], params["ca_passphrase"], tuple(params.get("trust_also") or ()))
    if cache is not None and key in cache:
        return cache[key]
    issuer_pem, bundle_pem = verified_public(params["ca_path"], params["ca_passphrase"], write_stamp=not check_mode)
    for other in params.get("trust_also") or []:
        # CA rotation: the other CA's root joins the bundle (trust both), never the signing chain
        root = read_public(other, "trust_also")[1]
        if root not in bundle_pem:
            bundle_pem += root
    public = (issuer_pem, bundle_pem, read_policy(params["ca_path"]), revoked_serials(params["ca_path"]))
    if cache is not None:
        cache[key] = public
    return public


def plan(params, task_vars, check_mode, cache=None):
    """Everything that can be checked before the node is touched: (approved names, sources the node must
    discover, the node-side module's options)."""
    validate_key_spec(KeySpec(params["key_type"], params["key_size"]))
    valid_for = parse_duration(params["valid_for"], "valid_for")
    renew_before = parse_duration(params["renew_before"], "renew_before")
    if renew_before >= valid_for:
        raise PKIError("renew_before", "%s is not shorter than valid_for %s" % (params["renew_before"],
                                                                                params["valid_for"]),
                       "renew before a fraction of the lifetime, e.g. valid_for 90d with renew_before 30d")
    if not os.path.isabs(params["path"]):
        raise PKIError("path", "%r is not an absolute path" % params["path"], "give an absolute directory")
    node_file_names(params["name"])
    check_key_mode(parse_mode(params["key_mode"], "key_mode"), params["allow_group_readable_key"])
    subject = parse_subject(params["subject"], "subject")
    identity, discover = plan_identity(params, task_vars)
    if not discover:  # with sources to discover, the node's names are checked once it found them
        check_names_or_subject(identity, subject, params["usages"], "identity_from")
    issuer_pem, bundle_pem, policy, revoked = ca_public(params, check_mode, cache)
    if params.get("issuer_chain"):
        issuer_pem = chain_instead(issuer_pem, params["issuer_chain"])
    check_policy(policy, valid_for, params["allow_wildcard"], utcnow(), renew_before=renew_before)
    node_args = {k: params[k] for k in NODE_SHARED_OPTIONS}
    node_args["host"] = task_vars.get("inventory_hostname", "")
    node_args["issuer"] = issuer_pem
    node_args["bundle"] = bundle_pem
    node_args["revoked_serials"] = revoked
    if params["pkcs12_truststore"]:
        node_args["truststore"] = java_truststore(bundle_pem, params["pkcs12_passphrase"])
    return identity.names(), discover, node_args


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(NODE_CERTIFICATE_SPEC)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        validation = ArgumentSpecValidator(NODE_CERTIFICATE_SPEC, **NODE_CERTIFICATE_RULES).validate(self._task.args)
        if validation.error_messages:
            result.update(failed=True, msg="; ".join(validation.error_messages))
            return result
        params = validation.validated_parameters
        if self._task.check_mode and params["ca_path"] and not os.path.lexists(params["ca_path"]):
            # check mode of a first run: the CA's own task only reported that it would create the CA
            return self._finish(result, {"changed": True, "reasons": [
                "the CA %s does not exist yet (check mode: it would be created first, then this certificate "
                "issued)" % params["ca_path"]], "written": [], "identity": []})
        try:
            approved, discover, node_args = self._plan(params, task_vars)
        except PKIError as exc:
            result.update(failed=True, msg=str(exc), field=exc.field, fix=exc.fix)
            return result
        prepared = self._execute_module(NODE_MODULE, module_args=dict(node_args, stage="prepare", names=approved,
                                                                      discover=discover), task_vars=task_vars)
        # check mode signs nothing, whatever the node answers (an honest one returns no CSR then)
        if prepared.get("failed") or not prepared.get("csr") or self._task.check_mode:
            return self._finish(result, prepared, failed=bool(prepared.get("failed")))
        try:
            cert_pem = signed_certificate(params, prepared, approved, discover, task_vars)
        except (PKIError, ValueError, ImportError) as exc:
            if prepared.get("pending_created"):
                self._execute_module(NODE_MODULE, module_args=dict(node_args, stage="abort"), task_vars=task_vars)
            result.update(failed=True, msg="signing refused: %s" % exc, reasons=prepared.get("reasons", []),
                          identity=prepared.get("identity", []), field=getattr(exc, "field", None),
                          fix=getattr(exc, "fix", None))
            return result
        if cert_pem is None:
            # the CA is on another host: hand the CSR out, keep the pending key for the install call
            finished = self._finish(result, prepared)
            finished.update(csr=prepared["csr"], identity=prepared["identity"], signing_required=True)
            return finished
        return self._install(result, node_args, prepared, cert_pem, task_vars)

    def _install(self, result, node_args, prepared, cert_pem, task_vars):
        installed = self._execute_module(NODE_MODULE, module_args=dict(
            node_args, stage="install", names=prepared["identity"], certificate=cert_pem),
            task_vars=task_vars)
        if installed.get("failed"):
            return self._finish(result, installed, failed=True, reasons=prepared.get("reasons", []))
        installed["reasons"] = prepared.get("reasons", [])
        installed["written"] = prepared.get("written", []) + installed.get("written", [])
        installed["discovered"] = prepared.get("discovered", {})
        installed.setdefault("diff", {})["before"] = (prepared.get("diff") or {}).get("before", {})
        return self._finish(result, installed)

    def _plan(self, params, task_vars):
        return plan(params, task_vars, self._task.check_mode)

    def _finish(self, result, module_result, failed=False, reasons=None):
        for key in ("msg", "reasons", "identity", "certificate", "written", "backups", "discovered", "field", "fix"):
            if key in module_result:
                result[key] = module_result[key]
        if reasons is not None:
            result["reasons"] = reasons
        result["changed"] = bool(module_result.get("changed"))
        names = node_file_names(self._task.args.get("name") or "node")
        base = self._task.args.get("path")
        if base:
            enabled = {"keystore": self._task.args.get("pkcs12_keystore"),
                       "truststore": self._task.args.get("pkcs12_truststore")}
            result["files"] = {kind: os.path.join(base, fname) for kind, fname in names.items()
                               if enabled.get(kind, True)}
        if failed:
            result["failed"] = True
        diff = module_result.get("diff")
        if self._task.diff and diff and result["changed"]:
            result["diff"] = {"before": diff.get("before") or {}, "after": diff.get("after") or {}}
        return result
