#!/usr/bin/env bash
# Real SSH test hosts on this machine: one network namespace per host, each with its own
# hostname, its own /etc /root /var /opt /home /srv (overlays), its own /run and /tmp, and an
# sshd listening only on its 127.250.0.x address. Traffic stays on this machine.
#
#   hosts.sh up NAME=ADDRESS...   start hosts (NAME is the FQDN; the hostname is its first label)
#   hosts.sh down                 stop every host and remove namespaces, links and state
#   hosts.sh inventory            print a YAML inventory of the running hosts
#
# State (SSH key, overlays, the host list) lives in $SBD_NETNS_STATE (default /tmp/sbd-pki-netns).
set -euo pipefail
STATE="${SBD_NETNS_STATE:-/tmp/sbd-pki-netns}"
BRIDGE=sbdpki0
NET=127.250.0
GATEWAY="$NET.1"

die() { echo "hosts.sh: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "must run as root (network namespaces, mounts)"

bridge_up() {
  ip link show "$BRIDGE" >/dev/null 2>&1 && return
  ip link add "$BRIDGE" type bridge
  ip addr add "$GATEWAY/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  sysctl -qw "net.ipv4.conf.$BRIDGE.route_localnet=1"
  # 127/8 is "local" by default; this more specific route sends the test /24 over the bridge.
  ip route replace "$NET.0/24" dev "$BRIDGE" table local src "$GATEWAY"
}

start_host() {
  local fqdn=$1 address=$2 all_hosts=$3
  local short ns dir index pubkey
  pubkey=$(cat "$STATE/id_ed25519.pub")
  short=${fqdn%%.*}
  ns="sbd-$short"
  dir="$STATE/hosts/$fqdn"
  index=${address##*.}
  [[ -e "/run/netns/$ns" ]] && die "host $fqdn already running (run: hosts.sh down)"
  mkdir -p "$dir"
  ip netns add "$ns"
  ip link add "sbdh$index" type veth peer name "sbdn$index"
  ip link set "sbdh$index" master "$BRIDGE" up
  sysctl -qw "net.ipv4.conf.sbdh$index.route_localnet=1"
  ip link set "sbdn$index" netns "$ns"
  ip netns exec "$ns" sh -ec "
    ip link set lo up
    ip link set sbdn$index name eth0
    ip addr add $address/24 dev eth0
    ip link set eth0 up
    sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1
    ip route replace $NET.0/24 dev eth0 table local src $address
    ip route add default via $GATEWAY dev eth0"
  # The host's own view of the filesystem and its sshd, in private UTS and mount namespaces.
  ip netns exec "$ns" unshare --uts --mount --propagation private --fork bash -ec "
    umount -l /run/netns 2>/dev/null || true
    hostname $short
    for d in etc root var opt home srv; do
      mkdir -p $dir/upper/\$d $dir/work/\$d
      mount -t overlay overlay -o lowerdir=/\$d,upperdir=$dir/upper/\$d,workdir=$dir/work/\$d /\$d
    done
    mount -t tmpfs -o mode=0755 tmpfs /run
    mkdir -p /run/sshd
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    printf '%s\n' '127.0.0.1 localhost' '$all_hosts' | tr ';' '\n' > /etc/hosts
    echo 'nameserver 127.0.0.1' > /etc/resolv.conf
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' > /etc/nsswitch.conf
    echo $short > /etc/hostname
    rm -f /etc/ssh/ssh_host_*
    ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
    mkdir -p -m 0700 /root/.ssh
    echo '$pubkey' > /root/.ssh/authorized_keys
    chmod 0600 /root/.ssh/authorized_keys
    cat > /etc/ssh/sshd_sbd.conf <<CONF
ListenAddress $address
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile /root/.ssh/authorized_keys
PidFile /run/sshd.pid
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp /usr/lib/openssh/sftp-server
CONF
    exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_sbd.conf
  " >"$dir/sshd.log" 2>&1 &
  echo "$fqdn $address $ns $index" >> "$STATE/hosts.list"
}

wait_ssh() {
  local address=$1 fqdn=$2
  for _ in $(seq 1 100); do
    if ssh -q -i "$STATE/id_ed25519" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o ConnectTimeout=1 "root@$address" true 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  die "sshd of $fqdn at $address did not answer; log: $STATE/hosts/$fqdn/sshd.log"
}

cmd_up() {
  (($#)) || die "usage: hosts.sh up NAME=ADDRESS..."
  command -v sshd >/dev/null 2>&1 || [[ -x /usr/sbin/sshd ]] || die "openssh-server is not installed"
  mkdir -p "$STATE"
  [[ -f "$STATE/id_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C sbd-pki-tests -f "$STATE/id_ed25519"
  bridge_up
  local all_hosts="" spec
  for spec in "$@"; do
    local fqdn address
    fqdn=${spec%%=*}
    address=${spec#*=}
    [[ $address == $NET.* && ${address##*.} -ge 2 && ${address##*.} -le 254 ]] \
      || die "$spec: address must be in $NET.2-254"
    all_hosts+="$address $fqdn ${fqdn%%.*};"
  done
  for spec in "$@"; do
    start_host "${spec%%=*}" "${spec#*=}" "${all_hosts%;}"
  done
  for spec in "$@"; do
    wait_ssh "${spec#*=}" "${spec%%=*}"
  done
}

cmd_down() {
  if [[ -f "$STATE/hosts.list" ]]; then
    while read -r fqdn address ns index; do
      local pids
      mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
      if ((${#pids[@]})); then kill "${pids[@]}" 2>/dev/null || true; fi
      for _ in $(seq 1 50); do
        [[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]] && break
        sleep 0.1
      done
      mapfile -t pids < <(ip netns pids "$ns" 2>/dev/null || true)
      if ((${#pids[@]})); then kill -9 "${pids[@]}" 2>/dev/null || true; fi
      ip netns del "$ns" 2>/dev/null || true
      ip link del "sbdh$index" 2>/dev/null || true
      : "$fqdn" "$address"
    done < "$STATE/hosts.list"
  fi
  ip link del "$BRIDGE" 2>/dev/null || true
  ip route del "$NET.0/24" table local 2>/dev/null || true
  rm -rf "$STATE/hosts" "$STATE/hosts.list"
}

cmd_inventory() {
  echo "all:"
  echo "  hosts:"
  while read -r fqdn address _ _; do
    echo "    $fqdn: {ansible_host: $address}"
  done < "$STATE/hosts.list"
  echo "  vars:"
  echo "    ansible_user: root"
  echo "    ansible_python_interpreter: /usr/bin/python3"
  echo "    ansible_ssh_private_key_file: $STATE/id_ed25519"
  echo "    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  inventory) cmd_inventory ;;
  *) die "usage: hosts.sh up NAME=ADDRESS... | down | inventory" ;;
esac
