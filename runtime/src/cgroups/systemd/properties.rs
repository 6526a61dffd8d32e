//! `linux.resources` as systemd unit properties, with runc's conversions (its
//! libcontainer/cgroups/systemd, v1.1): the same inputs give the same properties, so
//! `systemctl show` reads the same for a strata and a runc container. Everything is
//! also written to cgroupfs afterwards (as runc does), so a field systemd has no
//! property for is still applied.

use oci_spec::runtime::{LinuxCpu, LinuxResources};

use super::dbus::Value;
use crate::cgroups::resources::{blkio_weight_to_io_weight, shares_to_weight, swap_to_v2, DeviceRule};
use crate::error::{Error, Result};

/// The kernel's default CFS period (µs), which systemd assumes too.
const DEFAULT_QUOTA_PERIOD: u64 = 100_000;
/// systemd's CPUQuotaPeriodUSec appeared in v242, AllowedCPUs/AllowedMemoryNodes in v244.
const QUOTA_PERIOD_SINCE: u32 = 242;
const CPUSET_SINCE: u32 = 244;

/// One unit property: its name and value.
pub type Property = (String, Value);

fn prop(name: &str, v: Value) -> Property {
    (name.to_string(), v)
}

/// The properties for `r` on a cgroup v2 host (v1 when `v2` is false) under systemd
/// `version`. `devices` are the canonical device rules (None: leave devices alone).
pub fn resources(r: &LinuxResources, devices: Option<&[DeviceRule]>, version: u32, v2: bool) -> Result<Vec<Property>> {
    let mut out = Vec::new();
    if let Some(rules) = devices {
        out.extend(device_properties(rules, &|kind, major| device_group(kind, major), &|p| {
            std::path::Path::new(p).exists()
        }));
    }
    if let Some(m) = r.memory() {
        let limit = m.limit().unwrap_or(0);
        if limit != 0 {
            out.push(prop(if v2 { "MemoryMax" } else { "MemoryLimit" }, Value::U64(limit as u64)));
        }
        if v2 {
            if let Some(low) = m.reservation().filter(|v| *v != 0) {
                out.push(prop("MemoryLow", Value::U64(low as u64)));
            }
            let swap = swap_to_v2(m.swap().unwrap_or(0), limit)?;
            if swap != 0 {
                out.push(prop("MemorySwapMax", Value::U64(swap as u64)));
            }
        }
    }
    if let Some(c) = r.cpu() {
        let shares = c.shares().unwrap_or(0);
        if v2 && shares != 0 {
            out.push(prop("CPUWeight", Value::U64(shares_to_weight(shares))));
        } else if !v2 && shares != 0 {
            out.push(prop("CPUShares", Value::U64(shares)));
        }
        out.extend(cpu_quota(c.quota().unwrap_or(0), c.period().unwrap_or(0), version));
        out.extend(cpuset(c, version)?);
    }
    if let Some(b) = r.block_io() {
        // Beyond runc 1.1 (which leaves the weight to cgroupfs): systemd has the property.
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            if v2 {
                out.push(prop("IOWeight", Value::U64(blkio_weight_to_io_weight(w))));
            } else {
                out.push(prop("BlockIOWeight", Value::U64(w as u64)));
            }
        }
    }
    if let Some(p) = r.pids() {
        let limit = p.limit();
        if limit > 0 || limit == -1 {
            out.push(prop("TasksMax", Value::U64(limit as u64)));
        }
    }
    if v2 {
        if let Some(u) = r.unified() {
            let mut keys: Vec<&String> = u.keys().collect();
            keys.sort();
            for k in keys {
                out.extend(unified(k, &u[k], version)?);
            }
        }
    }
    Ok(out)
}

/// runc's addCpuQuota: a period sets CPUQuotaPeriodUSec; a quota becomes µs per CPU
/// second, rounded up to systemd's 10 ms (1 %) granularity; no quota with a period is
/// "infinity".
pub fn cpu_quota(quota: i64, period: u64, version: u32) -> Vec<Property> {
    let mut out = Vec::new();
    if period != 0 && version >= QUOTA_PERIOD_SINCE {
        out.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
    }
    if quota != 0 || period != 0 {
        let mut per_sec = u64::MAX;
        if quota > 0 {
            let period = if period == 0 { DEFAULT_QUOTA_PERIOD } else { period };
            per_sec = (quota as u64).saturating_mul(1_000_000) / period;
            if !per_sec.is_multiple_of(10_000) {
                per_sec = (per_sec / 10_000 + 1) * 10_000;
            }
        }
        out.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
    }
    out
}

fn cpuset(c: &LinuxCpu, version: u32) -> Result<Vec<Property>> {
    let mut out = Vec::new();
    if version < CPUSET_SINCE {
        return Ok(out);
    }
    for (field, value, name) in [("cpus", c.cpus(), "AllowedCPUs"), ("mems", c.mems(), "AllowedMemoryNodes")] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            let bits = range_to_bits(v).map_err(|e| Error::field(format!("linux.resources.cpu.{field}"), e))?;
            out.push(prop(name, bytes(bits)));
        }
    }
    Ok(out)
}

fn bytes(b: Vec<u8>) -> Value {
    Value::Array("y".into(), b.into_iter().map(Value::Byte).collect())
}

/// A cpuset list ("0-3,7") as systemd's bitmask: little-endian bytes, bit N for CPU N,
/// no trailing zero bytes (at least one byte), as runc's RangeToBits.
pub fn range_to_bits(list: &str) -> std::result::Result<Vec<u8>, String> {
    let mut out: Vec<u8> = Vec::new();
    for part in list.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>(), b.trim().parse::<usize>()),
            None => (part.parse::<usize>(), part.parse::<usize>()),
        };
        let (Ok(lo), Ok(hi)) = (lo, hi) else { return Err(format!("{list:?}: {part:?} is not a number or a range")) };
        if lo > hi || hi >= 1 << 16 {
            return Err(format!("{list:?}: invalid range {part:?}"));
        }
        for n in lo..=hi {
            if out.len() <= n / 8 {
                out.resize(n / 8 + 1, 0);
            }
            out[n / 8] |= 1 << (n % 8);
        }
    }
    if out.is_empty() {
        out.push(0);
    }
    Ok(out)
}

/// runc's unifiedResToSystemdProps: the unified keys systemd has a property for.
fn unified(key: &str, value: &str, version: u32) -> Result<Vec<Property>> {
    let field = format!("linux.resources.unified.{key}");
    let v = value.trim();
    let num = |v: &str| -> Result<u64> {
        if v == "max" {
            return Ok(u64::MAX);
        }
        v.parse().map_err(|_| Error::field(&field, format!("{v:?} is not a number")))
    };
    Ok(match key {
        "cpu.max" => {
            let parts: Vec<&str> = v.split_whitespace().collect();
            if parts.is_empty() || parts.len() > 2 {
                return Err(Error::field(&field, format!("{v:?} is not \"quota [period]\"")));
            }
            let quota = if parts[0] == "max" {
                0
            } else {
                parts[0].parse().map_err(|_| Error::field(&field, "quota is not a number"))?
            };
            let period = match parts.get(1) {
                Some(p) => p.parse().map_err(|_| Error::field(&field, "period is not a number"))?,
                None => DEFAULT_QUOTA_PERIOD,
            };
            cpu_quota(quota, period, version)
        }
        "cpu.weight" => {
            vec![prop("CPUWeight", Value::U64(v.parse().map_err(|_| Error::field(&field, "not a number"))?))]
        }
        "cpuset.cpus" | "cpuset.mems" if version >= CPUSET_SINCE => {
            let name = if key == "cpuset.cpus" { "AllowedCPUs" } else { "AllowedMemoryNodes" };
            vec![prop(name, bytes(range_to_bits(v).map_err(|e| Error::field(&field, e))?))]
        }
        "memory.high" | "memory.low" | "memory.min" | "memory.max" | "memory.swap.max" => {
            let name = match key {
                "memory.high" => "MemoryHigh",
                "memory.low" => "MemoryLow",
                "memory.min" => "MemoryMin",
                "memory.max" => "MemoryMax",
                _ => "MemorySwapMax",
            };
            vec![prop(name, Value::U64(num(v)?))]
        }
        "pids.max" => vec![prop("TasksMax", Value::U64(num(v)?))],
        // Anything else goes to cgroupfs only.
        _ => Vec::new(),
    })
}

/// runc's device properties: systemd only takes an allow-list ("strict" plus
/// DeviceAllow). Allow-all is "auto" with an empty list; a deny-list systemd can't
/// express becomes a deny-all here (cgroupfs then gets the real rules, as in runc).
/// `group` names a major's device group from /proc/devices ("char-pts"), `exists`
/// says whether a /dev/{char,block}/M:m path exists (systemd warns on missing ones).
pub fn device_properties(
    rules: &[DeviceRule],
    group: &dyn Fn(char, i64) -> Option<String>,
    exists: &dyn Fn(&str) -> bool,
) -> Vec<Property> {
    let allow = |v: Vec<Value>| prop("DeviceAllow", Value::Array("(ss)".into(), v));
    let Some(default) = rules.first() else { return Vec::new() };
    if default.kind == 'a' && default.allow {
        if rules.len() == 1 {
            return vec![prop("DevicePolicy", Value::str("auto")), allow(Vec::new())];
        }
        crate::logging::warn("systemd doesn't support deny-list device rules: a temporary deny-all rule is applied");
        return vec![prop("DevicePolicy", Value::str("strict")), allow(Vec::new())];
    }
    let mut entries = Vec::new();
    // In runc's order (its emulator's sorted rules), so `systemctl show` lists
    // DeviceAllow as for a runc container (systemd shows the list last-set first).
    let mut sorted: Vec<&DeviceRule> =
        rules.iter().skip(1).filter(|r| r.allow && (r.kind == 'c' || r.kind == 'b')).collect();
    sorted.sort_by_key(|r| (r.kind, r.major.unwrap_or(-1), r.minor.unwrap_or(-1)));
    for r in sorted {
        let prefix = if r.kind == 'c' { "char-" } else { "block-" };
        let path = match (r.major, r.minor) {
            (None, None) => format!("{prefix}*"),
            // systemd has no "*:n" rule; cgroupfs gets it.
            (None, Some(_)) => continue,
            (Some(major), None) => match group(r.kind, major) {
                Some(g) => g,
                None => continue,
            },
            (Some(major), Some(minor)) => {
                let dir = if r.kind == 'c' { "char" } else { "block" };
                let p = format!("/dev/{dir}/{major}:{minor}");
                if !exists(&p) && !exists(&format!("/sys{p}")) {
                    continue;
                }
                p
            }
        };
        entries.push(Value::Struct(vec![Value::Str(path), Value::str(r.access.clone())]));
    }
    vec![
        prop("DevicePolicy", Value::str("strict")),
        prop("DeviceAllow", Value::Array("(ss)".into(), Vec::new())),
        allow(entries),
    ]
}

/// The /proc/devices group of a major ("char-pts"), as DeviceAllow names it.
fn device_group(kind: char, major: i64) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let mut section = ' ';
    for line in text.lines().map(str::trim) {
        match line {
            "Character devices:" => section = 'c',
            "Block devices:" => section = 'b',
            _ if section == kind => {
                let mut it = line.split_whitespace();
                if let (Some(m), Some(name)) = (it.next(), it.next()) {
                    if m.parse::<i64>().ok() == Some(major) {
                        return Some(format!("{}-{name}", if kind == 'c' { "char" } else { "block" }));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// `org.systemd.property.NAME` annotations as properties. Values are GVariant text, as
/// runc takes them: `true`, `'str'`, `uint64 123`, `@t 123`, a bare integer (int32),
/// `['a', 'b']`. A NAME ending in "Sec" (not "USec") is converted to NAMEUSec, its
/// value from seconds to microseconds.
pub fn from_annotations<'a>(annotations: impl Iterator<Item = (&'a String, &'a String)>) -> Result<Vec<Property>> {
    let mut out = Vec::new();
    let mut sorted: Vec<_> =
        annotations.filter_map(|(k, v)| Some((k.strip_prefix("org.systemd.property.")?, k, v))).collect();
    sorted.sort();
    for (name, key, value) in sorted {
        let field = format!("annotations.{key}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::field(field, "a systemd property name is letters and digits only"));
        }
        let mut v = parse_gvariant(value).map_err(|e| Error::field(&field, e))?;
        let mut name = name.to_string();
        if let Some(base) = name.strip_suffix("Sec").filter(|b| !b.ends_with('U')) {
            name = format!("{base}USec");
            v = Value::U64(match v {
                Value::U64(n) => n.saturating_mul(1_000_000),
                Value::U32(n) => n as u64 * 1_000_000,
                Value::I32(n) if n >= 0 => n as u64 * 1_000_000,
                Value::I64(n) if n >= 0 => (n as u64).saturating_mul(1_000_000),
                Value::Double(f) if f >= 0.0 => (f * 1e6) as u64,
                _ => {
                    return Err(Error::field(
                        &field,
                        format!("{value:?}: a time in seconds must be a non-negative number"),
                    ))
                }
            });
        }
        out.push((name, v));
    }
    Ok(out)
}

/// A GVariant text value (the subset unit properties take).
pub fn parse_gvariant(text: &str) -> std::result::Result<Value, String> {
    let t = text.trim();
    if t == "true" || t == "false" {
        return Ok(Value::Bool(t == "true"));
    }
    if t.len() >= 2 && ((t.starts_with('\'') && t.ends_with('\'')) || (t.starts_with('"') && t.ends_with('"'))) {
        return Ok(Value::str(&t[1..t.len() - 1]));
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let items = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(parse_gvariant)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let sig = items.first().map(Value::signature).unwrap_or_else(|| "s".into());
        if items.iter().any(|i| i.signature() != sig) {
            return Err(format!("{text:?}: array items of different types"));
        }
        return Ok(Value::Array(sig, items));
    }
    let (ty, num) = match t.split_once(char::is_whitespace) {
        Some((ty, n)) => (ty, n.trim()),
        None => ("", t),
    };
    let bad = || format!("{text:?} is not a GVariant value this runtime reads (true, 'text', uint64 N, N, [..])");
    Ok(match ty {
        "uint64" | "@t" => Value::U64(num.parse().map_err(|_| bad())?),
        "uint32" | "@u" => Value::U32(num.parse().map_err(|_| bad())?),
        "int64" | "@x" => Value::I64(num.parse().map_err(|_| bad())?),
        "int32" | "@i" => Value::I32(num.parse().map_err(|_| bad())?),
        "double" | "@d" => Value::Double(num.parse().map_err(|_| bad())?),
        "boolean" | "@b" => Value::Bool(match num {
            "true" => true,
            "false" => false,
            _ => return Err(bad()),
        }),
        "" => match num.parse::<i32>() {
            Ok(n) => Value::I32(n),
            Err(_) => Value::Double(num.parse().map_err(|_| bad())?),
        },
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder};

    fn names(p: &[Property]) -> Vec<String> {
        p.iter().map(|(n, v)| format!("{n}={v:?}")).collect()
    }

    #[test]
    fn resources_become_runcs_properties() {
        let r = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(67_108_864i64)
                    .reservation(33_554_432i64)
                    .swap(100_663_296i64)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(50_000i64)
                    .period(100_000u64)
                    .cpus("0-2,7")
                    .mems("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(40i64).build().unwrap())
            .build()
            .unwrap();
        let p = resources(&r, None, 252, true).unwrap();
        assert_eq!(
            names(&p),
            vec![
                "MemoryMax=U64(67108864)",
                "MemoryLow=U64(33554432)",
                "MemorySwapMax=U64(33554432)",
                "CPUWeight=U64(39)",
                "CPUQuotaPeriodUSec=U64(100000)",
                "CPUQuotaPerSecUSec=U64(500000)",
                "AllowedCPUs=Array(\"y\", [Byte(135)])",
                "AllowedMemoryNodes=Array(\"y\", [Byte(1)])",
                "TasksMax=U64(40)",
            ]
        );
        // systemd 241 knows neither the period nor the cpuset properties.
        let old = names(&resources(&r, None, 241, true).unwrap());
        assert!(!old.iter().any(|n| n.starts_with("CPUQuotaPeriodUSec") || n.starts_with("Allowed")));
    }

    #[test]
    fn cpu_quota_rounds_up_to_whole_percents_as_runc_does() {
        assert_eq!(
            names(&cpu_quota(12_345, 100_000, 252)),
            vec!["CPUQuotaPeriodUSec=U64(100000)", "CPUQuotaPerSecUSec=U64(130000)"]
        );
        assert_eq!(names(&cpu_quota(20_000, 0, 252)), vec!["CPUQuotaPerSecUSec=U64(200000)"]);
        assert_eq!(
            names(&cpu_quota(-1, 50_000, 252)),
            vec!["CPUQuotaPeriodUSec=U64(50000)".to_string(), format!("CPUQuotaPerSecUSec=U64({})", u64::MAX)]
        );
        assert!(cpu_quota(0, 0, 252).is_empty());
    }

    #[test]
    fn unlimited_values_are_infinity() {
        let r = LinuxResourcesBuilder::default()
            .memory(LinuxMemoryBuilder::default().limit(-1i64).swap(-1i64).build().unwrap())
            .pids(LinuxPidsBuilder::default().limit(-1i64).build().unwrap())
            .build()
            .unwrap();
        let m = u64::MAX;
        assert_eq!(
            names(&resources(&r, None, 252, true).unwrap()),
            vec![format!("MemoryMax=U64({m})"), format!("MemorySwapMax=U64({m})"), format!("TasksMax=U64({m})")]
        );
    }

    #[test]
    fn cpusets_become_little_endian_bitmasks() {
        assert_eq!(range_to_bits("0").unwrap(), vec![1]);
        assert_eq!(range_to_bits("0-2,7").unwrap(), vec![0x87]);
        assert_eq!(range_to_bits("8").unwrap(), vec![0, 1]);
        assert_eq!(range_to_bits("1,9-10").unwrap(), vec![2, 6]);
        assert!(range_to_bits("3-1").is_err());
        assert!(range_to_bits("x").is_err());
    }

    #[test]
    fn unified_keys_with_a_systemd_property() {
        assert_eq!(names(&unified("memory.high", "max", 252).unwrap()), vec![format!("MemoryHigh=U64({})", u64::MAX)]);
        assert_eq!(
            names(&unified("cpu.max", "max 50000", 252).unwrap()),
            vec!["CPUQuotaPeriodUSec=U64(50000)".to_string(), format!("CPUQuotaPerSecUSec=U64({})", u64::MAX)]
        );
        assert!(unified("memory.oom.group", "1", 252).unwrap().is_empty());
    }

    fn rule(allow: bool, kind: char, major: Option<i64>, minor: Option<i64>, access: &str) -> DeviceRule {
        DeviceRule { allow, kind, major, minor, access: access.into() }
    }

    #[test]
    fn device_rules_become_an_allow_list() {
        let rules = vec![
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'c', None, None, "m"),
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(true, 'c', Some(136), None, "rwm"),
            rule(true, 'c', None, Some(5), "r"),
            rule(true, 'c', Some(10), Some(200), "rwm"),
        ];
        let group = |k: char, m: i64| (k == 'c' && m == 136).then(|| "char-pts".to_string());
        let exists = |p: &str| p == "/dev/char/1:3";
        let p = device_properties(&rules, &group, &exists);
        let entries = |s: &[(&str, &str)]| {
            Value::Array(
                "(ss)".into(),
                s.iter().map(|(a, b)| Value::Struct(vec![Value::str(*a), Value::str(*b)])).collect(),
            )
        };
        assert_eq!(p[0], prop("DevicePolicy", Value::str("strict")));
        assert_eq!(
            p[2],
            prop("DeviceAllow", entries(&[("char-*", "m"), ("/dev/char/1:3", "rwm"), ("char-pts", "rwm")]))
        );
        let all = device_properties(&[rule(true, 'a', None, None, "rwm")], &group, &exists);
        assert_eq!(all, vec![prop("DevicePolicy", Value::str("auto")), prop("DeviceAllow", entries(&[]))]);
    }

    #[test]
    fn annotations_are_gvariant_text_and_sec_becomes_usec() {
        let a: std::collections::HashMap<String, String> = [
            ("org.systemd.property.TimeoutStopUSec", "uint64 123456789"),
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.TimeoutStopSec", "2"),
            ("org.systemd.property.CPUAccounting", "false"),
            ("other", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = from_annotations(a.iter()).unwrap();
        assert_eq!(
            names(&p),
            vec![
                "CPUAccounting=Bool(false)",
                "CollectMode=Str(\"inactive-or-failed\")",
                "TimeoutStopUSec=U64(2000000)",
                "TimeoutStopUSec=U64(123456789)"
            ]
        );
        let bad: std::collections::HashMap<String, String> =
            [("org.systemd.property.A/B".to_string(), "1".to_string())].into();
        assert!(from_annotations(bad.iter()).is_err());
        assert_eq!(
            parse_gvariant("['a', 'b']").unwrap(),
            Value::Array("s".into(), vec![Value::str("a"), Value::str("b")])
        );
        assert_eq!(parse_gvariant("7").unwrap(), Value::I32(7));
    }
}
