# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one run wrapper of the collection's modules.

A module is its DOCUMENTATION, its argument spec and one call::

    run(module, ops_function)                     # ops_function(ctx) -> result dict
    run(module, ops_function, kube=True)          # ctx.kube: the API connection, made on first use
    run(module, ops_function, ca=CA_OPTIONS)      # ctx.store: the CA's directory or Secret

``run`` checks the dependencies (cryptography's version is compared, not
printed), builds what the use case needs, calls it, turns a PKIError into
``fail_json`` naming the option and the fix, turns the API client's notes into
warnings, always closes the connection and exits with the result.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.securebydefault.pki.plugins.module_utils.pki.errors import PKIError

try:
    import cryptography

    CRYPTOGRAPHY_VERSION: Optional[str] = cryptography.__version__
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError:
    CRYPTOGRAPHY_VERSION = None
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()

# The oldest cryptography the engine is tested on (Debian 12's python3-cryptography); documented once in the
# doc fragment securebydefault.pki.requirements.
MIN_CRYPTOGRAPHY = "38.0"
DEPRECATION_COLLECTION = "securebydefault.pki"
# The release that drops the option names kept as deprecated aliases.
ALIAS_REMOVAL_VERSION = "1.0.0"


def version_tuple(text: str) -> tuple:
    """(38, 0, 4) from '38.0.4', (38, 0, 0) from '38' (pre-release and local parts ignored)."""
    parts = []
    for part in text.split("."):
        match = re.match(r"\d+", part)
        if not match:
            break
        parts.append(int(match.group(0)))
    return tuple((parts + [0, 0, 0])[: max(3, len(parts))])


def cryptography_problem(version: Optional[str] = None, import_error: Optional[str] = None) -> Optional[str]:
    """Why the engine cannot run here (missing or too old cryptography), or None."""
    version = CRYPTOGRAPHY_VERSION if version is None and import_error is None else version
    if version is None:
        return missing_required_lib("cryptography >= %s" % MIN_CRYPTOGRAPHY)
    if version_tuple(version) < version_tuple(MIN_CRYPTOGRAPHY):
        return (
            "cryptography %s is installed on %s, but this module needs cryptography >= %s: upgrade it "
            "(pip install 'cryptography>=%s', or the distribution's python3-cryptography of Debian 12 or later)"
            % (version, "this host", MIN_CRYPTOGRAPHY, MIN_CRYPTOGRAPHY)
        )
    return None


def require_cryptography(module) -> None:
    problem = cryptography_problem()
    if problem is not None:
        module.fail_json(msg=problem, exception=CRYPTOGRAPHY_IMPORT_ERROR)


def fail_pki(module, exc, **extra) -> None:
    """Report a PKIError the same way everywhere: message, field and fix as data."""
    module.fail_json(msg=str(exc), field=getattr(exc, "field", None), fix=getattr(exc, "fix", None), **extra)


def deprecated(option: str, old: str) -> Dict[str, Any]:
    """Argument spec keys that keep ``old`` as a deprecated alias of ``option``."""
    removal = dict(name=old, version=ALIAS_REMOVAL_VERSION, collection_name=DEPRECATION_COLLECTION)
    return dict(aliases=[old], deprecated_aliases=[removal])


def alias_conflicts(module) -> List[tuple]:
    """(option, alias) pairs that were both given (from the argument spec validation of AnsibleModule)."""
    result = getattr(module, "validation_result", None)
    return [
        (w["option"], w["alias"])
        for w in getattr(result, "_warnings", None) or []
        if isinstance(w, dict) and "option" in w and "alias" in w
    ]


@dataclass(frozen=True)
class CAOptions:
    """Which options of a module name its CA: a directory (path) or a Kubernetes Secret ({namespace, name})."""

    path: str = "ca_path"
    secret: str = "ca_secret"


class Context:
    """What a use case gets: the checked options, check/diff mode, warnings, and the API/CA it works on."""

    def __init__(self, module) -> None:
        self.module = module
        self.params: Dict[str, Any] = module.params
        self.check_mode: bool = bool(module.check_mode)
        self.diff: bool = bool(getattr(module, "_diff", False))
        self.store = None
        self._kube = None
        self.warnings: List[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    @property
    def kube(self):
        """The Kubernetes API connection of this task, made on first use (input is checked before connecting)."""
        if self._kube is None:
            # pylint: disable=import-outside-toplevel
            from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.client import connect

            self._kube = connect(self.params)
        return self._kube

    @property
    def api_calls(self) -> int:
        return self._kube.calls if self._kube is not None else 0

    def close(self) -> None:
        if self._kube is not None:
            self.warnings.extend(self._kube.notes)
            self._kube.close()


def _ca_store(ctx: Context, ca: CAOptions):
    params = ctx.params
    secret = params.get(ca.secret)
    # pylint: disable=import-outside-toplevel
    if secret:
        from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.ca_secret import SecretStore
        from ansible_collections.securebydefault.pki.plugins.module_utils.k8s.certmanager import check_k8s_name

        namespace = check_k8s_name(secret["namespace"], "%s.namespace" % ca.secret)
        name = check_k8s_name(secret["name"], "%s.name" % ca.secret)
        return SecretStore(ctx.kube, namespace, name, ca.secret, ctx.check_mode)
    from ansible_collections.securebydefault.pki.plugins.module_utils.pki.ca_store import DirectoryStore

    return DirectoryStore(params[ca.path], ca.path, ctx.check_mode)


def ca_location(params: Dict[str, Any], ca: CAOptions) -> Dict[str, Any]:
    """Where the CA is kept, as results report it: {'path': ...} or {'secret': {'namespace', 'name'}}."""
    secret = params.get(ca.secret)
    if secret:
        return {"secret": {"namespace": secret["namespace"], "name": secret["name"]}}
    return {"path": params[ca.path]}


def run(
    module,
    work: Callable[[Context], Dict[str, Any]],
    kube: bool = False,
    ca: Optional[CAOptions] = None,
    crypto: bool = True,
) -> None:
    """Exit with ``work(ctx)``; fail naming the option and the fix; always disconnect.

    ``kube``: the module always talks to the API server (connected on first use).
    ``ca``: the module works on a CA; a Secret location talks to the API server too.
    ``crypto``: the module needs cryptography (all but the pure Kubernetes ones).
    """
    for option, alias in alias_conflicts(module):
        # ansible-core lets the alias win with a mere warning: a leftover old name would silently override
        # (say) allow_wildcard: false or a new passphrase
        module.fail_json(
            msg="%s and its other name %s are both set" % (option, alias),
            field=option,
            fix="keep only %s (%s is its deprecated name)" % (option, alias),
        )
    if crypto:
        require_cryptography(module)
    needs_kube = kube or (ca is not None and bool(module.params.get(ca.secret)))
    ctx = Context(module)
    result: Dict[str, Any] = {}
    failure = None
    try:
        if ca is not None:
            ctx.store = _ca_store(ctx, ca)
        result = work(ctx)
    except (PKIError, ValueError) as exc:
        failure = exc
    finally:
        ctx.close()
    for message in ctx.warnings:
        module.warn(message)
    if failure is not None:
        extra = dict(getattr(failure, "result", None) or {})  # what the use case knew when it failed
        if needs_kube:
            extra["api_calls"] = ctx.api_calls
        fail_pki(module, failure, **extra)
    if needs_kube:
        result.setdefault("api_calls", ctx.api_calls)
    module.exit_json(**result)
