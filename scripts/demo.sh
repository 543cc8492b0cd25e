#!/usr/bin/env bash
# Sets up everything and runs the main job (playbooks/site.yml) on the embedded demo inventory:
# a CA on this machine and three nodes, each with its own directory standing in for its filesystem.
# Run it again: nothing changes (changed=0). PKI_DEMO_ROOT chooses where (default /tmp/securebydefault-pki-demo).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/setup.sh
source "$here/setup.sh"
export PKI_DEMO_ROOT="${PKI_DEMO_ROOT:-/tmp/securebydefault-pki-demo}"
mkdir -p "$PKI_DEMO_ROOT"
chmod 0700 "$PKI_DEMO_ROOT"
# A random CA passphrase for the demo, kept 0600 beside it. Real deployments use Ansible Vault.
secrets="$PKI_DEMO_ROOT/ca-passphrase.json"
if [[ ! -f "$secrets" ]]; then
  (umask 077; python3 -c 'import json, secrets; print(json.dumps({"pki_ca_passphrase": secrets.token_urlsafe(24)}))' > "$secrets")
fi
cd "$SBD_REPO"
ansible-playbook -i playbooks/inventory/demo/hosts.yml -e "@$secrets" playbooks/site.yml "$@"
cat <<MSG

The CA (key encrypted, passphrase in $secrets):
  $PKI_DEMO_ROOT/ca/{ca.crt,ca.key,root.crt}
Node certificates (each key was made in its node's directory and never copied):
$(for n in "$PKI_DEMO_ROOT"/node*; do echo "  $n/etc/pki/securebydefault/{node.key,node.crt,node-fullchain.crt,ca-bundle.crt}"; done)
Check one: openssl verify -CAfile $PKI_DEMO_ROOT/ca/root.crt $PKI_DEMO_ROOT/node1.demo.pki.internal/etc/pki/securebydefault/node.crt
MSG
