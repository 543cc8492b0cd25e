# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Prometheus text writer, read back with the real parser; the alert rules of docs/monitoring."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from ansible_collections.securebydefault.pki.plugins.module_utils.pki import metrics
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5))
ALERTS = os.path.join(REPO, "docs", "monitoring", "alerts.yml")
MONITORING = os.path.join(REPO, "docs", "monitoring.md")


@pytest.fixture
def parse():
    """prometheus_client's parser: {name: family}; the families' samples as {labels tuple: value}."""
    parser = pytest.importorskip("prometheus_client.parser")

    def read(text):
        return {family.name: family for family in parser.text_string_to_metric_families(text)}

    return read


def samples(family):
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def test_families_have_help_type_and_sorted_samples(parse):
    out = metrics.Exposition()
    out.add(metrics.CERTIFICATE_RENEWAL_DUE, {"kind": "ca", "where": "/srv/pki/b"}, 1)
    out.add(metrics.CERTIFICATE_RENEWAL_DUE, {"where": "/srv/pki/a", "kind": "ca"}, 0)
    out.add(metrics.CERTIFICATE_NOT_AFTER, {"kind": "ca", "where": "/srv/pki/a"}, 1801526400)
    text = out.render()
    lines = text.splitlines()
    help_text = metrics.FAMILIES[metrics.CERTIFICATE_NOT_AFTER][1]
    assert lines[0] == "# HELP %s %s" % (metrics.CERTIFICATE_NOT_AFTER, help_text)
    assert lines[1] == "# TYPE %s gauge" % metrics.CERTIFICATE_NOT_AFTER
    assert lines[2] == '%s{kind="ca",where="/srv/pki/a"} 1801526400' % metrics.CERTIFICATE_NOT_AFTER
    due = [line for line in lines if line.startswith(metrics.CERTIFICATE_RENEWAL_DUE + "{")]
    assert due == ['%s{kind="ca",where="/srv/pki/a"} 0' % metrics.CERTIFICATE_RENEWAL_DUE,
                   '%s{kind="ca",where="/srv/pki/b"} 1' % metrics.CERTIFICATE_RENEWAL_DUE]
    assert text.endswith("\n") and "\n\n" not in text
    families = parse(text)
    assert families[metrics.CERTIFICATE_NOT_AFTER].type == "gauge"
    assert samples(families[metrics.CERTIFICATE_NOT_AFTER]) == {(("kind", "ca"), ("where", "/srv/pki/a")): 1801526400}
    # the same samples added in another order give the same bytes
    again = metrics.Exposition()
    again.add(metrics.CERTIFICATE_NOT_AFTER, {"where": "/srv/pki/a", "kind": "ca"}, 1801526400)
    again.add(metrics.CERTIFICATE_RENEWAL_DUE, {"kind": "ca", "where": "/srv/pki/a"}, 0)
    again.add(metrics.CERTIFICATE_RENEWAL_DUE, {"kind": "ca", "where": "/srv/pki/b"}, 1)
    assert again.render() == text


def test_label_values_with_quotes_backslashes_and_newlines_round_trip(parse):
    nasty = 'CN=a "quoted" \\ back\\slash\nsecond line \\n not a newline'
    out = metrics.Exposition()
    out.add(metrics.CERTIFICATE_NOT_AFTER, {"name": nasty, "kind": "ca"}, 5)
    text = out.render()
    assert len(text.splitlines()) == 3  # the newline is escaped, not written
    assert samples(parse(text)[metrics.CERTIFICATE_NOT_AFTER]) == {(("kind", "ca"), ("name", nasty)): 5}


def test_help_is_escaped():
    family = {"x_total": ("counter", "a \\ b\nc \"d\"")}
    out = metrics.Exposition(family)
    out.add("x_total", {}, 1)
    assert out.render() == '# HELP x_total a \\\\ b\\nc "d"\n# TYPE x_total counter\nx_total 1\n'


def test_values():
    assert [metrics.format_value(v) for v in (True, False, 0, 1801526400, 2.5, 3.0, float("nan"))] == [
        "1", "0", "0", "1801526400", "2.5", "3", "NaN"]
    assert metrics.format_value(float("inf")) == "+Inf" and metrics.format_value(float("-inf")) == "-Inf"


def test_a_series_is_written_once_and_empty_labels_are_left_out():
    out = metrics.Exposition()
    assert out.add(metrics.CERTIFICATE_RENEWAL_DUE, {"kind": "ca", "host": None, "name": ""}, 1)
    assert not out.add(metrics.CERTIFICATE_RENEWAL_DUE, {"kind": "ca"}, 0)
    assert out.render().splitlines()[-1] == '%s{kind="ca"} 1' % metrics.CERTIFICATE_RENEWAL_DUE
    with pytest.raises(ValueError):
        out.add("securebydefault_pki_unknown", {}, 1)
    with pytest.raises(ValueError):
        out.add(metrics.CERTIFICATE_RENEWAL_DUE, {"bad-label": "x"}, 1)
    assert metrics.Exposition().render() == ""


def test_state_set(parse):
    out = metrics.Exposition()
    out.state_set(metrics.CA_ROTATION_STAGE, {"where": "r.json"}, "stage", ["trust_both", "switched", "done"],
                  "switched")
    out.state_set(metrics.KEYRING_STAGE, {"where": "k"}, "stage", ["single", "added"], "surprise")
    families = parse(out.render())
    rotation = {dict(key)["stage"]: value for key, value in samples(families[metrics.CA_ROTATION_STAGE]).items()}
    assert rotation == {"trust_both": 0, "switched": 1, "done": 0}
    ring = {dict(key)["stage"]: value for key, value in samples(families[metrics.KEYRING_STAGE]).items()}
    assert ring == {"single": 0, "added": 0, "surprise": 1}


def test_names_follow_the_conventions():
    for name, (kind, help_text) in metrics.FAMILIES.items():
        assert name.startswith("securebydefault_pki_") and metrics.METRIC_NAME.match(name)
        assert kind == "gauge" and help_text
        assert name.endswith("_seconds") == ("timestamp" in name)
        assert not name.endswith("_total")
    assert metrics.ENDPOINT_SERVED_NOT_AFTER in metrics.WRITTEN and metrics.ENDPOINT_PROBE_SUCCESS in metrics.WRITTEN
    # the probe's metric lines up with the on-disk one: only the subject differs
    assert metrics.ENDPOINT_SERVED_NOT_AFTER.replace("endpoint_served", "certificate") == metrics.CERTIFICATE_NOT_AFTER


def test_user_labels_are_checked():
    assert metrics.check_label_names({"host": "node1", "tier": 3}, "metrics_labels") == {"host": "node1", "tier": "3"}
    for bad in ({"1host": "x"}, {"__name__": "x"}, {"a-b": "x"}, {"host": None}, {"kind": "x"}):
        with pytest.raises(PKIError) as caught:
            metrics.check_label_names(bad, "metrics_labels", reserved=("kind", "path"))
        assert caught.value.field == "metrics_labels"


def test_the_path_must_end_in_prom():
    assert metrics.check_path(None) is None
    assert metrics.check_path("/var/lib/node_exporter/pki.prom") == "/var/lib/node_exporter/pki.prom"
    for bad in ("/var/lib/node_exporter/pki.txt", "/var/lib/node_exporter/pki.prom.tmp", "pki.prom",
                "/var/lib/node_exporter/.prom"):
        with pytest.raises(PKIError) as caught:
            metrics.check_path(bad)
        assert caught.value.field == "metrics_path" and caught.value.fix


def test_write_is_atomic_stable_and_check_mode_writes_nothing(tmp_path):
    path = str(tmp_path / "pki.prom")
    assert metrics.write(path, "a 1\n", check_mode=True) and not os.path.exists(path)
    assert metrics.write(path, "a 1\n", check_mode=False)
    assert open(path).read() == "a 1\n" and oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert not metrics.write(path, "a 1\n", check_mode=False)
    assert not metrics.write(path, "a 1\n", check_mode=True)
    assert metrics.write(path, "a 2\n", check_mode=True) and open(path).read() == "a 1\n"
    assert sorted(os.listdir(str(tmp_path))) == ["pki.prom"]  # no temporary file left


def test_a_link_at_the_path_is_not_followed(tmp_path):
    target = tmp_path / "target.prom"
    target.write_text("mine\n")
    path = str(tmp_path / "pki.prom")
    os.symlink(str(target), path)
    assert metrics.write(path, "a 1\n", check_mode=True)  # check mode only reports
    with pytest.raises(PKIError) as caught:
        metrics.write(path, "a 1\n", check_mode=False)
    assert caught.value.field == "metrics_path" and "symbolic link" in str(caught.value)
    assert target.read_text() == "mine\n" and os.path.islink(path)


def test_an_unwritable_directory_is_named(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes everywhere")
    directory = tmp_path / "ro"
    directory.mkdir(mode=0o555)
    with pytest.raises(PKIError) as caught:
        metrics.write(str(directory / "pki.prom"), "a 1\n", check_mode=False)
    assert caught.value.field == "metrics_path"


def test_a_directory_another_user_may_swap_is_refused_naming_metrics_path(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to hand a directory to another user")
    above = tmp_path / "prometheus"  # like Debian's /var/lib/prometheus, owned by the prometheus user
    (above / "node-exporter").mkdir(parents=True)
    os.chown(str(above), 65534, 65534)
    os.chmod(str(tmp_path), 0o755)
    with pytest.raises(PKIError) as caught:
        metrics.write(str(above / "node-exporter" / "pki.prom"), "a 1\n", check_mode=False)
    assert caught.value.field == "metrics_path" and "owned by uid 65534" in str(caught.value)
    assert os.listdir(str(above / "node-exporter")) == []


# ------------------------------------------------------------------ docs/monitoring


def load_alerts():
    yaml = pytest.importorskip("yaml")
    with open(ALERTS) as handle:
        return yaml.safe_load(handle)


def metric_names_in(expr):
    """The securebydefault_pki_ names an expression reads."""
    return set(re.findall(r"\bsecurebydefault_pki_[a-zA-Z0-9_:]+", expr))


def test_the_alert_rules_are_well_formed_and_use_only_written_metrics():
    rules = load_alerts()
    assert set(rules) == {"groups"} and rules["groups"]
    alerts = {}
    for group in rules["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.match(r"^[A-Za-z][A-Za-z0-9_]*$", rule["alert"]) and rule["alert"] not in alerts
            assert re.match(r"^\d+[smhdw]$", rule["for"])
            assert rule["labels"].get("severity") in ("warning", "critical")
            assert {"summary", "description"} <= set(rule["annotations"])
            used = metric_names_in(rule["expr"])
            assert used and used <= set(metrics.WRITTEN) | {metrics.ENDPOINT_SERVED_NOT_AFTER}, used
            alerts[rule["alert"]] = rule
    exprs = " ".join(rule["expr"] for rule in alerts.values())
    # expiry, renewed-but-not-served (against the probe's metric), a stuck rotation
    for name in (metrics.CERTIFICATE_NOT_AFTER, metrics.ENDPOINT_SERVED_NOT_AFTER, metrics.CA_ROTATION_STAGE_SINCE):
        assert name in exprs
    assert "time()" in exprs


def test_the_rules_in_the_document_are_the_rules_file():
    yaml = pytest.importorskip("yaml")
    with open(MONITORING) as handle:
        text = handle.read()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    documented = [yaml.safe_load(block) for block in blocks]
    assert load_alerts() in documented
    for name in metrics.FAMILIES:
        assert "`%s`" % name in text, name


def test_promtool_accepts_the_rules():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    done = subprocess.run([promtool, "check", "rules", ALERTS], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
