# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The use cases of a CA where it lives (a directory or a Kubernetes Secret, ``ctx.store``):
ensure it (cluster_ca), read its public side (ca_info), sign a CSR (sign_csr), revoke (revoke).

Each takes the run context (``_ops.runner.Context``): checked options, check/diff mode, the store;
and returns the module result.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Tuple

from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import CAOptions, ca_location
from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ca_store, revocation
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import (
    NameConstraintsSpec,
    SigningPolicy,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import certificate_pem
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_files import (
    metadata_of,
    policy_of,
    public_of,
    read_public,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import KeySpec, validate_key_spec
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.signing import sign_csr
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import (
    format_duration,
    isoformat,
    parse_duration,
    utcnow,
)

CA = CAOptions()
# A new CA key's passphrase is at least this long.
MIN_PASSPHRASE = 10


def settings_from(params: Dict[str, Any]) -> ca_store.CASettings:
    """The CA the options describe; every option checked before the store is touched."""
    if params["encrypt_key"] and not params["ca_passphrase"]:
        raise PKIError(
            "ca_passphrase",
            "the CA key is encrypted at rest and no passphrase was given",
            "set ca_passphrase (from Ansible Vault), or set encrypt_key: false to opt out explicitly",
        )
    if not params["encrypt_key"] and params["ca_passphrase"]:
        raise PKIError("ca_passphrase", "given together with encrypt_key: false", "drop one of the two")
    common_name = params["common_name"].strip()
    if not common_name:
        raise PKIError("common_name", "must not be empty", "name the CA, e.g. 'cluster-a CA'")
    constraints = NameConstraintsSpec.parse(
        params["permitted_dns"],
        params["permitted_ip_ranges"],
        params["permitted_uri_domains"],
        params["excluded_dns"],
        params["excluded_ip_ranges"],
    )
    return ca_store.CASettings(
        common_name=common_name,
        key_spec=validate_key_spec(KeySpec(params["key_type"], params["key_size"])),
        valid_for=parse_duration(params["valid_for"], "valid_for"),
        constraints=constraints,
        intermediate=params["intermediate"],
        organization=params["organization"],
        policy=SigningPolicy(
            max_validity=parse_duration(params["max_leaf_validity"], "max_leaf_validity"),
            allow_wildcard=params["allow_wildcard"],
        ),
    )


def _create(ctx, settings, passphrase, result) -> bool:
    """Create the CA if the store has none; whether this run made (or in check mode would make) it."""
    if ctx.store.exists():
        return False
    if passphrase is not None and len(passphrase) < MIN_PASSPHRASE:
        raise PKIError(
            "ca_passphrase",
            "a new CA key needs a passphrase of at least %d characters (got %d)" % (MIN_PASSPHRASE, len(passphrase)),
            "generate one, e.g. openssl rand -base64 24, and keep it in Ansible Vault",
        )
    if not ctx.store.create(ca_store.build_ca_files(settings, passphrase)):
        return False  # another run created the CA between our look and our create: check that one
    result.update(changed=True, reasons=["no CA in %s yet" % ctx.store.where])
    if ctx.diff:
        result["diff"] = {
            "before": {},
            "after": {"common_name": settings.common_name, "constraints": settings.constraints.describe()},
        }
    return True


def _reconcile(ctx, ca, files, settings, result) -> None:
    """An existing CA against the options: refuse (or keep) what only a new CA can change; update the policy."""
    store, where = ctx.store, ctx.store.where
    differences = ca_store.settings_differences(ca, settings)
    if differences and ctx.params["on_mismatch"] == "fail":
        raise PKIError(
            store.field,
            "the CA in %s differs from the options: %s" % (where, "; ".join(differences)),
            "a CA cannot be changed in place: restore the options, create a new CA elsewhere "
            "and rotate to it, or set on_mismatch: keep",
        )
    for difference in differences:
        ctx.warn("CA in %s kept although it differs: %s" % (where, difference))
    result["reasons"].extend("kept: %s" % d for d in differences)
    meta = metadata_of(files["ca.json"], where, store.field)
    policy_changes = ca_store.policy_differences(meta, settings)
    if not policy_changes:
        return
    result["changed"] = True
    result["reasons"].extend("policy %s" % c for c in policy_changes)
    if ctx.diff:
        result["diff"] = {
            "before": meta.get("policy", {}),
            "after": json.loads(ca_store.update_metadata_policy(meta, settings))["policy"],
        }
    # only the policy of ca.json changes; the rest is taken as it is now
    store.update(
        lambda now: {
            "ca.json": ca_store.update_metadata_policy(metadata_of(now["ca.json"], where, store.field), settings)
        },
        ("ca.json",),
    )


def ensure_ca(ctx) -> Dict[str, Any]:
    """Module cluster_ca: create the CA, or load and check the one there."""
    params, store = ctx.params, ctx.store
    settings = settings_from(params)
    passphrase = params["ca_passphrase"] if params["encrypt_key"] else None
    result: Dict[str, Any] = {"changed": False, "reasons": [], "location": ca_location(params, CA)}
    if params["ca_path"]:
        result["path"] = params["ca_path"]
    if _create(ctx, settings, passphrase, result) and ctx.check_mode:
        return result
    files = store.read(ca_store.LOAD_FILES)
    ca = ca_store.load_ca_from(files, store.where, passphrase, field=store.field, passphrase_field="ca_passphrase")
    if not result["changed"]:
        _reconcile(ctx, ca, files, settings, result)
    left = ca_store.expires_in(ca)
    if left <= parse_duration(params["warn_before"], "warn_before"):
        ctx.warn("CA in %s expires in %s: plan a CA rotation now" % (store.where, format_duration(left)))
    summary = ca_store.ca_summary(ca, store.where)
    result.update(
        certificate=certificate_pem(ca.certificate),
        root_certificate=certificate_pem(ca.root),
        fingerprint=summary["fingerprint"],
        not_after=summary["not_after"],
        subject=summary["subject"],
        constraints=summary["constraints"],
    )
    return result


def pinned_root(store, expected: Optional[str], field: str) -> Tuple[str, str]:
    """(root PEM, its SHA-256 fingerprint) of the CA ``store`` keeps; with ``expected``, only if it has that one."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import fingerprint, load_certificate

    root = ca_store.public_in(store)[1]
    digest = fingerprint(load_certificate(root, field))
    if expected and digest.replace(":", "").upper() != expected.replace(":", "").strip().upper():
        raise PKIError(
            field + ".fingerprint",
            "the root in %s is not the one with fingerprint %s (it changed since it was checked)"
            % (store.where, expected),
            "find out who replaced it; if the CA is compromised, stop the rotation and restore the Secret from backup",
        )
    return root, digest


def secret_store_of(ctx, secret: Dict[str, str], field: str):
    """A read-only view of the CA kept in ``secret`` ({namespace, name}); ``field`` names it in errors."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.ca_secret import SecretStore
    from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.certmanager import check_k8s_name

    return SecretStore(
        ctx.kube,
        check_k8s_name(secret["namespace"], field + ".namespace"),
        check_k8s_name(secret["name"], field + ".name"),
        field,
        dry_run=True,
    )


def ca_info(ctx) -> Dict[str, Any]:
    """Module ca_info: the public side, checked (with the passphrase: against the key too)."""
    params, store = ctx.params, ctx.store
    if params["ca_passphrase"]:
        # root <-> intermediate <-> key <-> ca.json; the key is decrypted in memory and dropped
        files = store.read(("ca.crt", "root.crt", "ca.json", "ca.key", revocation.STATE, revocation.CRL))
        ca_store.load_ca_from(
            files, store.where, params["ca_passphrase"], store.field, passphrase_field="ca_passphrase", check=False
        )
    else:
        files = store.read(("ca.crt", "root.crt", "ca.json", revocation.STATE, revocation.CRL))
        ca_store.check_public_files(files, store.where, store.field)  # root <-> intermediate <-> ca.json
    issuer, bundle = public_of(files, store.where, store.field)
    roots = [read_public(other, "trust_also")[1] for other in params["trust_also"]]
    for index, other in enumerate(params.get("trust_also_secrets") or []):
        field = "trust_also_secrets[%d]" % index
        roots.append(pinned_root(secret_store_of(ctx, other, field), other.get("fingerprint"), field)[0])
    for root in roots:
        if root not in bundle:
            bundle += root
    meta = metadata_of(files["ca.json"], store.where, store.field)
    revoked = revocation.serials_of(revocation.state_of(files[revocation.STATE], store.where, store.field))
    public = {"issuer": issuer, "bundle": bundle, "policy": policy_of(meta), "revoked_serials": revoked}
    result = {"changed": False, "public": public, "metadata": meta, "location": ca_location(params, CA)}
    if files[revocation.CRL] is not None:
        result["crl"] = files[revocation.CRL].decode("ascii")
    return result


def sign(ctx) -> Dict[str, Any]:
    """Module sign_csr: check the CA, the CSR and the names (always), sign and record (not in check mode)."""
    params = ctx.params
    valid_for = parse_duration(params["valid_for"], "valid_for")
    pem, serial = sign_csr(
        ctx.store,
        params["ca_passphrase"],
        params["csr"],
        params["names"],
        params["usages"],
        valid_for,
        params["allow_wildcard"],
        params["host"],
        params["shared_names"],
        dry_run=ctx.check_mode,
        subject=params["subject"],
    )
    if ctx.check_mode:
        return {"changed": True}  # every check made: the CA, the CSR, the policy, who holds the names
    return {"changed": True, "certificate": pem, "serial": serial}


def _crl_times(params):
    crl_valid_for = parse_duration(params["crl_valid_for"], "crl_valid_for")
    renew_before = parse_duration(params["crl_renew_before"], "crl_renew_before", allow_zero=True)
    if renew_before >= crl_valid_for:
        raise PKIError(
            "crl_renew_before",
            "%s is not shorter than crl_valid_for %s" % (params["crl_renew_before"], params["crl_valid_for"]),
            "publish ahead of expiry by a fraction of the lifetime, e.g. 7d with 3d",
        )
    return crl_valid_for, renew_before


def revoke(ctx) -> Dict[str, Any]:
    """Module revoke: record revocations in the CA's state and publish a CRL when due."""
    params = ctx.params
    crl_valid_for, renew_before = _crl_times(params)
    if (
        ctx.check_mode
        and params["ca_path"]
        and not os.path.lexists(params["ca_path"])
        and not params["hosts"]
        and not params["serials"]
    ):
        # check mode of a first run: site.yml would create the CA; there is nothing to revoke or publish yet
        ctx.warn("no CA at %s yet (check mode): nothing to revoke, no CRL to publish" % params["ca_path"])
        return dict(changed=False, revoked=[], revoked_serials=[], crl_number=None)
    for index, serial in enumerate(params["serials"]):
        revocation.normalize_serial(serial, "serials[%d]" % index)
    ca = ca_store.load_ca_in(ctx.store, params["ca_passphrase"])  # passphrase, key match and expiry, first
    now = utcnow().replace(microsecond=0)
    decided, pem = revocation.revoke(
        ctx.store,
        ca,
        params["hosts"],
        params["serials"],
        params["reason"],
        now,
        renew_before,
        crl_valid_for,
        params["allow_unlisted"],
    )
    serials = revocation.serials_of(decided.after)
    result = {
        "changed": decided.changed,
        "revoked": decided.newly_revoked,
        "reasons": decided.crl_reasons,
        "revoked_serials": serials,
        "crl_number": decided.after["crl_number"] if decided.changed else decided.before["crl_number"],
    }
    if params["ca_path"]:
        result["crl_path"] = os.path.join(params["ca_path"], revocation.CRL)
    if pem is not None:
        result["crl"] = pem.decode("ascii")
        summary = revocation.crl_summary(revocation.load_crl(pem, "crl_path"))
        if ctx.check_mode and decided.changed:
            summary["next_update"] = isoformat(now + crl_valid_for)
        result["next_update"] = summary["next_update"]
    if ctx.diff:
        result["diff"] = {
            "before": {
                "revoked_serials": revocation.serials_of(decided.before),
                "crl_number": decided.before["crl_number"],
            },
            "after": {"revoked_serials": serials, "crl_number": result["crl_number"]},
        }
    return result
