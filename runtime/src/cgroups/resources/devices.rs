//! Device access, with runc's semantics (its device "emulator", which folds rules the way
//! the v1 kernel folds devices.allow/deny writes). The cgroup starts denying everything;
//! the config's `linux.resources.devices` apply in order, then the devices every
//! container gets (null, zero, full, random, urandom, tty, ptmx, /dev/pts/*, tun/tap,
//! mknod of anything). An "a" rule resets to allow-all or deny-all, whatever its other
//! fields say; any other rule adds to, or takes from, the exceptions to that default.
//! `linux.devices` are not added: a config that denies a listed node keeps it denied, as
//! runc does (engines write the allow rules they want). The folded result, a default
//! and its exceptions, is what both versions enforce: v1 gets it written as is, v2 gets
//! it compiled into one eBPF program ([`crate::cgroups::bpf`]).

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::super::{bpf, fs, Cgroup};
use crate::error::{Error, Result};

/// Access bits, as the v1 kernel and the eBPF context count them.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// 'a' (all), 'c' or 'b'.
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// Some of "rwm", in that order.
    pub access: String,
}

/// The access string as a set: letters repeat freely and other letters mean nothing
/// (runc's reading: "rrr" is read, "rwa" is read and write).
pub fn access_bits(access: &str) -> u8 {
    access.chars().fold(0, |a, c| {
        a | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

fn access_string(bits: u8) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

impl DeviceRule {
    fn new(allow: bool, kind: char, major: Option<i64>, minor: Option<i64>, access: u8) -> DeviceRule {
        DeviceRule { allow, kind, major, minor, access: access_string(access) }
    }

    /// The v1 devices.allow/deny line: "c 1:3 rwm", "a" for everything.
    fn v1_line(&self) -> String {
        if self.kind == 'a' {
            return "a".into();
        }
        format!("{} {}:{} {}", self.kind, wildcard(self.major), wildcard(self.minor), self.access)
    }

    /// True when `other`'s devices are all among this rule's (same class, each number
    /// equal or a wildcard here).
    fn covers(&self, other: &DeviceRule) -> bool {
        self.kind == other.kind
            && (self.major.is_none() || self.major == other.major)
            && (self.minor.is_none() || self.minor == other.minor)
    }
}

fn wildcard(v: Option<i64>) -> String {
    v.map_or("*".to_string(), |v| v.to_string())
}

/// (node path, class, major, minor, access) of a default rule.
type DefaultRule = (Option<&'static str>, char, Option<i64>, Option<i64>, u8);

/// The devices every container may use, with the node path that, listed in
/// `linux.devices`, drops the rule (runc's AllowedDevices and its de-duplication).
const DEFAULT_ALLOWED: &[DefaultRule] = &[
    (None, 'c', None, None, ACC_MKNOD),
    (None, 'b', None, None, ACC_MKNOD),
    (Some("/dev/null"), 'c', Some(1), Some(3), ACC_ALL),
    (Some("/dev/random"), 'c', Some(1), Some(8), ACC_ALL),
    (Some("/dev/full"), 'c', Some(1), Some(7), ACC_ALL),
    (Some("/dev/tty"), 'c', Some(5), Some(0), ACC_ALL),
    (Some("/dev/zero"), 'c', Some(1), Some(5), ACC_ALL),
    (Some("/dev/urandom"), 'c', Some(1), Some(9), ACC_ALL),
    // /dev/pts/*
    (None, 'c', Some(136), None, ACC_ALL),
    // /dev/ptmx
    (None, 'c', Some(5), Some(2), ACC_ALL),
    // /dev/net/tun
    (None, 'c', Some(10), Some(200), ACC_ALL),
];

/// A device cgroup's state: its default and the exceptions to it (each of the other
/// action). Starts denying everything, as runc's does.
#[derive(Default)]
struct Emulator {
    allow_all: bool,
    exceptions: Vec<DeviceRule>,
}

impl Emulator {
    fn apply(&mut self, r: &DeviceRule) -> std::result::Result<(), String> {
        if r.kind == 'a' {
            *self = Emulator { allow_all: r.allow, exceptions: Vec::new() };
            return Ok(());
        }
        let bits = access_bits(&r.access);
        let same = self.exceptions.iter().position(|e| e.kind == r.kind && e.major == r.major && e.minor == r.minor);
        if r.allow != self.allow_all {
            match same {
                Some(i) => {
                    let e = &mut self.exceptions[i];
                    e.access = access_string(access_bits(&e.access) | bits);
                }
                None => self.exceptions.push(DeviceRule::new(r.allow, r.kind, r.major, r.minor, bits)),
            }
            return Ok(());
        }
        // Taking access away from an exception: v1 only edits an exact match and would
        // silently keep a wider wildcard exception in force. Refused, as runc does.
        if let Some(wide) =
            self.exceptions.iter().find(|e| e.covers(r) && !r.covers(e) && access_bits(&e.access) & bits != 0)
        {
            return Err(format!(
                "\"{}\" would punch a hole in the wildcard rule \"{}\", which the devices cgroup cannot do",
                r.v1_line(),
                wide.v1_line()
            ));
        }
        if let Some(i) = same {
            let left = access_bits(&self.exceptions[i].access) & !bits;
            if left == 0 {
                self.exceptions.remove(i);
            } else {
                self.exceptions[i].access = access_string(left);
            }
        }
        Ok(())
    }

    /// The canonical rules: the "a" default first, then the exceptions.
    fn into_rules(self) -> Vec<DeviceRule> {
        let mut out = vec![DeviceRule::new(self.allow_all, 'a', None, None, ACC_ALL)];
        out.extend(self.exceptions);
        out
    }
}

/// The rules for a container, folded into canonical form: the "a" default first, then
/// its exceptions (all of the other action). Both [`apply`] and [`bpf::program`] take
/// this form.
pub fn rules(config: &[LinuxDeviceCgroup], devices: &[LinuxDevice]) -> Result<Vec<DeviceRule>> {
    let mut emu = Emulator::default();
    for (i, d) in config.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C => 'c',
            t => {
                return Err(Error::field(
                    format!("{field}.type"),
                    format!("{:?} is not a device class the cgroup controls (a, b or c)", t.as_str()),
                ))
            }
        };
        // Absent means everything (the field is OPTIONAL in the spec; runc refuses it).
        let access = d.access().clone().unwrap_or_else(|| "rwm".into());
        let bits = access_bits(&access);
        if bits == 0 && kind != 'a' {
            return Err(Error::field(format!("{field}.access"), format!("{access:?} has none of r, w, m")));
        }
        for (name, v) in [("major", d.major()), ("minor", d.minor())] {
            if v.is_some_and(|v| v < -1) {
                return Err(Error::field(format!("{field}.{name}"), "must not be negative (-1 is the wildcard)"));
            }
        }
        let wild = |v: Option<i64>| v.filter(|v| *v >= 0);
        let rule = DeviceRule::new(d.allow(), kind, wild(d.major()), wild(d.minor()), bits);
        emu.apply(&rule).map_err(|e| Error::field(&field, e))?;
    }
    for &(path, kind, major, minor, access) in DEFAULT_ALLOWED {
        if path.is_some_and(|p| devices.iter().any(|d| d.path().as_os_str() == p)) {
            continue;
        }
        emu.apply(&DeviceRule::new(true, kind, major, minor, access))
            .map_err(|e| Error::field("linux.resources.devices", format!("the default device rules: {e}")))?;
    }
    Ok(emu.into_rules())
}

/// Installs canonical `rules` (from [`rules`]).
pub fn apply(cg: &Cgroup, rules: &[DeviceRule]) -> Result<()> {
    let field = "linux.resources.devices";
    // Allow-all with no exception is what a new cgroup already is: no writes (v1) and
    // no program (v2) on the create path.
    if let [only] = rules {
        if only.kind == 'a' && only.allow {
            return Ok(());
        }
    }
    let d = match cg.find_controller("devices") {
        Some((d, _)) => d,
        // v2 has no devices controller: the eBPF program takes its place.
        None => match cg.v2_dir() {
            Some(v2) if cg.dirs.iter().all(|d| d.version == crate::cgroups::Version::V2) => {
                return bpf::attach_device_filter(&v2.full(), rules).map_err(|e| Error::field(field, e.to_string()));
            }
            _ => return Err(Error::field(field, "this host has no devices cgroup controller")),
        },
    };
    let current = fs::read(&d.dir, "devices.list").ok().and_then(|l| parse_list(&l));
    // Each rule is its own write(2); the two files are opened once (the default rules
    // alone are a dozen writes).
    let (mut allow, mut deny) = (None, None);
    for r in transition(current.as_deref(), rules) {
        let (file, open) = if r.allow { ("devices.allow", &mut allow) } else { ("devices.deny", &mut deny) };
        fs::write_reusing(field, &d.dir, file, open, r.v1_line())?;
    }
    Ok(())
}

/// devices.list as canonical rules. It lists what is allowed: "a *:* rwm" alone for an
/// allow-all cgroup (whose deny exceptions it can't show), else the allow exceptions.
fn parse_list(list: &str) -> Option<Vec<DeviceRule>> {
    let mut out = vec![DeviceRule::new(false, 'a', None, None, ACC_ALL)];
    for line in list.lines() {
        let mut parts = line.split_whitespace();
        let (kind, numbers, access) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
        if kind == "a" {
            return Some(vec![DeviceRule::new(true, 'a', None, None, ACC_ALL)]);
        }
        let (major, minor) = numbers.split_once(':')?;
        let number = |n: &str| if n == "*" { Some(None) } else { n.parse().ok().map(Some) };
        let kind = kind.chars().next().filter(|k| matches!(k, 'b' | 'c'))?;
        out.push(DeviceRule::new(true, kind, number(major)?, number(minor)?, access_bits(access)));
    }
    Some(out)
}

/// The writes that take a cgroup from `current` to `target` (canonical rules), as runc's
/// transition does: an allow-list cgroup that already allows what it should gets no
/// writes, and one that differs gets only the difference, so the processes already in
/// a shared cgroup (a pod's) never see their devices denied meanwhile. Otherwise (an
/// allow-all cgroup, whose deny exceptions devices.list can't show; another default;
/// an unreadable list) the "a" reset first, then every exception.
fn transition(current: Option<&[DeviceRule]>, target: &[DeviceRule]) -> Vec<DeviceRule> {
    let Some(current) =
        current.filter(|c| c.first().is_some_and(|a| !a.allow) && target.first().is_some_and(|a| !a.allow))
    else {
        return target.to_vec();
    };
    let same = |a: &DeviceRule, b: &DeviceRule| a.kind == b.kind && a.major == b.major && a.minor == b.minor;
    let bits_in = |rules: &[DeviceRule], r: &DeviceRule| {
        rules[1..].iter().find(|e| same(e, r)).map_or(0, |e| access_bits(&e.access))
    };
    let mut out = Vec::new();
    for e in &current[1..] {
        let dropped = access_bits(&e.access) & !bits_in(target, e);
        if dropped != 0 {
            out.push(DeviceRule::new(false, e.kind, e.major, e.minor, dropped));
        }
    }
    for t in &target[1..] {
        let gained = access_bits(&t.access) & !bits_in(current, t);
        if gained != 0 {
            out.push(DeviceRule::new(true, t.kind, t.major, t.minor, gained));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    fn fold(config: serde_json::Value, devices: serde_json::Value) -> Result<Vec<DeviceRule>> {
        let config: Vec<LinuxDeviceCgroup> = serde_json::from_value(config).unwrap();
        let devices: Vec<LinuxDevice> = serde_json::from_value(devices).unwrap();
        rules(&config, &devices)
    }

    fn lines(rules: &[DeviceRule]) -> Vec<String> {
        rules.iter().map(|r| format!("{} {}", if r.allow { "allow" } else { "deny" }, r.v1_line())).collect()
    }

    /// The kernel's v1 check (security/device_cgroup.c): with a deny default one
    /// exception must grant every requested bit; with an allow default any exception
    /// sharing a bit denies.
    pub fn v1_allows(rules: &[DeviceRule], kind: char, major: i64, minor: i64, access: u8) -> bool {
        let allow_all = rules[0].allow;
        let hit = |e: &&DeviceRule| {
            e.kind == kind && e.major.is_none_or(|m| m == major) && e.minor.is_none_or(|m| m == minor)
        };
        let ex = rules[1..].iter().filter(hit);
        if allow_all {
            !ex.into_iter().any(|e| access_bits(&e.access) & access != 0)
        } else {
            ex.into_iter().any(|e| access & !access_bits(&e.access) == 0)
        }
    }

    #[test]
    fn an_access_string_is_a_set_and_unknown_letters_mean_nothing() {
        let r = fold(json!([{ "allow": false, "access": "rwm" }, { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "rrr" }]), json!([])).unwrap();
        assert!(lines(&r).contains(&"allow c 1:11 r".to_string()), "{:?}", lines(&r));
        assert!(!v1_allows(&r, 'c', 1, 11, ACC_WRITE));
        assert!(v1_allows(&r, 'c', 1, 11, ACC_READ));
        let r = fold(json!([{ "allow": false, "access": "rwm" }, { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwa" }]), json!([])).unwrap();
        assert!(lines(&r).contains(&"allow c 1:11 rw".to_string()), "{:?}", lines(&r));
        let e = fold(json!([{ "allow": true, "type": "c", "major": 1, "minor": 11, "access": "xyz" }]), json!([]))
            .unwrap_err();
        assert!(e.to_string().contains("linux.resources.devices[0].access"), "{e}");
    }

    #[test]
    fn the_default_is_deny_and_linux_devices_are_not_allowed() {
        let kmsg = json!([{ "path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11 }]);
        for config in [json!([]), json!([{ "allow": false, "access": "rwm" }])] {
            let r = fold(config, kmsg.clone()).unwrap();
            assert_eq!(lines(&r[..1]), ["deny a"]);
            assert!(!v1_allows(&r, 'c', 1, 11, ACC_WRITE));
            assert!(v1_allows(&r, 'c', 1, 3, ACC_READ | ACC_WRITE));
            assert!(v1_allows(&r, 'c', 10, 200, ACC_READ));
            assert!(v1_allows(&r, 'b', 8, 0, ACC_MKNOD) && !v1_allows(&r, 'b', 8, 0, ACC_READ));
        }
        // A listed node that is also a default one drops the default rule (runc).
        let r = fold(json!([]), json!([{ "path": "/dev/null", "type": "c", "major": 1, "minor": 3 }])).unwrap();
        assert!(!v1_allows(&r, 'c', 1, 3, ACC_READ));
    }

    #[test]
    fn an_allow_list_cgroup_gets_only_the_difference() {
        let target = fold(json!([{ "allow": false, "access": "rwm" }, { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "r" }]), json!([])).unwrap();
        let list: String = target[1..].iter().map(|r| format!("{}\n", r.v1_line())).collect();
        // Already there (a pod's second container): nothing is written, nothing denied meanwhile.
        assert_eq!(transition(parse_list(&list).as_deref(), &target), []);
        // Differs: only the difference.
        let list = list.replace("c 1:11 r", "c 1:11 rw").replace("c 1:3 rwm\n", "") + "b 8:0 r\n";
        let writes = lines(&transition(parse_list(&list).as_deref(), &target));
        assert_eq!(writes, ["deny c 1:11 w", "deny b 8:0 r", "allow c 1:3 rwm"]);
        // A fresh (allow-all) cgroup, or an unreadable list: the reset and every exception.
        assert_eq!(transition(parse_list("a *:* rwm\n").as_deref(), &target), target);
        assert_eq!(transition(None, &target), target);
    }

    #[test]
    fn an_a_rule_resets_whatever_its_access() {
        let r = fold(
            json!([{ "allow": false, "access": "rwm" }, { "allow": true, "type": "a", "access": "r" }]),
            json!([]),
        )
        .unwrap();
        assert_eq!(lines(&r), ["allow a"]);
        let r =
            fold(json!([{ "allow": true, "access": "rwm" }, { "allow": false, "access": "r" }]), json!([])).unwrap();
        assert_eq!(lines(&r[..1]), ["deny a"]);
    }

    #[test]
    fn deny_exceptions_on_allow_all_and_holes_in_wildcards() {
        let r = fold(json!([{ "allow": true, "access": "rwm" }, { "allow": false, "type": "c", "major": 1, "minor": 11, "access": "w" }]), json!([])).unwrap();
        assert_eq!(lines(&r), ["allow a", "deny c 1:11 w"]);
        // v1 denies a read-write open that shares a bit with a deny exception.
        assert!(!v1_allows(&r, 'c', 1, 11, ACC_READ | ACC_WRITE));
        assert!(v1_allows(&r, 'c', 1, 11, ACC_READ));
        // Allow-all, deny c 1:* w: the default 1:3 rule would punch a hole (runc refuses too).
        let e = fold(
            json!([{ "allow": true, "access": "rwm" }, { "allow": false, "type": "c", "major": 1, "access": "w" }]),
            json!([]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("punch a hole"), "{e}");
        let e = fold(
            json!([{ "allow": false, "access": "rwm" }, { "allow": true, "type": "c", "access": "rwm" }, { "allow": false, "type": "c", "major": 1, "minor": 11, "access": "w" }]),
            json!([]),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains(
                "linux.resources.devices[2]: \"c 1:11 w\" would punch a hole in the wildcard rule \"c *:* rwm\""
            ),
            "{e}"
        );
        let e = fold(json!([{ "allow": false, "type": "u", "access": "rwm" }]), json!([])).unwrap_err();
        assert!(e.to_string().contains("linux.resources.devices[0].type"), "{e}");
    }
}
