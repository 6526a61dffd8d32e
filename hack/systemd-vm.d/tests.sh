#!/bin/bash
# Runs inside the systemd VM (strata-tests.service, after boot): strata's systemd cgroup
# driver checks, strata and runc side by side on the same bundles. Prints "ok NAME" /
# "FAIL NAME: why" per check, "N passed, N failed" and "SYSTEMD-VM-RESULT: pass|fail"
# on the serial console; the unit then powers the VM off.
exec >/dev/ttyS0 2>&1
export PATH=/opt/strata-test/bin:/usr/sbin:/usr/bin:/sbin:/bin
T=/opt/strata-test
CG=/sys/fs/cgroup
passed=0 failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
check() { if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "want [$2] got [$3]"; fi; }
prop() { systemctl show -P "$2" "$1"; }
waitfor() { n=0; while ! eval "$1" >/dev/null 2>&1; do n=$((n + 1)); [ $n -gt 100 ] && return 1; sleep 0.1; done; }
# run_d RUNTIME-COMMAND BUNDLE ID
run_d() { $1 run -d -b "$2" "$3" </dev/null >/dev/null 2>/tmp/err || fail "run $3 ($1)" "$(cat /tmp/err)"; }
units_like() { systemctl list-units --all --no-legend --plain "$1" | awk '{print $1}' | tr '\n' ' '; }

echo "PID 1: $(cat /proc/1/comm) $(systemctl --version | awk 'NR==1 {print $2}')"
echo "kernel $(uname -r), /sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup), $(runc --version | head -1), booted in $(cut -d' ' -f1 /proc/uptime) s"
check "strata features reports the systemd driver" '"systemd": true,' "$(strata features | grep -o '"systemd": [a-z]*,')"
finish() {
    echo "$passed passed, $failed failed"
    if [ $failed = 0 ] && [ $passed -gt 0 ]; then echo "SYSTEMD-VM-RESULT: pass"; else echo "SYSTEMD-VM-RESULT: fail"; fi
    exit 0
}
# Booted with systemd.unified_cgroup_hierarchy=0: the v1 checks only.
if [ "$(stat -fc %T /sys/fs/cgroup)" = tmpfs ]; then
    . $T/tests-v1.sh
    finish
fi

for RT in strata runc; do
    S="$RT --root /run/$RT-test --systemd-cgroup"
    B=$T/bundles/$RT
    start=$(date +%s%N)

    # A scope with the limits, in its properties and in the files.
    run_d "$S" $B/limits limits
    U=$RT-limits.scope D=$CG/system.slice/$RT-limits.scope
    check "$RT: system.slice:$RT:limits is $U, active" active "$(systemctl is-active $U)"
    check "$RT: $U Delegate=yes Slice=system.slice" "yes system.slice" "$(prop $U Delegate) $(prop $U Slice)"
    check "$RT: $U MemoryMax MemoryLow MemorySwapMax" "67108864 33554432 33554432" "$(prop $U MemoryMax) $(prop $U MemoryLow) $(prop $U MemorySwapMax)"
    check "$RT: $U CPUWeight TasksMax AllowedCPUs" "39 40 0" "$(prop $U CPUWeight) $(prop $U TasksMax) $(prop $U AllowedCPUs)"
    check "$RT: $U CPUQuotaPerSecUSec CPUQuotaPeriodUSec" "500ms 100ms" "$(prop $U CPUQuotaPerSecUSec) $(prop $U CPUQuotaPeriodUSec)"
    check "$RT: $U DevicePolicy" strict "$(prop $U DevicePolicy)"
    check "$RT: files memory.max/low/swap.max" "67108864 33554432 33554432" "$(cat $D/memory.max) $(cat $D/memory.low) $(cat $D/memory.swap.max)"
    check "$RT: files cpu.weight cpu.max cpuset.cpus pids.max" "39 50000 100000 0 40" "$(cat $D/cpu.weight) $(cat $D/cpu.max) $(cat $D/cpuset.cpus) $(cat $D/pids.max)"
    pid=$($S state limits | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
    check "$RT: the init is in the scope" "0::/system.slice/$U" "$(cat /proc/$pid/cgroup 2>&1)"
    systemctl show -p MemoryMax,MemoryLow,MemorySwapMax,CPUWeight,CPUQuotaPerSecUSec,CPUQuotaPeriodUSec,AllowedCPUs,AllowedMemoryNodes,TasksMax,DevicePolicy,DeviceAllow,Delegate,Slice,IOWeight,MemoryAccounting,CPUAccounting,TasksAccounting,IOAccounting,DefaultDependencies $U >/tmp/$RT.props
    echo "$RT: $(tr '\n' ' ' </tmp/$RT.props)"

    # update
    $S update --memory 134217728 --memory-swap 201326592 --pids-limit 50 limits 2>/tmp/err || fail "$RT: update" "$(cat /tmp/err)"
    check "$RT: update: MemoryMax TasksMax" "134217728 50" "$(prop $U MemoryMax) $(prop $U TasksMax)"
    check "$RT: update: memory.max memory.swap.max pids.max" "134217728 67108864 50" "$(cat $D/memory.max) $(cat $D/memory.swap.max) $(cat $D/pids.max)"

    # pause / resume, ps, events
    $S pause limits 2>/tmp/err || fail "$RT: pause" "$(cat /tmp/err)"
    check "$RT: paused: cgroup.freeze, status" "1 paused" "$(cat $D/cgroup.freeze) $($S state limits | sed -n 's/.*"status": "\([a-z]*\)".*/\1/p')"
    $S resume limits 2>/tmp/err || fail "$RT: resume" "$(cat /tmp/err)"
    check "$RT: resumed: cgroup.freeze, status" "0 running" "$(cat $D/cgroup.freeze) $($S state limits | sed -n 's/.*"status": "\([a-z]*\)".*/\1/p')"
    check "$RT: ps lists the init" "[$pid]" "$($S ps -f json limits | tr -d ' \n')"
    ev=$(timeout 10 $S events --stats limits 2>&1)
    case "$ev" in *'"type":"stats"'*'"memory"'*) ok "$RT: events --stats";; *) fail "$RT: events --stats" "$ev";; esac

    # kill --all, delete: the unit stops and its cgroup goes.
    $S kill --all limits KILL 2>/tmp/err || fail "$RT: kill --all" "$(cat /tmp/err)"
    waitfor "$S state limits | grep -q '\"stopped\"'" || fail "$RT: kill --all" "still running"
    $S delete limits 2>/tmp/err || fail "$RT: delete" "$(cat /tmp/err)"
    check "$RT: delete: no unit, no cgroup" " gone" "$(units_like $U) $([ -e $D ] && echo left || echo gone)"

    # A nested slice path, expanded as systemd nests it.
    run_d "$S" $B/nested nested
    N=$CG/test.slice/test-a.slice/test-a-b.slice/$RT-nested.scope
    check "$RT: test-a-b.slice:$RT:nested is $N" "test-a-b.slice 10" "$(prop $RT-nested.scope Slice) $(cat $N/pids.max 2>&1)"
    $S delete -f nested 2>/tmp/err || fail "$RT: delete -f nested" "$(cat /tmp/err)"
    check "$RT: nested scope gone" " gone" "$(units_like $RT-nested.scope) $([ -e $N ] && echo left || echo gone)"

    # The empty path: system.slice, the runtime's own prefix.
    run_d "$S" $B/default default
    check "$RT: empty cgroupsPath is system.slice/$RT-default.scope" "active" "$([ -d $CG/system.slice/$RT-default.scope ] && systemctl is-active $RT-default.scope)"
    $S delete -f default 2>/tmp/err || fail "$RT: delete -f default" "$(cat /tmp/err)"

    # org.systemd.property.* annotations.
    run_d "$S" $B/annot annot
    check "$RT: annotations: CollectMode, TimeoutStopSec=7 as TimeoutStopUSec" "inactive-or-failed 7s" "$(prop $RT-annot.scope CollectMode) $(prop $RT-annot.scope TimeoutStopUSec)"
    $S delete -f annot 2>/tmp/err || fail "$RT: delete -f annot" "$(cat /tmp/err)"

    # 20 containers made and deleted: no unit and no cgroup left.
    t0=$(date +%s%N)
    for i in $(seq 1 20); do run_d "$S" $B/default loop$i; done
    check "$RT: 20 scopes active" 20 "$(systemctl list-units --no-legend --plain "$RT-loop*" | grep -c ' active running')"
    for i in $(seq 1 20); do $S delete -f loop$i 2>/tmp/err || fail "$RT: delete -f loop$i" "$(cat /tmp/err)"; done
    echo "$RT: 20 run -d + delete -f: $((($(date +%s%N) - t0) / 1000000)) ms"
    check "$RT: after 20 deletes: no unit, no cgroup" " " "$(units_like "$RT-loop*") $(ls -d $CG/system.slice/$RT-loop* 2>/dev/null | tr '\n' ' ')"
    check "$RT: nothing left in list-units" "" "$(units_like "$RT-*.scope")"
    echo "$RT: all checks: $((($(date +%s%N) - start) / 1000000)) ms"
done

# Side by side: the same config gives the same unit properties (IOWeight: strata sets
# it from blockIO.weight, runc 1.1 only writes the file).
# In the same order too (DeviceAllow's is strata's choice, made runc's).
if diff <(grep -v '^IOWeight=' /tmp/strata.props) <(grep -v '^IOWeight=' /tmp/runc.props) >/tmp/props.diff; then
    ok "strata's unit properties are runc's"
else
    fail "strata's unit properties are runc's" "$(tr '\n' ' ' </tmp/props.diff)"
fi

[ -f $T/containerd.sh ] && . $T/containerd.sh

finish
