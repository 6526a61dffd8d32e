//! linux.memoryPolicy (runtime-spec 1.3): the NUMA policy of the container's processes,
//! set with set_mempolicy(2) by the init just before it execs (the policy is per task,
//! kept across execve and inherited by children, as runc 1.4 does it).
//!
//! Everything the kernel would refuse for a reason the config alone shows (a mode that
//! needs nodes and has none, or the reverse; both MPOL_F_STATIC_NODES and
//! MPOL_F_RELATIVE_NODES; a node this host doesn't have) is refused by [`validate`]
//! before anything is created, naming the field. Which modes take MPOL_F_NUMA_BALANCING
//! depends on the kernel: its EINVAL comes back from the init, naming the field too.

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Spec};

use crate::error::{Error, Result};

// <linux/mempolicy.h>
const MPOL_DEFAULT: i32 = 0;
const MPOL_PREFERRED: i32 = 1;
const MPOL_BIND: i32 = 2;
const MPOL_INTERLEAVE: i32 = 3;
const MPOL_LOCAL: i32 = 4;
const MPOL_PREFERRED_MANY: i32 = 5;
const MPOL_WEIGHTED_INTERLEAVE: i32 = 6;
const MPOL_F_STATIC_NODES: i32 = 1 << 15;
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;

/// The modes and flags this runtime knows, for `features` (their spec names).
pub const MODES: [&str; 7] = [
    "MPOL_DEFAULT",
    "MPOL_PREFERRED",
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_LOCAL",
    "MPOL_PREFERRED_MANY",
    "MPOL_WEIGHTED_INTERLEAVE",
];
pub const FLAGS: [&str; 3] = ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"];

/// set_mempolicy's arguments, computed before the clone.
#[derive(Debug, PartialEq, Eq)]
pub struct Policy {
    /// The mode or'ed with its flags.
    pub mode: i32,
    /// The node mask, in unsigned longs, with a zero word to spare (see [`Policy::apply`]).
    pub mask: Vec<u64>,
}

/// Checks linux.memoryPolicy against the rules above and this host's nodes.
pub fn validate(spec: &Spec) -> Result<()> {
    // sysfs is read only when the field is set: create's hot path stays free of it.
    if spec.linux().as_ref().and_then(|l| l.memory_policy().as_ref()).is_none() {
        return Ok(());
    }
    plan(spec, Some(&possible_nodes())).map(|_| ())
}

/// The policy to set, or None without linux.memoryPolicy. Node numbers are checked
/// against `host_nodes` when given.
pub fn plan(spec: &Spec, host_nodes: Option<&[u32]>) -> Result<Option<Policy>> {
    let Some(mp) = spec.linux().as_ref().and_then(|l| l.memory_policy().as_ref()) else { return Ok(None) };
    policy(mp, host_nodes).map(Some)
}

fn policy(mp: &LinuxMemoryPolicy, host_nodes: Option<&[u32]>) -> Result<Policy> {
    let (mode, name) = match mp.mode() {
        MemoryPolicyModeType::MpolDefault => (MPOL_DEFAULT, "MPOL_DEFAULT"),
        MemoryPolicyModeType::MpolPreferred => (MPOL_PREFERRED, "MPOL_PREFERRED"),
        MemoryPolicyModeType::MpolBind => (MPOL_BIND, "MPOL_BIND"),
        MemoryPolicyModeType::MpolInterleave => (MPOL_INTERLEAVE, "MPOL_INTERLEAVE"),
        MemoryPolicyModeType::MpolLocal => (MPOL_LOCAL, "MPOL_LOCAL"),
        MemoryPolicyModeType::MpolPreferredMany => (MPOL_PREFERRED_MANY, "MPOL_PREFERRED_MANY"),
        MemoryPolicyModeType::MpolWeightedInterleave => (MPOL_WEIGHTED_INTERLEAVE, "MPOL_WEIGHTED_INTERLEAVE"),
    };
    let mut flags = 0;
    for f in mp.flags().iter().flatten() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => MPOL_F_NUMA_BALANCING,
            MemoryPolicyFlagType::MpolFRelativeNodes => MPOL_F_RELATIVE_NODES,
            MemoryPolicyFlagType::MpolFStaticNodes => MPOL_F_STATIC_NODES,
        };
    }
    if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 {
        return Err(Error::field(
            "linux.memoryPolicy.flags",
            "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
        ));
    }
    let nodes =
        parse_nodes(mp.nodes().as_deref().unwrap_or("")).map_err(|e| Error::field("linux.memoryPolicy.nodes", e))?;
    match mode {
        MPOL_DEFAULT | MPOL_LOCAL if !nodes.is_empty() => {
            return Err(Error::field("linux.memoryPolicy.nodes", format!("must be empty for {name}")))
        }
        MPOL_BIND | MPOL_INTERLEAVE | MPOL_WEIGHTED_INTERLEAVE | MPOL_PREFERRED_MANY if nodes.is_empty() => {
            return Err(Error::field("linux.memoryPolicy.nodes", format!("{name} needs at least one node")))
        }
        _ => {}
    }
    // Relative node numbers are taken modulo the allowed set: any number will do.
    if let Some(host_nodes) = host_nodes.filter(|_| flags & MPOL_F_RELATIVE_NODES == 0) {
        if let Some(n) = nodes.iter().find(|n| !host_nodes.contains(n)) {
            return Err(Error::field(
                "linux.memoryPolicy.nodes",
                format!("node {n} does not exist on this host (nodes: {})", render(host_nodes)),
            ));
        }
    }
    let words = nodes.iter().max().map_or(0, |&m| m as usize / 64 + 1) + 1;
    let mut mask = vec![0u64; words];
    for n in nodes {
        mask[n as usize / 64] |= 1 << (n % 64);
    }
    Ok(Policy { mode: mode | flags, mask })
}

impl Policy {
    /// set_mempolicy for the calling task (the init, before it execs).
    pub fn apply(&self) -> Result<()> {
        // The kernel reads maxnode-1 bits: the last word is a spare of zeros.
        let maxnode = (self.mask.len() * 64) as libc::c_ulong;
        // SAFETY: the mask is a live buffer of maxnode bits.
        let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, self.mode, self.mask.as_ptr(), maxnode) };
        nix::errno::Errno::result(r)
            .map(drop)
            .map_err(|e| Error::field("linux.memoryPolicy", format!("set_mempolicy: {}", e.desc())))
    }
}

/// Sets the spec's policy, if any, on the calling task (the nodes were checked by
/// [`validate`] before the clone; the container's /sys may not be the host's).
pub fn apply(spec: &Spec) -> Result<()> {
    match plan(spec, None)? {
        Some(p) => p.apply(),
        None => Ok(()),
    }
}

/// Parses a node list: "0-3,5" (the kernel's list format; empty for none).
pub fn parse_nodes(s: &str) -> std::result::Result<Vec<u32>, String> {
    let mut nodes = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |x: &str| x.trim().parse::<u32>().map_err(|_| format!("{s:?}: {x:?} is not a node number"));
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if a > b {
            return Err(format!("{s:?}: range {part:?} runs backwards"));
        }
        if b >= 4096 {
            return Err(format!("{s:?}: node {b} is beyond any kernel's limit"));
        }
        nodes.extend(a..=b);
    }
    nodes.sort_unstable();
    nodes.dedup();
    Ok(nodes)
}

/// The host's possible NUMA nodes (node 0 alone where sysfs doesn't tell).
fn possible_nodes() -> Vec<u32> {
    std::fs::read_to_string("/sys/devices/system/node/possible")
        .ok()
        .and_then(|s| parse_nodes(s.trim()).ok())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![0])
}

fn render(nodes: &[u32]) -> String {
    nodes.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(json: serde_json::Value) -> LinuxMemoryPolicy {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn node_lists_parse_like_the_kernels() {
        assert_eq!(parse_nodes("0-2,5,1").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(parse_nodes("").unwrap(), Vec::<u32>::new());
        assert!(parse_nodes("3-1").is_err());
        assert!(parse_nodes("a").is_err());
        assert!(parse_nodes("0-99999").is_err());
    }

    #[test]
    fn modes_flags_and_masks() {
        let p = policy(&mp(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0,65"})), Some(&[0, 65])).unwrap();
        assert_eq!(p.mode, MPOL_BIND);
        assert_eq!(p.mask, vec![1, 2, 0]);
        let p = policy(
            &mp(serde_json::json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]})),
            Some(&[0]),
        )
        .unwrap();
        assert_eq!(p.mode, MPOL_INTERLEAVE | MPOL_F_STATIC_NODES);
        assert_eq!(p.mask, vec![1, 0]);
        let p = policy(&mp(serde_json::json!({"mode": "MPOL_PREFERRED"})), Some(&[0])).unwrap();
        assert_eq!(p, Policy { mode: MPOL_PREFERRED, mask: vec![0] });
        // Relative node numbers need not exist.
        assert!(policy(
            &mp(serde_json::json!({"mode": "MPOL_BIND", "nodes": "3", "flags": ["MPOL_F_RELATIVE_NODES"]})),
            Some(&[0])
        )
        .is_ok());
    }

    #[test]
    fn bad_policies_name_the_field() {
        let err = |j| policy(&mp(j), Some(&[0])).unwrap_err().to_string();
        assert!(err(serde_json::json!({"mode": "MPOL_BIND"})).contains("linux.memoryPolicy.nodes"));
        assert!(err(serde_json::json!({"mode": "MPOL_DEFAULT", "nodes": "0"})).contains("linux.memoryPolicy.nodes"));
        assert!(err(serde_json::json!({"mode": "MPOL_BIND", "nodes": "7"})).contains("node 7 does not exist"));
        assert!(err(serde_json::json!({"mode": "MPOL_BIND", "nodes": "0-x"})).contains("linux.memoryPolicy.nodes"));
        let both = serde_json::json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]});
        assert!(err(both).contains("linux.memoryPolicy.flags"));
    }
}
