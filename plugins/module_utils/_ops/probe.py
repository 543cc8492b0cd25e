# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The use case of looking at what a TLS endpoint serves (module tls_probe); it writes nothing."""

from __future__ import annotations

from typing import Any, Dict

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import metrics, probe
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import read_bytes


def request_from(params: Dict[str, Any]) -> probe.ProbeRequest:
    """The probe the options describe, every option checked before any connection."""
    endpoint = probe.parse_endpoint(params["endpoint"], "endpoint")
    bundle, bundle_field = params["bundle"], "bundle"
    if params["bundle_path"]:
        bundle_field = "bundle_path"
        data = read_bytes(params["bundle_path"], "bundle_path")
        if data is None:
            raise PKIError("bundle_path", "%s does not exist" % params["bundle_path"], "point it at a PEM CA bundle")
        bundle = data.decode("ascii", "replace")
    if bundle is not None:
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificates

        if not load_certificates(bundle, bundle_field):
            raise PKIError(bundle_field, "holds no PEM certificate", "give the CA bundle (PEM) to verify against")
    server_name = params["server_name"]
    if server_name:
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import parse_name

        server_name = str(parse_name(server_name, "server_name"))
        if "://" in server_name:
            raise PKIError("server_name", "%r is a URI" % params["server_name"], "give a DNS name or an IP address")
    if not 0 < params["timeout"] <= 300:
        raise PKIError("timeout", "%r is not between 0 and 300 seconds" % params["timeout"], "e.g. timeout: 5")
    return probe.ProbeRequest(
        endpoint,
        server_name=server_name,
        bundle_pem=bundle,
        client_cert_path=params["client_cert_path"],
        client_key_path=params["client_key_path"],
        timeout=float(params["timeout"]),
    )


# The label tls_probe sets itself; metrics_labels adds constant ones (host, cluster, ...).
METRIC_LABELS = ("endpoint",)


def probe_metrics(result: Dict[str, Any], extra: Dict[str, str]) -> metrics.Exposition:
    """What the endpoint serves (notAfter of the leaf) and whether the probe succeeded, for node_exporter."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_isoformat

    labels = dict(extra, endpoint=result["endpoint"])
    out = metrics.Exposition()
    success = bool(result["tls"] and result["chain"] and result["verified"] is not False and not result["error"])
    out.add(metrics.ENDPOINT_PROBE_SUCCESS, labels, 1 if success else 0)
    if result["chain"]:
        served = int(parse_isoformat(result["chain"][0]["not_after"]).timestamp())
        out.add(metrics.ENDPOINT_SERVED_NOT_AFTER, labels, served)
    return out


def tls_probe(ctx) -> Dict[str, Any]:
    """Module tls_probe: the same probe in check mode; it writes nothing but the metrics file, when asked."""
    params = ctx.params
    metrics_path, extra = metrics.options(params, METRIC_LABELS)
    result = dict(changed=False, **probe.probe(request_from(params)))
    exposition = probe_metrics(result, extra) if metrics_path else None
    return metrics.attach(result, metrics_path, exposition, ctx.check_mode)
