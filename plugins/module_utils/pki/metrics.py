# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus metrics in the text exposition format, for node_exporter's textfile collector.

Dependency-free: every family the collection writes is named here once, with its HELP text
and TYPE, so that two files (rotation_status on the controller, certificate_info on a node)
never disagree about a family. Output is sorted (families by name, samples by labels) and
carries no sample timestamps and nothing derived from the current time: the same state gives
the same bytes, and a rerun writes nothing. Ages and "time left" are left to PromQL
(``time() - ..._since_timestamp_seconds``).

See docs/monitoring.md for the names, their labels and alert rules.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .errors import PKIError
from .files import FileSpec, atomic_write, planted_in_shared_directory, read_own_public

PREFIX = "securebydefault_pki_"

CERTIFICATE_NOT_AFTER = PREFIX + "certificate_not_after_timestamp_seconds"
CERTIFICATE_RENEWAL_DUE = PREFIX + "certificate_renewal_due"
CRL_NEXT_UPDATE = PREFIX + "crl_next_update_timestamp_seconds"
CRL_RENEWAL_DUE = PREFIX + "crl_renewal_due"
CA_ROTATION_STAGE = PREFIX + "ca_rotation_stage"
CA_ROTATION_STAGE_SINCE = PREFIX + "ca_rotation_stage_since_timestamp_seconds"
KEYRING_STAGE = PREFIX + "keyring_stage"
KEYRING_STAGE_SINCE = PREFIX + "keyring_stage_since_timestamp_seconds"
# The live TLS probe (tls_probe): what an endpoint serves, with the labels host and endpoint, compared with
# CERTIFICATE_NOT_AFTER of the same host by the alert "renewed on disk but not served".
ENDPOINT_SERVED_NOT_AFTER = PREFIX + "endpoint_served_not_after_timestamp_seconds"
ENDPOINT_PROBE_SUCCESS = PREFIX + "endpoint_probe_success"

GAUGE = "gauge"

# name -> (TYPE, HELP); the one place a family is described.
FAMILIES: Dict[str, Tuple[str, str]] = {
    CERTIFICATE_NOT_AFTER: (GAUGE, "End of validity (notAfter) of a certificate or CA certificate, Unix time."),
    CERTIFICATE_RENEWAL_DUE: (
        GAUGE,
        "1 when the certificate needs action (inside warn_within or renew_before, a renewal reason, "
        "expired, missing, not ready), else 0.",
    ),
    CRL_NEXT_UPDATE: (GAUGE, "Next update of the CA's published CRL, Unix time; peers refuse it afterwards."),
    CRL_RENEWAL_DUE: (GAUGE, "1 when a fresh CRL must be published (within 3 days of its next update), else 0."),
    CA_ROTATION_STAGE: (GAUGE, "Stage of a CA rotation: 1 for the current stage, 0 for the others."),
    CA_ROTATION_STAGE_SINCE: (GAUGE, "When the CA rotation reached its current stage, Unix time."),
    KEYRING_STAGE: (GAUGE, "Stage of a keyring: 1 for the current stage, 0 for the others."),
    KEYRING_STAGE_SINCE: (GAUGE, "When the keyring reached its current stage, Unix time."),
    ENDPOINT_SERVED_NOT_AFTER: (
        GAUGE,
        "End of validity (notAfter) of the certificate a TLS endpoint serves, Unix time.",
    ),
    ENDPOINT_PROBE_SUCCESS: (
        GAUGE,
        "1 when the last probe of a TLS endpoint completed a handshake (verified, when given a bundle), else 0.",
    ),
}
# What the collection writes (every family).
WRITTEN = tuple(FAMILIES)

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def escape_label_value(value: str) -> str:
    """A label value as the exposition format quotes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and newline escaped (a double quote stays)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: Any) -> str:
    """A sample value: integers (timestamps, 0/1) exactly, other floats in Go's spelling of NaN and infinity."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def check_label_names(labels: Optional[Mapping[str, Any]], field: str, reserved: Iterable[str] = ()) -> Dict[str, str]:
    """User-given constant labels as strings; a name Prometheus refuses, or one the collection sets, is named."""
    out: Dict[str, str] = {}
    taken = set(reserved)
    for key, value in (labels or {}).items():
        name = str(key)
        if not LABEL_NAME.match(name) or name.startswith("__"):
            raise PKIError(
                field,
                "%r is not a Prometheus label name" % name,
                "use letters, digits and underscores, not starting with a digit or with __ (e.g. cluster, host)",
            )
        if name in taken:
            raise PKIError(
                field,
                "the label %s is set by the module itself" % name,
                "remove %s from %s (the module's labels are %s)" % (name, field, ", ".join(sorted(taken))),
            )
        if value is None or isinstance(value, (dict, list)):
            raise PKIError(field, "the value of %s is not a string" % name, "give each label a plain string value")
        out[name] = str(value)
    return out


def check_path(path: Optional[str], field: str = "metrics_path") -> Optional[str]:
    """``path`` if node_exporter's textfile collector would read it: absolute, ending in .prom."""
    if path is None:
        return None
    text = str(path)
    if not os.path.isabs(text):
        raise PKIError(field, "%r is not an absolute path" % text, "give an absolute path ending in .prom")
    if not text.endswith(".prom") or os.path.basename(text) == ".prom":
        raise PKIError(
            field,
            "%s does not end in .prom: node_exporter's textfile collector reads only *.prom files" % text,
            "name the file in the collector's directory like "
            "/var/lib/node_exporter/textfile_collector/securebydefault_pki.prom",
        )
    return text


class Exposition:
    """Samples of the known families; ``render()`` gives the text, sorted and stable."""

    def __init__(self, families: Optional[Mapping[str, Tuple[str, str]]] = None) -> None:
        self.families = dict(FAMILIES if families is None else families)
        self._samples: Dict[str, Dict[Tuple[Tuple[str, str], ...], Any]] = {}

    def add(self, name: str, labels: Mapping[str, Any], value: Any) -> bool:
        """Add one sample; False (and nothing added) when the family already has one with these labels.

        Labels whose value is None or empty are left out (Prometheus treats an empty label as absent).
        """
        if name not in self.families or not METRIC_NAME.match(name):
            raise ValueError("unknown metric family %r" % name)
        key = []
        for label, label_value in labels.items():
            if not LABEL_NAME.match(label) or label.startswith("__"):
                raise ValueError("bad label name %r" % label)
            if label_value is None or label_value == "":
                continue
            key.append((label, str(label_value)))
        samples = self._samples.setdefault(name, {})
        series = tuple(sorted(key))
        if series in samples:
            return False
        samples[series] = value
        return True

    def state_set(
        self, name: str, labels: Mapping[str, Any], state_label: str, states: Iterable[str], current: Optional[str]
    ) -> None:
        """The state-set pattern: one sample per state, 1 for ``current`` (also when not among ``states``)."""
        every = list(states)
        if current and current not in every:
            every.append(current)
        for state in every:
            self.add(name, dict(labels, **{state_label: state}), 1 if state == current else 0)

    def names(self) -> List[str]:
        return sorted(name for name, samples in self._samples.items() if samples)

    def render(self) -> str:
        lines: List[str] = []
        for name in self.names():
            kind, help_text = self.families[name]
            lines.append("# HELP %s %s" % (name, escape_help(help_text)))
            lines.append("# TYPE %s %s" % (name, kind))
            for series, value in sorted(self._samples[name].items()):
                labels = ",".join('%s="%s"' % (label, escape_label_value(text)) for label, text in series)
                lines.append("%s%s %s" % (name, "{%s}" % labels if labels else "", format_value(value)))
        return "\n".join(lines) + "\n" if lines else ""


def write(path: str, text: str, check_mode: bool, field: str = "metrics_path") -> bool:
    """Write the metrics file when its content changes; whether it did (or would, in check mode).

    The file is replaced atomically (node_exporter never reads half a file; the temporary name,
    ``.<name>.prom.<random>``, does not end in .prom), mode 0644, and may be in a sticky
    world-writable directory: a link, FIFO or socket planted there is replaced, never followed; elsewhere
    anything but a regular file at ``path`` is refused naming ``field``. A file that is not this user's own
    (another owner, another mode, other hard links) is written again even with the right content. In check
    mode nothing is written or refused, and it counts as a change.
    """
    data = text.encode("utf-8")
    try:
        old = read_own_public(path, field, 0o644, len(data))
    except (PKIError, OSError) as exc:
        if not check_mode and not planted_in_shared_directory(path):
            if isinstance(exc, PKIError):
                raise
            raise PKIError(field, "cannot read %s: %s" % (path, exc.strerror or exc), "check the path") from None
        old = None
    changed = old != data
    if changed and not check_mode:
        try:
            atomic_write(FileSpec(path, 0o644), data, public=True)
        except PKIError as exc:
            raise PKIError(field, exc.problem, exc.fix) from None
        except OSError as exc:
            raise PKIError(
                field,
                "cannot write %s: %s" % (path, exc.strerror or exc),
                "choose a directory the task's user can write (become root), e.g. the textfile collector's",
            ) from None
    return changed


def options(params: Mapping[str, Any], reserved: Iterable[str]) -> Tuple[Optional[str], Dict[str, str]]:
    """(metrics_path, metrics_labels) of a module, both checked; labels without a path are refused."""
    path = check_path(params.get("metrics_path"), "metrics_path")
    extra = check_label_names(params.get("metrics_labels"), "metrics_labels", reserved)
    if extra and not path:
        raise PKIError("metrics_labels", "is set without metrics_path", "set metrics_path, or drop metrics_labels")
    return path, extra


def attach(
    result: Dict[str, Any], path: Optional[str], exposition: Optional["Exposition"], check_mode: bool
) -> Dict[str, Any]:
    """Write ``exposition`` to ``path`` (when given): the result gets the text, and changed if the file did."""
    if path and exposition is not None:
        text = exposition.render()
        result["metrics"] = text
        result["changed"] = write(path, text, check_mode, "metrics_path") or bool(result.get("changed"))
    return result
