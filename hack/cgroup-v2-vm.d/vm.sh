# The pure cgroup v2 VM, shared by hack/cgroup-v2-vm (the checks) and hack/bench.d/v2-vm
# (the lifecycle figures there): Debian's cloud kernel under qemu in software emulation
# (nested KVM hangs on these machines), booted with an initramfs whose /init moves it
# onto a tmpfs and runs one script as the VM's init. Source this file (bash), set
# V2VM_NAME (the caller's name for messages) first.

# Leaves with status 77 (can't run here), saying why.
v2vm_skip() { echo "$V2VM_NAME: SKIPPED: $*" >&2; exit 77; }

# What the VM needs on the host; skips when something is missing.
v2vm_require() {
    command -v qemu-system-x86_64 >/dev/null || v2vm_skip "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    [ -x /bin/busybox ] || v2vm_skip "/bin/busybox missing (apt-get install busybox-static)"
}

# v2vm_kernel WORK: sets $kernel to Debian's cloud kernel (cgroup_no_v1=all on the
# command line; the VM's init mounts only cgroup2), fetched once into WORK/kernel.
v2vm_kernel() {
    local work=$1 pkg
    kernel=$(ls "$work"/kernel/boot/vmlinuz-* 2>/dev/null | head -1 || true)
    [ -n "$kernel" ] && return 0
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [ -n "$pkg" ] || v2vm_skip "no linux-image-cloud-amd64 package known to apt"
    (cd "$work" && rm -f ./*.deb && apt-get download "$pkg" >/dev/null) || v2vm_skip "apt-get download $pkg failed"
    rm -rf "$work/kernel" && dpkg -x "$work"/"$pkg"_*.deb "$work/kernel"
    kernel=$(ls "$work"/kernel/boot/vmlinuz-* | head -1)
}

# v2vm_static BINARY: fails unless BINARY has no program interpreter (the VM has no libc
# unless one is copied in).
v2vm_static() {
    ! readelf -l "$1" | grep -q 'interpreter' || { echo "$V2VM_NAME: $1 is not statically linked" >&2; exit 1; }
}

# v2vm_initramfs ROOT WS: a fresh initramfs tree with busybox in /bin and the busybox
# rootfs (hack/busybox-rootfs, cached under WS/target/fixtures) in /rootfs.
v2vm_initramfs() {
    local root=$1 ws=$2 template=$2/target/fixtures/busybox-rootfs
    rm -rf "$root" && mkdir -p "$root"/{bin,proc,sys,dev,newroot}
    cp /bin/busybox "$root/bin/busybox"
    [ -x "$template/bin/busybox" ] || "$ws/hack/busybox-rootfs" "$template"
    cp -a "$template" "$root/rootfs"
}

# v2vm_libs ROOT BINARY...: the shared libraries and loader each BINARY needs (what ldd
# lists), copied into ROOT at the same paths.
v2vm_libs() {
    local root=$1 lib
    shift
    for lib in $(ldd "$@" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

# v2vm_boot WORK ROOT SCRIPT LOG [TIMEOUT]: /init (moves ROOT's entries onto a tmpfs:
# pivot_root can't leave the initramfs, then runs SCRIPT there as the VM's init), packs
# ROOT into WORK/initrd.gz and boots it; the console goes to LOG. SCRIPT powers off.
v2vm_boot() {
    local work=$1 root=$2 script=$3 log=$4 timeout=${5:-600} entries
    entries=$(cd "$root" && ls -A | grep -vxE 'proc|sys|dev|newroot|init' | tr '\n' ' ')
    cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox mount -t tmpfs -o size=700m tmpfs /newroot
for d in $entries; do /bin/busybox cp -a /\$d /newroot/; done
exec /bin/busybox switch_root /newroot /bin/busybox sh $script
INIT
    chmod +x "$root/init"
    (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.gz"
    timeout "$timeout" qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -no-reboot \
        -kernel "$kernel" -initrd "$work/initrd.gz" \
        -append 'console=ttyS0 panic=-1 quiet hugepages=8 cgroup_no_v1=all' </dev/null >"$log" 2>&1 || true
}
