#!/usr/bin/env python3
"""Writes the bundles hack/systemd-vm.d/tests.sh runs inside the VM, one per check and
runtime (strata, runc): the same config, but each runtime's own cgroupsPath prefix, so
both run side by side as strata-NAME.scope and runc-NAME.scope."""
import json
import os
import subprocess
import sys
import tempfile

strata, out = sys.argv[1], sys.argv[2]

with tempfile.TemporaryDirectory() as d:
    subprocess.run([strata, "spec", "-b", d], check=True)
    base = json.load(open(os.path.join(d, "config.json")))

LIMITS = {
    "memory": {"limit": 67108864, "reservation": 33554432, "swap": 100663296},
    "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
    "pids": {"limit": 40},
    "blockIO": {"weight": 500},
}

# name -> (cgroupsPath with RT for the runtime's name, or None: the default; resources; annotations)
bundles = {
    "limits": ("system.slice:RT:limits", LIMITS, {}),
    # cgroup v1 (tests-v1.sh): no blkio weight, which a v1 kernel without BFQ lacks.
    "limits1": ("system.slice:RT:limits", {k: v for k, v in LIMITS.items() if k != "blockIO"}, {}),
    "nested": ("test-a-b.slice:RT:nested", {"pids": {"limit": 10}}, {}),
    "default": (None, {}, {}),
    "annot": ("system.slice:RT:annot", {}, {"org.systemd.property.CollectMode": "'inactive-or-failed'",
                                           "org.systemd.property.TimeoutStopSec": "7"}),
}

for rt in ("strata", "runc"):
    for name, (path, resources, annotations) in bundles.items():
        c = json.loads(json.dumps(base))
        c["ociVersion"] = "1.0.2-dev"
        c["root"] = {"path": "/opt/strata-test/rootfs", "readonly": True}
        c["process"]["terminal"] = False
        c["process"]["args"] = ["sleep", "1000"]
        c["linux"]["resources"] = dict(resources, devices=[{"allow": False, "access": "rwm"}])
        if path:
            c["linux"]["cgroupsPath"] = path.replace("RT", rt)
        if annotations:
            c["annotations"] = annotations
        os.makedirs(os.path.join(out, rt, name), exist_ok=True)
        json.dump(c, open(os.path.join(out, rt, name, "config.json"), "w"), indent=1)
