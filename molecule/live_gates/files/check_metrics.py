# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read what node_exporter served with Prometheus' own parser and compare it with the certificate.

    python check_metrics.py HOST NOT_AFTER < metrics    (NOT_AFTER as 2027-02-20T10:00:00Z)

Exits non-zero, saying why, unless the host's certificate series and every endpoint series of the host
carry that notAfter and every probe succeeded.
"""
import datetime
import sys

from prometheus_client.parser import text_string_to_metric_families

host, not_after = sys.argv[1:3]
expected = datetime.datetime.strptime(not_after, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
found = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        if sample.labels.get("host") == host:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
problems = []
for name in ("securebydefault_pki_certificate_not_after_timestamp_seconds",
             "securebydefault_pki_endpoint_served_not_after_timestamp_seconds"):
    series = found.get(name) or []
    if not series:
        problems.append("no %s{host=%s}" % (name, host))
    for labels, value in series:
        if value != expected.timestamp():
            problems.append("%s%s = %s, expected %s" % (name, labels, value, expected.timestamp()))
for labels, value in found.get("securebydefault_pki_endpoint_probe_success") or [("none", 0)]:
    if value != 1:
        problems.append("probe of %s did not succeed" % (labels,))
for labels, value in found.get("securebydefault_pki_certificate_renewal_due") or [("none", 1)]:
    if value != 0:
        problems.append("renewal due for %s" % (labels,))
print("\n".join(problems) or "metrics of %s agree with %s" % (host, not_after))
sys.exit(1 if problems else 0)
