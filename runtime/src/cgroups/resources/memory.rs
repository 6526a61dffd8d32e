//! Memory limits. v1: memory.limit_in_bytes, memory.memsw.limit_in_bytes (memory +
//! swap together), soft limit, kmem, swappiness, oom_control, use_hierarchy. v2:
//! memory.max, memory.swap.max (swap alone: runc converts "memory+swap" to "swap" by
//! subtracting the limit), memory.low.

use oci_spec::runtime::LinuxMemory;

use super::super::{fs, Cgroup};
use super::{check_limit, limit_value};
use crate::error::{Error, Result};

const P: &str = "linux.resources.memory";

pub fn apply(cg: &Cgroup, m: &LinuxMemory) -> Result<()> {
    for (name, v) in [
        ("limit", m.limit()),
        ("reservation", m.reservation()),
        ("swap", m.swap()),
        ("kernel", m.kernel()),
        ("kernelTCP", m.kernel_tcp()),
    ] {
        if let Some(v) = v {
            check_limit(&format!("{P}.{name}"), v)?;
        }
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(Error::field(format!("{P}.swappiness"), format!("{s} is out of range 0-100")));
        }
    }
    let c = cg.controller(&format!("{P}.limit"), "memory")?;
    if let (Some(limit), Some(true)) = (m.limit(), m.check_before_update()) {
        let usage = fs::read_u64(&c.dir, if c.v2 { "memory.current" } else { "memory.usage_in_bytes" }).unwrap_or(0);
        if limit >= 0 && (limit as u64) < usage {
            return Err(Error::field(
                format!("{P}.limit"),
                format!("{limit} is below the current usage {usage} (checkBeforeUpdate)"),
            ));
        }
    }
    if c.v2 {
        apply_v2(&c.dir, m)
    } else {
        apply_v1(&c.dir, m)
    }
}

fn apply_v1(dir: &std::path::Path, m: &LinuxMemory) -> Result<()> {
    if let Some(h) = m.use_hierarchy() {
        fs::write(&format!("{P}.useHierarchy"), dir, "memory.use_hierarchy", if h { "1" } else { "0" })?;
    }
    // runc: lifting the memory limit (-1) without naming swap lifts swap too, or the
    // old memory+swap limit would still cap the container.
    let swap = m.swap().or(if m.limit() == Some(-1) { Some(-1) } else { None });
    match (m.limit(), swap) {
        (limit, Some(swap)) => {
            // The kernel wants memory <= memory+swap at every moment: raise memsw first
            // when it grows, lower the limit first otherwise.
            let current = fs::read_u64(dir, "memory.memsw.limit_in_bytes").unwrap_or(u64::MAX);
            let grows = swap < 0 || (swap as u64) > current;
            let write_swap = || fs::write(&format!("{P}.swap"), dir, "memory.memsw.limit_in_bytes", swap.to_string());
            let write_limit = || match limit {
                Some(l) => fs::write(&format!("{P}.limit"), dir, "memory.limit_in_bytes", l.to_string()),
                None => Ok(()),
            };
            if grows {
                write_swap()?;
                write_limit()?;
            } else {
                write_limit()?;
                write_swap()?;
            }
        }
        (Some(l), None) => fs::write(&format!("{P}.limit"), dir, "memory.limit_in_bytes", l.to_string())?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation() {
        fs::write(&format!("{P}.reservation"), dir, "memory.soft_limit_in_bytes", r.to_string())?;
    }
    if let Some(k) = m.kernel() {
        fs::write(&format!("{P}.kernel"), dir, "memory.kmem.limit_in_bytes", k.to_string())?;
    }
    if let Some(k) = m.kernel_tcp() {
        fs::write(&format!("{P}.kernelTCP"), dir, "memory.kmem.tcp.limit_in_bytes", k.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        fs::write(&format!("{P}.swappiness"), dir, "memory.swappiness", s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        fs::write(&format!("{P}.disableOOMKiller"), dir, "memory.oom_control", "1")?;
    }
    Ok(())
}

fn apply_v2(dir: &std::path::Path, m: &LinuxMemory) -> Result<()> {
    if m.use_hierarchy() == Some(false) {
        return Err(Error::field(format!("{P}.useHierarchy"), "cgroup v2 is always hierarchical"));
    }
    if m.disable_oom_killer() == Some(true) {
        return Err(Error::field(format!("{P}.disableOOMKiller"), "cgroup v2 has no switch to disable the OOM killer"));
    }
    if m.swappiness().is_some() {
        return Err(Error::field(format!("{P}.swappiness"), "cgroup v2 has no per-cgroup swappiness"));
    }
    // kernel and kernelTCP: v2 accounts kernel memory inside memory.max and has no
    // separate limit; runc ignores them there, and so does strata.
    if let Some(swap) = m.swap() {
        let v = swap_to_v2(swap, m.limit().unwrap_or(0))?;
        // Set the swap limit only where the host has swap accounting.
        if v != 0 || fs::exists(dir, "memory.swap.max") {
            fs::write(&format!("{P}.swap"), dir, "memory.swap.max", limit_value(v, true))?;
        }
    }
    if let Some(l) = m.limit() {
        fs::write(&format!("{P}.limit"), dir, "memory.max", limit_value(l, true))?;
    }
    if let Some(r) = m.reservation() {
        fs::write(&format!("{P}.reservation"), dir, "memory.low", limit_value(r, true))?;
    }
    Ok(())
}

/// runc's ConvertMemorySwapToCgroupV2Value: the spec's swap is memory+swap (v1's
/// memsw); v2's memory.swap.max is swap alone. -1 stays "no limit".
pub fn swap_to_v2(swap: i64, limit: i64) -> Result<i64> {
    let field = format!("{P}.swap");
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if limit == -1 {
        return Ok(-1);
    }
    if limit == 0 {
        return Err(Error::field(field, "a swap limit needs a memory limit (linux.resources.memory.limit)"));
    }
    if swap < limit {
        return Err(Error::field(field, format!("memory+swap {swap} is below the memory limit {limit}")));
    }
    Ok(swap - limit)
}

#[cfg(test)]
mod tests {
    #[test]
    fn swap_is_memory_plus_swap_on_v1_and_swap_alone_on_v2() {
        assert_eq!(super::swap_to_v2(300, 100).unwrap(), 200);
        assert_eq!(super::swap_to_v2(-1, 100).unwrap(), -1);
        assert_eq!(super::swap_to_v2(300, -1).unwrap(), -1);
        assert!(super::swap_to_v2(50, 100).is_err());
        assert!(super::swap_to_v2(50, 0).unwrap_err().to_string().contains("linux.resources.memory.swap"));
    }
}
