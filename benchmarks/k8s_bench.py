# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: N service Certificates applied with the cert_manager_pki role and Ready, beside a floor.

Against the real control plane (tests/k8s/harness.py): etcd, kube-apiserver, cert-manager.
Measures the first run (namespace, self-signed ClusterIssuer, namespace CA, CA Issuer, N
Certificates, applied together with cert_manager_certificates and waited for until Ready) and the
idempotent rerun: wall time, time per certificate, API requests (counted by the modules), and
checks that every Certificate is Ready and every Secret verifies against the namespace CA with
openssl. The floor, measured in the same run: one Python process with the kubernetes client that
server-side-applies the same objects (read back from the role's namespace, moved to a fresh one),
waits for the CA and its Issuer, watches until all N Certificates are Ready, then applies them all
again. With --settle S each rerun (ours and the floor's) starts S seconds after its first run, on a quiet
cluster. Writes the table between the k8s-benchmark markers of docs/performance.md.

    python benchmarks/k8s_bench.py [--repeat R] [--settle S] [N ...]     (default: 100, once, no pause)

With --repeat, each N is measured R times (a fresh namespace each time, the floor right after each) and the
table gives the median of each column, the ratios of those medians and the range of the runs' own ratios:
cert-manager's issuing varies from run to run on a small machine.
"""
from __future__ import annotations

import base64
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "k8s"))

import harness  # noqa: E402  pylint: disable=wrong-import-position

DOC = REPO / "docs" / "performance.md"
START, END = "<!-- k8s-benchmark:start -->", "<!-- k8s-benchmark:end -->"


def run_playbook(plane, services, namespace):
    extra = {"cert_manager_pki_services": services,
             "cert_manager_pki_selfsigned_issuer": namespace + "-selfsigned",
             "ansible_python_interpreter": sys.executable}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra, handle)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", **plane.env())
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", str(HERE / "k8s_certificates.yml"), "-e", "@" + handle.name],
                          capture_output=True, text=True, env=env, check=False)
    elapsed = time.monotonic() - started
    os.unlink(handle.name)
    if proc.returncode != 0:
        sys.exit("playbook failed:\n" + proc.stdout[-4000:] + proc.stderr[-2000:])
    found = re.search(r"BENCH-SUMMARY (\{.*?\})\"", proc.stdout)
    if found is None:
        sys.exit("the playbook printed no summary:\n" + proc.stdout[-4000:])
    return elapsed, json.loads(found.group(1).replace('\\"', '"'))


def verify_all(plane, namespace, services):
    """Every service Secret verifies against the namespace CA (openssl), by its DNS name."""
    from kubernetes import client, config  # pylint: disable=import-outside-toplevel

    core = client.CoreV1Api(config.new_client_from_config(config_file=str(plane.kubeconfig)))

    def secret(name):
        data = core.read_namespaced_secret(name, namespace).data
        return {k: base64.b64decode(v) for k, v in data.items()}

    with tempfile.TemporaryDirectory() as tmp:
        ca = Path(tmp) / "ca.pem"
        ca.write_bytes(secret("sbd-pki-cluster-ca")["tls.crt"])
        for service in services:
            cert = Path(tmp) / "cert.pem"
            cert.write_bytes(secret(service["name"] + "-tls")["tls.crt"])
            name = "%s.%s.svc.cluster.local" % (service["name"], namespace)
            subprocess.run(["openssl", "verify", "-CAfile", str(ca), "-verify_hostname", name, str(cert)],
                           capture_output=True, check=True)


CM = ("cert-manager.io", "v1")
# Seconds between a first run and its rerun, ours and the floor's alike (--settle; 0 unless given): cert-manager
# goes on for a few seconds after the last Certificate is Ready and competes for the two cores, which slows the
# floor's rerun (all requests) more than ours (mostly ansible-playbook's own Python).
SETTLE = 0.0


def api_of(plane):
    from kubernetes import config  # pylint: disable=import-outside-toplevel

    return config.new_client_from_config(config_file=str(plane.kubeconfig))


def objects_of(plane, namespace, selfsigned):
    """What the role made, as apply bodies: the ClusterIssuer, the namespace CA, its Issuer, the Certificates."""
    from kubernetes import client  # pylint: disable=import-outside-toplevel

    custom = client.CustomObjectsApi(api_of(plane))

    def body(obj):
        meta = {k: obj["metadata"][k] for k in ("name", "namespace") if k in obj["metadata"]}
        return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta, "spec": obj["spec"]}

    cluster_issuer = custom.get_cluster_custom_object(*CM, "clusterissuers", selfsigned)
    certs = custom.list_namespaced_custom_object(*CM, namespace, "certificates")["items"]
    issuers = custom.list_namespaced_custom_object(*CM, namespace, "issuers")["items"]
    ca = [body(c) for c in certs if c["spec"].get("isCA")]
    leaves = sorted((body(c) for c in certs if not c["spec"].get("isCA")), key=lambda c: c["metadata"]["name"])
    return [body(cluster_issuer)], ca, [body(i) for i in issuers], leaves


def floor(plane, made, namespace, selfsigned, count):
    """The same objects in a fresh namespace, by one kubernetes-client process: (first run, rerun) in seconds."""
    from kubernetes import client, watch  # pylint: disable=import-outside-toplevel

    fresh = "floor-%d-%s" % (count, uuid.uuid4().hex[:6])
    moved = json.loads(json.dumps(made).replace(namespace, fresh).replace(selfsigned, fresh + "-selfsigned"))
    cluster_issuers, cas, issuers, leaves = moved
    api = api_of(plane)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)

    def apply(obj):
        plural = obj["kind"].lower() + "s"
        kwargs = dict(field_manager="floor", force=True, _content_type="application/apply-patch+yaml")
        if "namespace" in obj["metadata"]:
            return custom.patch_namespaced_custom_object(*CM, obj["metadata"]["namespace"], plural,
                                                         obj["metadata"]["name"], obj, **kwargs)
        return custom.patch_cluster_custom_object(*CM, plural, obj["metadata"]["name"], obj, **kwargs)

    def ready(obj):
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   and c.get("observedGeneration", obj["metadata"].get("generation")) == obj["metadata"]["generation"]
                   for c in (obj.get("status") or {}).get("conditions") or [])

    def wait_ready(plural, names):
        pending = set(names)
        listing = custom.list_namespaced_custom_object(*CM, fresh, plural)
        pending -= {o["metadata"]["name"] for o in listing["items"] if ready(o)}
        if not pending:
            return
        stream = watch.Watch().stream(custom.list_namespaced_custom_object, *CM, fresh, plural,
                                      resource_version=listing["metadata"]["resourceVersion"], timeout_seconds=300)
        for event in stream:
            obj = event["object"]
            if obj["metadata"]["name"] in pending and ready(obj):
                pending.discard(obj["metadata"]["name"])
                if not pending:
                    break
        assert not pending, pending

    started = time.monotonic()
    core.create_namespace({"metadata": {"name": fresh}})
    for obj in cluster_issuers + cas:
        apply(obj)
    wait_ready("certificates", [c["metadata"]["name"] for c in cas])
    for obj in issuers:
        apply(obj)
    wait_ready("issuers", [i["metadata"]["name"] for i in issuers])
    for obj in leaves:
        apply(obj)
    wait_ready("certificates", [c["metadata"]["name"] for c in leaves])
    first = time.monotonic() - started
    time.sleep(SETTLE)
    started = time.monotonic()
    answers = [apply(obj) for obj in cluster_issuers + cas + issuers + leaves]
    rerun = time.monotonic() - started
    assert all(ready(a) for a in answers[len(cluster_issuers):]), "the floor's rerun found objects not Ready"
    return first, rerun


def measure(plane, count):
    namespace = "bench-%d-%s" % (count, uuid.uuid4().hex[:6])
    services = [{"name": "svc-%03d" % i, "namespace": namespace} for i in range(count)]
    first, first_sum = run_playbook(plane, services, namespace)
    assert first_sum["certificates"] == count and first_sum["ready"] == count, first_sum
    verify_all(plane, namespace, services)
    time.sleep(SETTLE)
    rerun, rerun_sum = run_playbook(plane, services, namespace)
    assert rerun_sum["changed"] == 0, rerun_sum
    made = objects_of(plane, namespace, namespace + "-selfsigned")
    assert len(made[3]) == count, len(made[3])
    floor_first, floor_rerun = floor(plane, made, namespace, namespace + "-selfsigned", count)
    return {"count": count, "first": first, "rerun": rerun, "first_calls": first_sum["api_calls"],
            "rerun_calls": rerun_sum["api_calls"], "floor_first": floor_first, "floor_rerun": floor_rerun}


def median_row(runs):
    """One row from repeated runs: the median of each column, and each ratio's range over the runs."""
    import statistics  # pylint: disable=import-outside-toplevel

    row = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    row["runs"] = len(runs)
    for ratio, (ours, floor_key) in (("first_ratios", ("first", "floor_first")),
                                     ("rerun_ratios", ("rerun", "floor_rerun"))):
        row[ratio] = sorted(run[ours] / run[floor_key] for run in runs)
    return row


def table(rows):
    lines = ["| certificates | first run | floor | first / floor | API requests per certificate "
             "| rerun (changed=0) | floor | rerun / floor | API requests per certificate |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def spread(row, key):
        ratios = row.get(key) or []
        return " (runs %.2f-%.2f)" % (ratios[0], ratios[-1]) if len(ratios) > 1 else ""

    for row in rows:
        n = row["count"]
        lines.append("| %d | %.1f s | %.1f s | %.2f×%s | %.2f | %.1f s | %.1f s | %.2f×%s | %.2f |" % (
            n, row["first"], row["floor_first"], row["first"] / row["floor_first"], spread(row, "first_ratios"),
            row["first_calls"] / n, row["rerun"], row["floor_rerun"], row["rerun"] / row["floor_rerun"],
            spread(row, "rerun_ratios"), row["rerun_calls"] / n))
    lines.append("")
    if any(row.get("runs", 1) > 1 for row in rows):
        lines.append("Each row: the median of %d runs (each in a fresh namespace, its floor right after it); the "
                     "ratios are those of the medians, with the range of the runs' own ratios." % rows[0]["runs"])
        lines.append("")
    if SETTLE:
        lines.append("Each rerun (ours and the floor's) started %g s after its first run." % SETTLE)
        lines.append("")
    lines.append("Measured %s on %s (%d cores), kube-apiserver %s, etcd %s, cert-manager %s; every Secret "
                 "verified against its namespace CA with openssl after the first run." % (
                     time.strftime("%Y-%m-%d"), platform.machine(), os.cpu_count(),
                     harness.VERSIONS["kube-apiserver"], harness.VERSIONS["etcd"], harness.VERSIONS["cert-manager"]))
    return "\n".join(lines)


def main(argv):
    global SETTLE  # pylint: disable=global-statement
    repeat = 1
    while argv[:1] in (["--repeat"], ["--settle"]):
        if argv[0] == "--repeat":
            repeat = int(argv[1])
        else:
            SETTLE = float(argv[1])
        argv = argv[2:]
    counts = [int(a) for a in argv] or [100]
    shared = os.environ.get("SBD_PKI_K8S_STATE")
    own = not (shared and (Path(shared) / "state.json").exists())
    plane = harness.ControlPlane(Path(tempfile.mkdtemp(prefix="sbd-pki-k8s-bench.")) / "plane") if own \
        else harness.ControlPlane(shared)
    if own:
        plane.start()
    try:
        rows = []
        for count in counts:
            runs = []
            for _run in range(repeat):
                runs.append(measure(plane, count))
                print(json.dumps(runs[-1]), flush=True)
            rows.append(median_row(runs) if repeat > 1 else runs[0])
    finally:
        if own:
            plane.stop()
    text = table(rows)
    print(text)
    doc = DOC.read_text()
    if START in doc:
        doc = re.sub(re.escape(START) + ".*?" + re.escape(END), START + "\n" + text + "\n" + END, doc, flags=re.S)
        DOC.write_text(doc)


if __name__ == "__main__":
    main(sys.argv[1:])
