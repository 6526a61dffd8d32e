#!/usr/bin/env python3
"""Writes the bundles hack/cgroup-v2-vm.d/tests.sh runs inside the VM: config.json
from `strata spec`, every bundle sharing the VM's /rootfs, one per check."""
import json
import os
import subprocess
import sys
import tempfile

strata, out = sys.argv[1], sys.argv[2]

with tempfile.TemporaryDirectory() as d:
    subprocess.run([strata, "spec", "--hardened", "-b", d], check=True)  # the checks read /sys/fs/cgroup through a cgroup namespace
    base = json.load(open(os.path.join(d, "config.json")))

COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /count.tmp; mv /count.tmp /count; sleep 0.05; done"
DENY_ALL = [{"allow": False, "access": "rwm"}]

bundles = {
    "limits": ("{ cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; "
               "head -c 1 /dev/zero | wc -c; head -c 1 /kmsg | wc -c; } > /inside.tmp 2>&1; "
               "mv /inside.tmp /inside; sleep 60", {
        "memory": {"limit": 67108864, "swap": 100663296, "reservation": 33554432},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 40},
        "blockIO": {"weight": 500},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "unified": {"memory.high": "50331648"},
        # Deny-all, then the defaults (null, zero, ...): /kmsg (c 1:11, made in the
        # rootfs by tests.sh) exists but can't be opened.
        "devices": DENY_ALL,
    }),
    "forkbomb": ("(while true; do sleep 60 & done); sleep 60; true", {"pids": {"limit": 16}}),
    "oom": ("sleep 2; dd if=/dev/zero of=/dev/null bs=96M count=1; echo $? > /dd-status; sleep 60",
            {"memory": {"limit": 33554432, "swap": 33554432}}),
    "counter": (COUNTER, {"memory": {"limit": 67108864}, "pids": {"limit": 50}}),
    "rt": ("true", {"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 1000000}}),
    "unknownkey": ("true", {"unified": {"memory.bogus": "1"}}),
}

# Rootless (tests.sh runs it as uid 1000 in a delegated subtree): `spec --rootless`
# made here as root maps host uid 0; the VM's user is 1000.
with tempfile.TemporaryDirectory() as d:
    subprocess.run([strata, "spec", "--rootless", "-b", d], check=True)
    rootless = json.load(open(os.path.join(d, "config.json")))
rootless["root"] = {"path": "/rootfs", "readonly": True}
rootless["process"]["terminal"] = False
rootless["process"]["args"] = ["sleep", "60"]
for key in ("uidMappings", "gidMappings"):
    rootless["linux"][key] = [{"containerID": 0, "hostID": 1000, "size": 1}]
rootless["linux"]["cgroupsPath"] = "/user1000/rl"
rootless["linux"]["resources"] = {"memory": {"limit": 67108864}, "pids": {"limit": 40}}
os.makedirs(os.path.join(out, "rootless"), exist_ok=True)
json.dump(rootless, open(os.path.join(out, "rootless", "config.json"), "w"), indent=1)

for name, (script, resources) in bundles.items():
    c = json.loads(json.dumps(base))
    c["root"] = {"path": "/rootfs", "readonly": False}
    c["process"]["terminal"] = False
    c["process"]["args"] = ["sh", "-c", script]
    c["linux"]["resources"] = resources
    os.makedirs(os.path.join(out, name), exist_ok=True)
    json.dump(c, open(os.path.join(out, name, "config.json"), "w"), indent=1)
