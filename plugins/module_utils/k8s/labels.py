# Copyright: securebydefault.pki contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every label and annotation key the collection writes on Kubernetes objects, under one prefix.

Pure Python. Keys of this collection start with ``pki.securebydefault.io/``; the
one exception is the well-known ``app.kubernetes.io/managed-by`` label. Keys
renamed since an earlier release are still read (existing objects), but only
the current key is written, and a write removes the old one.
"""
from __future__ import annotations

import json
from typing import Dict, Optional

PREFIX = "pki.securebydefault.io/"

# The label on every object this collection creates besides the ones it is asked for (Secrets, ConfigMaps).
MANAGED_BY = {"app.kubernetes.io/managed-by": "securebydefault.pki"}
# Marks a ConfigMap as a trust bundle this collection writes (k8s_trust_bundle): one trust-manager may take over.
TRUST_BUNDLE_LABEL = PREFIX + "trust-bundle"
# The stage of cert_manager_ca_rotation, on the CA Issuer it rotates (JSON: from, to, stage, since).
CA_ROTATION = PREFIX + "ca-rotation"
# Marks a Secret as a CA this collection keeps; a Secret without it is never written (k8s/ca_secret.py).
CA_LABEL = PREFIX + "certificate-authority"
# When each keyring stage was reached (JSON), on the Secret of k8s_keyring.
KEYRING_STATE = PREFIX + "keyring-state"
# The key of 0.2.0; read, never written.
LEGACY_KEYRING_STATE = "keyring.securebydefault.pki/state"


def annotations_of(obj: Optional[Dict]) -> Dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("annotations") or {})


def keyring_state_of(secret: Optional[Dict]) -> Optional[Dict]:
    """The keyring state recorded on ``secret`` (current key first, then the legacy one).

    None when neither annotation is there, or when it is not a JSON object (the gates then restart;
    the Secret's keys are the truth).
    """
    annotations = annotations_of(secret)
    for key in (KEYRING_STATE, LEGACY_KEYRING_STATE):
        if key in annotations:
            try:
                state = json.loads(annotations[key] or "{}")
            except ValueError:
                return None
            return state if isinstance(state, dict) else None
    return None


def with_keyring_state(annotations: Optional[Dict[str, str]], state: Dict) -> Dict[str, str]:
    """``annotations`` with the state written under the current key and the legacy key dropped."""
    out = {k: v for k, v in (annotations or {}).items() if k != LEGACY_KEYRING_STATE}
    out[KEYRING_STATE] = json.dumps(state, sort_keys=True)
    return out
