//! Device access. The rules are the config's `linux.resources.devices` in order, then
//! the devices every container gets (null, zero, full, random, urandom, tty, ptmx,
//! /dev/pts/*, mknod of anything) and `linux.devices`, all allowed, as runc does.
//! v1: devices.deny / devices.allow, one rule per write. v2: one eBPF program on the
//! cgroup ([`crate::cgroups::bpf`]), where the last matching rule wins.

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::super::{bpf, fs, Cgroup};
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// 'a' (all), 'c' or 'b'.
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// Some of "rwm".
    pub access: String,
}

impl DeviceRule {
    fn allow(kind: char, major: Option<i64>, minor: Option<i64>, access: &str) -> DeviceRule {
        DeviceRule { allow: true, kind, major, minor, access: access.into() }
    }

    /// The v1 devices.allow/deny line: "c 1:3 rwm", "a" for everything.
    fn v1_line(&self) -> String {
        if self.kind == 'a' && self.major.is_none() && self.minor.is_none() && self.access.len() == 3 {
            return "a".into();
        }
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        format!("{} {}:{} {}", self.kind, n(self.major), n(self.minor), self.access)
    }
}

/// The rules for a container: the config's, then the defaults and `linux.devices`.
pub fn rules(config: &[LinuxDeviceCgroup], devices: &[LinuxDevice]) -> Result<Vec<DeviceRule>> {
    let mut out = Vec::new();
    for (i, d) in config.iter().enumerate() {
        let field = format!("linux.resources.devices[{i}]");
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::P => return Err(Error::field(format!("{field}.type"), "\"p\" (fifo) is not a device class the cgroup controls")),
        };
        let access = d.access().clone().unwrap_or_else(|| "rwm".into());
        if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
            return Err(Error::field(format!("{field}.access"), format!("{access:?} is not a combination of r, w, m")));
        }
        for (name, v) in [("major", d.major()), ("minor", d.minor())] {
            if v.is_some_and(|v| v < -1) {
                return Err(Error::field(format!("{field}.{name}"), "must not be negative"));
            }
        }
        let wild = |v: Option<i64>| v.filter(|v| *v >= 0);
        out.push(DeviceRule { allow: d.allow(), kind, major: wild(d.major()), minor: wild(d.minor()), access });
    }
    out.extend([
        DeviceRule::allow('c', None, None, "m"),
        DeviceRule::allow('b', None, None, "m"),
        DeviceRule::allow('c', Some(1), Some(3), "rwm"),
        DeviceRule::allow('c', Some(1), Some(5), "rwm"),
        DeviceRule::allow('c', Some(1), Some(7), "rwm"),
        DeviceRule::allow('c', Some(1), Some(8), "rwm"),
        DeviceRule::allow('c', Some(1), Some(9), "rwm"),
        DeviceRule::allow('c', Some(5), Some(0), "rwm"),
        DeviceRule::allow('c', Some(5), Some(2), "rwm"),
        DeviceRule::allow('c', Some(136), None, "rwm"),
    ]);
    for d in devices {
        let kind = match d.typ() {
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            _ => continue,
        };
        out.push(DeviceRule::allow(kind, Some(d.major()), Some(d.minor()), "rwm"));
    }
    Ok(out)
}

pub fn apply(cg: &Cgroup, rules: &[DeviceRule]) -> Result<()> {
    let field = "linux.resources.devices";
    // Only allow rules on top of a cgroup that allows everything: nothing to enforce,
    // so no writes (v1) and no program (v2) on the create path.
    if rules.iter().all(|r| r.allow) {
        return Ok(());
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
    for (i, r) in rules.iter().enumerate() {
        let file = if r.allow { "devices.allow" } else { "devices.deny" };
        fs::write(&format!("{field}[{i}]"), &d.dir, file, r.v1_line())?;
    }
    Ok(())
}
