//! Rules -> classic BPF. Emitted here rather than by seccompiler: seccompiler gives a
//! whole filter one match action while OCI profiles choose an action per rule, it has
//! no NOTIFY (SCMP_ACT_NOTIFY, seccomp agents), and it targets neither i386 nor x32.
//!
//! Shape (libseccomp's, without its binary tree):
//! ```text
//! ld arch; for each arch: jeq AUDIT_ARCH -> section          else: ret KILL_THREAD
//! section: ld nr; [x86_64: nr >= X32 bit -> x32 body or bad arch]
//! body:    [nr > last syscall named -> ENOSYS]  runs of jeq -> one ret per action
//!          conditional blocks: jne nr -> skip; rule: compare args (64-bit as two
//!          32-bit halves), ret action; ...; ret fallback
//!          ret default
//! ```
//! Conditional jumps have 8-bit offsets: runs are chunked and long blocks are
//! skipped with `ja`, so any profile that fits in BPF_MAXINSNS compiles.

use std::collections::BTreeMap;

use libc::sock_filter;

use super::profile::{Action, ArchKind, Cond, Op, Rule, Rules};
use crate::error::{Error, Result};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const ENOSYS: u16 = libc::ENOSYS as u16;
/// The kernel's limit on a filter's length.
const BPF_MAXINSNS: usize = 4096;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;

/// struct seccomp_data offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg_lo(i: u8) -> u32 {
    16 + 8 * i as u32
}

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter { code, jt: 0, jf: 0, k }
}
fn jmp(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}
fn ret(a: Action) -> sock_filter {
    stmt(RET_K, a.ret())
}

/// Compiles `rules` into a program the kernel accepts.
pub fn emit(rules: &Rules) -> Result<Vec<sock_filter>> {
    let bad_arch = Action::KillThread;
    let enosys_stub = !matches!(rules.default, Action::Allow | Action::Log | Action::Errno(ENOSYS));
    let mut sections: Vec<(u32, Vec<sock_filter>)> = Vec::new();
    let body = |kind: ArchKind| -> Result<Vec<sock_filter>> {
        let empty = BTreeMap::new();
        let by_nr = rules.arches.get(&kind).unwrap_or(&empty);
        let base = if kind == ArchKind::X32 { X32_SYSCALL_BIT } else { 0 };
        arch_body(by_nr, base, rules.default, enosys_stub, kind != ArchKind::I386)
    };
    let mut x86_64 = vec![stmt(LD_W_ABS, OFF_NR)];
    if rules.arches.contains_key(&ArchKind::X32) {
        let own = body(ArchKind::X86_64)?;
        x86_64.push(jmp(JGE, X32_SYSCALL_BIT, 0, 1));
        x86_64.push(stmt(JA, own.len() as u32));
        x86_64.extend(own);
        x86_64.extend(body(ArchKind::X32)?);
    } else {
        // An x32 call through an x86_64 filter without x32: libseccomp's bad arch.
        x86_64.push(jmp(JGE, X32_SYSCALL_BIT, 0, 1));
        x86_64.push(ret(bad_arch));
        x86_64.extend(body(ArchKind::X86_64)?);
    }
    sections.push((AUDIT_ARCH_X86_64, x86_64));
    if rules.arches.contains_key(&ArchKind::I386) {
        let mut s = vec![stmt(LD_W_ABS, OFF_NR)];
        s.extend(body(ArchKind::I386)?);
        sections.push((AUDIT_ARCH_I386, s));
    }

    let mut prog = vec![stmt(LD_W_ABS, OFF_ARCH)];
    for (audit, s) in sections {
        // The right arch skips the `ja` that jumps over its section.
        prog.push(jmp(JEQ, audit, 1, 0));
        prog.push(stmt(JA, s.len() as u32));
        prog.extend(s);
    }
    prog.push(ret(bad_arch));
    if prog.len() > BPF_MAXINSNS {
        return Err(Error::field(
            "linux.seccomp",
            format!("the profile compiles to {} BPF instructions, more than the kernel's {BPF_MAXINSNS}", prog.len()),
        ));
    }
    Ok(prog)
}

/// One architecture's dispatch on the syscall number (A holds nr on entry).
/// `wide`: arguments are 64-bit (on i386 only the low words are compared, as libseccomp does).
fn arch_body(
    by_nr: &BTreeMap<u32, Vec<Rule>>,
    base: u32,
    default: Action,
    enosys_stub: bool,
    wide: bool,
) -> Result<Vec<sock_filter>> {
    let mut out = Vec::new();
    if enosys_stub {
        // Syscalls newer than any the profile names answer ENOSYS, so libcs fall back
        // (clone3, faccessat2 ...) instead of meeting the default action (runc does this).
        if let Some(&last) = by_nr.keys().next_back() {
            out.push(jmp(JGT, base | last, 0, 1));
            out.push(ret(Action::Errno(ENOSYS)));
        }
    }
    // Unconditional rules, grouped by action: one jeq each, sharing one ret.
    let mut plain: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    let mut actions: Vec<Action> = Vec::new();
    let mut conditional: Vec<(u32, &Vec<Rule>)> = Vec::new();
    for (&nr, list) in by_nr {
        if list.iter().all(|r| r.conds.is_empty()) {
            let a = list[0].action;
            let key = match actions.iter().position(|x| *x == a) {
                Some(k) => k,
                None => {
                    actions.push(a);
                    actions.len() - 1
                }
            } as u32;
            plain.entry(key).or_default().push(base | nr);
        } else {
            conditional.push((base | nr, list));
        }
    }
    for (key, nrs) in &plain {
        for chunk in nrs.chunks(200) {
            let k = chunk.len();
            for (i, nr) in chunk.iter().enumerate() {
                if i + 1 == k {
                    out.push(jmp(JEQ, *nr, 0, 1));
                } else {
                    out.push(jmp(JEQ, *nr, (k - i - 1) as u8, 0));
                }
            }
            out.push(ret(actions[*key as usize]));
        }
    }
    for (nr, list) in conditional {
        let block = syscall_block(list, default, wide)?;
        if block.len() <= 255 {
            out.push(jmp(JEQ, nr, 0, block.len() as u8));
        } else {
            out.push(jmp(JEQ, nr, 1, 0));
            out.push(stmt(JA, block.len() as u32));
        }
        out.extend(block);
    }
    out.push(ret(default));
    Ok(out)
}

/// The rules of one syscall: each rule's comparisons then its ret; last the first
/// unconditional rule's action (or the default).
fn syscall_block(list: &[Rule], default: Action, wide: bool) -> Result<Vec<sock_filter>> {
    let mut out = Vec::new();
    for rule in list.iter().filter(|r| !r.conds.is_empty()) {
        out.extend(rule_insns(rule, wide)?);
    }
    let fallback = list.iter().find(|r| r.conds.is_empty()).map_or(default, |r| r.action);
    out.push(ret(fallback));
    Ok(out)
}

/// A jump target inside one rule, resolved once the rule's length is known.
#[derive(Clone, Copy)]
enum T {
    /// The next instruction.
    Go,
    /// The end of this comparison: it held.
    Next,
    /// Past the rule's ret: it did not hold.
    Fail,
}

struct P {
    code: u16,
    k: u32,
    jt: T,
    jf: T,
}

fn rule_insns(rule: &Rule, wide: bool) -> Result<Vec<sock_filter>> {
    // (instruction, index of the end of its comparison)
    let mut pending: Vec<(P, usize)> = Vec::new();
    for c in &rule.conds {
        let seq = compare(c, wide);
        let end = pending.len() + seq.len();
        pending.extend(seq.into_iter().map(|p| (p, end)));
    }
    let total = pending.len() + 1; // + ret
    let resolve = |t: T, at: usize, end: usize| -> Result<u8> {
        let target = match t {
            T::Go => at + 1,
            T::Next => end,
            T::Fail => total,
        };
        u8::try_from(target - at - 1)
            .map_err(|_| Error::field("linux.seccomp", "a rule has too many argument conditions"))
    };
    let mut out = Vec::with_capacity(total);
    for (i, (p, end)) in pending.iter().enumerate() {
        let is_jump = p.code & 0x07 == libc::BPF_JMP as u16;
        let (jt, jf) = if is_jump { (resolve(p.jt, i, *end)?, resolve(p.jf, i, *end)?) } else { (0, 0) };
        out.push(jmp(p.code, p.k, jt, jf));
    }
    out.push(ret(rule.action));
    Ok(out)
}

/// One 64-bit comparison as 32-bit halves (the high word first).
fn compare(c: &Cond, wide: bool) -> Vec<P> {
    let lo_off = off_arg_lo(c.index);
    let hi_off = lo_off + 4;
    let (v_hi, v_lo) = ((c.value >> 32) as u32, c.value as u32);
    let ld = |off| P { code: LD_W_ABS, k: off, jt: T::Go, jf: T::Go };
    let j = |code, k, jt, jf| P { code, k, jt, jf };
    if !wide {
        return match c.op {
            Op::Eq => vec![ld(lo_off), j(JEQ, v_lo, T::Next, T::Fail)],
            Op::Ne => vec![ld(lo_off), j(JEQ, v_lo, T::Fail, T::Next)],
            Op::MaskedEq { mask } => {
                vec![ld(lo_off), j(AND_K, mask as u32, T::Go, T::Go), j(JEQ, v_lo, T::Next, T::Fail)]
            }
            Op::Gt => vec![ld(lo_off), j(JGT, v_lo, T::Next, T::Fail)],
            Op::Ge => vec![ld(lo_off), j(JGE, v_lo, T::Next, T::Fail)],
            Op::Lt => vec![ld(lo_off), j(JGE, v_lo, T::Fail, T::Next)],
            Op::Le => vec![ld(lo_off), j(JGT, v_lo, T::Fail, T::Next)],
        };
    }
    match c.op {
        Op::Eq => vec![ld(hi_off), j(JEQ, v_hi, T::Go, T::Fail), ld(lo_off), j(JEQ, v_lo, T::Next, T::Fail)],
        Op::Ne => vec![ld(hi_off), j(JEQ, v_hi, T::Go, T::Next), ld(lo_off), j(JEQ, v_lo, T::Fail, T::Next)],
        Op::MaskedEq { mask } => vec![
            ld(hi_off),
            j(AND_K, (mask >> 32) as u32, T::Go, T::Go),
            j(JEQ, v_hi, T::Go, T::Fail),
            ld(lo_off),
            j(AND_K, mask as u32, T::Go, T::Go),
            j(JEQ, v_lo, T::Next, T::Fail),
        ],
        Op::Gt => vec![
            ld(hi_off),
            j(JGT, v_hi, T::Next, T::Go),
            j(JEQ, v_hi, T::Go, T::Fail),
            ld(lo_off),
            j(JGT, v_lo, T::Next, T::Fail),
        ],
        Op::Ge => vec![
            ld(hi_off),
            j(JGT, v_hi, T::Next, T::Go),
            j(JEQ, v_hi, T::Go, T::Fail),
            ld(lo_off),
            j(JGE, v_lo, T::Next, T::Fail),
        ],
        Op::Lt => vec![
            ld(hi_off),
            j(JGT, v_hi, T::Fail, T::Go),
            j(JEQ, v_hi, T::Go, T::Next),
            ld(lo_off),
            j(JGE, v_lo, T::Fail, T::Next),
        ],
        Op::Le => vec![
            ld(hi_off),
            j(JGT, v_hi, T::Fail, T::Go),
            j(JEQ, v_hi, T::Go, T::Next),
            ld(lo_off),
            j(JGT, v_lo, T::Fail, T::Next),
        ],
    }
}
