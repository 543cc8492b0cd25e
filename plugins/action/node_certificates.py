# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_certificates: node_certificate for several certificates of one host, in at most two module runs on it.

Each certificate goes through node_certificate's own steps (plan, vetted identity, signature on the
controller, install) with node_certificate's rules; what changes is that the node-side work of all of
them is one call of node_certificates_files per stage. Every certificate is planned and checked before
the node is touched; a refused signature removes every pending key this run made and installs nothing.
"""
from __future__ import annotations

import os

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.securebydefault.pki.plugins.action.node_certificate import plan, sign, signed_certificate
from ansible_collections.securebydefault.pki.plugins.module_utils._ops.node_files import check_apart, in_certificate
from ansible_collections.securebydefault.pki.plugins.module_utils.argspec import (
    NODE_CERTIFICATE_RULES, NODE_CERTIFICATE_SPEC, NODE_CERTIFICATES_RULES, NODE_CERTIFICATES_SPEC, node_file_names)
from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

NODE_MODULE = "securebydefault.pki.node_certificates_files"
# options of the node-side call, never of one of its certificates (an item's values are not masked in logs)
CALL_SECRETS = ("key_passphrase", "pkcs12_passphrase")


def item_params(params, index, item):
    """certificates[index] with the task's options where it sets none, checked as node_certificate checks its own."""
    where = "certificates[%d]" % index
    merged = {k: v for k, v in params.items() if k in NODE_CERTIFICATE_SPEC}
    merged.update({k: v for k, v in item.items() if v is not None})
    for option in ("path", "ca_path"):
        if not merged.get(option):
            raise PKIError("%s.%s" % (where, option), "is not set, for this certificate or the task",
                           "set %s on the task (for every certificate) or on this certificate" % option)
    validation = ArgumentSpecValidator(NODE_CERTIFICATE_SPEC, **NODE_CERTIFICATE_RULES).validate(merged)
    if validation.error_messages:
        raise PKIError(where, "; ".join(validation.error_messages), "fix the options of that certificate")
    return validation.validated_parameters


def answers_of(node_result, count):
    """The node's per-certificate results, if they are what the module returns: ``count`` mappings, each CSR text."""
    answers = node_result.get("certificates")
    if not isinstance(answers, list) or len(answers) != count or not all(isinstance(a, dict) for a in answers):
        return None
    if any(a.get("csr") is not None and not isinstance(a.get("csr"), str) for a in answers):
        return None
    return answers


def check_directories(items, plans):
    """No file of one certificate is another's; one trust bundle per directory (ca-bundle.crt and truststore.p12
    hold one, so two certificates of one directory whose bundles differ would rewrite each other's on every run).
    Paths as written; the node checks them again as it resolves them, links included."""
    check_apart([(item["path"], item["name"], item["pkcs12_keystore"], planned[2]["bundle"])
                 for item, planned in zip(items, plans)], os.path.normpath, "the controller")


def check_identities(items, plans):
    """Every certificate's names against its CA's constraints and policy, as the node checks its own: here, for all
    of them before the node is touched, so one certificate out of bounds does not get the others' keys made."""
    # pylint: disable=import-outside-toplevel
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.authority import check_identity
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.bundle import load_certificates
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.identity import build_identity, parse_subject

    chains = {}
    for index, (item, (approved, discover, node_args)) in enumerate(zip(items, plans)):
        if discover:  # names the node discovers are checked once it reports them
            continue
        issuer = node_args["issuer"]
        if issuer not in chains:
            chains[issuer] = load_certificates(issuer, "issuer")
        where = "certificates[%d].names" % index
        in_certificate(index, check_identity, build_identity(approved, where, item["allow_wildcard"]), chains[issuer],
                       item["allow_wildcard"], where, parse_subject(item["subject"], "subject"), item["usages"])


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(NODE_CERTIFICATES_SPEC)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        validation = ArgumentSpecValidator(NODE_CERTIFICATES_SPEC, **NODE_CERTIFICATES_RULES).validate(
            self._task.args)
        if validation.error_messages:
            result.update(failed=True, msg="; ".join(validation.error_messages))
            return result
        params = validation.validated_parameters
        check_mode = self._task.check_mode
        try:
            items = [in_certificate(index, item_params, params, index, item)
                     for index, item in enumerate(params["certificates"])]
            # check mode of a first run: a CA's own task only reported that it would create it
            absent = {index for index, item in enumerate(items) if check_mode and not os.path.lexists(item["ca_path"])}
            cache = {}
            plans = [None if index in absent else in_certificate(index, plan, item, task_vars, check_mode, cache)
                     for index, item in enumerate(items)]
            present = [index for index in range(len(items)) if index not in absent]
            check_directories([items[i] for i in present], [plans[i] for i in present])
            check_identities([items[i] for i in present], [plans[i] for i in present])
        except PKIError as exc:
            result.update(failed=True, msg=str(exc), field=exc.field, fix=exc.fix)
            return result
        outcomes = [{"changed": True, "reasons": [
            "the CA %s does not exist yet (check mode: it would be created first, then this certificate issued)"
            % items[index]["ca_path"]]} if index in absent else {} for index in range(len(items))]
        if not present:
            return self._report(result, items, outcomes)
        asked = [dict(plans[i][2], names=plans[i][0], discover=plans[i][1]) for i in present]
        answer = self._node(params, "prepare", asked, task_vars)
        prepared = answers_of(answer, len(present)) if not answer.get("failed") else None
        if prepared is None:
            if not isinstance(answer.get("index"), int):  # not the module's own failure, which took its keys back
                self._node(params, "abort", [plans[i][2] for i in present], task_vars)
            if answer.get("failed"):
                return self._failed(result, answer, items, outcomes, present)
            result.update(failed=True, field="certificates", msg="the node did not answer for each of the %d "
                          "certificates with a result (and a CSR as text where one is due); nothing was signed"
                          % len(present), fix="check the node: its node_certificates_files result is not the module's")
            return result
        for position, index in enumerate(present):
            outcomes[index] = prepared[position]
        due = [i for i in present if outcomes[i].get("csr")] if not check_mode else []  # check mode signs nothing
        signed, signing = {}, 0
        try:
            for signing in due:  # every check of every signature first (none is signed if one is refused) ...
                signed_certificate(items[signing], outcomes[signing], plans[signing][0], plans[signing][1], task_vars)
                sign(items[signing], outcomes[signing], task_vars.get("inventory_hostname", ""), dry_run=True)
            for signing in due:  # ... then the signatures
                signed[signing] = sign(items[signing], outcomes[signing], task_vars.get("inventory_hostname", ""))
        except Exception as exc:  # pylint: disable=broad-except  # whatever it was: take back the pending keys
            made = [plans[i][2] for i in present if outcomes[i].get("pending_created")]
            if made:
                self._node(params, "abort", made, task_vars)
            field = "certificates[%d].%s" % (signing, getattr(exc, "field", None) or "csr")
            result.update(failed=True, msg="certificates[%d] (%s): signing refused, nothing installed: %s"
                          % (signing, items[signing]["name"], exc), field=field, fix=getattr(exc, "fix", None))
            # what prepare wrote stays (a trust bundle); the issuances it announced did not happen
            announced = [dict(done, changed=bool(done.get("written"))) for done in outcomes]
            return self._report(result, items, announced)
        if signed:
            order = sorted(signed)
            installed = self._node(params, "install", [dict(plans[i][2], names=outcomes[i]["identity"],
                                                            certificate=signed[i]) for i in order], task_vars)
            answers = installed.get("certificates") if isinstance(installed.get("certificates"), list) else []
            for i, done in zip(order, answers):
                if not isinstance(done, dict):
                    break
                outcomes[i] = dict(done, reasons=outcomes[i].get("reasons", []),
                                   written=list(outcomes[i].get("written") or []) + list(done.get("written") or []),
                                   before=(outcomes[i].get("diff") or {}).get("before", {}))
            if installed.get("failed"):
                return self._failed(result, installed, items, outcomes, order)
            if answers_of(installed, len(order)) is None:
                result.update(failed=True, field="certificates", fix="check the node",
                              msg="the node did not answer for each of the %d certificates it was to install"
                              % len(order))
                return self._report(result, items, outcomes)
        return self._report(result, items, outcomes)

    def _node(self, params, stage, certificates, task_vars):
        """One call of the node-side module for ``certificates`` (node_certificate_files' options each)."""
        calls = [{k: v for k, v in c.items() if k not in CALL_SECRETS} for c in certificates]
        return self._execute_module(NODE_MODULE, module_args=dict(
            stage=stage, certificates=calls, key_passphrase=params["key_passphrase"],
            pkcs12_passphrase=params["pkcs12_passphrase"]), task_vars=task_vars)

    def _failed(self, result, node_result, items, outcomes, positions):
        """The node's failure, its ``certificates[N]`` (N: the position in the call, among ``positions``) named
        as the task's certificate."""
        field = node_result.get("field")
        field = field if isinstance(field, str) else None
        if field:
            head, dot, rest = field.partition(".")
            if head.startswith("certificates[") and head.endswith("]") and head[13:-1].isdigit() and \
                    int(head[13:-1]) < len(positions):
                field = "certificates[%d]%s%s" % (positions[int(head[13:-1])], dot, rest)
        message = node_result.get("msg")
        result.update(failed=True, msg=message if isinstance(message, str) else "the node-side module failed",
                      field=field, fix=node_result.get("fix") if isinstance(node_result.get("fix"), str) else None)
        return self._report(result, items, outcomes)

    def _report(self, result, items, outcomes):
        """The task's result: one entry per certificate (those the node handled), changed if any changed."""
        entries, before, after = [], {}, {}
        for item, outcome in zip(items, outcomes):
            outcome = outcome if isinstance(outcome, dict) else {}
            names = node_file_names(item["name"])
            enabled = {"keystore": item["pkcs12_keystore"], "truststore": item["pkcs12_truststore"]}
            entry = {"name": item["name"], "path": item["path"], "changed": bool(outcome.get("changed")),
                     "files": {kind: os.path.join(item["path"], fname) for kind, fname in names.items()
                               if enabled.get(kind, True)}}
            for key in ("reasons", "identity", "certificate", "written", "backups", "discovered"):
                if key in outcome:
                    entry[key] = outcome[key]
            entries.append(entry)
            diff = outcome.get("diff") if isinstance(outcome.get("diff"), dict) else {}
            if entry["changed"] and (diff or outcome.get("before")):
                label = os.path.join(item["path"], item["name"])
                before[label] = outcome.get("before") or diff.get("before") or {}
                after[label] = diff.get("after") or {}
        result["certificates"] = entries
        result["changed"] = any(e["changed"] for e in entries)
        if self._task.diff and result["changed"] and (before or after):
            result["diff"] = {"before": before, "after": after}
        return result
