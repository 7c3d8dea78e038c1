#!/bin/sh
# Stage 2, PID 1 on the host's root (read-only 9p under a tmpfs overlay): set the
# machine up as a systemd host with the unified cgroup hierarchy would be, run
# /vmio/cmd.sh in the repo and leave its exit code in /vmio/rc. Nothing here can reach
# the host: the VM has no network device, and the only writable share is /vmio.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 PYB_IN_VM=1
. /vmio/env.sh                   # KVER, REPO, KMODS (the extracted modules dir)

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue

# cgroup v2 only (the kernel runs with cgroup_no_v1=all), controllers delegated from
# the root as systemd does.
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for c in cpu cpuset io memory pids; do
    echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control || echo "vm: no $c controller"
done
echo "vm: cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"

# Real tmpfs where the tests put overlay upper dirs (overlayfs cannot be the upper
# layer of another overlay) and runtime state.
# The checkout may live under one of them (a CI's clone in /tmp): a view of it is kept
# aside and put back at its own path once they are mounted.
mkdir -p /mnt/repo && mount --bind "$REPO" /mnt/repo
for d in /tmp /run /var/tmp /var/lib/pybernetes /var/lib/cni; do
    mkdir -p "$d" && mount -t tmpfs -o mode=755 tmpfs "$d"
done
chmod 1777 /tmp /var/tmp
if [ ! -e "$REPO/pyproject.toml" ]; then
    mkdir -p "$REPO" && mount --bind /mnt/repo "$REPO"
fi
mkdir -p /run/netns /run/lock

# The Debian kernel's modules (extracted on the host, never installed there), loaded
# on demand by the kernel through busybox's modprobe.
mkdir -p "/lib/modules/$KVER"
mount --bind "$KMODS" "/lib/modules/$KVER"
[ -x /sbin/modprobe ] || ln -sf /bin/busybox /sbin/modprobe
echo /sbin/modprobe > /proc/sys/kernel/modprobe
for m in overlay veth bridge br_netfilter tun dummy nf_tables nft_compat nft_chain_nat \
         nf_nat nf_conntrack nft_ct nft_masq nft_nat nft_redir nft_fib_inet xt_conntrack \
         xt_MASQUERADE xt_addrtype xt_comment xt_mark xt_nat iptable_nat iptable_filter; do
    modprobe "$m" 2>/dev/null || echo "vm: no module $m"
done

hostname pyb-vm
ip link set lo up
# No network device: a dummy link gives the node an address and a default route that
# lead nowhere (the kubelet picks its node address from the default route).
ip link add vm0 type dummy && ip addr add 192.168.253.2/24 dev vm0 && ip link set vm0 up \
    && ip route add default via 192.168.253.1 dev vm0
sysctl -qw net.ipv4.ip_forward=1 2>/dev/null

echo "vm: ready; running the command"
cd "$REPO" || exit 1
sh /vmio/cmd.sh </dev/null > /dev/console 2>&1
echo $? > /vmio/rc
sync
echo "vm: done (exit code $(cat /vmio/rc))"
poweroff -f
