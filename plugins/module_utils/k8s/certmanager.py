# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cert-manager resources from module options: validation and spec building.

Pure Python (no Kubernetes client, no Ansible): everything here runs before a
request is sent, so bad input fails with the option's name and a fix while
nothing on the server has been touched. Names are checked by the one grammar
of the collection (pki/identity.py): a name refused for a host is refused for
a pod. The cert-manager API group/version and the Ready check live here only.
"""
from __future__ import annotations

import ipaddress
import re
import time
from typing import Dict, List, Optional, Tuple

from ..pki.errors import PKIError
from ..pki.identity import check_dns_name, check_ip_address, check_uri
from ..pki.timeutil import parse_duration

GROUP = "cert-manager.io"
VERSION = "v1"
API_VERSION = GROUP + "/" + VERSION

# cert-manager's own limits (its webhook would refuse the rest; no webhook may be running).
MIN_DURATION = 3600
MIN_RENEW_BEFORE = 300
# Without renew_before*, renew after a third of the lifetime: 24h -> renewed after 8h.
DEFAULT_RENEW_BEFORE_PERCENTAGE = 67

USAGES = (
    "signing", "digital signature", "content commitment", "key encipherment", "key agreement",
    "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any",
    "server auth", "client auth", "code signing", "email protection", "s/mime", "ipsec end system",
    "ipsec tunnel", "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
)
KEY_SIZES = {"RSA": (2048, 8192), "ECDSA": (256, 384, 521), "Ed25519": ()}

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def parse_go_duration(value: str, field: str) -> float:
    """Seconds in a Go duration string as cert-manager takes it ('24h', '1h30m', '2160h')."""
    text = str(value).strip()
    if not text:
        raise PKIError(field, "is empty", "give a Go duration such as 24h, 90m or 2160h")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        raise PKIError(field, "%r is not a duration" % value,
                       "use Go duration syntax: a number and a unit (h, m, s), e.g. 24h, 16h or 1h30m; "
                       "days are not a unit (use 2160h for 90 days)")
    return total


def lifetime(value: str, field: str) -> Tuple[str, float]:
    """A lifetime in either of the collection's forms -> (Go duration for cert-manager, seconds).

    cert-manager's Go syntax (``24h``, ``1h30m``, ``1.5h``) is passed on as written; the collection's
    ``valid_for`` syntax of days, weeks and years (``90d``, ``2w``, ``1y``; pki/timeutil) is converted
    (``90d`` -> ``2160h``).
    """
    try:
        return str(value).strip(), parse_go_duration(value, field)
    except PKIError:
        pass
    try:
        seconds = parse_duration(value, field).total_seconds()
    except PKIError as exc:
        if "not a duration" not in exc.problem:
            raise  # a duration, but out of range: say so
        raise PKIError(field, "%r is not a duration" % (value,),
                       "use Go duration syntax (24h, 16h, 1h30m) or days/weeks/years (90d, 2w, 1y)") from None
    return format_seconds(seconds), seconds


def format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join("%d%s" % (n, u) for n, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if n) or "0s"


def check_k8s_name(value: str, field: str) -> str:
    if not value or not _K8S_NAME.fullmatch(value):
        raise PKIError(field, "%r is not a valid Kubernetes object name" % value,
                       "use lower-case letters, digits, '-' and '.', starting and ending alphanumeric")
    return value


def renewal(valid_for: Optional[str], renew_before: Optional[str], percentage: Optional[int]) -> Dict:
    """duration/renewBefore/renewBeforePercentage from valid_for and renew_before*, checked against each other."""
    spec = {}
    seconds = None
    if valid_for is not None:
        spec["duration"], seconds = lifetime(valid_for, "valid_for")
        if seconds < MIN_DURATION:
            raise PKIError("valid_for", "%s is shorter than cert-manager's minimum of 1h" % valid_for,
                           "use 1h or more")
    if renew_before is not None and percentage is not None:
        raise PKIError("renew_before", "renew_before and renew_before_percentage are both set",
                       "set only one of them")
    if renew_before is not None:
        spec["renewBefore"], before = lifetime(renew_before, "renew_before")
        if before < MIN_RENEW_BEFORE:
            raise PKIError("renew_before", "%s is shorter than cert-manager's minimum of 5m" % renew_before,
                           "use 5m or more")
        if before >= (seconds if seconds is not None else 90 * 86400):
            raise PKIError("renew_before",
                           "%s is not shorter than duration %s (valid_for), so the certificate would be renewed "
                           "forever" % (renew_before, valid_for or "2160h (cert-manager's default)"),
                           "make renew_before shorter than valid_for, e.g. valid_for 24h with renew_before 16h")
    else:
        if percentage is None:
            percentage = DEFAULT_RENEW_BEFORE_PERCENTAGE
        if not 0 < percentage < 100:
            raise PKIError("renew_before_percentage", "%s is not between 1 and 99" % percentage,
                           "give the share of the lifetime left at renewal, e.g. 67 to renew after a third")
        spec["renewBeforePercentage"] = percentage
    return spec


def _names_spec(params: Dict, allow_wildcard: bool) -> Dict:
    spec = {}
    if params.get("common_name"):
        spec["commonName"] = params["common_name"]
        if len(params["common_name"]) > 64:
            raise PKIError("common_name", "is longer than 64 characters", "put long names in dns_names")
    dns = [check_dns_name(n, "dns_names", allow_wildcard) for n in params.get("dns_names") or []]
    ips = [check_ip_address(n, "ip_addresses") for n in params.get("ip_addresses") or []]
    uris = [check_uri(n, "uris") for n in params.get("uris") or []]
    emails = list(params.get("email_addresses") or [])
    for email in emails:
        if not re.match(r"^[^@\s]+@[^@\s]+$", email):
            raise PKIError("email_addresses", "%r is not an e-mail address" % email, "give user@example.org")
    if not (spec.get("commonName") or dns or ips or uris or emails or params.get("is_ca")):
        raise PKIError("dns_names", "the certificate names nothing",
                       "give at least one of dns_names, ip_addresses, uris, email_addresses or common_name")
    for key, values in (("dnsNames", dns), ("ipAddresses", ips), ("uris", uris), ("emailAddresses", emails)):
        if len(set(values)) != len(values):
            raise PKIError(_SNAKE[key], "lists a name twice: %s" % values, "remove the duplicate")
        if values:
            spec[key] = values
    return spec


_SNAKE = {"dnsNames": "dns_names", "ipAddresses": "ip_addresses", "uris": "uris", "emailAddresses": "email_addresses"}


def _private_key_spec(opts: Optional[Dict]) -> Dict:
    opts = dict(opts or {})
    algorithm = opts.get("algorithm") or "ECDSA"
    size = opts.get("size")
    allowed = KEY_SIZES[algorithm]
    if algorithm == "Ed25519":
        if size is not None:
            raise PKIError("private_key.size", "Ed25519 keys have no size", "remove private_key.size")
    elif algorithm == "RSA":
        size = size or 3072
        if not allowed[0] <= size <= allowed[1]:
            raise PKIError("private_key.size", "RSA size %s is outside 2048..8192" % size, "use 3072 or 4096")
    else:
        size = size or 256
        if size not in allowed:
            raise PKIError("private_key.size", "ECDSA size %s is not one of 256, 384, 521" % size, "use 256 or 384")
    spec = {"algorithm": algorithm, "rotationPolicy": opts.get("rotation_policy") or "Always",
            "encoding": opts.get("encoding") or "PKCS1"}
    if size is not None:
        spec["size"] = size
    return spec


def _constraints_spec(opts: Optional[Dict], is_ca: bool) -> Optional[Dict]:
    if not opts:
        return None
    if not is_ca:
        raise PKIError("name_constraints", "name constraints only apply to a CA certificate",
                       "set is_ca: true, or remove name_constraints")
    spec = {"critical": bool(opts.get("critical", True))}
    for part in ("permitted", "excluded"):
        items = opts.get(part) or {}
        out = {}
        for key, camel in (("dns_domains", "dnsDomains"), ("ip_ranges", "ipRanges"),
                           ("email_addresses", "emailAddresses"), ("uri_domains", "uriDomains")):
            values = list(items.get(key) or [])
            if key == "ip_ranges":
                for value in values:
                    try:
                        ipaddress.ip_network(value, strict=True)
                    except ValueError:
                        raise PKIError("name_constraints.%s.ip_ranges" % part, "%r is not a CIDR range" % value,
                                       "give a network such as 10.0.0.0/8") from None
            if values:
                out[camel] = values
        if out:
            spec[part] = out
    if "permitted" not in spec and "excluded" not in spec:
        raise PKIError("name_constraints", "neither permitted nor excluded names are given",
                       "list at least one of permitted.dns_domains, permitted.ip_ranges, ...")
    return spec


def _keystores_spec(opts: Optional[Dict]) -> Tuple[Optional[Dict], List[Tuple[str, str, str, bool]]]:
    """The keystores spec and the (field, secret, key, create if missing) password references it needs."""
    if not opts:
        return None, []
    spec, refs = {}, []
    for kind in ("pkcs12", "jks"):
        store = opts.get(kind)
        if not store:
            continue
        field = "keystores.%s" % kind
        secret = store.get("password_secret_name")
        key = store.get("password_secret_key") or "password"
        if not secret:
            raise PKIError(field + ".password_secret_name", "is required for a %s keystore" % kind,
                           "name a Secret in the Certificate's namespace that holds the keystore password")
        out = {"create": bool(store.get("create", True)), "passwordSecretRef": {"name": secret, "key": key}}
        if kind == "pkcs12" and store.get("profile"):
            out["profile"] = store["profile"]
        if kind == "jks" and store.get("alias"):
            out["alias"] = store["alias"]
        spec[kind] = out
        refs.append((field + ".password_secret_name", secret, key, bool(store.get("create_password_secret"))))
    return spec or None, refs


def certificate_spec(params: Dict) -> Tuple[Dict, List[Tuple[str, str, str, bool]]]:
    """The Certificate spec for module options, and the password Secrets it refers to."""
    name = check_k8s_name(params["name"], "name")
    spec = {
        "secretName": check_k8s_name(params.get("secret_name") or name, "secret_name"),
        "issuerRef": {"name": check_k8s_name(params["issuer_name"], "issuer_name"),
                      "kind": params.get("issuer_kind") or "Issuer",
                      "group": params.get("issuer_group") or GROUP},
    }
    is_ca = bool(params.get("is_ca"))
    spec.update(_names_spec(params, bool(params.get("allow_wildcard"))))
    if is_ca:
        spec["isCA"] = True
    spec.update(renewal(params.get("valid_for"), params.get("renew_before"), params.get("renew_before_percentage")))
    spec["privateKey"] = _private_key_spec(params.get("private_key"))
    usages = list(params.get("usages") or [])
    if usages:
        unknown = [u for u in usages if u not in USAGES]
        if unknown:
            raise PKIError("usages", "unknown usage(s) %s" % ", ".join(unknown), "use cert-manager's names, e.g. "
                           "'server auth', 'client auth', 'digital signature', 'key encipherment'")
        spec["usages"] = usages
    constraints = _constraints_spec(params.get("name_constraints"), is_ca)
    if constraints:
        spec["nameConstraints"] = constraints
    keystores, refs = _keystores_spec(params.get("keystores"))
    if keystores:
        spec["keystores"] = keystores
    template = {}
    if params.get("secret_labels"):
        template["labels"] = {str(k): str(v) for k, v in params["secret_labels"].items()}
    if params.get("secret_annotations"):
        template["annotations"] = {str(k): str(v) for k, v in params["secret_annotations"].items()}
    if template:
        spec["secretTemplate"] = template
    if params.get("revision_history_limit") is not None:
        if params["revision_history_limit"] < 1:
            raise PKIError("revision_history_limit", "must be 1 or more", "keep at least one CertificateRequest")
        spec["revisionHistoryLimit"] = params["revision_history_limit"]
    if params.get("subject_organizations"):
        spec["subject"] = {"organizations": list(params["subject_organizations"])}
    return spec, refs


def issuer_spec(params: Dict) -> Dict:
    issuer_type = params["type"]
    if issuer_type == "self_signed":
        return {"selfSigned": {}}
    secret = params.get("ca_secret_name")
    if not secret:
        raise PKIError("ca_secret_name", "is required when type is ca",
                       "name the Secret that holds (or will hold) the CA's tls.crt and tls.key")
    return {"ca": {"secretName": check_k8s_name(secret, "ca_secret_name")}}


def condition(obj: Optional[Dict], kind: str) -> Optional[Dict]:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_ready(obj: Optional[Dict]) -> bool:
    """Ready=True for the object's current generation."""
    cond = condition(obj, "Ready")
    if not cond or cond.get("status") != "True":
        return False
    generation = obj.get("metadata", {}).get("generation")
    observed = cond.get("observedGeneration")
    return observed is None or generation is None or observed >= generation


def is_issued(obj: Optional[Dict]) -> bool:
    """A Certificate Ready for its current generation whose issuance is recorded (status.revision).

    cert-manager's readiness controller may set Ready from a new Secret a moment before its issuing controller
    writes the revision; until then the Certificate is not done (seen under load in CI: Ready, revision None).
    """
    return is_ready(obj) and bool(((obj or {}).get("status") or {}).get("revision"))


def request_issuing(kube, path: str, obj: Dict, message: str) -> None:
    """Ask cert-manager to issue now: the Issuing condition (reason ManuallyTriggered) through /status,
    as cmctl renew sets it; conditional on the resourceVersion read."""
    status = dict(obj.get("status") or {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Issuing"]
    conditions.append({"type": "Issuing", "status": "True", "reason": "ManuallyTriggered", "message": message,
                       "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "observedGeneration": obj["metadata"]["generation"]})
    patch = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "status": {"conditions": conditions}}
    code, reply = kube.request("PATCH", path + "/status", body=patch, content_type="application/merge-patch+json")
    kube.check(code, reply, "re-issue", path, field="renew")
