# TEST DOUBLES of Proxmox VE's command-line tools (pct, pveam, pvesm, pvesh, pveversion).
# NOT Proxmox. They follow the contract in shared/reference/proxmox-cli.md (arguments, output
# formats, exit 255 on failure, quirks) and are backed by real LXC containers (lxc-start,
# lxc-attach, systemd as PID 1) that share the host's network, so tests exercise the real chain.
#
# Environment:
#   PVE_DOUBLE_DIR    required: the fake node's state (configs, lxcpath, storage, command log)
#   PVE_DOUBLE_CACHE  the built container image, shared between runs (default $PVE_DOUBLE_DIR/cache)
#   PVE_DOUBLE_NODE   node name (default pve)
#   PVE_DOUBLE_PVEAM_UPDATE_FAIL=1   `pveam update` fails (and still exits 0, like the real one)
#   PVE_DOUBLE_BRIDGES               the node's bridges, space-separated (default vmbr0)
#   PVE_DOUBLE_RACE_VMID=N           another "admin" takes CT id N just before our `pct create N`
#   PVE_DOUBLE_POSE=new|old          which Proxmox VE the doubles pose as (default new):
#                                    new = PVE 9.2 (pve-manager 9.2.11, pve-container 6.1.10);
#                                    old = PVE 8.1, the oldest the installer supports (pve-manager
#                                    8.1.4, pve-container 5.0.8). Where they differ: `pct exec
#                                    --keep-env` (from 5.0.9, 069553d), `pct create`'s default
#                                    --unprivileged (1 from 6.0.6, 103068a), `pveam available`'s
#                                    architecture column (from pve-manager 9.2.9, f6cfb6bd)
#   PVE_DOUBLE_PVE_CONTAINER=X.Y.Z   overrides the pose's pve-container version
#   MIRROR, SECURITY_MIRROR          Debian mirrors for building the image
# A cluster (CLUSTER.md beside these files): every node a directory $PVE_DOUBLE_DIR/etc/pve/nodes/
# <node> (the shared /etc/pve), the tool's node chosen by PVE_DOUBLE_NODE; the `ssh` double
# switches node. Container root filesystems live in one $PVE_DOUBLE_DIR/lxc for all nodes, as on
# shared storage.
#
# Every invocation is appended to $PVE_DOUBLE_DIR/commands.log: one line per command, the tool
# name and each argument separated by the byte 0x1f, newlines inside arguments written as \n.

set -u

die255() {
    printf '%s\n' "$*" >&2
    exit 255
}

[ -n "${PVE_DOUBLE_DIR:-}" ] || die255 "TEST DOUBLE: PVE_DOUBLE_DIR is not set; these are test doubles of Proxmox's tools, used only by tests"
D=$(readlink -f "$PVE_DOUBLE_DIR")
CACHE=$(readlink -m "${PVE_DOUBLE_CACHE:-$D/cache}")
NODE=${PVE_DOUBLE_NODE:-pve}
LXCPATH=$D/lxc
CONFDIR=$D/etc/pve/nodes/$NODE/lxc
STORAGE_CFG=$D/storage.cfg
IMAGE=$CACHE/images/debian-12/rootfs
mkdir -p "$LXCPATH" "$CONFDIR" "$CACHE"
case "${PVE_DOUBLE_POSE:-new}" in
new) PVE_MANAGER=9.2.11 PVE_MANAGER_HASH=f6997e698c7933ea PVE_CONTAINER=6.1.10 LXC_PVE=6.0.0-1 ;;
old) PVE_MANAGER=8.1.4 PVE_MANAGER_HASH=ec5affc9e41f1d79 PVE_CONTAINER=5.0.8 LXC_PVE=5.0.2-4 ;;
*) die255 "TEST DOUBLE: PVE_DOUBLE_POSE must be new or old, not '$PVE_DOUBLE_POSE'" ;;
esac
PVE_CONTAINER=${PVE_DOUBLE_PVE_CONTAINER:-$PVE_CONTAINER}

# Whether version $1 (like 5.0.9 or 4.4-6) is at least $2 (X.Y.Z).
version_at_least() {
    local IFS=.- a b c x y z
    read -r a b c _ <<<"$1"
    read -r x y z <<<"$2"
    a=${a:-0} b=${b:-0} c=${c:-0}
    [ "$a" -gt "$x" ] || { [ "$a" -eq "$x" ] && { [ "$b" -gt "$y" ] || { [ "$b" -eq "$y" ] && [ "$c" -ge "$z" ]; }; }; }
}
# pve-container 5.0.9 (069553d) added `pct exec --keep-env`.
has_keep_env() { version_at_least "$PVE_CONTAINER" 5.0.9; }
# pve-container 6.0.6 (103068a) made `pct create` default to --unprivileged 1.
creates_unprivileged_by_default() { version_at_least "$PVE_CONTAINER" 6.0.6; }
# pve-manager 9.2.9 (f6cfb6bd) added the architecture column to `pveam available`.
pveam_prints_arch() { version_at_least "$PVE_MANAGER" 9.2.9; }

log_command() {
    local line=$1 a
    shift
    for a in "$@"; do
        a=${a//$'\n'/\\n}
        line+=$'\x1f'"$a"
    done
    printf '%s\n' "$line" >>"$D/commands.log"
}

# storage.cfg: name type content snapshots(0|1) status
if [ ! -f "$STORAGE_CFG" ]; then
    cat >"$STORAGE_CFG" <<'EOF'
local dir vztmpl,iso,backup,rootdir 0 active
local-lvm lvmthin rootdir,images 1 active
EOF
fi

storage_line() { awk -v n="$1" '$1 == n' "$STORAGE_CFG"; }
storage_has() { storage_line "$1" | awk -v c="$2" '{ n = split($3, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) f = 1 } END { exit !f }'; }
storage_dir() { printf '%s/storage/%s' "$D" "$1"; }

# Free space: the real filesystem the double's state lives on.
df_kib() { df -Pk "$D" | awk 'NR == 2 { print $2, $3, $4 }'; }

conf_file() { printf '%s/%s.conf' "$CONFDIR" "$1"; }
conf_get() { sed -n "s/^$2: //p" "$(conf_file "$1")" | head -n1; }
ct_exists() { [ -f "$(conf_file "$1")" ]; }
ct_running() { [ "$(lxc-info -P "$LXCPATH" -n "$1" -sH 2>/dev/null)" = RUNNING ]; }
need_ct() {
    ct_exists "$1" || die255 "Configuration file 'nodes/$NODE/lxc/$1.conf' does not exist"
}
valid_vmid() { [[ $1 =~ ^[1-9][0-9]*$ ]] && [ "$1" -ge 100 ] && [ "$1" -le 999999999 ]; }

# The container image: Debian 12 from debootstrap (lxc-create -t debian, cached), prepared once
# for host networking: only lo configured, networking/ssh/apt-daily masked (otherwise ifupdown
# would run DHCP on the host's interface and sshd bind the host's port 22), and a policy-rc.d so
# packages installed later do not start daemons on the shared network by themselves (systemctl
# still starts them when asked). nginx and ca-certificates are downloaded into apt's cache, so an
# install inside a container needs no download.
build_image() {
    [ -f "$IMAGE/.pve-double-ready" ] && return 0
    mkdir -p "$CACHE/images"
    exec 9>"$CACHE/images/.lock"
    flock 9
    [ -f "$IMAGE/.pve-double-ready" ] && return 0
    local b=$CACHE/build
    rm -rf "$b"
    mkdir -p "$b/lxc"
    printf 'lxc.net.0.type = none\nlxc.apparmor.profile = unconfined\n' >"$b/lxc.conf"
    MIRROR=${MIRROR:-http://deb.debian.org/debian} SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security} \
        LXC_CACHE_PATH=$CACHE/lxc-cache lxc-create -P "$b/lxc" -n img -t debian -f "$b/lxc.conf" -- -r bookworm \
        >"$b/lxc-create.log" 2>&1 || { cat "$b/lxc-create.log" >&2; return 1; }
    local r=$b/lxc/img/rootfs
    printf 'auto lo\niface lo inet loopback\n' >"$r/etc/network/interfaces"
    local u
    for u in networking.service ssh.service apt-daily.timer apt-daily-upgrade.timer; do
        ln -sf /dev/null "$r/etc/systemd/system/$u"
    done
    printf '#!/bin/sh\n# TEST DOUBLE image: the container shares the host network; no daemon starts on install.\nexit 101\n' \
        >"$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    rm -f "$r/etc/hostname"
    unshare --mount --pid --fork --mount-proc="$r/proc" chroot "$r" /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive \
        /bin/sh -c 'apt-get update -q && apt-get install -y -q --download-only --no-install-recommends nginx ca-certificates iproute2' \
        >"$b/apt.log" 2>&1 || { cat "$b/apt.log" >&2; return 1; }
    touch "$r/.pve-double-ready"
    rm -rf "$CACHE/images/debian-12"
    mkdir -p "$CACHE/images/debian-12"
    mv "$r" "$IMAGE"
    rm -rf "$b"
}

# ---- cluster: the nodes are the directories of the shared /etc/pve/nodes ----
NODESDIR=$D/etc/pve/nodes
HADIR=$D/etc/pve/ha
cluster_nodes() { ls "$NODESDIR" | sort; }
is_node() { [ -n "$1" ] && [ -d "$NODESDIR/$1" ]; }
# The node whose /etc/pve/nodes/<node>/lxc holds CT $1 (none: exit 1).
ct_node() {
    local n
    for n in $(cluster_nodes); do
        [ -f "$NODESDIR/$n/lxc/$1.conf" ] && { printf '%s\n' "$n"; return 0; }
    done
    return 1
}
# The HA resource state of ct:$1 from ha/resources.cfg (none: exit 1).
ha_state() {
    [ -f "$HADIR/resources.cfg" ] || return 1
    awk -v sid="ct: $1" '$0 == sid { f = 1; s = "started"; next } f && /^\t/ { if ($1 == "state") s = $2; next } f { exit } END { if (f) print s; exit !f }' "$HADIR/resources.cfg"
}
# A node's figures for /cluster/resources: the machine's, or those in etc/pve/nodes/<node>/
# .double-resources (lines `mem_total_mb N`, `mem_used_mb N`, `disk_free_kib N`, `offline 1`).
node_fact() {
    local f=$NODESDIR/$1/.double-resources v
    v=$( [ -f "$f" ] && awk -v k="$2" '$1 == k { print $2 }' "$f")
    if [ -n "$v" ]; then printf '%s\n' "$v"; return; fi
    case "$2" in
    mem_total_mb) awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo ;;
    mem_used_mb) awk '/^MemTotal:/ { t = $2 } /^MemAvailable:/ { a = $2 } END { print int((t - a) / 1024) }' /proc/meminfo ;;
    disk_free_kib) df_kib | awk '{ print $3 }' ;;
    offline) echo 0 ;;
    esac
}

# Root of an unprivileged CT is host uid/gid 100000 (pve-container: `lxc.idmap = u 0 100000 65536`,
# same for g). Proxmox unpacks the template inside that mapping (lxc-usernsexec + tar, without
# ./dev/*), so every file of the rootfs belongs to the shifted ids; the double unpacks the image
# the same way into the CT's own rootfs directory ($1).
USERNS_BASE=100000
unpack_shifted() {
    mkdir -p "$1"
    chown "$USERNS_BASE:$USERNS_BASE" "$1"
    tar -C "$IMAGE" --numeric-owner --exclude=./dev/* --exclude=./.pve-double-ready -cpf - . |
        lxc-usernsexec -m "b:0:$USERNS_BASE:65536" -- tar -C "$1" --numeric-owner -xpf -
}

# The LXC config pve-container's update_lxc_config writes for an unprivileged CT (src/PVE/LXC.pm),
# where the double can follow it; $1 = the CT's directory.
# Where it cannot, and why:
# - The rootfs is a directory of its own, not an overlay over the image as for privileged CTs:
#   LXC mounts the overlay inside the CT's user namespace, where overlayfs has no redirect_dir,
#   and dpkg's rename of a new directory (mkdir /etc/nginx.dpkg-new, mode 0, then rename to
#   /etc/nginx) fails with "Invalid cross-device link", so apt could not install nginx.
# - The CT shares the host's network namespace (see pct). A user namespace may mount sysfs only
#   if it owns the network namespace, so Proxmox's `lxc.mount.auto = sys:mixed` fails with
#   "Operation not permitted - Failed to mount "sysfs"" here; /sys is an empty tmpfs instead
#   (systemd mounts its cgroups there). For the same reason `lxc.apparmor.allow_nesting = 1`,
#   which mounts proc and sysfs under /dev/.lxc, is not written.
# - This kernel has no AppArmor, so the `generated` profile and its raw rules (what nesting=1
#   relaxes in Proxmox: `deny mount -> /proc/` …) are not enforced either way; nesting is recorded.
# The seccomp rules are Proxmox's: keyctl() fails with ENOSYS, btrfs ioctls with EPERM and
# AF_ALG sockets with EAFNOSUPPORT, on top of LXC's common list.
userns_lxc_config() {
    local dir=$1
    { cat /usr/share/lxc/config/common.seccomp
      printf 'keyctl errno 38\nioctl errno 1 [1,0x9400,SCMP_CMP_MASKED_EQ,0xff00]\nsocket errno 97 [0,38,SCMP_CMP_EQ]\n'; } >"$dir/rules.seccomp"
    cat <<CONF
lxc.include = /usr/share/lxc/config/debian.userns.conf
lxc.seccomp.profile = $dir/rules.seccomp
lxc.idmap = u 0 $USERNS_BASE 65536
lxc.idmap = g 0 $USERNS_BASE 65536
lxc.mount.auto =
lxc.mount.auto = proc:mixed cgroup:mixed
lxc.mount.entry = tmpfs sys tmpfs rw,nosuid,nodev,noexec,mode=755,create=dir 0 0
lxc.rootfs.path = dir:$dir/delta
CONF
}
