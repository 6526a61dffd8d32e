//! `linux.resources` applied to a container's cgroup, one file per controller. Each
//! file knows its v1 files and its v2 files and runc's conversions between them, so
//! one config means the same on a v1, a v2 and a hybrid host. A controller the host
//! lacks, or a value the kernel rejects, is an error naming the field.

mod blkio;
mod cpu;
pub mod devices;
mod hugetlb;
mod memory;
mod network;
mod pids;
mod rdma;
mod unified;

use oci_spec::runtime::LinuxResources;

use super::Cgroup;
use crate::error::Result;
pub use blkio::blkio_weight_to_io_weight;
pub use cpu::shares_to_weight;
pub use devices::DeviceRule;
pub use hugetlb::page_sizes;
pub use memory::swap_to_v2;

/// Writes every field of `r` that is set. `devices` are the rules to install (the
/// config's plus the defaults every container gets); None leaves the device cgroup
/// alone (`update` never changes it, as runc's doesn't).
///
/// A container configured into the host's own cgroup (the root, or the runtime's) gets
/// no limits: they would bind the host. Device rules are skipped there and any other
/// field is an error. A systemd unit's cgroup gets them as unit properties first.
pub fn apply(cg: &Cgroup, r: &LinuxResources, devices: Option<&[DeviceRule]>) -> Result<()> {
    if let Some(unit) = &cg.systemd {
        cg.ensure_container_owned("set limits")?;
        super::systemd::set_resources(cg, unit, r, devices)?;
    }
    write_files(cg, r, devices)
}

/// [`apply`]'s cgroupfs half: every field set in `r`, written to the files.
pub fn write_files(cg: &Cgroup, r: &LinuxResources, devices: Option<&[DeviceRule]>) -> Result<()> {
    if cg.ensure_container_owned("set limits").is_err() {
        let mut rest = r.clone();
        rest.set_devices(None);
        if rest != LinuxResources::default() {
            return Err(crate::Error::field(
                "linux.resources",
                "the container's cgroup (linux.cgroupsPath) is the host's root cgroup or the runtime's own: refusing to set limits on it",
            ));
        }
        return Ok(());
    }
    if let Some(m) = r.memory() {
        memory::apply(cg, m)?;
    }
    if let Some(c) = r.cpu() {
        cpu::apply(cg, c)?;
    }
    if let Some(p) = r.pids() {
        pids::apply(cg, p.limit())?;
    }
    if let Some(b) = r.block_io() {
        blkio::apply(cg, b)?;
    }
    if let Some(h) = r.hugepage_limits() {
        hugetlb::apply(cg, h)?;
    }
    if let Some(n) = r.network() {
        network::apply(cg, n)?;
    }
    if let Some(rd) = r.rdma() {
        rdma::apply(cg, rd)?;
    }
    if let Some(u) = r.unified() {
        unified::apply(cg, u)?;
    }
    if let Some(rules) = devices {
        devices::apply(cg, rules)?;
    }
    Ok(())
}

/// The value to write for a limit where -1 means "no limit": v1 takes "-1", v2 "max".
fn limit_value(v: i64, v2: bool) -> String {
    if v < 0 && v2 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Rejects values below -1 (the only negative a limit may take).
fn check_limit(field: &str, v: i64) -> Result<()> {
    if v < -1 {
        return Err(crate::Error::field(field, format!("{v} is negative (use -1 for no limit)")));
    }
    Ok(())
}
