#!/usr/bin/python
# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tls_probe: what a TLS endpoint actually serves, as a client with a given bundle sees it."""
from __future__ import annotations

DOCUMENTATION = r"""
module: tls_probe
short_description: Connect to a TLS endpoint and report the certificate it serves, whether it verifies, and mTLS
version_added: 0.3.0
description:
  - Connects to O(endpoint) like a client would and returns the certificate chain the server presents (serial,
    issuer, names, not_after, fingerprint). With O(bundle) or O(bundle_path) a second handshake verifies chain
    and name against that bundle, with the intermediates the server sends, as a real client with that bundle
    would. With O(client_cert_path) it presents a client certificate and reports whether the server accepted it
    (TLS 1.3 servers refuse a client certificate after the handshake; the module reads once to hear that).
  - A file renewed on disk is not a certificate served. Use this module to check that a service reloaded its
    certificate, before a rotation moves on.
  - A refused connection, a timeout and a port that does not speak TLS are results (RV(reachable), RV(tls),
    RV(error)), not failures. Bad options fail before any connection.
  - With O(metrics_path) the result is also written as Prometheus metrics; C(changed) then says whether that
    file changed. Otherwise the module changes nothing.
  - Runs where the task runs; delegate it to a host that sees the endpoint as clients do.
  - The whole presented chain is reported on Python 3.13 and later; on older Pythons, the leaf.
author: securebydefault.pki contributors (@securebydefault)
extends_documentation_fragment:
  - securebydefault.pki.requirements
options:
  endpoint:
    description: C(host:port), an IPv6 address in brackets (C([2001:db8::1]:443)).
    type: str
    required: true
  server_name:
    description: Name sent as SNI and verified against the certificate. Defaults to the host of O(endpoint).
    type: str
  bundle:
    description: PEM trust anchors to verify the served chain against. Without it (or O(bundle_path)) nothing is
      verified and RV(verified) is null.
    type: str
  bundle_path:
    description: File with the PEM trust anchors (for example a node's C(ca-bundle.crt)).
    type: path
  client_cert_path:
    description: PEM client certificate (with its chain) to present.
    type: path
  client_key_path:
    description: Its unencrypted PEM key.
    type: path
  timeout:
    description: Seconds to wait for the connection and each handshake.
    type: float
    default: 5
  metrics_path:
    description:
      - Also write the result as Prometheus metrics for node_exporter's textfile collector
        (C(securebydefault_pki_endpoint_served_not_after_timestamp_seconds),
        C(securebydefault_pki_endpoint_probe_success), label C(endpoint)); see docs/monitoring.md.
      - An absolute path ending in C(.prom), written atomically when its content changes (never in check mode).
        Use one file per endpoint.
    type: path
  metrics_labels:
    description:
      - Constant labels added to the metrics, such as C(host) set to the inventory name, so that the alert
        "renewed on disk but not served" can match the certificate's metrics of the same host.
    type: dict
attributes:
  check_mode:
    support: full
    description: Probes as usual; writes no metrics file.
  diff_mode:
    support: none
    description: Nothing to diff.
"""

EXAMPLES = r"""
- name: Does node1 serve a certificate that its clients accept?
  securebydefault.pki.tls_probe:
    endpoint: node1.cluster-a.example.internal:8443
    bundle_path: /etc/pki/cluster-a/ca-bundle.crt
  register: served
  failed_when: not served.verified

- name: Is the certificate served the one on disk?
  ansible.builtin.assert:
    that: served.chain[0].serial == node_cert.certificate.serial
    fail_msg: "{{ served.endpoint }} still serves {{ served.chain[0].serial }}: the service did not reload"

- name: Does the server accept a client certificate from the new CA?
  securebydefault.pki.tls_probe:
    endpoint: "[2001:db8::7]:5432"
    server_name: db1.cluster-a.example.internal
    bundle_path: /etc/pki/cluster-a/ca-bundle.crt
    client_cert_path: /etc/pki/cluster-a/node-fullchain.crt
    client_key_path: /etc/pki/cluster-a/node.key
  register: mtls
"""

RETURN = r"""
endpoint:
  description: The endpoint probed, normalised.
  returned: always
  type: str
  sample: node1.cluster-a.example.internal:8443
reachable:
  description: Whether a TCP connection was made.
  returned: always
  type: bool
  sample: true
tls:
  description: Whether the endpoint speaks TLS (a handshake, or a TLS refusal of the client certificate).
  returned: always
  type: bool
  sample: true
protocol:
  description: The TLS version negotiated.
  returned: when a handshake completed
  type: str
  sample: TLSv1.3
chain:
  description: The certificates the server presented, leaf first (on Python before 3.13, only the leaf).
  returned: always
  type: list
  elements: dict
  contains:
    subject:
      description: Subject (RFC 4514).
      type: str
      sample: CN=node1.cluster-a.example.internal
    issuer:
      description: Issuer (RFC 4514).
      type: str
      sample: CN=cluster-a CA
    serial:
      description: Serial number in hex, as node_certificate and the CA's ledger write it.
      type: str
      sample: 5f3a09c1e2
    names:
      description: Subject alternative names.
      type: list
      elements: str
      sample: [node1.cluster-a.example.internal, 10.20.0.11]
    not_before:
      description: Start of validity (UTC).
      type: str
      sample: "2026-11-22T09:55:00Z"
    not_after:
      description: End of validity (UTC).
      type: str
      sample: "2027-02-20T10:00:00Z"
    fingerprint:
      description: SHA-256 fingerprint.
      type: str
      sample: "4F:2A:...:9C"
verified:
  description: Whether a client with the bundle accepts the chain and the name; null without a bundle.
  returned: always
  type: bool
  sample: true
verify_error:
  description: Why it does not verify.
  returned: always
  type: str
  sample: "Hostname mismatch, certificate is not valid for 'node2.cluster-a.example.internal'."
client_certificate_accepted:
  description: Whether the server kept the connection with the client certificate; null when none was presented.
  returned: always
  type: bool
  sample: true
client_certificate_required:
  description: Whether the server refused the connection because no client certificate was presented.
  returned: always
  type: bool
  sample: false
metrics:
  description: The metrics written (or that would be) to O(metrics_path).
  returned: with O(metrics_path)
  type: str
  sample: "securebydefault_pki_endpoint_probe_success{endpoint=\"node1:8443\",host=\"node1\"} 1\n"
error:
  description: What went wrong (no connection, no TLS, a timeout, the client certificate refused); null otherwise.
  returned: always
  type: str
  sample: "cannot connect to node1.cluster-a.example.internal:8443: Connection refused"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.securebydefault.pki.plugins.module_utils._ops import probe as ops
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import run

ARGUMENT_SPEC = dict(
    endpoint=dict(type="str", required=True),
    server_name=dict(type="str"),
    bundle=dict(type="str"),
    bundle_path=dict(type="path"),
    client_cert_path=dict(type="path"),
    client_key_path=dict(type="path"),
    timeout=dict(type="float", default=5),
    metrics_path=dict(type="path"),
    metrics_labels=dict(type="dict"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           mutually_exclusive=[("bundle", "bundle_path")],
                           required_together=[("client_cert_path", "client_key_path")])
    run(module, ops.tls_probe)


if __name__ == "__main__":
    main()
