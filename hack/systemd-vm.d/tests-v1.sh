# Sourced by tests.sh when systemd runs the v1 (hybrid) hierarchies
# (hack/systemd-vm v1): the systemd driver on cgroup v1, strata and runc side by side.
# systemd makes the scope in the hierarchies it manages; the runtime joins the rest
# (cpuset, freezer ...), as runc's legacy driver does.
V1=/sys/fs/cgroup
for RT in strata runc; do
    S="$RT --root /run/$RT-test --systemd-cgroup"
    B=$T/bundles/$RT
    run_d "$S" $B/limits1 limits
    U=$RT-limits.scope P=system.slice/$RT-limits.scope
    check "$RT (v1): $U active, Delegate, Slice" "active yes system.slice" "$(systemctl is-active $U) $(prop $U Delegate) $(prop $U Slice)"
    check "$RT (v1): MemoryLimit CPUShares TasksMax" "67108864 1024 40" "$(prop $U MemoryLimit) $(prop $U CPUShares) $(prop $U TasksMax)"
    check "$RT (v1): CPUQuotaPerSecUSec AllowedCPUs DevicePolicy" "500ms 0 strict" "$(prop $U CPUQuotaPerSecUSec) $(prop $U AllowedCPUs) $(prop $U DevicePolicy)"
    check "$RT (v1): memory.limit_in_bytes cpu.shares cfs_quota pids.max cpuset.cpus" "67108864 1024 50000 40 0" \
        "$(cat $V1/memory/$P/memory.limit_in_bytes) $(cat $V1/cpu,cpuacct/$P/cpu.shares) $(cat $V1/cpu,cpuacct/$P/cpu.cfs_quota_us) $(cat $V1/pids/$P/pids.max) $(cat $V1/cpuset/$P/cpuset.cpus 2>&1)"
    pid=$($S state limits | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
    check "$RT (v1): the init is in the scope in memory, freezer, cpuset" "3" "$(grep -cE "^[0-9]+:(memory|freezer|cpuset):/$P\$" /proc/$pid/cgroup)"
    systemctl show -p MemoryLimit,CPUShares,CPUQuotaPerSecUSec,CPUQuotaPeriodUSec,AllowedCPUs,AllowedMemoryNodes,TasksMax,DevicePolicy,DeviceAllow,Delegate,Slice,MemoryAccounting,CPUAccounting,TasksAccounting,BlockIOAccounting,DefaultDependencies $U >/tmp/$RT.props
    echo "$RT (v1): $(tr '\n' ' ' </tmp/$RT.props)"
    $S update --memory 134217728 --memory-swap 201326592 --pids-limit 50 limits 2>/tmp/err || fail "$RT (v1): update" "$(cat /tmp/err)"
    check "$RT (v1): update: MemoryLimit TasksMax, files" "134217728 50 134217728 50" \
        "$(prop $U MemoryLimit) $(prop $U TasksMax) $(cat $V1/memory/$P/memory.limit_in_bytes) $(cat $V1/pids/$P/pids.max)"
    $S pause limits 2>/tmp/err || fail "$RT (v1): pause" "$(cat /tmp/err)"
    check "$RT (v1): paused" "FROZEN" "$(cat $V1/freezer/$P/freezer.state)"
    $S resume limits 2>/tmp/err || fail "$RT (v1): resume" "$(cat /tmp/err)"
    check "$RT (v1): resumed" "THAWED" "$(cat $V1/freezer/$P/freezer.state)"
    check "$RT (v1): ps" "[$pid]" "$($S ps -f json limits | tr -d ' \n')"
    ev=$(timeout 10 $S events --stats limits 2>&1)
    case "$ev" in *'"type":"stats"'*'"memory"'*) ok "$RT (v1): events --stats";; *) fail "$RT (v1): events --stats" "$ev";; esac
    $S kill --all limits KILL 2>/tmp/err || fail "$RT (v1): kill --all" "$(cat /tmp/err)"
    waitfor "$S state limits | grep -q '\"stopped\"'" || fail "$RT (v1): kill --all" "still running"
    $S delete limits 2>/tmp/err || fail "$RT (v1): delete" "$(cat /tmp/err)"
    left=$(ls -d $V1/*/$P 2>/dev/null | tr '\n' ' ')
    check "$RT (v1): delete: no unit, no cgroup in any hierarchy" " " "$(units_like $U) $left"
    run_d "$S" $B/nested nested
    check "$RT (v1): nested slice" "test-a-b.slice 10" "$(prop $RT-nested.scope Slice) $(cat $V1/pids/test.slice/test-a.slice/test-a-b.slice/$RT-nested.scope/pids.max 2>&1)"
    $S delete -f nested 2>/tmp/err || fail "$RT (v1): delete -f nested" "$(cat /tmp/err)"
    for i in $(seq 1 20); do run_d "$S" $B/default loop$i; done
    for i in $(seq 1 20); do $S delete -f loop$i 2>/tmp/err || fail "$RT (v1): delete -f loop$i" "$(cat /tmp/err)"; done
    check "$RT (v1): 20 made and deleted: no unit, no cgroup" " " "$(units_like "$RT-loop*") $(ls -d $V1/*/system.slice/$RT-loop* 2>/dev/null | tr '\n' ' ')"
done
if diff /tmp/strata.props /tmp/runc.props >/tmp/props.diff; then
    ok "(v1) strata's unit properties are runc's"
else
    fail "(v1) strata's unit properties are runc's" "$(tr '\n' ' ' </tmp/props.diff)"
fi
