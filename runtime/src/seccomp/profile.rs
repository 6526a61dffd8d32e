//! linux.seccomp -> rules: what the filter must decide, per architecture and syscall,
//! before any BPF exists. Every decision that can fail is made here, naming the field.
//!
//! Semantics follow runc + libseccomp, so a profile behaves the same under strata:
//! - the native architecture is always filtered; x86 and x32 are added when listed;
//!   arches this host can't run are ignored (a docker profile lists them all);
//! - unknown syscall names are skipped with a debug line (profiles name syscalls newer
//!   or older than the running kernel's headers);
//! - a rule whose action equals the default action is dropped (runc does the same);
//! - a rule with several conditions on one argument index becomes one rule per
//!   condition (an OR), runc's "old behaviour" that profiles rely on;
//! - per syscall, rules with conditions are tried in profile order, then the first
//!   unconditional rule, then the default action.

use std::collections::BTreeMap;

use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};

use super::tables;
use crate::error::{Error, Result};
use crate::logging;

/// What a matching rule makes the kernel do (SECCOMP_RET_* with its data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    KillThread,
    KillProcess,
    Trap,
    Errno(u16),
    Trace(u16),
    Allow,
    Log,
    Notify,
}

impl Action {
    fn from_oci(a: LinuxSeccompAction, errno_ret: Option<u32>) -> Action {
        let data = errno_ret.unwrap_or(libc::EPERM as u32) as u16;
        match a {
            LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => Action::KillThread,
            LinuxSeccompAction::ScmpActKillProcess => Action::KillProcess,
            LinuxSeccompAction::ScmpActTrap => Action::Trap,
            LinuxSeccompAction::ScmpActErrno => Action::Errno(data),
            LinuxSeccompAction::ScmpActTrace => Action::Trace(data),
            LinuxSeccompAction::ScmpActAllow => Action::Allow,
            LinuxSeccompAction::ScmpActLog => Action::Log,
            LinuxSeccompAction::ScmpActNotify => Action::Notify,
        }
    }

    /// The filter's return value.
    pub fn ret(self) -> u32 {
        match self {
            Action::KillThread => libc::SECCOMP_RET_KILL_THREAD,
            Action::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
            Action::Trap => libc::SECCOMP_RET_TRAP,
            Action::Errno(e) => libc::SECCOMP_RET_ERRNO | e as u32,
            Action::Trace(e) => libc::SECCOMP_RET_TRACE | e as u32,
            Action::Allow => libc::SECCOMP_RET_ALLOW,
            Action::Log => libc::SECCOMP_RET_LOG,
            Action::Notify => libc::SECCOMP_RET_USER_NOTIF,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// (arg & mask) == datum
    MaskedEq {
        mask: u64,
    },
}

/// One argument comparison: `args[index] OP value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    pub index: u8,
    pub op: Op,
    pub value: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub action: Action,
    /// All must hold (AND); empty: the rule always matches.
    pub conds: Vec<Cond>,
}

/// The architectures a filter section serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ArchKind {
    X86_64,
    X32,
    I386,
}

impl ArchKind {
    fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            ArchKind::X86_64 => tables::X86_64,
            ArchKind::X32 => tables::X32,
            ArchKind::I386 => tables::I386,
        }
    }

    pub fn number(self, name: &str) -> Option<u32> {
        let t = self.table();
        t.binary_search_by(|(n, _)| (*n).cmp(name)).ok().map(|i| t[i].1)
    }
}

/// The checked profile: everything the BPF emitter needs.
#[derive(Debug)]
pub struct Rules {
    pub default: Action,
    /// Architectures filtered (native first), each with rules by syscall number.
    pub arches: BTreeMap<ArchKind, BTreeMap<u32, Vec<Rule>>>,
    pub has_notify: bool,
}

/// The host's native architecture in this build.
pub const NATIVE: ArchKind = ArchKind::X86_64;

pub fn convert(s: &LinuxSeccomp) -> Result<Rules> {
    let default = Action::from_oci(s.default_action(), s.default_errno_ret());
    let mut arches: BTreeMap<ArchKind, BTreeMap<u32, Vec<Rule>>> = BTreeMap::new();
    arches.insert(NATIVE, BTreeMap::new());
    for a in s.architectures().iter().flatten() {
        match a {
            Arch::ScmpArchNative | Arch::ScmpArchX86_64 => {}
            Arch::ScmpArchX86 => {
                arches.insert(ArchKind::I386, BTreeMap::new());
            }
            Arch::ScmpArchX32 => {
                arches.insert(ArchKind::X32, BTreeMap::new());
            }
            other => logging::debug(&format!("seccomp: architecture {other:?} can't run on this host: ignored")),
        }
    }
    let mut has_notify = default == Action::Notify;
    if has_notify {
        return Err(Error::field("linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY can't be the default action"));
    }
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let action = Action::from_oci(sc.action(), sc.errno_ret());
        if sc.errno_ret().is_some_and(|e| e > 0xffff) {
            return Err(Error::field(format!("{field}.errnoRet"), "must fit in 16 bits"));
        }
        if sc.errno_ret().is_some()
            && !matches!(sc.action(), LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace)
        {
            return Err(Error::field(
                format!("{field}.errnoRet"),
                "is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE",
            ));
        }
        if action == default {
            continue;
        }
        if sc.names().is_empty() {
            return Err(Error::field(format!("{field}.names"), "must name at least one syscall"));
        }
        let conds = convert_args(&field, sc.args().as_deref().unwrap_or(&[]))?;
        has_notify |= action == Action::Notify;
        let rules = split_same_index(action, conds);
        for name in sc.names() {
            let mut known = false;
            for (kind, by_nr) in arches.iter_mut() {
                if let Some(nr) = kind.number(name) {
                    known = true;
                    by_nr.entry(nr).or_default().extend(rules.iter().cloned());
                }
            }
            if !known {
                logging::debug(&format!("seccomp: {field}: unknown syscall {name:?}: skipped"));
            }
        }
    }
    if has_notify && s.listener_path().is_none() {
        return Err(Error::field("linux.seccomp.listenerPath", "is required when a rule uses SCMP_ACT_NOTIFY"));
    }
    Ok(Rules { default, arches, has_notify })
}

fn convert_args(field: &str, args: &[oci_spec::runtime::LinuxSeccompArg]) -> Result<Vec<Cond>> {
    let mut conds = Vec::with_capacity(args.len());
    for (j, a) in args.iter().enumerate() {
        if a.index() >= 6 {
            return Err(Error::field(
                format!("{field}.args[{j}].index"),
                format!("{} is not a syscall argument (0-5)", a.index()),
            ));
        }
        let (op, value) = match a.op() {
            LinuxSeccompOperator::ScmpCmpNe => (Op::Ne, a.value()),
            LinuxSeccompOperator::ScmpCmpLt => (Op::Lt, a.value()),
            LinuxSeccompOperator::ScmpCmpLe => (Op::Le, a.value()),
            LinuxSeccompOperator::ScmpCmpEq => (Op::Eq, a.value()),
            LinuxSeccompOperator::ScmpCmpGe => (Op::Ge, a.value()),
            LinuxSeccompOperator::ScmpCmpGt => (Op::Gt, a.value()),
            // runtime-spec: value is the mask, valueTwo the value compared after masking.
            LinuxSeccompOperator::ScmpCmpMaskedEq => (Op::MaskedEq { mask: a.value() }, a.value_two().unwrap_or(0)),
        };
        conds.push(Cond { index: a.index() as u8, op, value });
    }
    Ok(conds)
}

/// runc adds conditions that test one argument more than once as separate rules.
fn split_same_index(action: Action, conds: Vec<Cond>) -> Vec<Rule> {
    let mut seen = [0u8; 6];
    for c in &conds {
        seen[c.index as usize] += 1;
    }
    if seen.iter().any(|&n| n > 1) {
        conds.into_iter().map(|c| Rule { action, conds: vec![c] }).collect()
    } else {
        vec![Rule { action, conds }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> Result<Rules> {
        let s: LinuxSeccomp = serde_json::from_str(json).unwrap();
        convert(&s)
    }

    #[test]
    fn names_map_per_arch_and_unknown_names_are_skipped() {
        let r = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_AARCH64"],
            "syscalls":[{"names":["mkdir","no_such_call"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#).unwrap();
        assert_eq!(r.arches.len(), 2);
        assert_eq!(r.arches[&ArchKind::X86_64][&83], vec![Rule { action: Action::Errno(38), conds: vec![] }]);
        assert_eq!(r.arches[&ArchKind::I386][&39].len(), 1);
    }

    #[test]
    fn repeated_index_splits_into_or_rules_and_default_rules_drop() {
        let r = profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
            {"names":["read"],"action":"SCMP_ACT_ERRNO"}]}"#).unwrap();
        let x = &r.arches[&NATIVE];
        assert_eq!(x[&135].len(), 2);
        assert!(!x.contains_key(&0), "a rule equal to the default action is dropped");
    }

    #[test]
    fn bad_fields_are_named() {
        let e = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":7,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("linux.seccomp.syscalls[0].args[0].index"), "{e}");
        let e =
            profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#)
                .unwrap_err();
        assert!(e.to_string().contains("listenerPath"), "{e}");
    }
}
