//! Per-process kernel attributes from config.json: rlimits, oom_score_adj, I/O
//! priority, scheduler, personality. [`build`] computes them in the parent (every
//! check and conversion there); [`apply`] sets them in the container process through
//! [`Sys`], while it is still root and before the seccomp filter goes in.

use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimitType, Process, Spec,
};

use super::syscalls::{ProcWriteError, Sys};
use crate::error::{Error, Result};

#[derive(Debug, Default)]
pub struct Attrs {
    pub rlimits: Vec<Rlimit>,
    pub oom_score_adj: Option<i32>,
    /// ioprio_set's value: class << 13 | level.
    pub io_priority: Option<i64>,
    pub scheduler: Option<SchedAttr>,
    pub personality: Option<libc::c_ulong>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub index: usize,
    pub typ: PosixRlimitType,
    pub resource: libc::__rlimit_resource_t,
    pub soft: u64,
    pub hard: u64,
}

/// The process's attributes, checked and converted (the parent, before the fork).
pub fn build(spec: &Spec, process: &Process) -> Result<Attrs> {
    let rlimits = process
        .rlimits()
        .iter()
        .flatten()
        .enumerate()
        .map(|(index, r)| Rlimit {
            index,
            typ: r.typ(),
            resource: rlimit_resource(r.typ()),
            soft: r.soft(),
            hard: r.hard(),
        })
        .collect();
    Ok(Attrs {
        rlimits,
        oom_score_adj: process.oom_score_adj(),
        io_priority: io_priority(process)?,
        scheduler: scheduler(process),
        personality: personality(spec)?,
    })
}

/// Sets them, in this order (the container process, before the filter).
pub fn apply(a: &Attrs, sys: &mut impl Sys) -> Result<()> {
    for r in &a.rlimits {
        sys.setrlimit(r.resource, r.soft, r.hard).map_err(|e| {
            let msg = format!("{:?} soft {} hard {}: {}", r.typ, r.soft, r.hard, e.desc());
            Error::field(format!("process.rlimits[{}]", r.index), msg)
        })?;
    }
    if let Some(adj) = a.oom_score_adj {
        sys.write_proc("self/oom_score_adj", adj.to_string().as_bytes()).map_err(|e| {
            let (ProcWriteError::Open(e) | ProcWriteError::Write(e)) = e;
            Error::field("process.oomScoreAdj", std::io::Error::from(e).to_string())
        })?;
    }
    if let Some(v) = a.io_priority {
        sys.ioprio_set(v).map_err(|e| Error::field("process.ioPriority", e.desc()))?;
    }
    if let Some(attr) = &a.scheduler {
        sys.sched_setattr(attr).map_err(|e| Error::field("process.scheduler", e.desc()))?;
    }
    if let Some(p) = a.personality {
        sys.personality(p).map_err(|e| Error::field("linux.personality", e.desc()))?;
    }
    Ok(())
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// linux/ioprio.h: which = a process (0: the caller), class above the level bits.
pub const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_SHIFT: i64 = 13;

/// class << 13 | level, for ioprio_set(IOPRIO_WHO_PROCESS, self, ...).
fn io_priority(process: &Process) -> Result<Option<i64>> {
    let Some(io) = process.io_priority() else { return Ok(None) };
    let class: i64 = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&io.priority()) {
        return Err(Error::field("process.ioPriority.priority", format!("{} is not in 0..7", io.priority())));
    }
    Ok(Some((class << IOPRIO_CLASS_SHIFT) | io.priority()))
}

/// The kernel's struct sched_attr (sched_setattr(2)).
#[repr(C)]
#[derive(Default, Debug, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub sched_policy: u32,
    pub sched_flags: u64,
    pub sched_nice: i32,
    pub sched_priority: u32,
    pub sched_runtime: u64,
    pub sched_deadline: u64,
    pub sched_period: u64,
    pub sched_util_min: u32,
    pub sched_util_max: u32,
}

fn scheduler(process: &Process) -> Option<SchedAttr> {
    let s = process.scheduler().as_ref()?;
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    Some(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        ..Default::default()
    })
}

/// linux/personality.h execution domains.
const PER_LINUX: libc::c_ulong = 0x0000;
const PER_LINUX32: libc::c_ulong = 0x0008;

fn personality(spec: &Spec) -> Result<Option<libc::c_ulong>> {
    let Some(p) = spec.linux().as_ref().and_then(|l| l.personality().as_ref()) else { return Ok(None) };
    let persona: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    };
    if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Error::field("linux.personality.flags", "no personality flags are supported"));
    }
    Ok(Some(persona))
}
