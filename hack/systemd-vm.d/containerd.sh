# Sourced by tests.sh: containerd with the systemd cgroup driver runs a container
# through the runc v2 shim, strata as the shim's runtime binary, runc as the control.
# /etc/containerd/config.toml (written by hack/systemd-vm) sets SystemdCgroup = true
# and BinaryName for CRI; `ctr` passes the same two options per container.
echo "containerd config (/etc/containerd/config.toml):"
sed 's/^/  /' /etc/containerd/config.toml
waitfor "systemctl is-active containerd" || fail "containerd is active" "$(systemctl status containerd 2>&1 | tail -5)"
for RT in strata runc; do
    bin=$(command -v $RT)
    out=$(timeout 60 ctr run --rm --runtime io.containerd.runc.v2 --runc-binary "$bin" --runc-systemd-cgroup \
        --cgroup "system.slice:ctr-$RT:c1" --rootfs "$T/rootfs" "ctr-$RT" /bin/sh -c 'cat /proc/self/cgroup' 2>&1)
    check "containerd (SystemdCgroup, BinaryName $bin): ctr run in ctr-$RT-c1.scope" "0::/system.slice/ctr-$RT-c1.scope" "$out"
    check "containerd: ctr-$RT-c1.scope gone after --rm" "" "$(units_like "ctr-$RT-*.scope")"
done
