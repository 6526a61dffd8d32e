#!/bin/busybox sh
# The VM's init (after switch_root onto a tmpfs): a pure cgroup v2 host. Checks each
# cgroup feature of strata, prints "ok NAME" / "FAIL NAME: why", then
# "STRATA-V2-RESULT: pass|fail", and powers off.
. /setup.sh

S="strata --root /run/strata"
CG=/sys/fs/cgroup/strata
failed=0
ok() { echo "ok $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }
# check NAME EXPECTED ACTUAL
check() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "want [$2] got [$3]"; fi; }
waitfor() { n=0; while ! eval "$1" >/dev/null 2>&1; do n=$((n+1)); [ $n -gt 300 ] && return 1; sleep 0.1; done; }
run_d() { $S run -d -b /bundles/$1 $1 </dev/null >/dev/null 2>/tmp/$1.err || fail "run $1" "$(cat /tmp/$1.err)"; }

echo "controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
grep -q cgroup2 /proc/mounts && ! grep -q ' cgroup ' /proc/mounts && ok "pure cgroup v2 host"

# The init is born in its cgroup (clone3 with CLONE_INTO_CGROUP, which only a pure v2
# host allows): strata says which path it took at --debug; /proc/PID/cgroup agrees.
$S --debug --log /tmp/clone.log create -b /bundles/counter clone </dev/null >/dev/null 2>/tmp/clone.err || fail "create clone" "$(cat /tmp/clone.err)"
grep -q 'born in its cgroup (clone3 CLONE_INTO_CGROUP)' /tmp/clone.log && ok "init born in its cgroup (CLONE_INTO_CGROUP)" ||
    fail "init born in its cgroup (CLONE_INTO_CGROUP)" "$(grep -i 'init [0-9]' /tmp/clone.log)"
check "init's /proc/PID/cgroup right after create" "0::/strata/clone" "$(cat /proc/$($S state clone | grep '"pid"' | grep -o '[0-9]*')/cgroup)"
$S delete -f clone

# Limits: in the files, with runc's v1->v2 conversions, and seen inside.
mknod /rootfs/kmsg c 1 11
run_d limits
check "memory.max" 67108864 "$(cat $CG/limits/memory.max)"
check "memory.swap.max = swap - limit" 33554432 "$(cat $CG/limits/memory.swap.max)"
check "memory.low" 33554432 "$(cat $CG/limits/memory.low)"
check "cpu.weight from shares 1024" 39 "$(cat $CG/limits/cpu.weight)"
check "cpu.max" "50000 100000" "$(cat $CG/limits/cpu.max)"
check "cpuset.cpus" 0 "$(cat $CG/limits/cpuset.cpus)"
check "pids.max" 40 "$(cat $CG/limits/pids.max)"
if [ -e $CG/limits/io.bfq.weight ]; then check "io.bfq.weight" "default 500" "$(head -1 $CG/limits/io.bfq.weight)";
else check "io.weight from blkio 500" "default 4950" "$(cat $CG/limits/io.weight)"; fi
check "hugetlb.2MB.max" 4194304 "$(cat $CG/limits/hugetlb.2MB.max)"
check "unified memory.high" 50331648 "$(cat $CG/limits/memory.high)"
waitfor "[ -s /rootfs/inside ]"
check "inside: /proc/self/cgroup, limits, /dev/zero allowed, /kmsg (c 1:11) denied by the eBPF program" \
    "0::/ 67108864 40 1 0" "$(cat /rootfs/inside | grep -v 'Operation not permitted' | tr '\n' ' ' | sed 's/ $//')"
grep -q 'Operation not permitted' /rootfs/inside && ok "eBPF device filter: EPERM" || fail "eBPF device filter" "$(cat /rootfs/inside)"
$S delete -f limits

# Errors naming the field, nothing left.
err=$($S run -b /bundles/rt rt 2>&1); echo "$err" | grep -q "linux.resources.cpu.realtimeRuntime" && ok "realtime on v2 is an error" || fail "realtime error" "$err"
err=$($S run -b /bundles/unknownkey uk 2>&1); echo "$err" | grep -q 'unified\["memory.bogus"\]' && ok "unknown unified key is an error" || fail "unknown key" "$err"
[ ! -e $CG/rt ] && [ ! -e $CG/uk ] && ok "failed creates leave no cgroup" || fail "leftover" "$(ls $CG)"

# pids.max caps a fork bomb.
run_d forkbomb
waitfor "[ \$(cat $CG/forkbomb/pids.current) = 16 ]" && ok "fork bomb capped at 16" || fail "fork bomb" "$(cat $CG/forkbomb/pids.current)"
waitfor "grep -q '^max [1-9]' $CG/forkbomb/pids.events" && ok "pids.events max" || fail "pids.events" "$(cat $CG/forkbomb/pids.events)"
$S delete -f forkbomb

# OOM kill, seen in memory.events and by `events`.
rm -f /rootfs/dd-status
$S create -b /bundles/oom oom </dev/null >/dev/null 2>&1
$S events --interval 200ms oom > /tmp/events.out &
$S start oom
waitfor "[ -s /rootfs/dd-status ]"
check "dd OOM-killed" 137 "$(cat /rootfs/dd-status)"
grep -q '^oom_kill [1-9]' $CG/oom/memory.events && ok "memory.events oom_kill" || fail "oom_kill" "$(cat $CG/oom/memory.events)"
waitfor "grep -q '\"type\":\"oom\"' /tmp/events.out" && ok "events reports oom" || fail "oom event" "$(cat /tmp/events.out)"
$S delete -f oom

# pause / resume through cgroup.freeze; update; ps; events --stats.
run_d counter
waitfor "[ -s /rootfs/count ]"
$S pause counter
check "state paused" paused "$($S state counter | grep -o '"status": "[a-z]*"' | cut -d'"' -f4)"
check "cgroup.events frozen" "frozen 1" "$(grep frozen $CG/counter/cgroup.events)"
a=$(cat /rootfs/count); sleep 1; b=$(cat /rootfs/count)
check "counter stopped while paused" "$a" "$b"
$S resume counter
sleep 1; c=$(cat /rootfs/count)
[ "$c" -gt "$b" ] && ok "counter goes on after resume" || fail "resume" "$b -> $c"
$S update --memory 100m --cpu-share 512 --pids-limit 30 counter
check "update memory.max" 104857600 "$(cat $CG/counter/memory.max)"
check "update cpu.weight" 20 "$(cat $CG/counter/cpu.weight)"
check "update pids.max" 30 "$(cat $CG/counter/pids.max)"
$S ps -f json counter | grep -q "$($S state counter | grep '"pid"' | grep -o '[0-9]*')" && ok "ps json" || fail "ps" "$($S ps -f json counter)"
$S events --stats counter | grep -q '"limit":104857600' && ok "events --stats" || fail "events --stats" "$($S events --stats counter)"
$S pause counter
$S delete -f counter && ok "delete -f of a paused container"
[ -z "$(find $CG -mindepth 1 -type d 2>/dev/null)" ] && ok "no container cgroup left under /sys/fs/cgroup/strata" || fail "leftover" "$(find $CG)"

# Rootless in a delegated subtree: /user1000 is given to uid 1000 as systemd's
# Delegate=yes gives a user's cgroup (the directory, cgroup.procs, cgroup.threads,
# cgroup.subtree_control), memory and pids enabled for its children; the user's shell
# runs in its session cgroup below it. strata runs as that user with no --root.
mkdir -p /etc
printf 'root:x:0:0::/:/bin/sh\nu1000:x:1000:1000::/tmp:/bin/sh\n' > /etc/passwd
printf 'root:x:0:\nu1000:x:1000:\n' > /etc/group
D=/sys/fs/cgroup/user1000
mkdir -p $D/session /run/user/1000
echo "+memory +pids" > $D/cgroup.subtree_control
chown 1000:1000 $D $D/cgroup.procs $D/cgroup.threads $D/cgroup.subtree_control $D/session $D/session/cgroup.procs $D/session/cgroup.threads /run/user/1000
chmod 700 /run/user/1000
rl() { sh -c "echo \$\$ > $D/session/cgroup.procs; exec su u1000 -s /bin/sh -c 'env XDG_RUNTIME_DIR=/run/user/1000 USER=u1000 HOME=/tmp strata $*'"; }
check "rootless: the caller is uid 1000" 1000 "$(su u1000 -s /bin/sh -c 'id -u')"
rl run -d -b /bundles/rootless rl </dev/null >/tmp/rl.out 2>&1 || fail "rootless run" "$(cat /tmp/rl.out)"
check "rootless: state in \$XDG_RUNTIME_DIR/strata" yes "$([ -d /run/user/1000/strata/rl ] && echo yes)"
check "rootless memory.max" 67108864 "$(cat $D/rl/memory.max)"
check "rootless pids.max" 40 "$(cat $D/rl/pids.max)"
check "rootless: the cgroup is the user's" 1000 "$(stat -c %u $D/rl)"
check "rootless exec: in the container's cgroup" "0::/user1000/rl" "$(rl exec rl cat /proc/self/cgroup </dev/null 2>&1)"
rl pause rl </dev/null 2>/tmp/rl.err || fail "rootless pause" "$(cat /tmp/rl.err)"
check "rootless pause: cgroup.events frozen" "frozen 1" "$(grep frozen $D/rl/cgroup.events)"
rl resume rl </dev/null 2>/tmp/rl.err || fail "rootless resume" "$(cat /tmp/rl.err)"
check "rootless resume: thawed" "frozen 0" "$(grep frozen $D/rl/cgroup.events)"
rl ps rl </dev/null | grep -q sleep && ok "rootless ps" || fail "rootless ps" "$(rl ps rl 2>&1)"
rl delete -f rl </dev/null 2>/tmp/rl.err || fail "rootless delete -f" "$(cat /tmp/rl.err)"
[ ! -e $D/rl ] && [ ! -e /run/user/1000/strata/rl ] && ok "rootless: nothing left" || fail "rootless leftover" "$(ls $D /run/user/1000/strata)"

[ $failed = 0 ] && echo "STRATA-V2-RESULT: pass" || echo "STRATA-V2-RESULT: fail"
poweroff -f
