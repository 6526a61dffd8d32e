//! The default config.json `strata spec` writes: the installed runc's (1.1.5), byte for
//! byte but for ociVersion, so scripts that patch `runc spec`'s output work unchanged.
//! Fields keep runc's order and Go's tab indentation, hence a small ordered tree here
//! rather than serde_json's (sorted) maps.

use serde_json::Value;

/// The version stamped in the default config. runc writes its vendored spec's "1.0.2-dev";
/// the default config only uses 1.0 fields, so "1.0.2" says the same without the
/// pre-release tag, and every runtime accepts it (crun 1.8.1 refuses 1.2.x).
pub const DEFAULT_OCI_VERSION: &str = "1.0.2";

const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// A JSON value whose objects keep their field order.
enum J {
    S(String),
    N(i64),
    B(bool),
    A(Vec<J>),
    O(Vec<(&'static str, J)>),
}

fn s(v: &str) -> J {
    J::S(v.into())
}

fn strs(v: &[&str]) -> J {
    J::A(v.iter().map(|x| s(x)).collect())
}

fn mount(dest: &str, kind: &str, source: &str, options: &[&str]) -> J {
    let mut m = vec![("destination", s(dest)), ("type", s(kind)), ("source", s(source))];
    if !options.is_empty() {
        m.push(("options", strs(options)));
    }
    J::O(m)
}

fn namespaces(kinds: &[&str]) -> J {
    J::A(kinds.iter().map(|k| J::O(vec![("type", s(k))])).collect())
}

fn id_map(host: u32) -> J {
    J::A(vec![J::O(vec![("containerID", J::N(0)), ("hostID", J::N(host.into())), ("size", J::N(1))])])
}

/// runc's default, or with `rootless` runc's --rootless changes: a user namespace mapping
/// the caller to root, no network namespace, /sys bound from the host, no device
/// cgroup rules, no gid=5 on /dev/pts. `hardened` adds what newer runtimes default to: a
/// cgroup namespace and /sys/devices/virtual/powercap masked (RAPL power readings leak
/// information across containers).
fn tree(rootless: bool, hardened: bool) -> J {
    let caps = || strs(&DEFAULT_CAPS);
    let pts: &[&str] = if rootless {
        &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    } else {
        &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
    };
    let sys = if rootless {
        mount("/sys", "none", "/sys", &["rbind", "nosuid", "noexec", "nodev", "ro"])
    } else {
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"])
    };
    let mut ns = vec!["pid", "network", "ipc", "uts", "mount"];
    if rootless {
        ns.retain(|n| *n != "network");
    }
    if hardened {
        ns.push("cgroup");
    }
    if rootless {
        ns.push("user");
    }
    let mut masked = vec![
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
    ];
    if hardened {
        masked.push("/sys/devices/virtual/powercap");
    }
    let mut linux = Vec::new();
    if rootless {
        linux.push(("uidMappings", id_map(nix::unistd::getuid().as_raw())));
        linux.push(("gidMappings", id_map(nix::unistd::getgid().as_raw())));
    } else {
        let deny_all = J::O(vec![("allow", J::B(false)), ("access", s("rwm"))]);
        linux.push(("resources", J::O(vec![("devices", J::A(vec![deny_all]))])));
    }
    linux.push(("namespaces", namespaces(&ns)));
    linux.push(("maskedPaths", strs(&masked)));
    linux.push(("readonlyPaths", strs(&["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"])));
    J::O(vec![
        ("ociVersion", s(DEFAULT_OCI_VERSION)),
        (
            "process",
            J::O(vec![
                ("terminal", J::B(true)),
                ("user", J::O(vec![("uid", J::N(0)), ("gid", J::N(0))])),
                ("args", strs(&["sh"])),
                ("env", strs(&["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"])),
                ("cwd", s("/")),
                (
                    "capabilities",
                    J::O(vec![("bounding", caps()), ("effective", caps()), ("permitted", caps()), ("ambient", caps())]),
                ),
                (
                    "rlimits",
                    J::A(vec![J::O(vec![("type", s("RLIMIT_NOFILE")), ("hard", J::N(1024)), ("soft", J::N(1024))])]),
                ),
                ("noNewPrivileges", J::B(true)),
            ]),
        ),
        ("root", J::O(vec![("path", s("rootfs")), ("readonly", J::B(true))])),
        ("hostname", s("runc")),
        (
            "mounts",
            J::A(vec![
                mount("/proc", "proc", "proc", &[]),
                mount("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
                mount("/dev/pts", "devpts", "devpts", pts),
                mount("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
                mount("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
                sys,
                mount("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"]),
            ]),
        ),
        ("linux", J::O(linux)),
    ])
}

/// Go's json.MarshalIndent(v, "", "\t"), which runc uses.
fn render(j: &J, depth: usize, out: &mut String) {
    let pad = |out: &mut String, d: usize| out.extend(std::iter::repeat_n('\t', d));
    match j {
        J::S(v) => out.push_str(&Value::String(v.clone()).to_string()),
        J::N(n) => out.push_str(&n.to_string()),
        J::B(b) => out.push_str(if *b { "true" } else { "false" }),
        J::A(items) if items.is_empty() => out.push_str("[]"),
        J::A(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                pad(out, depth + 1);
                render(item, depth + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            pad(out, depth);
            out.push(']');
        }
        J::O(fields) => {
            out.push_str("{\n");
            for (i, (k, v)) in fields.iter().enumerate() {
                pad(out, depth + 1);
                out.push_str(&format!("\"{k}\": "));
                render(v, depth + 1, out);
                out.push_str(if i + 1 < fields.len() { ",\n" } else { "\n" });
            }
            pad(out, depth);
            out.push('}');
        }
    }
}

/// config.json's text as `runc spec` writes it (no trailing newline, like runc).
pub fn default_spec_text(rootless: bool, hardened: bool) -> String {
    let mut out = String::new();
    render(&tree(rootless, hardened), 0, &mut out);
    out
}

/// The default config as a JSON value (for tools that edit it before writing).
pub fn default_spec(rootless: bool) -> Value {
    serde_json::from_str(&default_spec_text(rootless, false)).expect("the default spec is valid JSON")
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_spec_parses_as_an_oci_spec() {
        for rootless in [false, true] {
            for hardened in [false, true] {
                let text = super::default_spec_text(rootless, hardened);
                let spec = crate::config::parse_spec(text.as_bytes()).expect("valid");
                assert_eq!(spec.version(), super::DEFAULT_OCI_VERSION);
                assert!(text.starts_with("{\n\t\"ociVersion\": "), "{text}");
            }
        }
    }
}
