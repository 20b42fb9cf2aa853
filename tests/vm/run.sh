#!/usr/bin/env bash
# Boots Debian's kernel under qemu (software emulation) with this machine's
# root filesystem shared read-only (plus a tmpfs overlay), runs one command
# inside, and exits with its status. Used to test on kernels other than the
# host's (Debian 6.1 LTS; IPVS later). Needs root, qemu-system-x86,
# busybox-static, cpio, kmod, xz-utils. Cached in .cache/vm/.
#   tests/vm/run.sh 'cd /path/to/kproxy && node bin/kproxy-demo.js --once'
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cache="$repo/.cache/vm"
mkdir -p "$cache"
cd "$cache"

pkg="$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*\)/\1/p' | sed -n 1p)"
[ -n "$pkg" ] || { echo "run.sh: cannot find Debian's kernel package" >&2; exit 2; }
kver="${pkg#linux-image-}"
if [ ! -f "kernel/lib/modules/$kver/modules.dep" ]; then
  ls "$pkg"_*.deb >/dev/null 2>&1 || apt-get download "$pkg" 2>/dev/null
  # Into place only once complete: a failed depmod must not leave a cache that looks ready.
  rm -rf kernel.new initrd-*.cpio.gz && mkdir kernel.new && dpkg -x "$pkg"_*.deb kernel.new
  depmod -b kernel.new "$kver"
  rm -rf kernel && mv kernel.new kernel
fi

initrd="$cache/initrd-$kver.cpio.gz"
if [ ! -f "$initrd" ]; then
  root="$cache/initramfs"
  rm -rf "$root" && mkdir -p "$root"/{bin,lib/modules,proc,sys,dev,host,root,t}
  cp "$(command -v busybox)" "$root/bin/busybox"
  for app in sh mount insmod sed chroot cat echo mkdir poweroff sleep; do ln -s busybox "$root/bin/$app"; done
  : > "$root/modules.order"
  for m in $(for mod in virtio_pci 9pnet_virtio 9p overlay; do modprobe -d kernel -S "$kver" --show-depends "$mod"; done | awk '/^insmod/ {print $2}'); do
    base="$(basename "$m")"
    case "$m" in
      *.xz) xz -dc "$m" > "$root/lib/modules/${base%.xz}"; base="${base%.xz}" ;;
      *) cp "$m" "$root/lib/modules/$base" ;;
    esac
    grep -qx "$base" "$root/modules.order" || echo "$base" >> "$root/modules.order"
  done
  # The kernel runs its module helper in this root, not in the chroot: hand it over.
  printf '#!/bin/sh\nexec chroot /root /sbin/modprobe "$@"\n' > "$root/modprobe"
  cat > "$root/init" <<INIT
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in \$(cat /modules.order); do insmod /lib/modules/\$m; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro hostroot /host
mount -t tmpfs tmpfs /t; mkdir -p /t/upper /t/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/t/upper,workdir=/t/work /root
mount --move /proc /root/proc; mount --move /sys /root/sys; mount --move /dev /root/dev
mkdir -p /root/lib/modules; mount --bind /root$cache/kernel/lib/modules /root/lib/modules
# /tmp stays the host's (copy-on-write through the overlay): the repo may live there.
mount -t tmpfs tmpfs /root/run
echo /modprobe > /root/proc/sys/kernel/modprobe
chroot /root /bin/bash -c "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root; . $cache/cmd"
echo "KPROXY-VM-EXIT \$?"
poweroff -f
INIT
  chmod +x "$root/init" "$root/modprobe"
  (cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$initrd"
fi

printf '%s\n' "$*" > "$cache/cmd"
log="$cache/console.log"
timeout 1800 qemu-system-x86_64 -accel tcg -cpu max -m 3072 -smp 2 -nographic -no-reboot \
  -kernel "kernel/boot/vmlinuz-$kver" -initrd "$initrd" \
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
  -append "console=ttyS0 quiet panic=-1" | tee "$log"
rc="$(sed -n 's/.*KPROXY-VM-EXIT \([0-9]*\).*/\1/p' "$log" | tail -1)"
[ -n "$rc" ] || { echo "run.sh: the VM did not report an exit status" >&2; exit 2; }
exit "$rc"
