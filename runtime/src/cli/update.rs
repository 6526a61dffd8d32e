//! `update [--resources FILE|-] ID` and runc's single-value flags. The file is a
//! runtime-spec `linux.resources` object; flags override it.

use std::io::Read;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxPids, LinuxResources};

use crate::container::{self, Store};
use crate::error::{Context, Error, Result};

#[derive(clap::Args)]
pub struct Args {
    /// A JSON linux.resources object to apply ("-" reads stdin).
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period (microseconds).
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota (microseconds, -1 for none).
    #[arg(long = "cpu-quota", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU realtime period (microseconds).
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime (microseconds).
    #[arg(long = "cpu-rt-runtime", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPUs to run on (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use (0-3, 0,1).
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Kernel memory limit (bytes, or 10k/10m/10g; -1 for none).
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Kernel TCP buffer memory limit.
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit.
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids (-1 for none).
    #[arg(long = "pids-limit", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// The container id.
    pub id: String,
}

pub fn run(store: &Store, a: &Args) -> Result<()> {
    let mut r = match &a.resources {
        Some(path) => read_resources(path)?,
        None => LinuxResources::default(),
    };
    flags_into(a, &mut r)?;
    container::update(store, &a.id, &r)
}

fn read_resources(path: &PathBuf) -> Result<LinuxResources> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).ctx(|| "read resources from stdin")?;
    } else {
        bytes = std::fs::read(path).ctx(|| format!("read {}", path.display()))?;
    }
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de)
        .map_err(|e| Error::Config { file: path.clone(), message: format!("{}: {}", e.path(), e.inner()) })
}

fn flags_into(a: &Args, r: &mut LinuxResources) -> Result<()> {
    let bytes = |flag: &str, v: &Option<String>| v.as_deref().map(|s| parse_bytes(flag, s)).transpose();
    let (limit, swap, reservation) = (
        bytes("--memory", &a.memory)?,
        bytes("--memory-swap", &a.memory_swap)?,
        bytes("--memory-reservation", &a.memory_reservation)?,
    );
    let (kernel, kernel_tcp) =
        (bytes("--kernel-memory", &a.kernel_memory)?, bytes("--kernel-memory-tcp", &a.kernel_memory_tcp)?);
    if [limit, swap, reservation, kernel, kernel_tcp].iter().any(Option::is_some) {
        let mut m = r.memory().unwrap_or_default();
        limit.map(|v| m.set_limit(Some(v)));
        swap.map(|v| m.set_swap(Some(v)));
        reservation.map(|v| m.set_reservation(Some(v)));
        kernel.map(|v| m.set_kernel(Some(v)));
        kernel_tcp.map(|v| m.set_kernel_tcp(Some(v)));
        r.set_memory(Some(m));
    }
    let cpu_set = a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpu_shares.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some();
    if cpu_set {
        let mut c = r.cpu().clone().unwrap_or_default();
        a.cpu_period.map(|v| c.set_period(Some(v)));
        a.cpu_quota.map(|v| c.set_quota(Some(v)));
        a.cpu_rt_period.map(|v| c.set_realtime_period(Some(v)));
        a.cpu_rt_runtime.map(|v| c.set_realtime_runtime(Some(v)));
        a.cpu_shares.map(|v| c.set_shares(Some(v)));
        a.cpuset_cpus.clone().map(|v| c.set_cpus(Some(v)));
        a.cpuset_mems.clone().map(|v| c.set_mems(Some(v)));
        r.set_cpu(Some(c));
    }
    if let Some(limit) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(())
}

/// "1024", "-1", "512k", "64m", "1g" (binary units, as runc's RAMInBytes).
fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    let bad = || Error::Refused(format!("{flag} {s:?}: not a size (bytes, or a number with k, m, g or t)"));
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix("ib").or_else(|| lower.strip_suffix('b')).unwrap_or(&lower);
    let (num, mult) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 1i64 << 10),
        Some('m') => (&lower[..lower.len() - 1], 1 << 20),
        Some('g') => (&lower[..lower.len() - 1], 1 << 30),
        Some('t') => (&lower[..lower.len() - 1], 1 << 40),
        _ => (lower, 1),
    };
    let n: i64 = num.trim().parse().map_err(|_| bad())?;
    if n < 0 {
        return Err(bad());
    }
    n.checked_mul(mult).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse_like_runcs() {
        assert_eq!(super::parse_bytes("--memory", "64m").unwrap(), 64 << 20);
        assert_eq!(super::parse_bytes("--memory", "1024").unwrap(), 1024);
        assert_eq!(super::parse_bytes("--memory", "2GB").unwrap(), 2 << 30);
        assert_eq!(super::parse_bytes("--memory", "-1").unwrap(), -1);
        assert!(super::parse_bytes("--memory", "lots").is_err());
    }
}
