//! CPU time and placement. v1: cpu.shares, cpu.cfs_{period,quota,burst}_us,
//! cpu.rt_{period,runtime}_us, cpu.idle, and the cpuset hierarchy. v2: cpu.weight
//! (runc's conversion from shares), cpu.max "QUOTA PERIOD", cpu.max.burst, cpu.idle,
//! cpuset.cpus/mems; v2 has no realtime group scheduling.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use super::super::{fs, Cgroup};
use crate::error::{Error, Result};

const P: &str = "linux.resources.cpu";

pub fn apply(cg: &Cgroup, c: &LinuxCpu) -> Result<()> {
    validate(c)?;
    let needs_cpu = c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.burst().is_some()
        || c.idle().is_some()
        || c.realtime_period().is_some()
        || c.realtime_runtime().is_some();
    if needs_cpu {
        let field = format!("{P}.{}", first_set(c));
        let d = cg.controller(&field, "cpu")?;
        if d.v2 {
            apply_v2(&d.dir, c)?;
        } else {
            apply_v1(&d.dir, c)?;
        }
    }
    for (name, value, file) in [("cpus", c.cpus(), "cpuset.cpus"), ("mems", c.mems(), "cpuset.mems")] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            let field = format!("{P}.{name}");
            let d = cg.controller(&field, "cpuset")?;
            fs::write(&field, &d.dir, file, v)?;
        }
    }
    Ok(())
}

fn first_set(c: &LinuxCpu) -> &'static str {
    if c.shares().is_some() {
        "shares"
    } else if c.quota().is_some() {
        "quota"
    } else if c.period().is_some() {
        "period"
    } else if c.burst().is_some() {
        "burst"
    } else if c.idle().is_some() {
        "idle"
    } else {
        "realtimeRuntime"
    }
}

fn validate(c: &LinuxCpu) -> Result<()> {
    if let Some(q) = c.quota() {
        if q < -1 {
            return Err(Error::field(format!("{P}.quota"), format!("{q} is negative (use -1 for no limit)")));
        }
    }
    if let Some(i) = c.idle() {
        if !(0..=1).contains(&i) {
            return Err(Error::field(format!("{P}.idle"), format!("{i} must be 0 or 1")));
        }
    }
    if let Some(r) = c.realtime_runtime() {
        if r < -1 {
            return Err(Error::field(format!("{P}.realtimeRuntime"), format!("{r} is negative (use -1 for no limit)")));
        }
    }
    Ok(())
}

fn apply_v1(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(s) = c.shares() {
        fs::write(&format!("{P}.shares"), dir, "cpu.shares", s.to_string())?;
    }
    // The period first: a quota is checked against the current period.
    if let Some(p) = c.period().filter(|p| *p != 0) {
        fs::write(&format!("{P}.period"), dir, "cpu.cfs_period_us", p.to_string())?;
    }
    if let Some(q) = c.quota().filter(|q| *q != 0) {
        fs::write(&format!("{P}.quota"), dir, "cpu.cfs_quota_us", q.to_string())?;
    }
    if let Some(b) = c.burst() {
        fs::write(&format!("{P}.burst"), dir, "cpu.cfs_burst_us", b.to_string())?;
    }
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        fs::write(&format!("{P}.realtimePeriod"), dir, "cpu.rt_period_us", p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        fs::write(&format!("{P}.realtimeRuntime"), dir, "cpu.rt_runtime_us", r.to_string())?;
    }
    if let Some(i) = c.idle() {
        fs::write(&format!("{P}.idle"), dir, "cpu.idle", i.to_string())?;
    }
    Ok(())
}

fn apply_v2(dir: &Path, c: &LinuxCpu) -> Result<()> {
    if c.realtime_period().is_some_and(|p| p != 0) || c.realtime_runtime().is_some_and(|r| r != 0) {
        return Err(Error::field(format!("{P}.realtimeRuntime"), "cgroup v2 has no realtime group scheduling"));
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        fs::write(&format!("{P}.shares"), dir, "cpu.weight", shares_to_weight(s).to_string())?;
    }
    if c.quota().is_some_and(|q| q != 0) || c.period().is_some_and(|p| p != 0) {
        // cpu.max holds both: keep the half the config leaves unset.
        let current = fs::read(dir, "cpu.max").unwrap_or_else(|_| "max 100000".into());
        let mut parts = current.split_whitespace();
        let (cur_quota, cur_period) =
            (parts.next().unwrap_or("max").to_string(), parts.next().unwrap_or("100000").to_string());
        let quota = match c.quota().filter(|q| *q != 0) {
            Some(q) if q < 0 => "max".to_string(),
            Some(q) => q.to_string(),
            None => cur_quota,
        };
        let period = c.period().filter(|p| *p != 0).map(|p| p.to_string()).unwrap_or(cur_period);
        let field = if c.quota().is_some() { "quota" } else { "period" };
        fs::write(&format!("{P}.{field}"), dir, "cpu.max", format!("{quota} {period}"))?;
    }
    if let Some(b) = c.burst() {
        fs::write(&format!("{P}.burst"), dir, "cpu.max.burst", b.to_string())?;
    }
    if let Some(i) = c.idle() {
        fs::write(&format!("{P}.idle"), dir, "cpu.idle", i.to_string())?;
    }
    Ok(())
}

/// runc's ConvertCPUSharesToCgroupV2Value: shares [2, 262144] onto weight [1, 10000]
/// linearly (0 stays "unset").
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

#[cfg(test)]
mod tests {
    #[test]
    fn shares_map_onto_weights_as_runc_does() {
        assert_eq!(super::shares_to_weight(2), 1);
        assert_eq!(super::shares_to_weight(1024), 39);
        assert_eq!(super::shares_to_weight(262_144), 10_000);
    }
}
