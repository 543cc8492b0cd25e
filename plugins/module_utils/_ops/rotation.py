# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The use case of a CA rotation step (module ca_rotation) and the rotation state file.

The state file is read and written only here (``load_state``/``save_state``);
the status report (``_ops.status``) reads it through ``load_state`` too.
The stage machine itself is ``pki.rotation.decide``.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.securebydefault.pki.plugins.module_utils._ops.params import request_from
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.files import FileSpec, atomic_write, read_bytes
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.rotation import (
    NEXT,
    ORDER,
    Evidence,
    decide,
    signing_and_trust,
)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_duration, utcnow

STATE_SUFFIX = ".rotation.json"
# the key of the new CA's Secret that holds the state of a rotation between CAs kept in Secrets
STATE_KEY = "rotation.json"
STATE_KEYS = ("old_ca_path", "new_ca_path", "old_ca_secret", "new_ca_secret", "old_root", "new_root", "stage", "times")


def default_state_path(new_ca_path: str) -> str:
    """Where the roles keep the state of a rotation to ``new_ca_path`` (ca_rotation_state_path's default)."""
    return new_ca_path.rstrip("/") + STATE_SUFFIX


def load_state(path: str, field_name: str = "path") -> Dict[str, Any]:
    """The recorded state ({} before the first step); refuses anything this module did not write."""
    return parse_state(read_bytes(path, field_name), path, field_name)


def parse_state(data: Optional[bytes], path: str, field_name: str) -> Dict[str, Any]:
    """A state file's content (None: none yet) as the state; ``path`` says where it was read, for errors."""
    if data is None:
        return {}
    try:
        state = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise PKIError(field_name, "%s is not valid JSON" % path, "restore it from backup") from None
    if not isinstance(state, dict) or (
        state
        and (
            set(state) - set(STATE_KEYS)
            or state.get("stage") not in ORDER
            or not isinstance(state.get("times"), dict)
            or not _well_typed(state)
        )
    ):
        raise PKIError(field_name, "%s is not a rotation state this collection wrote" % path, "restore it from backup")
    if state:
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_isoformat

        try:
            for stage in ORDER[: ORDER.index(state["stage"]) + 1]:
                parse_isoformat(state["times"][stage])
        except (KeyError, TypeError, ValueError):
            raise PKIError(
                field_name, "%s lacks the time a stage was reached" % path, "restore it from backup"
            ) from None
    return state


def _well_typed(state: Dict[str, Any]) -> bool:
    """Roots and CA paths are strings, CA Secrets {namespace, name} of strings (what step() writes)."""
    for key in ("old_root", "new_root", "old_ca_path", "new_ca_path"):
        if key in state and not isinstance(state[key], str):
            return False
    for key in ("old_ca_secret", "new_ca_secret"):
        if key in state and not (
            isinstance(state[key], dict)
            and set(state[key]) == {"namespace", "name"}
            and all(isinstance(v, str) for v in state[key].values())
        ):
            return False
    return True


def save_state(path: str, state: Dict[str, Any]) -> None:
    atomic_write(FileSpec(path, 0o644), (json.dumps(state, indent=2) + "\n").encode())


class StateFile:
    """The state of a rotation between CA directories: a JSON file on the CA host (``path``).

    Whoever may write it may also write the CA directories beside it (keys included), so it is not signed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.where = path

    def load(self, ca=None) -> Dict[str, Any]:
        return load_state(self.path)

    def save(self, before: Dict[str, Any], state: Dict[str, Any], ca=None) -> None:
        save_state(self.path, state)


# what a rotation.json kept in a Secret is signed over: this prefix, then the state as canonical JSON
SEAL_CONTEXT = b"securebydefault.pki rotation state v1\n"
SEAL_KEY = "signature"


def _sealed_bytes(state: Dict[str, Any]) -> bytes:
    return SEAL_CONTEXT + json.dumps(state, sort_keys=True, separators=(",", ":")).encode("utf-8")


def unseal(data: Optional[bytes], where: str, field_name: str) -> Tuple[Dict[str, Any], Optional[str]]:
    """(the state, its signature) of a rotation.json kept in a Secret; the state is checked like a state file, the
    signature not (that needs the new CA's key: SecretState.load)."""
    if data is None:
        return {}, None
    try:
        raw = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raw = None
    signature = raw.pop(SEAL_KEY, None) if isinstance(raw, dict) else None
    state = parse_state(data if raw is None else json.dumps(raw).encode("utf-8"), where, field_name)
    return state, signature if isinstance(signature, str) else None


class SecretState:
    """The state of a rotation between CAs kept in Secrets: key ``rotation.json`` of the new CA's Secret.

    It lives with the CA, so a controller that does not last (AWX) finds it on the next run. The write is
    conditional on the Secret's resourceVersion (``SecretStore.update``); a rotation that another run moved
    meanwhile is not overwritten - this run fails and the next one starts from the recorded stage.

    It is signed with the new CA's key (field ``signature``, base64), which each run holds decrypted anyway
    (``check_keys``): whoever may update the Secret but knows no passphrase cannot set a stage of their choosing
    (an earlier one would have nodes trust the old root again). What a signature cannot stop is a replay of an
    earlier state of this same rotation; docs/ca-rotation.md says so.
    """

    def __init__(self, store) -> None:
        self.store = store

    @property
    def where(self) -> str:
        return "%s: %s" % (self.store.where, STATE_KEY)

    def _unsealed(self, data: Optional[bytes]) -> Tuple[Dict[str, Any], Optional[str]]:
        return unseal(data, self.where, self.store.field)

    def load(self, ca=None) -> Dict[str, Any]:
        """The recorded state, once its signature is the new CA's (``ca``: that CA, loaded with its passphrase)."""
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import signed_by

        state, signature = self._unsealed(self.store.read((STATE_KEY,))[STATE_KEY])
        if not state:
            return state
        try:
            valid = signature is not None and signed_by(
                ca.certificate.public_key(), base64.b64decode(signature, validate=True), _sealed_bytes(state)
            )
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise PKIError(
                self.store.field,
                "%s is not signed by the new CA's key: whoever wrote it did not hold the CA's passphrase" % self.where,
                "restore the Secret from backup (a rotation begun before this collection signed its state: finish it "
                "with the release that began it)",
            )
        return state

    def save(self, before: Dict[str, Any], state: Dict[str, Any], ca=None) -> None:
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.keys import sign_data

        sealed = dict(state, **{SEAL_KEY: base64.b64encode(sign_data(ca.key, _sealed_bytes(state))).decode("ascii")})

        def change(files):
            if self._unsealed(files[STATE_KEY])[0] != before:
                raise PKIError(
                    self.store.field,
                    "another run moved this rotation while this one decided (%s)" % self.where,
                    "run again: it starts from the stage that run recorded",
                )
            return {STATE_KEY: (json.dumps(sealed, indent=2) + "\n").encode()}

        self.store.update(change, (STATE_KEY,))


@dataclass
class RotationCAs:
    """Where the two CAs of a rotation are kept (ca_store.DirectoryStore or k8s SecretStore) and its state."""

    old: Any
    new: Any
    state: Any
    # how results and the state name a location: ("old_ca_path", "new_ca_path") or the *_secret options
    old_name: Any = None
    new_name: Any = None

    @property
    def in_secrets(self) -> bool:
        return isinstance(self.state, SecretState)


def directory_cas(request: "RotationRequest") -> RotationCAs:
    """The CAs of a rotation between directories on the CA host, its state in ``request.path``."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import DirectoryStore

    if not request.path:
        raise PKIError("path", "is required for CAs kept in directories", "give the state file's path")
    return RotationCAs(
        DirectoryStore(request.old_ca_path, "old_ca_path"),
        DirectoryStore(request.new_ca_path, "new_ca_path"),
        StateFile(request.path),
        request.old_ca_path,
        request.new_ca_path,
    )


@dataclass
class RotationRequest:
    path: Optional[str] = None
    old_ca_path: Optional[str] = None
    new_ca_path: Optional[str] = None
    stage: str = "auto"
    switch_after: datetime.timedelta = datetime.timedelta(hours=1)
    drop_after: datetime.timedelta = datetime.timedelta(hours=1)
    evidence: List[Dict[str, Any]] = field(default_factory=list)
    force: bool = False
    # hosts of the play that gave no evidence (failed or unreachable): each holds every gate
    hosts_without_evidence: List[str] = field(default_factory=list)
    # live endpoints per node ({host, endpoints, server_name}); probed from here with the new CA's probe identity
    endpoints: List[Dict[str, Any]] = field(default_factory=list)
    new_ca_passphrase: Optional[str] = None
    probe_timeout: float = 5.0
    # CAs kept in Kubernetes Secrets ({namespace, name}) instead of the directories
    old_ca_secret: Optional[Dict[str, str]] = None
    new_ca_secret: Optional[Dict[str, str]] = None
    # serve leaves of the new CA with its cross-signed certificate (by the old root) during switched
    cross_sign: bool = False
    old_ca_passphrase: Optional[str] = None

    @classmethod
    def from_params(cls, params: Dict[str, Any]) -> "RotationRequest":
        from ansible_collections.securebydefault.pki.plugins.module_utils.pki.live_gate import MAX_TIMEOUT

        timeout = params.get("probe_timeout", 5.0)
        if not 0 < timeout <= MAX_TIMEOUT:
            raise PKIError("probe_timeout", "%r is not between 0 and %d seconds" % (timeout, MAX_TIMEOUT), "give 5")
        return request_from(
            cls,
            params,
            switch_after=parse_duration(params["switch_after"], "switch_after", allow_zero=True),
            drop_after=parse_duration(params["drop_after"], "drop_after", allow_zero=True),
        )


def evidence_report(evidence, new_root_pem: str, new_issuer_pem: str) -> Tuple[List[str], List[str]]:
    """(hosts whose bundle lacks the new root, hosts whose certificate is not signed by the new CA)."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import chains_to
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import (
        fingerprint,
        load_certificate,
        load_certificates,
    )

    root = load_certificate(new_root_pem, "new_ca_path/root.crt")
    new_root = fingerprint(root)
    # the signing CA, and the root for leaves of a per-issuer intermediate (cert-manager CA Issuers)
    anchors = [load_certificate(new_issuer_pem, "new_ca_path/ca.crt"), root]
    missing, old = [], []
    for item in evidence:
        host = str(item.get("host"))
        try:
            roots = {fingerprint(c) for c in load_certificates(item.get("bundle") or "", "evidence")}
        except PKIError:
            roots = set()
        if new_root not in roots:
            missing.append(host)
        try:
            if not chains_to(load_certificates(item.get("certificate") or "", "evidence"), anchors):
                old.append(host)
        except PKIError:
            old.append(host)
    return missing, old


def step(
    request: RotationRequest,
    check_mode: bool,
    now: Optional[datetime.datetime] = None,
    cas: Optional[RotationCAs] = None,
) -> Dict[str, Any]:
    """One round of the rotation: decide the stage, record it (not in check mode), say what nodes need.

    ``cas``: where the CAs and the state are kept; by default the directories and state file of ``request``.
    """
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import public_in

    cas = cas or directory_cas(request)
    new_ca = None
    if cas.in_secrets:
        new_ca, old_root, new_issuer, new_root = check_keys(cas, request)
    else:
        old_root = public_in(cas.old)[1]
        new_issuer, new_root = public_in(cas.new)
    if old_root == new_root:
        raise PKIError(cas.new.field, "is the same CA as %s" % cas.old.field, "create a new CA elsewhere first")
    now = now or utcnow()
    state = cas.state.load(new_ca)
    missing, old = evidence_report(request.evidence, new_root, new_issuer)
    if cas.in_secrets:
        _check_not_set_back(cas.new, state, [str(item.get("host")) for item in request.evidence], old)
    if state and (state.get("old_root") != old_root or state.get("new_root") != new_root):
        raise PKIError(
            cas.new.field if cas.in_secrets else "path",
            "%s records a rotation between other CAs" % cas.state.where,
            "finish that rotation, or give this rotation its own state file"
            if not cas.in_secrets
            else "finish that rotation first; a CA is rotated to once",
        )
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import live_gate

    targets = live_gate.targets_of(request.endpoints)
    check_certified(targets, [cas.old, cas.new], now)
    # made (or checked) from the start, so that a root that cannot cross-sign fails before anything changes
    cross_pem = None
    if request.cross_sign and state.get("stage") != "done":
        cross_pem = ensure_cross(cas, request, old_root, check_mode, now)
    silent = [host for host in request.hosts_without_evidence if host not in missing + old]
    missing, old = missing + silent, old + silent
    # cross-signed, leaves are served with the cross certificate until done: the done gate asks for a leaf of
    # the new CA's key that chains to the new root, given the new CA's own certificate
    verdicts = _live_verdicts(request, state, targets, new_issuer if cross_pem else new_root, now, cas.new, new_ca)
    decision = decide(
        state.get("stage"),
        state.get("times") or {},
        request.stage,
        now,
        {"switched": request.switch_after, "done": request.drop_after},
        Evidence(
            hosts=len(request.evidence) + len(request.hosts_without_evidence),
            missing_new_root=missing,
            on_old_ca=old,
            endpoints=len(verdicts),
            endpoints_holding_back=list(live_gate.holding_back(verdicts)),
        ),
        request.force,
    )
    stage = decision.stage
    kind = "secret" if cas.in_secrets else "path"
    new_state = {
        "old_ca_" + kind: cas.old_name,
        "new_ca_" + kind: cas.new_name,
        "old_root": old_root,
        "new_root": new_root,
        "stage": stage,
        "times": decision.times,
    }
    if new_state != state and not check_mode:
        cas.state.save(state, new_state, new_ca)
    signing, trust_also = signing_and_trust(stage, cas.old_name, cas.new_name)
    signs_new = signing == cas.new_name
    pinned = _pinned(cas, old_root, new_root)
    signing, trust_also = pinned(signing), [pinned(t) for t in trust_also]
    result = dict(
        changed=new_state != state,
        stage=stage,
        advanced=decision.advanced,
        signs_new=signs_new,
        **(
            dict(signing_ca_secret=signing, trust_also_secrets=trust_also)
            if cas.in_secrets
            else dict(signing_ca_path=signing, trust_also=trust_also)
        ),
        hosts_missing_new_root=missing,
        hosts_on_old_ca=old,
        endpoints=verdicts,
        times=decision.times,
    )
    if stage != "done":
        result.update(blocked_by=decision.blocked_by, next_due=decision.next_due, next_stage=NEXT[stage])
    if request.cross_sign:
        # what leaves present after themselves in this stage: the cross certificate while switched, else their CA's
        result["issuer_chain"] = cross_pem if stage == "switched" else ""
        if stage == "done":
            # a node that still serves the cross certificate first gets its CA's own chain while it still trusts
            # both roots (every node, before any drops the old root: a peer that dropped it would refuse the cross)
            held = _held_cross(cas, old_root)
            if held[1] is not None:
                raise _not_the_cross(
                    cas,
                    held[1],
                    "delete it (the rotation is done; nodes that still serve it get their own chain on the next run "
                    "anyway)",
                )
            before = [pinned(t) for t in signing_and_trust("switched", cas.old_name, cas.new_name)[1]]
            result["uncross"] = {
                "trust_also_secrets" if cas.in_secrets else "trust_also": before,
                "cross_certificate": held[0] or "",
            }
    return result


def _pinned(cas: RotationCAs, old_root: str, new_root: str):
    """For CAs kept in Secrets: each Secret named in a result, with the fingerprint of the root checked here (the
    tasks that read it later refuse another). CA directories are named by their paths alone."""
    if not cas.in_secrets:
        return lambda location: location
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import fingerprint, load_certificate

    prints = {
        "old": fingerprint(load_certificate(old_root, "root.crt")),
        "new": fingerprint(load_certificate(new_root, "root.crt")),
    }
    return lambda secret: dict(secret, fingerprint=prints["new" if secret == cas.new_name else "old"])


def check_keys(cas: RotationCAs, request: RotationRequest):
    """Both CAs kept in Secrets hold the key of their certificates (decrypted in memory with their passphrases).

    Whoever may write a CA's namespace but knows no passphrase could otherwise swap in certificates of their own:
    the roots that nodes and pods are told to trust come from these Secrets, and each is taken from the same read
    as the key checked against it. Returns (the new CA - its key signs the rotation's state -, the old root PEM,
    the new CA's issuer PEM, the new root PEM).
    """
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import load_ca_and_public_in

    old_root = load_ca_and_public_in(cas.old, request.old_ca_passphrase, "old_ca_passphrase")[2]
    new_ca, new_issuer, new_root = load_ca_and_public_in(cas.new, request.new_ca_passphrase, "new_ca_passphrase")
    return new_ca, old_root, new_issuer, new_root


def _check_not_set_back(store, state: Dict[str, Any], hosts: List[str], on_old: List[str]) -> None:
    """A new CA that already signed, but whose state says it has not begun to (none, or trust_both): the state was
    lost, deleted, or set back to an earlier one of this rotation (a signed state can be replayed) - not a new start.

    Signed by the new CA means: its ledger (in the same Secret, so whoever deletes the state may empty it too) or a
    node's evidence (read from the nodes) holds a certificate of the new CA: ``hosts`` gave evidence, ``on_old``
    (evidence_report's) hold none.
    """
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ledger

    if state.get("stage") not in (None, "trust_both"):
        return
    signed = bool((store.read((ledger.LEDGER,))[ledger.LEDGER] or b"").strip())
    on_new = [] if signed else [host for host in hosts if host not in on_old]
    if signed or on_new:
        raise PKIError(
            store.field,
            "%s holds %s but the new CA has already signed certificates%s: starting over would sign with the "
            "old CA again after nodes may have dropped it"
            % (
                store.where,
                "no rotation state (%s)" % STATE_KEY if not state else "a state before switched",
                " (%s hold%s one)" % (", ".join(on_new[:5]), "s" if len(on_new) == 1 else "") if on_new else "",
            ),
            "restore the Secret (with its rotation.json) from backup",
        )


def _held_cross(cas: RotationCAs, old_root_pem: str, now: Optional[datetime.datetime] = None):
    """(cross certificate PEM, None) as the new CA keeps it, once it certifies the new CA's name and key by the old
    root (and lives past ``now``); (None, why not) otherwise; (None, None) when there is none."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import cross_sign
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import (
        certificate_pem,
        load_certificate,
        load_certificates,
    )

    files = cas.new.read(("ca.crt", cross_sign.CROSS_FILE))
    if files[cross_sign.CROSS_FILE] is None:
        return None, None
    try:
        certs = load_certificates(files[cross_sign.CROSS_FILE], "%s: %s" % (cas.new.where, cross_sign.CROSS_FILE))
    except PKIError:
        certs = []
    if len(certs) != 1:
        return None, "not one certificate"
    new_issuing = load_certificate(files["ca.crt"], "%s: ca.crt" % cas.new.where)
    why = cross_sign.problem_with(certs[0], load_certificate(old_root_pem, "root.crt"), new_issuing, now)
    return (certificate_pem(certs[0]), None) if why is None else (None, why)


def _not_the_cross(cas: RotationCAs, why: str, fix: str) -> PKIError:
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.cross_sign import CROSS_FILE

    return PKIError(
        cas.new.field,
        "%s: %s is not the cross-signed certificate of this rotation: %s" % (cas.new.where, CROSS_FILE, why),
        fix,
    )


def ensure_cross(
    cas: RotationCAs, request: RotationRequest, old_root_pem: str, check_mode: bool, now: datetime.datetime
) -> str:
    """The cross-signed certificate of the new CA by the old root (PEM), kept in the new CA; made on first use, and
    again a week before it expires."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import cross_sign, issuer_ca
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import (
        certificate_pem,
        load_certificate,
    )

    held, why = _held_cross(cas, old_root_pem, now + cross_sign.CROSS_RENEW)
    if held is not None:
        return held
    if why not in (None, "it has expired"):
        raise _not_the_cross(cas, why, "delete it; the next run makes it again from the old root (old_ca_passphrase)")
    from cryptography import x509  # pylint: disable=import-outside-toplevel

    new_issuing = load_certificate(cas.new.read(("ca.crt",))["ca.crt"], "%s: ca.crt" % cas.new.where)
    old_root = load_certificate(old_root_pem, "%s: root.crt" % cas.old.where)
    root_files = cas.old.read(("root.key",))
    basic = old_root.extensions.get_extension_for_class(x509.BasicConstraints).value
    if not root_files.get("root.key") or (basic.path_length is not None and basic.path_length < 1):
        raise PKIError(
            "cross_sign",
            "the old CA's root (%s) may not sign an intermediate: it was made without intermediate: true, so it "
            "cannot cross-sign the new CA" % cas.old.where,
            "rotate without cross_sign, and give switch_after the time every peer needs to reread its bundle",
        )
    signer = issuer_ca.load_signer_in(cas.old, request.old_ca_passphrase, now, passphrase_field="old_ca_passphrase")
    lifetime = request.switch_after + request.drop_after + cross_sign.CROSS_MARGIN
    pem = certificate_pem(cross_sign.cross_certificate(signer.key, signer.certificate, new_issuing, now, lifetime))
    if not check_mode:
        cas.new.update(lambda _files: {cross_sign.CROSS_FILE: pem.encode("ascii")}, (cross_sign.CROSS_FILE,))
    return pem


def check_certified(targets, stores, now: datetime.datetime) -> None:
    """Every endpoint's host part is the node's inventory name or a name a CA here certified to that node.

    Endpoints come from host variables, which a node's own facts can override: without this check a
    compromised node could point the CA host's probes, with a client certificate of the new CA, at any
    address (the CA host's loopback, internal services). The ledgers on the CA host are what it vetted.
    """
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ledger
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.probe import parse_endpoint
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_isoformat

    if not targets:
        return
    certified: Dict[str, set] = {}
    for store in stores:
        data = store.read((ledger.LEDGER,))[ledger.LEDGER] or b""
        for entry in ledger.parse(data)[0]:
            try:
                live = parse_isoformat(entry["not_after"]) > now
            except (KeyError, TypeError, ValueError):
                live = False
            if live and isinstance(entry.get("host"), str) and isinstance(entry.get("names"), list):
                certified.setdefault(entry["host"], set()).update(str(n).lower() for n in entry["names"])
    for target in targets:
        host = parse_endpoint(target.endpoint).host.lower()
        if host != target.host.lower() and host not in certified.get(target.host, set()):
            raise PKIError(
                "endpoints",
                "%s: %s is neither the node's inventory name nor a name its certificate carries"
                % (target.host, target.endpoint),
                "list endpoints at the node's own names or addresses (those in its certificate); the CA host "
                "probes nothing else",
            )


def _live_verdicts(
    request: RotationRequest,
    state: Dict[str, Any],
    targets,
    new_root: str,
    now: datetime.datetime,
    new_store,
    new_ca=None,
) -> List[Dict[str, Any]]:
    """Probe the endpoints for the gate after the recorded stage, once its time gate has opened.

    None before the rotation starts, once it is done, or when this run does not ask for the next stage.
    ``new_ca``: the new CA when this run has loaded it already (CAs kept in Secrets).
    """
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import live_gate
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import load_ca_in
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.timeutil import parse_isoformat

    gate = NEXT.get(state.get("stage") or "")
    if not targets or gate is None:
        return []
    if request.stage != "auto" and ORDER.index(request.stage) < ORDER.index(gate):
        return []
    wait = request.switch_after if gate == "switched" else request.drop_after
    if now < parse_isoformat(state["times"][state["stage"]]) + wait and not request.force:
        return []  # the time gate holds the stage anyway
    ca = new_ca or load_ca_in(new_store, request.new_ca_passphrase, "new_ca_passphrase")
    return live_gate.check(targets, gate, ca, new_root, request.probe_timeout)


def _secret_name(secret: Dict[str, str]) -> Dict[str, str]:
    return {"namespace": secret["namespace"], "name": secret["name"]}


def ca_rotation(ctx) -> Dict[str, Any]:
    """Module ca_rotation: between CA directories (state file ``path``) or CAs kept in Secrets."""
    request = RotationRequest.from_params(ctx.params)
    if not request.new_ca_secret:
        return step(request, ctx.check_mode)
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils._ops.runner import CAOptions, _ca_store

    old, new = _ca_store(ctx, CAOptions(path="old_ca_path", secret="old_ca_secret")), ctx.store
    cas = RotationCAs(
        old, new, SecretState(new), _secret_name(request.old_ca_secret), _secret_name(request.new_ca_secret)
    )
    if (old.namespace, old.name) == (new.namespace, new.name):
        raise PKIError("new_ca_secret", "is the same Secret as old_ca_secret", "create the new CA in another Secret")
    return step(request, ctx.check_mode, cas=cas)


def states_beside(ca_paths: List[str]) -> List[str]:
    """The state files of rotations to these CAs that exist (rotation_status's default)."""
    return [default_state_path(path) for path in ca_paths if os.path.lexists(default_state_path(path))]


def kubernetes_pki_cas(ctx) -> Dict[str, Any]:
    """Module kubernetes_pki_cas: which directory of each cluster CA signs, from the generations and state files."""
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import kubernetes

    ca_dir = ctx.params["ca_dir"]
    generations = {ca: ctx.params["generations"].get(ca, 1) for ca in kubernetes.CAS}
    unknown = sorted(set(ctx.params["generations"]) - set(kubernetes.CAS))
    if unknown:
        raise PKIError(
            "generations", "names no CA of the cluster: %s" % ", ".join(unknown), "use %s" % ", ".join(kubernetes.CAS)
        )
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki import ledger

    stages = {}
    for path in kubernetes.ca_state_paths(ca_dir, generations):
        state = load_state(default_state_path(path), "ca_dir")
        stages[path] = state.get("stage")
    decided = kubernetes.ca_generations(ca_dir, generations, stages)
    rotating = decided["rotating"]
    if rotating:
        entry = decided["cas"][rotating]
        field_name = "kubernetes_pki_%s_ca_generation" % rotating
        if not os.path.isfile(os.path.join(entry["previous_path"], "ca.crt")):
            # a rotation starts from the CA in force; a missing one would be made afresh, trusted by nobody
            raise PKIError(
                field_name,
                "generation %d of this CA (%s) does not exist, so there is nothing to rotate from"
                % (entry["generation"] - 1, entry["previous_path"]),
                "restore that CA directory from backup, or start a new cluster at generation 1",
            )
        if entry["stage"] is None and (read_bytes(os.path.join(entry["path"], ledger.LEDGER), "ca_dir") or b"").strip():
            # only a rotation past trust_both signs with the new CA: its state file was lost, and starting
            # over would sign with the old CA again after the hosts may have dropped it
            raise PKIError(
                "ca_dir",
                "%s is missing, but generation %d of this CA already signed certificates"
                % (default_state_path(entry["path"]), entry["generation"]),
                "restore the rotation state file from backup (or the CA directory's backup with it)",
            )
    return dict(changed=False, **decided)
