# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of a Kubernetes cluster's own PKI: which host gets which certificate from which CA.

Pure data in, pure data out, decided on the controller from the inventory before
anything is written: the three CAs (cluster, etcd, front-proxy) and their name
constraints, and for every host the certificates its components use, with the
names, the subject Kubernetes authorizes by and the usages of each. Names come
from the inventory only (inventory name, node name, the addresses the inventory
gives), never from what a node reports about itself, so that every name can be
checked against its CA's constraints here, before the first CA is made.

Invariants:
- a node's identity ``system:node:<node name>`` is derived from its inventory
  host: the node name is the inventory name or its first label, nothing else;
- the apiserver's service IP lies in the service CIDR;
- every name of every certificate lies within its CA's constraints (the
  constraints are derived from the inventory when the user gives none);
- no private key is planned anywhere but on the host whose component uses it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Dict, List, Mapping, Optional, Sequence

from .authority import NameConstraintsSpec
from .errors import PKIError
from .identity import build_identity, normalize_dns_name

CAS = ("cluster", "etcd", "front_proxy")
GROUPS = ("etcd", "control_plane", "nodes")
# Kubernetes' own names for the apiserver, before the cluster domain is appended.
APISERVER_SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")
# Every etcd member may carry these: its clients on the same host dial them.
ETCD_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _client(name: str, ca: str, directory: str, common_name: str, organizations: Sequence[str] = ()) -> dict:
    return {
        "name": name,
        "ca": ca,
        "dir": directory,
        "names": [],
        "shared_names": [],
        "usages": ["client"],
        "subject": {"common_name": common_name, "organizations": list(organizations)},
    }


def node_name_of(host: str, wanted: Optional[str]) -> str:
    """The Kubernetes node name of inventory host ``host``: its name or its first label, lower case."""
    short = host.split(".")[0]
    name = (wanted or host).strip()
    if name not in (host, short):
        raise PKIError(
            "kubernetes_pki_node_name",
            "%r is not the name of inventory host %r (a node may only be %r or %r)" % (name, host, host, short),
            "set kubernetes_pki_node_name to %r or %r, or leave it unset" % (host, short),
        )
    if len(name) > 253 or not _NODE_NAME.match(name):
        raise PKIError(
            "kubernetes_pki_node_name",
            "%r (inventory host %r) is not a valid Kubernetes node name (lower-case DNS-1123)" % (name, host),
            "rename the inventory host, or set kubernetes_pki_node_name to its lower-case name",
        )
    return name


def _service_network(cidr: str, wanted: str) -> tuple:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise PKIError(
            "kubernetes_pki_service_cidr",
            "%r is not a network (%s)" % (cidr, exc),
            "write it as CIDR with host bits zero, e.g. 10.96.0.0/12",
        ) from None
    if not wanted:
        return network, str(next(network.hosts()))
    try:
        address = ipaddress.ip_address(wanted)
    except ValueError:
        raise PKIError(
            "kubernetes_pki_service_ip", "%r is not an IP address" % wanted, "give the apiserver's service IP"
        ) from None
    if address not in network or address == network.network_address:
        raise PKIError(
            "kubernetes_pki_service_ip",
            "%s is not an address of the service CIDR %s" % (address, network),
            "leave kubernetes_pki_service_ip unset (the CIDR's first address, %s), or fix kubernetes_pki_service_cidr"
            % next(network.hosts()),
        )
    return network, str(address)


def _addresses(host: str, values: Sequence[str]) -> List[str]:
    out = []
    for index, value in enumerate(values or ()):
        try:
            out.append(str(ipaddress.ip_address(str(value))))
        except ValueError:
            raise PKIError(
                "kubernetes_pki_addresses[%d]" % index,
                "%r of host %s is not an IP address" % (value, host),
                "list the host's IP addresses (from the inventory) in kubernetes_pki_addresses",
            ) from None
    return out


def _derived_constraints(names: Sequence[str], exact: Sequence[str] = ()) -> dict:
    """Constraints derived from ``names``: each DNS name's parent domain; each address's /24 (IPv6: /64).

    Tight enough that the CA cannot name anything outside the cluster's domains and networks, loose
    enough that a node added later in the same domain and network gets its certificate from the same CA.
    Names in ``exact`` (the kubernetes Service's names, the apiserver's further names) stay exact: the CA
    must not be able to sign other names of the cluster's service domain.
    """
    dns, ranges = set(), set()
    for name in names:
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            labels = name.split(".")
            dns.add(".".join(labels[1:]) if len(labels) > 2 and name not in exact else name)
            continue
        prefix = address.max_prefixlen if address.is_loopback else (24 if address.version == 4 else 64)
        ranges.add(ipaddress.ip_network("%s/%d" % (address, prefix), strict=False))
    return {
        "permitted_dns": sorted(dns),
        "permitted_ip_ranges": [str(n) for n in sorted(ranges, key=lambda n: (n.version, int(n.network_address)))],
    }


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def plan(settings: Mapping) -> dict:
    """The whole cluster PKI for ``settings`` (see the kubernetes_pki role's defaults), or a PKIError."""
    groups = {g: list(dict.fromkeys((settings.get("groups") or {}).get(g) or [])) for g in GROUPS}
    for group in ("etcd", "control_plane"):
        if not groups[group]:
            raise PKIError(
                "kubernetes_pki_%s_group" % group,
                "the inventory has no host in this group",
                "put the %s hosts in the group it names" % ("etcd members" if group == "etcd" else "control-plane"),
            )
    hosts: Mapping = settings.get("hosts") or {}
    domain = normalize_dns_name(str(settings.get("cluster_domain") or ""), "kubernetes_pki_cluster_domain")
    service_network, service_ip = _service_network(
        str(settings.get("service_cidr") or ""), str(settings.get("service_ip") or "")
    )
    extra_names = [str(n) for n in settings.get("apiserver_names") or []]
    extra_identity = build_identity(extra_names, "kubernetes_pki_apiserver_names")
    cluster_name = str(settings.get("cluster_name") or "kubernetes")
    if not re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", cluster_name):
        raise PKIError(
            "kubernetes_pki_cluster_name",
            "%r is not a DNS label (it names directories and kubeconfig entries)" % cluster_name,
            "use lower-case letters, digits and '-', e.g. prod-eu1",
        )
    service_names = list(APISERVER_SERVICE_NAMES) + ["kubernetes.default.svc." + domain, service_ip]
    # names only the apiservers may carry (shared among them): no host may claim one as its own
    reserved = set(service_names) | set(extra_identity.names())
    holders: Dict[str, str] = {}
    node_names: Dict[str, str] = {}
    admin = settings.get("admin") or {}

    out_hosts: Dict[str, dict] = {}
    for host in sorted(set(groups["etcd"]) | set(groups["control_plane"]) | set(groups["nodes"])):
        facts = hosts.get(host) or {}
        node_name = node_name_of(host, facts.get("node_name"))
        addresses = _addresses(host, facts.get("addresses") or [])
        try:
            addresses.append(str(ipaddress.ip_address(str(facts.get("ansible_host") or ""))))
        except ValueError:
            pass  # a name to connect to, not one to certify
        own = list(dict.fromkeys([host.lower(), node_name] + addresses))
        build_identity(own, "inventory host %s" % host)
        if node_name in node_names:
            raise PKIError(
                "kubernetes_pki_node_name",
                "%r is the node name of both %s and %s (each would be system:node:%s)"
                % (node_name, node_names[node_name], host, node_name),
                "give every node its own name",
            )
        node_names[node_name] = host
        for name in own:
            field = "kubernetes_pki_addresses" if _is_address(name) else "kubernetes_pki_node_name"
            if name in reserved or (_is_address(name) and ipaddress.ip_address(name) in service_network):
                raise PKIError(
                    field,
                    "%s of inventory host %s is a name of the kubernetes Service (or in the service CIDR %s), which "
                    "only the apiservers carry" % (name, host, service_network),
                    "remove it from the host's names and addresses",
                )
            if name in holders:
                raise PKIError(
                    field,
                    "%s is a name of both %s and %s; a name belongs to one host" % (name, holders[name], host),
                    "fix the inventory: each host's names and addresses are its own",
                )
            holders[name] = host
        certificates: List[dict] = []
        if host in groups["etcd"]:
            certificates.append(
                {
                    "name": "server",
                    "ca": "etcd",
                    "dir": "etcd",
                    "names": own + list(ETCD_LOCAL_NAMES),
                    "shared_names": list(ETCD_LOCAL_NAMES),
                    "usages": ["server", "client"],
                    "subject": {},
                }
            )
            certificates.append(
                {
                    "name": "peer",
                    "ca": "etcd",
                    "dir": "etcd",
                    "names": list(own),
                    "shared_names": [],
                    "usages": ["server", "client"],
                    "subject": {},
                }
            )
        if host in groups["control_plane"]:
            apiserver_names = own + service_names + extra_names
            certificates.append(
                {
                    "name": "apiserver",
                    "ca": "cluster",
                    "dir": "",
                    "names": list(dict.fromkeys(apiserver_names)),
                    # every control-plane node serves the kubernetes Service's names and IP
                    "shared_names": service_names + extra_names,
                    "usages": ["server"],
                    "subject": {"common_name": "kube-apiserver", "organizations": []},
                }
            )
            certificates += [
                _client("apiserver-kubelet-client", "cluster", "", "kube-apiserver-kubelet-client"),
                _client("apiserver-etcd-client", "etcd", "etcd", "kube-apiserver-etcd-client"),
                _client("front-proxy-client", "front_proxy", "front-proxy", "front-proxy-client"),
                _client("controller-manager", "cluster", "", "system:kube-controller-manager"),
                _client("scheduler", "cluster", "", "system:kube-scheduler"),
            ]
        if host in groups["nodes"]:
            node = "system:node:" + node_name
            certificates += [
                _client("kubelet-client", "cluster", "", node, ["system:nodes"]),
                {
                    "name": "kubelet",
                    "ca": "cluster",
                    "dir": "",
                    "names": list(own),
                    "shared_names": [],
                    "usages": ["server"],
                    "subject": {"common_name": node, "organizations": ["system:nodes"]},
                },
                _client("kube-proxy", "cluster", "", "system:kube-proxy"),
            ]
        out_hosts[host] = {
            "node_name": node_name,
            "groups": [g for g in GROUPS if host in groups[g]],
            "certificates": certificates,
        }

    cas = {}
    for ca in CAS:
        wanted = (settings.get("constraints") or {}).get(ca) or {}
        names = sorted({n for h in out_hosts.values() for c in h["certificates"] if c["ca"] == ca for n in c["names"]})
        if wanted.get("permitted_dns") or wanted.get("permitted_ip_ranges"):
            spec = NameConstraintsSpec.parse(wanted.get("permitted_dns") or (), wanted.get("permitted_ip_ranges") or ())
            constraints = spec.describe()
            field = "kubernetes_pki_%s_ca_permitted_%s" % (ca, "dns" if wanted.get("permitted_dns") else "ip_ranges")
            for host, entry in out_hosts.items():
                for cert in entry["certificates"]:
                    if cert["ca"] != ca:
                        continue
                    problems = spec.violations(build_identity(cert["names"], "names"))
                    if problems:
                        raise PKIError(
                            field,
                            "the %s certificate of %s would be outside the %s CA's constraints: %s"
                            % (cert["name"], host, ca.replace("_", "-"), "; ".join(problems)),
                            "widen the constraints, or fix the host's names and addresses in the inventory",
                        )
        else:
            constraints = _derived_constraints(names, exact=sorted(reserved))
        cas[ca] = {
            "permitted_dns": list(constraints["permitted_dns"]),
            "permitted_ip_ranges": list(constraints["permitted_ip_ranges"]),
        }

    for entry in out_hosts.values():
        for cert in entry["certificates"]:
            cert["dns_names"] = [n for n in cert["names"] if not _is_address(n)]
            cert["ip_addresses"] = [n for n in cert["names"] if _is_address(n)]
    admin_name = str(admin.get("common_name") or "kubernetes-admin")
    admin_identity = _client("admin", "cluster", "", admin_name, [str(g) for g in admin.get("groups") or []])
    admin_identity.update(dns_names=[], ip_addresses=[])
    return {
        "cas": cas,
        "hosts": out_hosts,
        "service_ip": service_ip,
        "admin": admin_identity,
    }


# Directory names of the three CAs under kubernetes_pki_ca_dir (generation 1; later ones get ".<n>").
CA_LABELS = {"cluster": "cluster", "etcd": "etcd", "front_proxy": "front-proxy"}


def ca_directory(ca_dir: str, ca: str, generation: int) -> str:
    """Where generation ``generation`` of CA ``ca`` lives: <ca_dir>/<label> for the first, <label>.<n> after."""
    label = CA_LABELS[ca]
    return "%s/%s" % (ca_dir.rstrip("/"), label if generation == 1 else "%s.%d" % (label, generation))


def generation_of(ca: str, value) -> int:
    field_name = "kubernetes_pki_%s_ca_generation" % ca
    try:
        generation = int(str(value).strip())
    except ValueError:
        generation = 0
    if isinstance(value, bool) or generation < 1 or generation > 9999:
        raise PKIError(
            field_name,
            "%r is not a generation (a whole number from 1)" % (value,),
            "start at 1; raise it by one to rotate that CA",
        )
    return generation


def ca_state_paths(ca_dir: str, generations: Mapping) -> List[str]:
    """The CA directories whose rotation state ``ca_generations`` needs (generation - 1, itself and + 1)."""
    wanted = []
    for ca in CAS:
        generation = generation_of(ca, generations.get(ca, 1))
        wanted += [ca_directory(ca_dir, ca, g) for g in (generation - 1, generation, generation + 1) if g >= 2]
    return wanted


def ca_generations(ca_dir: str, generations: Mapping, stages: Mapping) -> dict:
    """Which directory of each CA signs and whether it is being rotated, or a PKIError naming the variable.

    ``generations`` is what the inventory asks for each CA; ``stages`` maps each directory of
    ``ca_state_paths`` to the stage its rotation state records (None when it has none). Raising a CA's
    generation by one starts its rotation from the previous directory (trust both, switch, drop the
    old root, each gated by the ca_rotation module); the generation is done when that rotation is.
    Generations never go back, move one step at a time, and only one CA rotates at a time.
    """
    out: Dict[str, dict] = {}
    rotating: List[str] = []
    for ca in CAS:
        field_name = "kubernetes_pki_%s_ca_generation" % ca
        generation = generation_of(ca, generations.get(ca, 1))
        path = ca_directory(ca_dir, ca, generation)
        later = stages.get(ca_directory(ca_dir, ca, generation + 1))
        if later is not None:
            raise PKIError(
                field_name,
                "generation %d of the %s CA was already started (%s, at %s); a CA never goes back to an older one"
                % (generation + 1, CA_LABELS[ca], ca_directory(ca_dir, ca, generation + 1), later),
                "set it to %d" % (generation + 1),
            )
        stage = stages.get(path) if generation >= 2 else None
        entry = {"generation": generation, "path": path, "previous_path": None, "rotating": False, "stage": stage}
        if generation >= 2 and stage != "done":
            if generation >= 3 and stages.get(ca_directory(ca_dir, ca, generation - 1)) != "done":
                raise PKIError(
                    field_name,
                    "generation %d of the %s CA was never finished (its rotation is %s); a CA rotates one "
                    "generation at a time"
                    % (
                        generation - 1,
                        CA_LABELS[ca],
                        "at " + str(stages.get(ca_directory(ca_dir, ca, generation - 1)))
                        if stages.get(ca_directory(ca_dir, ca, generation - 1))
                        else "not started",
                    ),
                    "set it to %d and run until that rotation is done" % (generation - 1),
                )
            entry.update(previous_path=ca_directory(ca_dir, ca, generation - 1), rotating=True)
            rotating.append(ca)
        out[ca] = entry
    if len(rotating) > 1:
        # the one already under way keeps going; the other is refused
        first = next((ca for ca in rotating if out[ca]["stage"] is not None), rotating[0])
        other = next(ca for ca in rotating if ca != first)
        raise PKIError(
            "kubernetes_pki_%s_ca_generation" % other,
            "a rotation of the %s CA was asked while one of the %s CA is %s; one CA rotates at a time (each needs "
            "its own restarts)"
            % (CA_LABELS[other], CA_LABELS[first], "at " + out[first]["stage"] if out[first]["stage"] else "asked too"),
            "set it back to %d until the %s CA's rotation is done" % (out[other]["generation"] - 1, CA_LABELS[first]),
        )
    return {"cas": out, "rotating": rotating[0] if rotating else None}


# The files kubernetes_pki writes beside the certificates: a kubeconfig per client identity and, per
# component, its certificate flags as one environment variable (EnvironmentFile= of a systemd unit). systemd
# splits ${VAR}... on whitespace and takes the words as they are, so a flag with whitespace, a quote, a dollar
# or a backslash would reach the component altered without an error: such a flag is refused.
_FLAG = re.compile(r"--[a-z0-9][a-z0-9-]*(=[A-Za-z0-9._:/=,+@%-]*)?")
_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")
CONFIG_HEADER = "# Written by securebydefault.pki (role kubernetes_pki); a change here is undone by its next run.\n"


def _config_name(value: str, field: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value) or value == "pki-flags":
        raise PKIError(
            field, "%r is not a plain file name (or is pki-flags)" % (value,), "use letters, digits, '.', '_' and '-'"
        )
    return value


def kubeconfig_text(cluster_name: str, server: str, pki_dir: str, user: str, certificate: str, host: str = "") -> str:
    """A kubeconfig naming the identity's files in ``pki_dir`` (the CA bundle, <certificate>-fullchain.crt, .key).

    Every value is written as a JSON string (JSON is YAML), so no name can change the document's structure.
    """
    if not re.fullmatch(r"https://[^\s/]+(/\S*)?", server or ""):
        raise PKIError("server", "%r is not an https:// URL" % (server,), "give the apiserver's https:// URL")
    for field, value in (
        ("cluster_name", cluster_name),
        ("server", server),
        ("pki_dir", pki_dir),
        ("user", user),
        ("host", host),
    ):
        # printable ASCII only: YAML readers refuse the escapes json.dumps writes for other characters, and a
        # raw line separator (U+2028, NEL) would end the comment line
        if not isinstance(value, str) or not all(" " <= char <= "~" for char in value):
            raise PKIError(field, "%r holds characters other than printable ASCII" % (value,), "use ASCII names")
    q = json.dumps
    lines = [
        CONFIG_HEADER.rstrip("\n"),
        # names quoted here too: a line break in one would end the comment
        "# The %s identity%s: its key was made on this host." % (q(user), " of " + q(host) if host else ""),
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "  - name: %s" % q(cluster_name),
        "    cluster:",
        "      server: %s" % q(server),
        "      certificate-authority: %s" % q(pki_dir + "/ca-bundle.crt"),
        "users:",
        "  - name: %s" % q(user),
        "    user:",
        "      client-certificate: %s" % q("%s/%s-fullchain.crt" % (pki_dir, certificate)),
        "      client-key: %s" % q("%s/%s.key" % (pki_dir, certificate)),
        "contexts:",
        "  - name: %s" % q(user),
        "    context:",
        "      cluster: %s" % q(cluster_name),
        "      user: %s" % q(user),
        "current-context: %s" % q(user),
    ]
    return "\n".join(lines) + "\n"


def flags_env_text(component: str, variable: str, flags: Sequence[str], field: str = "flags") -> str:
    """``VARIABLE='--a=1 --b=2'``: the certificate flags of one component, for EnvironmentFile=."""
    if not isinstance(variable, str) or not _VARIABLE.fullmatch(variable):
        raise PKIError(
            field + ".variable",
            "%r is not an environment variable name" % (variable,),
            "use capital letters, digits and '_'",
        )
    for index, flag in enumerate(flags):
        if not isinstance(flag, str) or not _FLAG.fullmatch(flag):
            raise PKIError(
                "%s.flags[%d]" % (field, index),
                "%r is not a flag of the form --name=value without whitespace, quotes, '$' or '\\'" % (flag,),
                "use paths and values of letters, digits and . _ / : = , + @ %% - only (a systemd unit splits "
                "the variable on whitespace and does not unquote)",
            )
    usage = "# The certificate flags of %s (e.g. EnvironmentFile= of its systemd unit, then ExecStart=... $%s).\n"
    return CONFIG_HEADER + usage % (component, variable) + "%s='%s'\n" % (variable, " ".join(flags))


def config_files(params: Mapping) -> List[tuple]:
    """[(path, mode, text)] of one host's kubeconfigs and flag files, every input checked first."""
    config_dir, pki_dir = params["config_dir"], params["pki_dir"]
    for field, value in (("config_dir", config_dir), ("pki_dir", pki_dir)):
        if not isinstance(value, str) or not value.startswith("/") or "/../" in value + "/" or "\n" in value:
            raise PKIError(field, "%r is not an absolute path" % (value,), "give an absolute path without '..'")
        if params.get("flags") and not re.fullmatch(r"/[A-Za-z0-9._/-]+", value):
            raise PKIError(
                field,
                "%r holds characters other than letters, digits and . _ / -" % (value,),
                "choose such a path (component flags hold it unquoted)",
            )
    config_dir, pki_dir = config_dir.rstrip("/") or "/", pki_dir.rstrip("/") or "/"
    out = []
    seen = set()
    for index, entry in enumerate(params.get("kubeconfigs") or []):
        field = "kubeconfigs[%d]" % index
        name = _config_name(entry.get("file"), field + ".file")
        certificate = _config_name(entry.get("certificate"), field + ".certificate")
        user = entry.get("user")
        if not isinstance(user, str) or not user:
            raise PKIError(field + ".user", "is empty", "name the identity (e.g. system:kube-scheduler)")
        path = config_dir + "/" + name
        if path in seen:
            raise PKIError(field + ".file", "%s is written twice" % path, "give each kubeconfig its own file")
        seen.add(path)
        text = kubeconfig_text(
            params["cluster_name"], params["server"], pki_dir, user, certificate, params.get("host") or ""
        )
        out.append((path, 0o600, text))
    for index, entry in enumerate(params.get("flags") or []):
        field = "flags[%d]" % index
        name = _config_name(entry.get("name"), field + ".name")
        path = "%s/pki-flags/%s.env" % (config_dir, name)
        if path in seen:
            raise PKIError(field + ".name", "%s is written twice" % path, "give each component its own name")
        seen.add(path)
        out.append((path, 0o644, flags_env_text(name, entry.get("variable"), list(entry.get("flags") or []), field)))
    return out
