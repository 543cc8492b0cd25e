# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The use case of looking at a certificate on a host (module certificate_info): names, expiry, chain, key,
revocation by CRL, and the reasons it would be renewed; optionally as Prometheus metrics for node_exporter's
textfile collector (``pki.metrics``, docs/monitoring.md), the only thing it ever writes."""

from __future__ import annotations

from typing import Any, Dict

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import metrics, revocation
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import usages_of
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import fingerprint, load_certificates
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import read_bytes
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import (
    build_identity,
    identity_of_certificate,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.inspection import renewal_reasons, verify_chain
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import load_private_key, spec_of_key
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import (
    isoformat,
    not_valid_after,
    not_valid_before,
    parse_duration,
    parse_isoformat,
    utcnow,
)


def _read_certs(path, field):
    data = read_bytes(path)
    if data is None:
        raise PKIError(field, "%s does not exist" % path, "check the path")
    return load_certificates(data, field)


def _check_revocation(info, crl_path, leaf, issuers, now):
    data = read_bytes(crl_path)
    if data is None:
        raise PKIError("crl_path", "%s does not exist" % crl_path, "install the CRL first (the revoke role does)")
    crl = revocation.load_crl(data, "crl_path")
    info["crl"] = revocation.crl_summary(crl)
    if not issuers:
        info["crl_error"] = "no issuer certificate to check the CRL's signature with"
        return []
    signed, error = revocation.check_crl(crl, issuers, now)
    info["crl_error"] = error or ""
    if not signed:
        return []
    found = revocation.revocation_of(crl, leaf)
    info["revoked"] = found is not None
    if found is None:
        return []
    info["revocation"] = found
    return ["revoked on %s (%s) per the CRL" % (found["revoked_at"], found["reason"])]


def inspect(params) -> Dict[str, Any]:
    """What the certificate at params['path'] is, and why it would be renewed (empty when it would not)."""
    data = read_bytes(params["path"])
    if data is None:
        return {"exists": False}
    certs = load_certificates(data, "path")
    if not certs:
        raise PKIError("path", "%s holds no PEM certificate" % params["path"], "point it at a PEM certificate")
    leaf, chain = certs[0], certs[1:]
    if params["chain_path"]:
        chain += [c for c in _read_certs(params["chain_path"], "chain_path") if c != leaf]
    now = utcnow()
    from cryptography import x509

    try:
        is_ca = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    info = {
        "exists": True,
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "names": identity_of_certificate(leaf).names(),
        "serial": "%x" % leaf.serial_number,
        "not_before": isoformat(not_valid_before(leaf)),
        "not_after": isoformat(not_valid_after(leaf)),
        "expires_in_seconds": int((not_valid_after(leaf) - now).total_seconds()),
        "fingerprint": fingerprint(leaf),
        "key": spec_of_key(leaf.public_key()).describe(),
        "usages": usages_of(leaf),
        "is_ca": bool(is_ca),
    }
    key = None
    if params["key_path"]:
        key_data = read_bytes(params["key_path"])
        if key_data is None:
            raise PKIError("key_path", "%s does not exist" % params["key_path"], "check the path")
        key = load_private_key(key_data, params["key_passphrase"], "key_path")
    identity = build_identity(params["names"], "names", allow_wildcard=True) if params["names"] else None
    reasons = renewal_reasons(
        leaf,
        private_key=key,
        identity=identity,
        renew_before=parse_duration(params["renew_before"], "renew_before"),
        now=now,
    )
    if key is not None:
        info["key_matches"] = "private key does not match certificate" not in reasons
    roots = []
    if params["bundle_path"]:
        roots = _read_certs(params["bundle_path"], "bundle_path")
        error = verify_chain(leaf, chain, roots, now)
        info["chain_valid"] = error is None
        info["chain_error"] = error or ""
        if error:
            reasons.append("chain does not verify: %s" % error)
    if params["crl_path"]:
        reasons += _check_revocation(info, params["crl_path"], leaf, chain + roots, now)
    info["renewal_reasons"] = reasons
    return info


# The labels certificate_info sets itself; metrics_labels adds constant ones (host, cluster, ...).
METRIC_LABELS = ("kind", "path")


def certificate_metrics(path: str, info: Dict[str, Any], extra: Dict[str, str]) -> metrics.Exposition:
    """notAfter (Unix time) and whether it needs renewal (a renewal reason, or no certificate at all).

    Seconds until expiry are not written: they change every second, so a rerun would always
    rewrite the file; PromQL derives them (``..._not_after_timestamp_seconds - time()``).
    """
    out = metrics.Exposition()
    labels = dict(extra, kind="ca" if info.get("is_ca") else "node_certificate", path=path)
    if not info["exists"]:
        out.add(metrics.CERTIFICATE_RENEWAL_DUE, labels, 1)
        return out
    out.add(metrics.CERTIFICATE_RENEWAL_DUE, labels, 1 if info["renewal_reasons"] else 0)
    out.add(metrics.CERTIFICATE_NOT_AFTER, labels, int(parse_isoformat(info["not_after"]).timestamp()))
    return out


def certificate_info(ctx) -> Dict[str, Any]:
    """Module certificate_info: read-only, but for the metrics file (metrics_path) when it changes."""
    params = ctx.params
    metrics_path, extra = metrics.options(params, METRIC_LABELS)
    result = dict(changed=False, **inspect(params))
    exposition = certificate_metrics(params["path"], result, extra) if metrics_path else None
    return metrics.attach(result, metrics_path, exposition, ctx.check_mode)
