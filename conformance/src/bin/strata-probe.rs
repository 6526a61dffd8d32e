//! strata-probe: runs inside the container and prints, as one JSON object on stdout,
//! what the container sees. The runner compares that with config.json. It is static
//! (the workspace links the CRT statically), so it runs in any rootfs.
//!
//! Default report: namespaces, mounts, /proc/self/status (caps, ids, umask, seccomp,
//! no_new_privs), rlimits, groups, cwd, env, args, uname, oom_score_adj, cgroups,
//! /dev, open fds, tty and personality. Extra operations, each keyed "op:path":
//! `--file P` read, `--write P` create+write, `--open P` open read-only,
//! `--stat P` lstat, `--mkdir P`, `--ls P`.

use conformance::procfs;
use serde_json::{json, Map, Value};
use std::ffi::CString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

fn main() {
    let mut r = Map::new();
    let args: Vec<String> = std::env::args().collect();
    r.insert("args".into(), json!(args));
    r.insert("pid".into(), json!(std::process::id()));
    r.insert("ns".into(), namespaces());
    let mi = String::from_utf8_lossy(&std::fs::read("/proc/self/mountinfo").unwrap_or_default()).into_owned();
    r.insert("mounts".into(), mi.lines().filter_map(procfs::parse_mountinfo_line).collect());
    let status = procfs::parse_status(&std::fs::read_to_string("/proc/self/status").unwrap_or_default());
    let caps: Map<String, Value> = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]
        .iter()
        .map(|k| (k.to_string(), json!(procfs::caps_from_hex(status.get(*k).and_then(|v| v.as_str()).unwrap_or("0")))))
        .collect();
    r.insert("caps".into(), Value::Object(caps));
    r.insert("status".into(), Value::Object(status));
    r.insert("rlimits".into(), rlimits());
    r.insert("groups".into(), json!(groups()));
    // SAFETY: plain getters without arguments.
    unsafe {
        r.insert("uid".into(), json!(libc::getuid()));
        r.insert("gid".into(), json!(libc::getgid()));
        r.insert("personality".into(), json!(libc::personality(0xffff_ffff)));
    }
    r.insert("cwd".into(), json!(std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default()));
    r.insert("env".into(), json!(std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()));
    r.insert("uname".into(), uname());
    r.insert("oom_score_adj".into(), json!(read("/proc/self/oom_score_adj").map(|s| s.trim().to_string()).ok()));
    r.insert("cgroup".into(), json!(read("/proc/self/cgroup").unwrap_or_default()));
    r.insert("dev".into(), dev());
    r.insert("fds".into(), json!(fds()));
    r.insert("tty".into(), tty());
    r.insert("ops".into(), Value::Object(ops(&args[1..])));
    println!("{}", Value::Object(r));
}

fn read(p: &str) -> std::io::Result<String> {
    std::fs::read_to_string(p)
}

fn errno(e: &std::io::Error) -> Value {
    json!({ "err": e.raw_os_error().unwrap_or(0), "msg": e.to_string() })
}

fn namespaces() -> Value {
    let mut m = Map::new();
    for t in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
        if let Ok(l) = std::fs::read_link(format!("/proc/self/ns/{t}")) {
            m.insert(t.into(), json!(l.display().to_string()));
        }
    }
    Value::Object(m)
}

fn rlimits() -> Value {
    let mut m = Map::new();
    for (name, res) in procfs::RLIMITS {
        let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: l is a valid out-pointer.
        if unsafe { libc::getrlimit(*res as _, &mut l) } == 0 {
            m.insert(name.to_string(), json!([l.rlim_cur, l.rlim_max]));
        }
    }
    Value::Object(m)
}

fn groups() -> Vec<u32> {
    let mut g = vec![0 as libc::gid_t; 256];
    // SAFETY: g has room for 256 entries.
    let n = unsafe { libc::getgroups(256, g.as_mut_ptr()) };
    g.truncate(n.max(0) as usize);
    g
}

fn uname() -> Value {
    // SAFETY: zeroed utsname is valid; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let s = |f: &[libc::c_char]| unsafe { std::ffi::CStr::from_ptr(f.as_ptr()) }.to_string_lossy().into_owned();
    json!({ "nodename": s(&u.nodename), "domainname": s(&u.domainname), "machine": s(&u.machine) })
}

fn stat_json(p: &str) -> Value {
    match std::fs::symlink_metadata(p) {
        Ok(m) => {
            let ft = m.file_type();
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else if ft.is_fifo() {
                "p"
            } else if ft.is_symlink() {
                "l"
            } else if ft.is_dir() {
                "d"
            } else if ft.is_socket() {
                "s"
            } else {
                "f"
            };
            let rdev = m.rdev();
            json!({ "type": kind, "mode": m.mode() & 0o7777, "uid": m.uid(), "gid": m.gid(),
                    "major": libc::major(rdev), "minor": libc::minor(rdev), "size": m.size(),
                    "link": std::fs::read_link(p).ok().map(|l| l.display().to_string()) })
        }
        Err(e) => errno(&e),
    }
}

fn dev() -> Value {
    let mut m = Map::new();
    if let Ok(rd) = std::fs::read_dir("/dev") {
        for e in rd.flatten() {
            let p = format!("/dev/{}", e.file_name().to_string_lossy());
            m.insert(p.clone(), stat_json(&p));
        }
    }
    Value::Object(m)
}

/// Open descriptors, minus the one read_dir itself holds while listing.
fn fds() -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|rd| rd.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    v.retain(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok());
    v.sort();
    v
}

fn tty() -> Value {
    // SAFETY: isatty and TIOCGWINSZ only read fd 0's state into ws.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let isatty = unsafe { libc::isatty(0) } == 1;
    let ok = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0;
    json!({ "isatty": isatty, "rows": ok.then_some(ws.ws_row), "cols": ok.then_some(ws.ws_col) })
}

fn ops(args: &[String]) -> Map<String, Value> {
    let mut m = Map::new();
    for pair in args.chunks(2) {
        let (op, p) = match pair {
            [o, p] => (o.trim_start_matches("--"), p.as_str()),
            _ => continue,
        };
        let v = match op {
            "file" => read(p).map(|s| json!({ "ok": s })).unwrap_or_else(|e| errno(&e)),
            "write" => std::fs::write(p, b"x").map(|_| json!({ "ok": true })).unwrap_or_else(|e| errno(&e)),
            "open" => std::fs::File::open(p).map(|_| json!({ "ok": true })).unwrap_or_else(|e| errno(&e)),
            "stat" => stat_json(p),
            "ls" => std::fs::read_dir(p)
                .map(|rd| json!({ "ok": rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>() }))
                .unwrap_or_else(|e| errno(&e)),
            "mkdir" => {
                let c = CString::new(p).unwrap();
                // SAFETY: c is a valid C string.
                if unsafe { libc::mkdir(c.as_ptr(), 0o755) } == 0 { json!({ "ok": true }) } else { errno(&std::io::Error::last_os_error()) }
            }
            _ => json!({ "err": 0, "msg": "unknown op" }),
        };
        m.insert(format!("{op}:{p}"), v);
    }
    m
}
