//! strata's cgroup statistics as containerd's cgroups v1 `Metrics` (what `ctr task
//! metrics` and the CRI plugin decode for a runc-style shim).

use containerd_shim::protos::cgroups::metrics::{
    BlkIOEntry, BlkIOStat, CPUStat, CPUUsage, HugetlbStat, MemoryEntry, MemoryStat, Metrics, PidsStat, Throttle,
};
use strata::cgroups::stats::{self, Stats};

pub fn from_stats(s: &Stats) -> Metrics {
    let entry = |e: &stats::MemoryEntry| MemoryEntry {
        limit: e.limit,
        usage: e.usage,
        max: e.max,
        failcnt: e.failcnt,
        ..Default::default()
    };
    let raw = |k: &str| s.memory.raw.get(k).copied().unwrap_or(0);
    let memory = MemoryStat {
        cache: s.memory.cache,
        rss: raw("rss"),
        rss_huge: raw("rss_huge"),
        mapped_file: raw("mapped_file"),
        dirty: raw("dirty"),
        writeback: raw("writeback"),
        pg_fault: raw("pgfault"),
        pg_maj_fault: raw("pgmajfault"),
        inactive_anon: raw("inactive_anon"),
        active_anon: raw("active_anon"),
        inactive_file: raw("inactive_file"),
        active_file: raw("active_file"),
        unevictable: raw("unevictable"),
        hierarchical_memory_limit: raw("hierarchical_memory_limit"),
        total_cache: raw("total_cache"),
        total_rss: raw("total_rss"),
        usage: Some(entry(&s.memory.usage)).into(),
        swap: Some(entry(&s.memory.swap)).into(),
        kernel: Some(entry(&s.memory.kernel)).into(),
        kernel_tcp: Some(entry(&s.memory.kernel_tcp)).into(),
        ..Default::default()
    };
    let cpu = CPUStat {
        usage: Some(CPUUsage {
            total: s.cpu.usage.total,
            kernel: s.cpu.usage.kernel,
            user: s.cpu.usage.user,
            per_cpu: s.cpu.usage.percpu.clone(),
            ..Default::default()
        })
        .into(),
        throttling: Some(Throttle {
            periods: s.cpu.throttling.periods,
            throttled_periods: s.cpu.throttling.throttled_periods,
            throttled_time: s.cpu.throttling.throttled_time,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    let blk = |v: &[stats::BlkioEntry]| -> Vec<BlkIOEntry> {
        v.iter()
            .map(|e| BlkIOEntry {
                op: e.op.clone(),
                major: e.major,
                minor: e.minor,
                value: e.value,
                ..Default::default()
            })
            .collect()
    };
    Metrics {
        pids: Some(PidsStat { current: s.pids.current, limit: s.pids.limit, ..Default::default() }).into(),
        cpu: Some(cpu).into(),
        memory: Some(memory).into(),
        blkio: Some(BlkIOStat {
            io_service_bytes_recursive: blk(&s.blkio.io_service_bytes_recursive),
            io_serviced_recursive: blk(&s.blkio.io_serviced_recursive),
            ..Default::default()
        })
        .into(),
        hugetlb: s
            .hugetlb
            .iter()
            .map(|(size, h)| HugetlbStat {
                usage: h.usage,
                max: h.max,
                failcnt: h.failcnt,
                pagesize: size.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
