#!/bin/sh
# The initramfs' /init (stage 1): just enough to reach the host's root filesystem.
# It loads the virtio/9p/overlay modules listed in /modules.order, mounts the host's
# root (9p, read-only) under a tmpfs overlay so that the guest may write anywhere
# without touching the host, and hands over to stage 2 (guest.sh, from the
# per-run "vmio" share) as PID 1 of the new root.
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "vm: stage 1: loading modules"
for m in $(cat /modules.order); do
    insmod "/modules/$m" || echo "vm: insmod $m failed"
done
mkdir -p /lower /upper /newroot
opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts,ro,cache=loose" hostroot /lower || { echo "vm: no hostroot"; poweroff -f; }
mount -t tmpfs -o mode=755 tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w,xino=off overlay \
    /newroot || { echo "vm: overlay root failed"; poweroff -f; }
mkdir -p /newroot/vmio
mount -t 9p -o "$opts" vmio /newroot/vmio || { echo "vm: no vmio share"; poweroff -f; }
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot /bin/sh /vmio/guest.sh
