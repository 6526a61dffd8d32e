//! Resource usage of a container's cgroup in runc's `events` JSON shape
//! (libcontainer/cgroups' Stats as runc's types/events.go prints it), read from v1
//! or v2 files, whichever hierarchy holds each controller.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{fs, Cgroup};

/// v2 reports CPU times in microseconds; runc's stats (v1's cpuacct) are in nanoseconds.
const NS_PER_USEC: u64 = 1000;

fn zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize, Default, Debug)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

#[derive(Serialize, Default, Debug)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Serialize, Default, Debug)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(skip_serializing_if = "zero")]
    pub kernel: u64,
    #[serde(skip_serializing_if = "zero")]
    pub user: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Throttling {
    #[serde(skip_serializing_if = "zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Memory {
    #[serde(skip_serializing_if = "zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Serialize, Default, Debug)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Pids {
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

#[derive(Serialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Serialize, Default, Debug)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Everything readable now; a controller the host lacks leaves its part empty.
pub fn collect(cg: &Cgroup) -> Stats {
    let mut s = Stats::default();
    if let Some((d, _)) = cg.find_controller("cpu") {
        let stat = "cpu.stat";
        s.cpu.throttling.periods = fs::keyed(&d.dir, stat, "nr_periods").unwrap_or(0);
        s.cpu.throttling.throttled_periods = fs::keyed(&d.dir, stat, "nr_throttled").unwrap_or(0);
        s.cpu.throttling.throttled_time = fs::keyed(&d.dir, stat, "throttled_time")
            .or_else(|| fs::keyed(&d.dir, stat, "throttled_usec").map(|u| u * NS_PER_USEC))
            .unwrap_or(0);
        if d.v2 {
            s.cpu.usage.total = fs::keyed(&d.dir, stat, "usage_usec").unwrap_or(0) * NS_PER_USEC;
            s.cpu.usage.user = fs::keyed(&d.dir, stat, "user_usec").unwrap_or(0) * NS_PER_USEC;
            s.cpu.usage.kernel = fs::keyed(&d.dir, stat, "system_usec").unwrap_or(0) * NS_PER_USEC;
        }
    }
    if let Some((d, _)) = cg.find_controller("cpuacct") {
        s.cpu.usage.total = fs::read_u64(&d.dir, "cpuacct.usage").unwrap_or(0);
        s.cpu.usage.percpu = fs::read(&d.dir, "cpuacct.usage_percpu")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        s.cpu.usage.user = fs::read_u64(&d.dir, "cpuacct.usage_user").unwrap_or(0);
        s.cpu.usage.kernel = fs::read_u64(&d.dir, "cpuacct.usage_sys").unwrap_or(0);
    }
    if let Some((d, _)) = cg.find_controller("memory") {
        memory(&d.dir, d.v2, &mut s.memory);
    }
    if let Some((d, _)) = cg.find_controller("pids") {
        s.pids.current = fs::read_u64(&d.dir, "pids.current").unwrap_or(0);
        s.pids.limit = fs::read_u64(&d.dir, "pids.max").filter(|v| *v != u64::MAX).unwrap_or(0);
    }
    if let Some((d, _)) = cg.find_controller("blkio") {
        s.blkio.io_service_bytes_recursive = blkio_v1(&d.dir, "blkio.throttle.io_service_bytes_recursive");
        s.blkio.io_serviced_recursive = blkio_v1(&d.dir, "blkio.throttle.io_serviced_recursive");
    } else if let Some((d, _)) = cg.find_controller("io") {
        (s.blkio.io_service_bytes_recursive, s.blkio.io_serviced_recursive) = io_v2(&d.dir);
    }
    if let Some((d, _)) = cg.find_controller("hugetlb") {
        for size in super::resources::page_sizes() {
            let h = if d.v2 {
                Hugetlb {
                    usage: fs::read_u64(&d.dir, &format!("hugetlb.{size}.current")).unwrap_or(0),
                    max: 0,
                    failcnt: fs::keyed(&d.dir, &format!("hugetlb.{size}.events"), "max").unwrap_or(0),
                }
            } else {
                Hugetlb {
                    usage: fs::read_u64(&d.dir, &format!("hugetlb.{size}.usage_in_bytes")).unwrap_or(0),
                    max: fs::read_u64(&d.dir, &format!("hugetlb.{size}.max_usage_in_bytes")).unwrap_or(0),
                    failcnt: fs::read_u64(&d.dir, &format!("hugetlb.{size}.failcnt")).unwrap_or(0),
                }
            };
            s.hugetlb.insert(size, h);
        }
    }
    s
}

fn memory(dir: &Path, v2: bool, m: &mut Memory) {
    let num = |f: &str| fs::read_u64(dir, f).unwrap_or(0);
    m.raw = fs::read_keyed(dir, "memory.stat").into_iter().collect();
    if v2 {
        m.cache = m.raw.get("file").copied().unwrap_or(0);
        m.usage =
            MemoryEntry { limit: num("memory.max"), usage: num("memory.current"), max: num("memory.peak"), failcnt: 0 };
        m.usage.failcnt = fs::keyed(dir, "memory.events", "max").unwrap_or(0);
        m.swap = MemoryEntry {
            limit: num("memory.swap.max"),
            usage: num("memory.swap.current"),
            max: num("memory.swap.peak"),
            failcnt: 0,
        };
    } else {
        m.cache = m.raw.get("total_cache").or(m.raw.get("cache")).copied().unwrap_or(0);
        let entry = |p: &str| MemoryEntry {
            limit: num(&format!("{p}.limit_in_bytes")),
            usage: num(&format!("{p}.usage_in_bytes")),
            max: num(&format!("{p}.max_usage_in_bytes")),
            failcnt: num(&format!("{p}.failcnt")),
        };
        m.usage = entry("memory");
        m.swap = entry("memory.memsw");
        m.kernel = entry("memory.kmem");
        m.kernel_tcp = entry("memory.kmem.tcp");
    }
}

/// "8:0 Read 4096" lines.
fn blkio_v1(dir: &Path, file: &str) -> Vec<BlkioEntry> {
    fs::read(dir, file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            let (dev, op, value) = (p.next()?, p.next()?, p.next()?);
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.into(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// io.stat "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." as runc's Read/Write entries.
fn io_v2(dir: &Path) -> (Vec<BlkioEntry>, Vec<BlkioEntry>) {
    let (mut bytes, mut ios) = (Vec::new(), Vec::new());
    for line in fs::read(dir, "io.stat").unwrap_or_default().lines() {
        let mut p = line.split_whitespace();
        let Some((major, minor)) = p.next().and_then(|d| d.split_once(':')) else { continue };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else { continue };
        for kv in p {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "Read"),
                "wbytes" => (&mut bytes, "Write"),
                "rios" => (&mut ios, "Read"),
                "wios" => (&mut ios, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry { major, minor, op: op.into(), value });
        }
    }
    (bytes, ios)
}

/// How many times the kernel's OOM killer has killed in the cgroup (v1 oom_control's
/// and v2 memory.events' `oom_kill`).
pub fn oom_kills(cg: &Cgroup) -> u64 {
    match cg.find_controller("memory") {
        Some((d, _)) if d.v2 => fs::keyed(&d.dir, "memory.events", "oom_kill").unwrap_or(0),
        Some((d, _)) => fs::keyed(&d.dir, "memory.oom_control", "oom_kill").unwrap_or(0),
        None => 0,
    }
}
