#!/usr/bin/env python3
"""Build times: `strata-image build` next to `buildah bud`, cold and warm, on the same
Containerfiles and contexts. hack/bench runs it (and appends its table); it also runs
on its own, as root:

  hack/bench.d/builds.py --bin DIR [--rounds N] [--work DIR] [--json OUT] [--md OUT]

DIR holds strata-image (a release build: target/x86_64-unknown-linux-gnu/release).
Cold: every step runs (strata-image --no-cache; buildah --layers --no-cache); the base
image is already in each tool's store (the layout plus extracted layers for strata-image,
containers-storage for buildah), so the figure is the build's, not the import's.
Warm: nothing changed since the last build (strata-image's cache; buildah --layers).
buildah uses the overlay storage driver and runc in chroot isolation (the fastest setup
that works here; crun refuses this machine's hybrid cgroups). Wall times; median and
min of N rounds, the two tools alternating within a round.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

CASES = {
    "busybox: 11 steps (COPY x2, RUN)": (
        "ARG BASE\nFROM $BASE\nARG V=1\nENV K=v$V\nWORKDIR /app\nCOPY a.txt .\nCOPY d /data/\n"
        "RUN echo \"$K\" > /k && ls /app /data && rm /etc/group\nUSER 1000\nCMD [\"sh\"]\nLABEL a=b\nEXPOSE 80\n"
    ),
    "busybox: multi-stage, COPY --from": (
        "ARG BASE\nFROM $BASE AS builder\nRUN mkdir -p /out && for i in 1 2 3 4 5 6 7 8; do echo $i > /out/f$i; done\n"
        "FROM $BASE\nCOPY --from=builder /out /opt/out\nRUN cat /opt/out/* > /all\nCMD [\"cat\", \"/all\"]\n"
    ),
}


def log(*a):
    print("bench builds:", *a, file=sys.stderr, flush=True)


def run(argv, **kw):
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {p.returncode}\n{p.stderr.decode(errors='replace')[-2000:]}")


def timed(argv):
    t = time.perf_counter()
    run(argv)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work")
    ap.add_argument("--json")
    ap.add_argument("--md")
    a = ap.parse_args()
    si = os.path.join(os.path.abspath(a.bin), "strata-image")
    if not shutil.which("buildah") or not shutil.which("skopeo"):
        raise SystemExit("bench builds: needs buildah and skopeo (apt-get install buildah skopeo)")
    own = a.work is None
    work = a.work or tempfile.mkdtemp(prefix="strata-bench-builds.")
    os.makedirs(work, exist_ok=True)
    bs = os.path.join(work, "buildah")
    buildah = ["buildah", "--root", f"{bs}/root", "--runroot", f"{bs}/runroot", "--storage-driver", "overlay"]
    bud = buildah + ["bud", "-q", "--layers", "--pull=never", "--runtime", "/usr/sbin/runc", "--isolation", "chroot"]
    try:
        subprocess.run([os.path.join(REPO, "hack/busybox-rootfs"), f"{work}/rootfs"], check=True, stdout=subprocess.DEVNULL)
        run(["tar", "-C", f"{work}/rootfs", "-cf", f"{work}/busybox.tar", "."])
        layout = f"{work}/layout"
        run([si, "import", "--image", f"{layout}:base", f"{work}/busybox.tar"])
        run(["skopeo", "copy", "-q", f"oci:{layout}:base", f"containers-storage:[overlay@{bs}/root+{bs}/runroot]localhost/strata-base"])
        store = f"{work}/store"
        results = {}
        for n, (name, text) in enumerate(CASES.items()):
            ctx = f"{work}/ctx{n}"
            os.makedirs(f"{ctx}/d/sub", exist_ok=True)
            open(f"{ctx}/Containerfile", "w").write(text)
            open(f"{ctx}/a.txt", "w").write("a\n")
            for i in range(20):
                open(f"{ctx}/d/sub/f{i}", "w").write(f"{i}\n" * 100)
            ours = [si, "build", "-q", "-t", f"{layout}:b{n}", "--store", store, "--build-arg", f"BASE={layout}:base", ctx]
            theirs = bud + ["--build-arg", "BASE=localhost/strata-base", "-t", f"b{n}", ctx]
            # Warm-up: the base in strata-image's store, the cache entries in both.
            run(ours)
            run(theirs)
            samples = {"strata-image": {"cold": [], "warm": []}, "buildah": {"cold": [], "warm": []}}
            log(f"{name}: {a.rounds} rounds")
            for r in range(a.rounds):
                order = [("strata-image", ours), ("buildah", theirs)]
                if r % 2:
                    order.reverse()
                for tool, argv in order:
                    samples[tool]["cold"].append(timed(argv[:-1] + ["--no-cache", argv[-1]]))
                    samples[tool]["warm"].append(timed(argv))
            results[name] = {t: {k: {"median": statistics.median(v), "min": min(v), "samples": v} for k, v in s.items()} for t, s in samples.items()}
        out = {"rounds": a.rounds, "buildah": subprocess.run(["buildah", "--version"], capture_output=True, text=True).stdout.strip(), "cases": results}
        if a.json:
            json.dump(out, open(a.json, "w"), indent=1)
        md = render(out)
        if a.md:
            open(a.md, "w").write(md)
        print(md)
    finally:
        subprocess.run(buildah + ["rm", "-a"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(buildah + ["rmi", "-a", "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # buildah's overlay storage leaves its own mounts under the work dir
        for line in sorted(open("/proc/self/mountinfo").read().splitlines(), key=len, reverse=True):
            mp = line.split()[4]
            if mp == work or mp.startswith(work + "/"):
                subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        if own:
            shutil.rmtree(work, ignore_errors=True)


def render(out):
    ms = lambda s: f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"
    L = ["", f"### Build times: `strata-image build` vs `buildah bud` ({out['rounds']} rounds, wall median (min))", "",
         "| Containerfile | strata-image cold | buildah cold | strata-image warm | buildah warm |", "|---|---|---|---|---|"]
    for name, r in out["cases"].items():
        cell = lambda t, k: f"{ms(r[t][k]['median'])} ({ms(r[t][k]['min'])})"
        L.append(f"| {name} | {cell('strata-image', 'cold')} | {cell('buildah', 'cold')} | {cell('strata-image', 'warm')} | {cell('buildah', 'warm')} |")
    L += ["", f"{out['buildah']}, overlay storage, runc, chroot isolation. Cold: every step runs (base already stored); "
          "warm: every step from the cache.", ""]
    return "\n".join(L)


if __name__ == "__main__":
    main()
