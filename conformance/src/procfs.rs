//! Parsers for what the kernel shows under /proc, shared by the probe (which reports
//! them) and the runner (whose unit tests check them): one parser, so the two sides
//! can never disagree about what a field means.

use serde_json::{json, Map, Value};

/// Capability names in bit order (capability.h); index = bit number.
pub const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Decodes a /proc/PID/status capability mask ("000001ffffffffff") into sorted names;
/// bits without a known name come out as "CAP_<bit>".
pub fn caps_from_hex(hex: &str) -> Vec<String> {
    let mask = u64::from_str_radix(hex.trim(), 16).unwrap_or(0);
    let mut v: Vec<String> = (0..64)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| CAPS.get(b).map(|s| s.to_string()).unwrap_or_else(|| format!("CAP_{b}")))
        .collect();
    v.sort();
    v
}

/// /proc/PID/status as a map of field -> value text.
pub fn parse_status(text: &str) -> Map<String, Value> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), Value::String(v.trim().to_string())))
        .collect()
}

/// One line of /proc/PID/mountinfo (proc(5)) as JSON: the per-mount options are split
/// into a list, the optional fields (shared:N, master:N ...) kept apart, and octal
/// escapes in paths decoded.
pub fn parse_mountinfo_line(line: &str) -> Option<Value> {
    let (pre, post) = line.split_once(" - ")?;
    let f: Vec<&str> = pre.split(' ').collect();
    let g: Vec<&str> = post.split(' ').collect();
    if f.len() < 6 || g.len() < 3 {
        return None;
    }
    Some(json!({
        "id": f[0].parse::<u64>().ok()?,
        "parent": f[1].parse::<u64>().ok()?,
        "root": unescape(f[3]),
        "mount_point": unescape(f[4]),
        "options": f[5].split(',').collect::<Vec<_>>(),
        "optional": f[6..].iter().filter(|s| !s.is_empty()).collect::<Vec<_>>(),
        "fstype": g[0],
        "source": unescape(g[1]),
        "super": g[2].split(',').collect::<Vec<_>>(),
    }))
}

/// Decodes mountinfo's `\040`-style octal escapes.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            && b[i + 1] <= b'3'
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rlimit names of config.md's `process.rlimits[].type`, with their resource number.
pub const RLIMITS: &[(&str, u32)] = &[
    ("RLIMIT_CPU", 0),
    ("RLIMIT_FSIZE", 1),
    ("RLIMIT_DATA", 2),
    ("RLIMIT_STACK", 3),
    ("RLIMIT_CORE", 4),
    ("RLIMIT_RSS", 5),
    ("RLIMIT_NPROC", 6),
    ("RLIMIT_NOFILE", 7),
    ("RLIMIT_MEMLOCK", 8),
    ("RLIMIT_AS", 9),
    ("RLIMIT_LOCKS", 10),
    ("RLIMIT_SIGPENDING", 11),
    ("RLIMIT_MSGQUEUE", 12),
    ("RLIMIT_NICE", 13),
    ("RLIMIT_RTPRIO", 14),
    ("RLIMIT_RTTIME", 15),
];
