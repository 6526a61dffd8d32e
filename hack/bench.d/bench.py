#!/usr/bin/env python3
"""The measuring half of hack/bench (the shell half installs, builds, makes fixtures,
enters the private mount namespace and cleans up).

Every command is started with posix_spawn and reaped with wait4, so each sample has
the wall time (perf_counter), the CPU (user+sys from rusage, microsecond resolution)
and the peak RSS (ru_maxrss, what /usr/bin/time reports) of that one invocation.
This process is a child subreaper: a container init outlives `create` and is then
reparented here, so its CPU (the rootfs setup done in the init, in every runtime) is
counted in the lifecycle's CPU when it is reaped.

Runtimes are measured in interleaved rounds (each round runs every runtime once, in a
shuffled order), so slow drift of the machine hits all of them alike and strata/crun
ratios can be taken pair by pair, round by round.

  bench.py prepare WORK BUNDLE_ROOTFS   write the bundles' config.json files
  bench.py runtimes WORK OUT.json       lifecycle, run, exec, RSS, density, seccomp
  bench.py images WORK OUT.json         strata-image unpack vs umoci unpack (tmpfs, disk, inflate floor)
  bench.py bundle SPEC_CONFIG ROOTFS OUT_DIR   the lifecycle bundle alone (for the cgroup v2 VM)
  bench.py v2vm CONSOLE_LOG OUT.json [WHY]  the cgroup v2 VM's lifecycle figures (hack/bench.d/v2-vm),
                                        or WHY it did not run
  bench.py render WORK RAW.json TABLE.md
"""
import ctypes
import glob
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time

PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
DEVNULL = os.open(os.devnull, os.O_RDWR)
PREFIX = os.environ.get("BENCH_ID_PREFIX", f"sb{os.getpid()}")
QUICK = os.environ.get("BENCH_QUICK") == "1"


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


class Failed(Exception):
    pass


SPAWN = os.environ.get("BENCH_SPAWN", "")


def measure(argv, errlog, ok_codes=(0,), stdout_fd=DEVNULL):
    """Runs argv to its end: {wall, cpu, rss_kib, code}; raises Failed on a bad exit.
    The command is started by the small static helper spawn.c (see there why), which
    reports the wall time, CPU and peak RSS of that one process on a pipe."""
    r, w = os.pipe()
    fa = [(os.POSIX_SPAWN_DUP2, DEVNULL, 0), (os.POSIX_SPAWN_DUP2, stdout_fd, 1),
          (os.POSIX_SPAWN_DUP2, errlog, 2), (os.POSIX_SPAWN_DUP2, w, 3)]
    try:
        pid = os.posix_spawn(SPAWN, [SPAWN, "3", *argv], os.environ, file_actions=fa)
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        line = f.read()
    os.waitpid(pid, 0)
    wall_ns, user_us, sys_us, rss, code = (int(x) for x in line.split())
    if code not in ok_codes:
        raise Failed(f"{' '.join(argv)}: exit {code}")
    return {"wall": wall_ns / 1e9, "cpu": (user_us + sys_us) / 1e6, "rss_kib": rss, "code": code}


def reap(pid, timeout=10.0):
    """Waits for a container init that was reparented to us; returns its CPU seconds."""
    try:
        _, _, ru = os.wait4(pid, 0)
        return ru.ru_utime + ru.ru_stime
    except ChildProcessError:  # not ours (reparented elsewhere): wait for it to go
        end = time.monotonic() + timeout
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < end:
            st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            if st[0] in ("Z", "X"):
                break
            time.sleep(0.0005)
        return 0.0


def sweep():
    """Reaps orphans (helpers of the runtimes); returns their CPU seconds."""
    cpu = 0.0
    while True:
        try:
            pid, _, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return cpu
        if pid == 0:
            return cpu
        cpu += ru.ru_utime + ru.ru_stime


def stats(xs):
    xs = sorted(xs)
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "n": len(xs)}


# ---------------------------------------------------------------- bundles

def load_json(p):
    with open(p) as f:
        return json.load(f)


def dump_json(p, v):
    with open(p, "w") as f:
        json.dump(v, f, indent=2)


def podman_profile(config, path="/usr/share/containers/seccomp.json"):
    """podman's default seccomp profile (containers-common), turned into the OCI
    linux.seccomp form the way podman does it for x86_64 and the config's bounding caps."""
    prof = load_json(path)
    caps = set(config["process"]["capabilities"]["bounding"])
    archs = []
    for m in prof.get("archMap", []):
        if m["architecture"] == "SCMP_ARCH_X86_64":
            archs = [m["architecture"]] + m.get("subArchitectures", [])
    out = {"defaultAction": prof["defaultAction"], "architectures": archs, "syscalls": []}
    if prof.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = prof["defaultErrnoRet"]
    for s in prof["syscalls"]:
        inc, exc = s.get("includes") or {}, s.get("excludes") or {}
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if "amd64" in (exc.get("arches") or []):
            continue
        if inc.get("caps") and not set(inc["caps"]) <= caps:
            continue
        if set(exc.get("caps") or []) & caps:
            continue
        names = s.get("names") or [s["name"]]
        e = {"names": names, "action": s["action"]}
        if s.get("args"):
            e["args"] = s["args"]
        if s.get("errnoRet") is not None:
            e["errnoRet"] = s["errnoRet"]
        out["syscalls"].append(e)
    return out


def true_config(spec_config, rootfs):
    """The lifecycle figures' config: `strata spec`'s, rootfs at `rootfs`, /bin/true,
    no terminal (the host bundle-true and the cgroup v2 VM's bundle alike)."""
    base = load_json(spec_config)
    base["root"] = {"path": rootfs, "readonly": base.get("root", {}).get("readonly", False)}
    base["ociVersion"] = "1.0.2"  # crun 1.8 refuses newer ones; the fields used are all 1.0
    base["process"]["terminal"] = False
    base["process"]["args"] = ["/bin/true"]
    return base


def prepare(work, rootfs):
    """Writes the bundles (all share one rootfs): true, sleep (for exec), seccomp
    (podman's profile), probe (seccomp that denies mkdir, to see if it is honoured)."""
    base = true_config(os.path.join(work, "spec", "config.json"), rootfs)
    variants = {
        "true": base,
        "sleep": {**base, "process": {**base["process"], "args": ["/bin/sleep", "100000"]}},
        "seccomp": {**base, "linux": {**base["linux"], "seccomp": podman_profile(base)}},
        "probe": {**base,
                  "process": {**base["process"], "args": ["/bin/mkdir", "/tmp/seccomp-probe"]},
                  "root": {"path": rootfs, "readonly": False},
                  "linux": {**base["linux"], "seccomp": {
                      "defaultAction": "SCMP_ACT_ALLOW",
                      "architectures": ["SCMP_ARCH_X86_64"],
                      "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}}},
    }
    for name, cfg in variants.items():
        d = os.path.join(work, "bundle-" + name)
        os.makedirs(d, exist_ok=True)
        dump_json(os.path.join(d, "config.json"), cfg)


# ---------------------------------------------------------------- runtimes

class Runtime:
    def __init__(self, name, path, work):
        self.name, self.path = name, path
        self.root = os.path.join(work, "root-" + name)
        os.makedirs(self.root, exist_ok=True)
        self.errlog_path = os.path.join(work, f"{name}.stderr.log")
        self.errlog = os.open(self.errlog_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.seq = 0
        self.lock = threading.Lock()

    def last_error(self):
        try:
            with open(self.errlog_path) as f:
                lines = [x.strip() for x in f.read().splitlines() if x.strip()]
            return lines[-1] if lines else ""
        except OSError:
            return ""

    def cmd(self, *a):
        return [self.path, "--root", self.root, *a]

    def new_id(self, tag):
        with self.lock:
            self.seq += 1
            return f"{PREFIX}-{self.name}-{tag}{self.seq}"

    def has(self, sub):
        r = subprocess.run([self.path, sub, "--help"], stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        return r.returncode == 0

    def force_delete(self, cid):
        subprocess.run(self.cmd("delete", "--force", cid), stdin=DEVNULL, stdout=DEVNULL, stderr=self.errlog)


def lifecycle(rt, bundle, work, tag="l", reap_orphans=True):
    """create + start + (container exits) + delete; the container's init is reaped here."""
    cid = rt.new_id(tag)
    pidfile = os.path.join(work, "pids", cid)
    try:
        c = measure(rt.cmd("create", "--bundle", bundle, "--pid-file", pidfile, cid), rt.errlog)
        pid = int(open(pidfile).read())
        s = measure(rt.cmd("start", cid), rt.errlog)
        init_cpu = reap(pid)
        d = measure(rt.cmd("delete", cid), rt.errlog)
    except Exception:
        rt.force_delete(cid)
        raise
    finally:
        try:
            os.unlink(pidfile)
        except FileNotFoundError:
            pass
    other = sweep() if reap_orphans else 0.0
    return {
        "wall": c["wall"] + s["wall"] + d["wall"],
        "cpu": c["cpu"] + s["cpu"] + d["cpu"] + init_cpu + other,
        "cpu_runtime": c["cpu"] + s["cpu"] + d["cpu"],
        "rss_create": c["rss_kib"], "rss_start": s["rss_kib"], "rss_delete": d["rss_kib"],
        "wall_create": c["wall"], "wall_start": s["wall"], "wall_delete": d["wall"],
    }


def foreground_run(rt, bundle):
    cid = rt.new_id("r")
    try:
        r = measure(rt.cmd("run", "--bundle", bundle, cid), rt.errlog)
    except Exception:
        rt.force_delete(cid)
        raise
    r["cpu"] += sweep()
    # runc/crun/strata remove a foreground container when it ends; make sure.
    if os.path.isdir(os.path.join(rt.root, cid)):
        rt.force_delete(cid)
    return r


def rounds(rts, n, warmup, fn, max_failures=3):
    """Runs fn(rt) for every runtime, n+warmup interleaved rounds; returns per-runtime
    lists of samples (warm-up rounds dropped) and errors. A failed sample is counted and
    its round is left out for that runtime; after max_failures the runtime is dropped.
    Samples carry their round number so ratios pair the same rounds."""
    out = {rt.name: [] for rt in rts}
    errors, failures = {}, {}
    for i in range(n + warmup):
        order = list(rts)
        random.shuffle(order)
        for rt in order:
            if failures.get(rt.name, 0) >= max_failures:
                continue
            try:
                r = fn(rt)
            except Exception as e:  # say so, go on; the table reports the count
                failures[rt.name] = failures.get(rt.name, 0) + 1
                errors[rt.name] = f"{failures[rt.name]} failed, last: `{rt.last_error()[:200]}`"
                log(f"{rt.name}: {e}")
                continue
            if i >= warmup:
                r["round"] = i
                out[rt.name].append(r)
    for name, k in failures.items():
        if k >= max_failures:
            out[name] = []
    return out, errors


DENSITY_TOTAL, DENSITY_PAR = 1000, 16


def leftovers(rt, tag):
    """State directories and cgroups (any hierarchy, 5 levels deep) of rt's containers
    with ids tagged `tag` that are still there."""
    name = f"{PREFIX}-{rt.name}-{tag}"
    found = [os.path.join(rt.root, d) for d in os.listdir(rt.root) if d.startswith(name)]
    for depth in range(1, 6):
        for d in glob.glob("/sys/fs/cgroup/" + "*/" * depth + name + "*"):
            # hack/bench's tmpfs over unified/ (crun's v1-mode writes) is no cgroup
            hierarchy = "/".join(d.split("/")[:5])  # /sys/fs/cgroup/NAME
            if os.path.exists(os.path.join(hierarchy, "cgroup.procs")):
                found.append(d)
    return found


def density(rt, bundle, work, total=DENSITY_TOTAL, par=DENSITY_PAR):
    """total containers, par at a time (create, start, wait, delete each): total wall;
    fails when any state directory or cgroup of theirs is left behind."""
    nxt = iter(range(total))
    lock = threading.Lock()
    errs = []

    def worker():
        while True:
            with lock:
                if next(nxt, None) is None or errs:
                    return
            try:
                lifecycle(rt, bundle, work, tag="d", reap_orphans=False)
            except Exception as e:
                errs.append(str(e))
                return

    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ths = [threading.Thread(target=worker) for _ in range(par)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.perf_counter() - t0
    sweep()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if errs:
        raise Failed(errs[0])
    left = leftovers(rt, "d")
    if left:
        raise Failed(f"density: {len(left)} left behind, e.g. {left[0]}")
    return {"wall": wall, "cpu": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)}


def exec_runs(rts, work, n, warmup):
    """exec /bin/true into one running container per runtime, interleaved rounds."""
    bundle = os.path.join(work, "bundle-sleep")
    running = {}
    out, errors = {}, {}
    try:
        for rt in rts:
            if not rt.has("exec"):
                errors[rt.name] = "not implemented"
                continue
            cid = rt.new_id("x")
            pidfile = os.path.join(work, "pids", cid)
            try:
                measure(rt.cmd("create", "--bundle", bundle, "--pid-file", pidfile, cid), rt.errlog)
                running[rt.name] = (cid, int(open(pidfile).read()))
                measure(rt.cmd("start", cid), rt.errlog)
            except Exception as e:
                errors[rt.name] = str(e)
                rt.force_delete(cid)
                running.pop(rt.name, None)
        live = [rt for rt in rts if rt.name in running]

        def one(rt):
            r = measure(rt.cmd("exec", running[rt.name][0], "/bin/true"), rt.errlog)
            r["cpu"] += sweep()
            return r
        res, errs = rounds(live, n, warmup, one)
        out.update(res)
        errors.update(errs)
    finally:
        for rt in rts:
            if rt.name in running:
                cid, pid = running[rt.name]
                rt.force_delete(cid)
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
        sweep()
    return out, errors


def seccomp_probe(rt, work):
    """'honoured' when a profile denying mkdir makes the container's mkdir fail."""
    cid = rt.new_id("p")
    try:
        r = measure(rt.cmd("run", "--bundle", os.path.join(work, "bundle-probe"), cid), rt.errlog, ok_codes=range(256))
    except Exception as e:
        return f"error: {e}"
    finally:
        sweep()
        if os.path.isdir(os.path.join(rt.root, cid)):
            rt.force_delete(cid)
        shutil.rmtree(os.path.join(work, "rootfs", "tmp", "seccomp-probe"), ignore_errors=True)
    if r["code"] == 0:
        return "ignored"  # mkdir worked: linux.seccomp was not applied
    if r["code"] == 1:
        return "honoured"
    return f"refused (exit {r['code']})"


def summarize(samples, key):
    return {rt: stats([s[key] for s in xs]) for rt, xs in samples.items() if xs}


def pair_ratio(samples, key, a="strata", b="crun"):
    """Median of round-by-round ratios a/b (only rounds both have a sample for)."""
    xb = {q.get("round", j): q for j, q in enumerate(samples.get(b) or [])}
    rs = []
    for j, p in enumerate(samples.get(a) or []):
        q = xb.get(p.get("round", j))
        if q is not None and q[key] > 0:
            rs.append(p[key] / q[key])
    return stats(rs) if rs else None


def runtimes(work, out_path):
    os.makedirs(os.path.join(work, "pids"), exist_ok=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    names = json.loads(os.environ["BENCH_RUNTIMES"])  # {"strata": path, "crun": path, ...}
    rts = [Runtime(n, p, work) for n, p in names.items()]
    n = 10 if QUICK else 60
    nd = 1 if QUICK else 3
    bundle = os.path.join(work, "bundle-true")
    raw = {"samples": {}, "errors": {}, "summary": {}, "ratios": {}}

    def record(fig, samples, errors, keys):
        raw["samples"][fig] = samples
        raw["errors"][fig] = errors
        for k in keys:
            raw["summary"][f"{fig}.{k}"] = summarize(samples, k)
            raw["ratios"][f"{fig}.{k}"] = pair_ratio(samples, k)

    log(f"lifecycle: {n} rounds x {len(rts)} runtimes")
    s, e = rounds(rts, n, 3, lambda rt: lifecycle(rt, bundle, work))
    record("lifecycle", s, e, ["wall", "cpu", "cpu_runtime", "rss_create", "rss_start", "rss_delete",
                               "wall_create", "wall_start", "wall_delete"])

    log(f"run: {n} rounds")
    s, e = rounds(rts, n, 3, lambda rt: foreground_run(rt, bundle))
    record("run", s, e, ["wall", "cpu", "rss_kib"])

    log(f"exec: {n} rounds")
    s, e = exec_runs(rts, work, n, 3)
    record("exec", s, e, ["wall", "cpu", "rss_kib"])

    log("seccomp: probe, then lifecycle with podman's default profile (paired with a plain one)")
    probe = {rt.name: seccomp_probe(rt, work) for rt in rts}
    raw["seccomp_probe"] = probe
    sec_rts = [rt for rt in rts if probe[rt.name] == "honoured"]
    sbundle = os.path.join(work, "bundle-seccomp")

    def paired(rt):
        if random.random() < 0.5:  # no order bias inside a pair
            a = lifecycle(rt, bundle, work)
            b = lifecycle(rt, sbundle, work)
        else:
            b = lifecycle(rt, sbundle, work)
            a = lifecycle(rt, bundle, work)
        return {"wall": b["wall"], "cpu": b["cpu"], "added_wall": b["wall"] - a["wall"], "added_cpu": b["cpu"] - a["cpu"],
                "rss_create": b["rss_create"]}
    s, e = rounds(sec_rts, n, 3, paired)
    for rt in rts:
        if rt.name not in [r.name for r in sec_rts]:
            e[rt.name] = f"linux.seccomp {probe[rt.name]}"
    record("seccomp", s, e, ["wall", "cpu", "added_wall", "added_cpu", "rss_create"])

    log(f"density: {DENSITY_TOTAL} containers, {DENSITY_PAR} at a time, {nd} rounds")
    s, e = rounds(rts, nd, 0, lambda rt: density(rt, bundle, work))
    record("density", s, e, ["wall", "cpu"])

    raw["sizes"] = {}
    for rt in rts:
        real = os.path.realpath(rt.path)
        ldd = subprocess.run(["ldd", real], capture_output=True, text=True)
        libs = [w for line in ldd.stdout.splitlines() for w in line.split() if w.startswith("/")]
        raw["sizes"][rt.name] = {"path": real, "bytes": os.path.getsize(real),
                                 "libs_bytes": sum(os.path.getsize(os.path.realpath(x)) for x in set(libs) if os.path.exists(x)),
                                 "static": "not a dynamic executable" in (ldd.stdout + ldd.stderr) or "statically" in ldd.stdout}
    dump_json(out_path, raw)


# ---------------------------------------------------------------- images

def du_bytes(path):
    r = subprocess.run(["du", "-sb", path], capture_output=True, text=True)
    return int(r.stdout.split()[0]) if r.returncode == 0 else 0


def images(work, out_path):
    """Per image, interleaved rounds of: strata-image and umoci unpacking to the tmpfs
    work dir and to a directory on disk (BENCH_DISK_DIR), and the decompression floor
    (every layer inflated to nothing, all layers in parallel: hack/bench.d/inflate.c)."""
    si = os.environ["BENCH_STRATA_IMAGE"]
    layout = os.environ["BENCH_DEBIAN_LAYOUT"]
    disk = os.environ.get("BENCH_DISK_DIR")
    busybox = os.path.join(work, "busybox-layout")
    imgs = [("busybox", f"{busybox}:busybox"), ("debian", f"{layout}:debian"), ("debian-big", f"{layout}:debian-big")]
    errlog = os.open(os.path.join(work, "images.stderr.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    n = 2 if QUICK else 5
    no = 5 if QUICK else 20
    raw = {"images": {}, "flatten": {}, "disk": {}, "floor": {}, "overlay": {}, "summary": {}, "ratios": {}}
    seq = [0]
    places = [("flatten", work)] + ([("disk", disk)] if disk else [])

    def target(where):
        seq[0] += 1
        return os.path.join(where, f"ib{seq[0]}")

    for name, ref in imgs:
        log(f"image {name}: unpack (strata-image, umoci) to {', '.join(p for p, _ in places)}, and inflate x {n}")
        samples = {p: {"strata-image": [], "umoci": []} for p, _ in places}
        floor = {"inflate": []}
        blobs = layer_blobs(ref)
        for i in range(n + 1):
            runs = [(tool, p, d) for p, d in places for tool in ("strata-image", "umoci")] + [("inflate", None, None)]
            random.shuffle(runs)
            for tool, place, where in runs:
                if tool == "inflate":
                    r = measure([os.environ["BENCH_INFLATE"], *blobs], errlog)
                    if i > 0:
                        floor["inflate"].append(dict(r, round=i))
                    continue
                b = target(where)
                argv = [si, "unpack", "--image", ref, b] if tool == "strata-image" else \
                    ["/usr/bin/umoci", "unpack", "--image", ref, b]
                r = measure(argv, errlog)
                if i == 0 and tool == "strata-image" and place == "flatten":
                    raw["images"][name] = {"rootfs_bytes": du_bytes(os.path.join(b, "rootfs")),
                                           "layers": len(blobs)}
                shutil.rmtree(b)
                if i > 0:  # first round warms the page cache
                    samples[place][tool].append(dict(r, round=i))
        raw["floor"][name] = floor
        raw["summary"][f"floor.{name}.wall"] = summarize(floor, "wall")
        raw["summary"][f"floor.{name}.cpu"] = summarize(floor, "cpu")
        for place, _ in places:
            raw[place][name] = samples[place]
            for key in ("wall", "cpu", "rss_kib"):
                raw["summary"][f"{place}.{name}.{key}"] = summarize(samples[place], key)
            raw["ratios"][f"{place}.{name}.wall"] = pair_ratio(samples[place], "wall", "umoci", "strata-image")
            both = {"strata-image": samples[place]["strata-image"], "inflate": floor["inflate"]}
            raw["ratios"][f"{place}.{name}.over_floor"] = pair_ratio(both, "wall", "strata-image", "inflate")

        log(f"image {name}: unpack --overlay with its layers stored x {no}")
        store = os.path.join(work, "store")
        ov = []
        for i in range(no + 1):
            b = target(work)
            r = measure([si, "unpack", "--image", ref, b, "--overlay", "--store", store], errlog)
            measure([si, "remove", b], errlog)
            shutil.rmtree(b, ignore_errors=True)
            if i > 0:  # the first one fills the store
                ov.append(r)
        raw["overlay"][name] = ov
        raw["summary"][f"overlay.{name}.wall"] = stats([x["wall"] for x in ov])
        raw["summary"][f"overlay.{name}.rss_kib"] = stats([x["rss_kib"] for x in ov])
    dump_json(out_path, raw)


def manifest_of(ref):
    layout, tag = ref.rsplit(":", 1)
    idx = load_json(os.path.join(layout, "index.json"))
    for m in idx["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            alg, hexd = m["digest"].split(":")
            return layout, load_json(os.path.join(layout, "blobs", alg, hexd))
    raise Failed(f"{ref}: no such tag")


def layer_blobs(ref):
    """media-type:path of each layer blob (what inflate.c takes)."""
    layout, man = manifest_of(ref)
    return [f"{l['mediaType']}:" + os.path.join(layout, "blobs", *l["digest"].split(":")) for l in man["layers"]]


# ---------------------------------------------------------------- cgroup v2 VM

def v2vm(log_path, out_path, not_run=None):
    """Reads the console of hack/bench.d/v2-vm (its "BENCH-V2 ..." lines: the lifecycle
    samples rounds.c printed, the checks v2-vm.sh made) into the shape runtimes() writes
    for its lifecycle figure, plus "checks" and "not_run" (why there are no figures)."""
    raw = {"samples": {}, "errors": {}, "summary": {}, "ratios": {}, "checks": {}, "not_run": not_run,
           "kernel": None, "rounds_wall_s": None}
    samples, failed, stderr = {}, {}, {}
    lines = []
    if not not_run:
        with open(log_path, errors="replace") as f:  # (a line may follow the console's escapes)
            lines = [x[x.index("BENCH-V2 "):].strip() for x in f if "BENCH-V2 " in x]
        if not any(x == "BENCH-V2 end" for x in lines):
            raw["not_run"] = "the VM did not finish (see logs/v2-vm.console.log)"
    for x in lines:
        w = x.split()
        if w[1] == "sample":
            kv = dict(t.split("=", 1) for t in w[2:])
            c, st, d = ([int(v) for v in kv[k].split(",")] for k in ("create", "start", "delete"))
            wall = [c[0] / 1e9, st[0] / 1e9, d[0] / 1e9]
            cpu_rt = (c[1] + c[2] + st[1] + st[2] + d[1] + d[2]) / 1e6
            samples.setdefault(kv["rt"], []).append({
                "round": int(kv["round"]), "wall": sum(wall), "cpu_runtime": cpu_rt,
                "cpu": cpu_rt + (int(kv["init_us"]) + int(kv["other_us"])) / 1e6,
                "wall_create": wall[0], "wall_start": wall[1], "wall_delete": wall[2],
                "rss_create": c[3], "rss_start": st[3], "rss_delete": d[3]})
        elif w[1] == "error":
            name = w[2].split("=", 1)[1]
            failed.setdefault(name, []).append(" ".join(w[4:]))
        elif w[1] == "stderr":
            stderr.setdefault(w[2].rstrip(":"), []).append(" ".join(w[3:]))
        elif w[1] == "check":
            raw["checks"][w[2]] = {"ok": w[3] == "ok", "detail": " ".join(w[4:])}
        elif w[1] == "kernel":
            raw["kernel"] = w[2]
        elif w[1] == "rounds-wall-s":
            raw["rounds_wall_s"] = int(w[2])
    errors = {}
    for name, fs in failed.items():
        last = (stderr.get(name) or [""])[-1]
        errors[name] = f"{len(fs)} failed, last: {fs[-1]}: `{last[:200]}`"
        if len(fs) >= 3:  # rounds.c dropped it: its figures would be of the rounds it survived
            samples.pop(name, None)
    raw["samples"]["lifecycle"] = samples
    raw["errors"]["lifecycle"] = errors
    for k in ("wall", "cpu", "cpu_runtime", "wall_create", "wall_start", "wall_delete",
              "rss_create", "rss_start", "rss_delete"):
        raw["summary"][f"lifecycle.{k}"] = summarize(samples, k)
        raw["ratios"][f"lifecycle.{k}"] = pair_ratio(samples, k)
    if not raw["not_run"] and "clone-into-cgroup" not in raw["checks"]:
        raw["checks"]["clone-into-cgroup"] = {"ok": False, "detail": "not checked"}
    dump_json(out_path, raw)


# ---------------------------------------------------------------- table

def ms(x):
    return f"{x * 1000:.1f}"


def cell(st, fmt, unit):
    if not st:
        return "—"
    return f"{fmt(st['median'])} {unit} ({fmt(st['min'])}–{fmt(st['max'])})"


def mib(kib):
    return f"{kib / 1024:.1f}"


V2 = "cgroup v2 VM (qemu TCG): "


def v2_rows(L, names, v2, row):
    """The lifecycle on a pure cgroup v2 host (hack/bench.d/v2-vm): the ratio's target,
    and met only when strata's init was seen born in its cgroup there."""
    if v2.get("not_run"):
        for label in ("lifecycle wall", "lifecycle CPU"):
            L.append(f"| {V2}{label} | not run: {v2['not_run']} | " + " | ".join("—" for _ in names[1:])
                     + " | — | ≤ 0.4x crun, init born in its cgroup (clone3 CLONE_INTO_CGROUP) | not run |")
        return
    row(f"{V2}lifecycle wall", "lifecycle", "wall", ms, "ms", "≤ 0.4x crun", 0.4, src=v2)
    row(f"{V2}lifecycle CPU", "lifecycle", "cpu", ms, "ms", "≤ 0.4x crun", 0.4, src=v2)
    bad = [f"{k}: {c['detail'] or 'failed'}" for k, c in v2["checks"].items() if not c["ok"]]
    if bad:  # the figure stands only for the path the issue asks for
        for i in (-2, -1):
            L[i] = L[i].rsplit("|", 2)[0] + f"| **no** ({'; '.join(bad)}) |"
    row("  v2 VM create wall", "lifecycle", "wall_create", ms, "ms", src=v2)
    row("  v2 VM start wall", "lifecycle", "wall_start", ms, "ms", src=v2)
    row("  v2 VM delete wall", "lifecycle", "wall_delete", ms, "ms", src=v2)


def v2_caption(v2, m):
    if v2.get("not_run"):
        return f"cgroup v2 VM: not run ({v2['not_run']})."
    clone = v2["checks"].get("clone-into-cgroup", {})
    n = max((len(x) for x in v2["samples"]["lifecycle"].values()), default=0)
    return (f"cgroup v2 VM rows: hack/bench.d/v2-vm, Debian's cloud kernel {v2.get('kernel')} booted with cgroup_no_v1=all "
            f"under qemu in software emulation (TCG, 2 vCPUs, no KVM), the same bundle and the same paired, interleaved "
            f"rounds ({n} after {m.get('v2vm_warmup', '?')} warm-up), timed by the same static helper inside the VM "
            f"({v2.get('rounds_wall_s')} s of rounds). Absolute times there mean little (emulated code, translated on "
            f"first use), the ratios do. strata's init born in its cgroup: "
            f"{'yes' if clone.get('ok') else '**no**'} ({clone.get('detail', 'not checked')}).")


def render(work, raw_path, table_path):
    raw = load_json(raw_path)
    rt = raw["runtimes"]
    im = raw.get("images")
    m = raw["meta"]
    names = list(m["runtimes"].keys())
    L = []
    L.append(f"Run {m['date']} on {m['machine']}, inside one private mount namespace "
             f"(cgroup v1 controllers; the unified hierarchy unmounted so crun accepts the layout).")
    L.append("Versions: " + "; ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".")
    L.append(f"Each cell: median (min–max) over {m['n_lifecycle']} interleaved rounds after 3 warm-up rounds; "
             "CPU is user+sys of the runtime's processes and of the container's init (reaped by the bench as subreaper). "
             "strata/crun is the median of the round-by-round ratios.")
    L.append("")
    L.append("| figure | " + " | ".join(names) + " | strata/crun | target | met |")
    L.append("|---|" + "---|" * len(names) + "---|---|---|")

    def row(label, fig, key, fmt, unit, target=None, limit=None, note_missing=None, src=None):
        src = src or rt
        errs = src["errors"].get(fig, {})
        summ = src["summary"].get(f"{fig}.{key}", {})
        cells = []
        for n in names:
            if n in summ:
                cells.append(cell(summ[n], fmt, unit))
            elif n in errs:
                cells.append(f"n/a ({errs[n]})")
            else:
                cells.append("—")
        ratio = src["ratios"].get(f"{fig}.{key}")
        rtxt = f"{ratio['median']:.2f}" if ratio else "—"
        met = "—"
        if limit is not None:
            if ratio is None:
                met = "**no** (not measured)" if "strata" in errs else "—"
            else:
                met = "yes" if ratio["median"] <= limit else f"**no** ({ratio['median']:.2f}x)"
        L.append(f"| {label} | " + " | ".join(cells) + f" | {rtxt} | {target or ''} | {met} |")

    # Targets: the performance issue (#14).
    row("lifecycle wall (create+start+delete)", "lifecycle", "wall", ms, "ms", "≤ 0.4x crun", 0.4)
    row("lifecycle CPU", "lifecycle", "cpu", ms, "ms", "≤ 0.4x crun", 0.4)
    row("  create wall", "lifecycle", "wall_create", ms, "ms")
    row("  start wall", "lifecycle", "wall_start", ms, "ms")
    row("  delete wall", "lifecycle", "wall_delete", ms, "ms")
    v2 = raw.get("v2vm")
    if v2:
        v2_rows(L, names, v2, row)
    row("`run` (foreground) wall", "run", "wall", ms, "ms", "≤ 0.5x crun", 0.5)
    row("`run` CPU", "run", "cpu", ms, "ms", "≤ 0.5x crun", 0.5)
    row("`exec /bin/true` wall", "exec", "wall", ms, "ms", "≤ 0.4x crun", 0.4)
    row("`exec` CPU", "exec", "cpu", ms, "ms")
    row("peak RSS `create`", "lifecycle", "rss_create", mib, "MiB", "≤ 0.9x crun", 0.9)
    row("peak RSS `start`", "lifecycle", "rss_start", mib, "MiB", "≤ 0.9x crun", 0.9)
    row("peak RSS `delete`", "lifecycle", "rss_delete", mib, "MiB", "≤ 0.9x crun", 0.9)
    row("peak RSS `exec`", "exec", "rss_kib", mib, "MiB", "≤ 0.9x crun", 0.9)
    row("peak RSS `run`", "run", "rss_kib", mib, "MiB", "≤ 0.9x crun", 0.9)
    row(f"density: {DENSITY_TOTAL} containers, {DENSITY_PAR} at a time, nothing left, total wall "
        f"({m['n_density']} runs)", "density", "wall", lambda x: f"{x:.2f}", "s", "≤ 0.5x crun", 0.5)
    row("density: total CPU", "density", "cpu", lambda x: f"{x:.2f}", "s", "≤ 0.5x crun", 0.5)
    row("seccomp (podman default profile): lifecycle wall", "seccomp", "wall", ms, "ms")
    row("seccomp: added wall over the plain lifecycle (paired)", "seccomp", "added_wall", ms, "ms")
    # the seccomp target compares added costs (strata's < crun's), not a ratio
    sec = rt["summary"].get("seccomp.added_wall", {})
    if "strata" in sec and "crun" in sec:
        ok = sec["strata"]["median"] < sec["crun"]["median"]
        L[-1] = L[-1].rsplit("|", 4)[0] + f"| | < crun's added cost | {'yes' if ok else '**no**'} |"
    elif "strata" in rt["errors"].get("seccomp", {}):
        L[-1] = L[-1].rsplit("|", 4)[0] + "| | < crun's added cost | **no** (" + rt["errors"]["seccomp"]["strata"] + ") |"
    row("seccomp: added CPU (paired)", "seccomp", "added_cpu", ms, "ms")
    sizes = rt["sizes"]
    L.append("| binary size | " + " | ".join(
        f"{sizes[n]['bytes'] / 1048576:.1f} MiB (static)" if sizes[n]["static"] else
        f"{sizes[n]['bytes'] / 1048576:.1f} MiB (dynamic; + {sizes[n].get('libs_bytes', 0) / 1048576:.1f} MiB of shared libs)"
        for n in names) + " | " + (f"{sizes['strata']['bytes'] / sizes['crun']['bytes']:.2f}" if 'crun' in sizes else '—') + " | | |")
    hf = raw.get("hyperfine")
    if hf:
        by = {r["command"]: r for r in hf["results"]}
        cs = [cell(by[n], ms, "ms") if n in by else "—" for n in names]
        rtxt = f"{by['strata']['median'] / by['crun']['median']:.2f}" if "strata" in by and "crun" in by else "—"
        L.append(f"| `run` wall, hyperfine cross-check ({by[names[0]]['times'].__len__()} runs each, not paired) | " + " | ".join(cs) + f" | {rtxt} | | |")
    notes = [f"{n} {fig}: {e}" for fig, errs in rt["errors"].items() for n, e in errs.items()
             if rt["samples"].get(fig, {}).get(n)]
    notes += [f"{n} cgroup v2 VM lifecycle: {e}" for n, e in (v2 or {}).get("errors", {}).get("lifecycle", {}).items()
              if v2["samples"]["lifecycle"].get(n)]
    if notes:
        L.append("")
        L.append("Failed samples (left out of the figures above): " + "; ".join(notes) + ".")
    if v2:
        L.append("")
        L.append(v2_caption(v2, m))
    L.append("")
    L.append(f"seccomp check (a profile that denies mkdir): " + ", ".join(f"{k}: {v}" for k, v in rt["seccomp_probe"].items()) + ".")
    if im:
        L.append("")
        L.append("| strata-image | " + " | ".join(
            f"{k} ({v['layers']} layers, {v['rootfs_bytes'] / 1048576:.0f} MiB)" for k, v in im["images"].items()) + " | target | met |")
        L.append("|---|" + "---|" * len(im["images"]) + "---|---|")
        ks = list(im["images"].keys())

        def irow(label, key, tool, fmt, unit):
            cs = []
            for k in ks:
                s = im["summary"].get(f"{key}.{k}.{'wall' if unit != 'MiB' else 'rss_kib'}", {})
                s = s.get(tool) if tool else s
                cs.append(cell(s, fmt, unit) if s else "—")
            return cs

        def ratio_row(label, place, what, fmt, target, ok):
            rs = [im["ratios"].get(f"{place}.{k}.{what}") for k in ks]
            big = [r for k, r in zip(ks, rs) if k != "busybox" and r]
            met = bool(big) and all(ok(r["median"]) for r in big)
            L.append(f"| {label} | " + " | ".join(fmt(r["median"]) if r else "—" for r in rs)
                     + f" | {target} | {'yes' if met else '**no**'} |")

        x = lambda v: f"{v:.1f}x"  # noqa: E731
        x2 = lambda v: f"{v:.2f}x"  # noqa: E731
        places = [("flatten", "tmpfs")] + ([("disk", "disk")] if im.get("disk") else [])
        for place, where in places:
            for tool in ("strata-image", "umoci"):
                L.append(f"| `{tool} unpack` wall, {where} | " + " | ".join(irow("", place, tool, ms, "ms")) + " | | |")
                cpu = [im["summary"].get(f"{place}.{k}.cpu", {}).get(tool) for k in ks]
                L.append(f"| `{tool} unpack` CPU, {where} | " + " | ".join(cell(c, ms, "ms") for c in cpu) + " | | |")
            ratio_row(f"umoci / strata-image wall, {where} (paired)", place, "wall", x, "≥ 4x (Debian images)",
                      lambda v: v >= 4)
        floor = [im["summary"].get(f"floor.{k}.wall", {}).get("inflate") for k in ks]
        L.append("| decompress floor wall (all layers in parallel) | " + " | ".join(cell(c, ms, "ms") for c in floor) + " | | |")
        for place, where in places:
            ratio_row(f"strata-image / floor wall, {where} (paired)", place, "over_floor", x2, "≤ 1.3x (Debian images)",
                      lambda v: v <= 1.3)
        cs = irow("", "flatten", "strata-image", mib, "MiB")
        rss = [im["summary"][f"flatten.{k}.rss_kib"]["strata-image"]["median"] for k in ks]
        flat = max(rss) <= 1.5 * min(rss)
        L.append("| `strata-image unpack` peak RSS | " + " | ".join(cs) + f" | flat in image size (max ≤ 1.5x min) | {'yes' if flat else '**no**'} |")
        cs = irow("", "flatten", "umoci", mib, "MiB")
        L.append("| `umoci unpack` peak RSS | " + " | ".join(cs) + " | | |")
        cs = irow("", "overlay", None, ms, "ms")
        ovs = [im["summary"][f"overlay.{k}.wall"]["median"] for k in ks]
        ok = max(ovs) < 0.020
        L.append(f"| `unpack --overlay`, layers stored ({m['n_overlay']} runs) | " + " | ".join(cs) + f" | < 20 ms | {'yes' if ok else '**no**'} |")
        cs = irow("", "overlay", None, mib, "MiB")
        L.append("| `unpack --overlay` peak RSS | " + " | ".join(cs) + " | | |")
        L.append("")
        L.append(f"Unpack figures: median (min–max) of {m['n_flatten']} interleaved rounds after one warm-up, layouts read from "
                 "the page cache, bundles written to a tmpfs and to a directory on the root file system (disk); "
                 "`umoci unpack` also writes its mtree manifest, as it always does. The floor is every layer inflated "
                 "to nothing, one thread per layer, nothing else (hack/bench.d/inflate.c, static, C zlib 1.2).")
    with open(table_path, "w") as f:
        f.write("\n".join(L) + "\n")


def main():
    cmd = sys.argv[1]
    if cmd == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    elif cmd == "runtimes":
        runtimes(sys.argv[2], sys.argv[3])
    elif cmd == "images":
        images(sys.argv[2], sys.argv[3])
    elif cmd == "bundle":  # SPEC_CONFIG ROOTFS OUT_DIR: the lifecycle bundle alone
        os.makedirs(sys.argv[4], exist_ok=True)
        dump_json(os.path.join(sys.argv[4], "config.json"), true_config(sys.argv[2], sys.argv[3]))
    elif cmd == "v2vm":  # CONSOLE_LOG OUT.json [NOT_RUN_REASON]
        v2vm(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    elif cmd == "render":
        render(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"bench.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
