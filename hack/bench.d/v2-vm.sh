#!/bin/busybox sh
# The cgroup v2 VM's init for hack/bench.d/v2-vm: checks the host is pure v2 and that
# strata's init is born in its cgroup, then the interleaved lifecycle rounds (rounds.c),
# every result a "BENCH-V2 ..." line on the console, and powers off.
. /setup.sh
. /bench.conf
echo "BENCH-V2 kernel $(uname -r) cpus $(nproc) controllers $(cat /sys/fs/cgroup/cgroup.controllers | tr ' ' ,)"
if grep -q ' cgroup2 ' /proc/mounts && ! grep -q ' cgroup ' /proc/mounts; then
    echo "BENCH-V2 check pure-v2 ok"
else
    echo "BENCH-V2 check pure-v2 FAIL $(grep cgroup /proc/mounts | tr '\n' ';')"
fi

# strata says at --debug which way its init got into its cgroup; /proc/PID/cgroup is
# the cgroup it is in right after create (not the VM's root).
S="strata --root /run/check"
if $S --debug --log /tmp/clone.log create --bundle /bundles/true --pid-file /tmp/clone.pid clone </dev/null >/dev/null 2>/tmp/clone.err; then
    pid=$(cat /tmp/clone.pid)
    cg=$(cat /proc/$pid/cgroup)
    said=$(grep -o "init $pid: .*" /tmp/clone.log | sed 's/ (+[0-9.]*ms)//; s/".*//')
    case "$said:$cg" in
        *"born in its cgroup"*:0::/?*) echo "BENCH-V2 check clone-into-cgroup ok $said; /proc/$pid/cgroup $cg" ;;
        *) echo "BENCH-V2 check clone-into-cgroup FAIL ${said:-no line about the init in --log}; /proc/$pid/cgroup $cg" ;;
    esac
    $S delete -f clone
else
    echo "BENCH-V2 check clone-into-cgroup FAIL create: $(tail -1 /tmp/clone.err)"
fi

mkdir -p /tmp/bench
t0=$(date +%s)
rounds /bin/spawn "$ROUNDS" "$WARMUP" /bundles/true /tmp/bench $RUNTIMES
echo "BENCH-V2 rounds-wall-s $(( $(date +%s) - t0 ))"
for e in /tmp/bench/*.err; do
    [ -s "$e" ] && tail -3 "$e" | sed "s|^|BENCH-V2 stderr $(basename "$e" .err): |"
done
echo "BENCH-V2 end"
poweroff -f
