//! The cgroup v2 device controller is an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE)
//! attached to the cgroup. The program is assembled here by hand, a few instructions
//! per rule, and loaded with the raw bpf() system call: no libbpf, no compiler.
//!
//! The kernel calls it with `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }`, access_type = (access << 16) | type. It returns 1 to allow. The rules
//! come folded ([`devices::rules`]): a default, then exceptions of the other action, so
//! order doesn't matter and the program enforces what the same rules do on v1: an allow
//! exception must grant every requested access, a deny exception denies any access it
//! shares with the request (an O_RDWR open against "deny w").

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::resources::devices::{self, ACC_ALL};
use super::resources::DeviceRule;
use crate::error::{Context, Error, Result};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// bpf_cgroup_dev_ctx's device types (BPF_DEVCG_DEV_*); the access bits (BPF_DEVCG_ACC_*)
/// are v1's, in [`devices`].
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
/// Offsets in struct bpf_cgroup_dev_ctx, and the split of its access_type.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
const TYPE_MASK: i32 = 0xffff;
const ACCESS_SHIFT: i32 = 16;
/// The size of union bpf_attr this code fills (larger than every field it sets).
const ATTR_SIZE: usize = 128;
/// The verifier log's size when a load failed and we ask why.
const VERIFIER_LOG_SIZE: usize = 1 << 16;

/// Opcodes (BPF_CLASS | BPF_OP | BPF_SRC) of the few instructions used here.
const OP_LDX_W: u8 = 0x61;
const OP_AND32_IMM: u8 = 0x54;
const OP_RSH32_IMM: u8 = 0x74;
const OP_MOV32_REG: u8 = 0xbc;
const OP_MOV_IMM: u8 = 0xb7;
const OP_JNE_IMM: u8 = 0x55;
const OP_JNE_REG: u8 = 0x5d;
const OP_JEQ_IMM: u8 = 0x15;
const OP_EXIT: u8 = 0x95;

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | dst, off, imm }
}
/// r_dst = *(u32 *)(r_src + off)
const fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(OP_LDX_W, dst, src, off, 0)
}
/// w_dst &= imm
const fn and32(dst: u8, imm: i32) -> Insn {
    insn(OP_AND32_IMM, dst, 0, 0, imm)
}
/// w_dst >>= imm
const fn rsh32(dst: u8, imm: i32) -> Insn {
    insn(OP_RSH32_IMM, dst, 0, 0, imm)
}
/// w_dst = w_src
const fn mov32_reg(dst: u8, src: u8) -> Insn {
    insn(OP_MOV32_REG, dst, src, 0, 0)
}
/// r_dst = imm
const fn mov_imm(dst: u8, imm: i32) -> Insn {
    insn(OP_MOV_IMM, dst, 0, 0, imm)
}
/// if r_dst != imm goto +off
const fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(OP_JNE_IMM, dst, 0, off, imm)
}
/// if r_dst != r_src goto +off
const fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(OP_JNE_REG, dst, src, off, 0)
}
/// if r_dst == imm goto +off
const fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(OP_JEQ_IMM, dst, 0, off, imm)
}
const EXIT: Insn = insn(OP_EXIT, 0, 0, 0, 0);

/// The program for folded `rules` (the "a" default first, then exceptions): r2 = type,
/// r3 = access, r4 = major, r5 = minor; then one block per exception that jumps past
/// itself on a mismatch, and the default.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let allow_all = rules.first().is_some_and(|r| r.kind == 'a' && r.allow);
    let mut p = vec![
        ldx_w(2, 1, CTX_ACCESS_TYPE),
        and32(2, TYPE_MASK),
        ldx_w(3, 1, CTX_ACCESS_TYPE),
        rsh32(3, ACCESS_SHIFT),
        ldx_w(4, 1, CTX_MAJOR),
        ldx_w(5, 1, CTX_MINOR),
    ];
    for r in rules.iter().filter(|r| r.kind != 'a') {
        let mut block = vec![jne_imm(2, if r.kind == 'b' { DEV_BLOCK } else { DEV_CHAR }, 0)];
        let access = i32::from(devices::access_bits(&r.access));
        if access != i32::from(ACC_ALL) {
            block.extend([mov32_reg(1, 3), and32(1, access)]);
            block.push(if r.allow {
                // Allow: every access asked for must be among the rule's.
                jne_reg(1, 3, 0)
            } else {
                // Deny: any access in common.
                jeq_imm(1, 0, 0)
            });
        }
        if let Some(m) = r.major {
            block.push(jne_imm(4, m as i32, 0));
        }
        if let Some(m) = r.minor {
            block.push(jne_imm(5, m as i32, 0));
        }
        block.extend([mov_imm(0, i32::from(r.allow)), EXIT]);
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if matches!(ins.code, OP_JNE_IMM | OP_JNE_REG | OP_JEQ_IMM) {
                // Jump to the first instruction after this block.
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.extend([mov_imm(0, i32::from(allow_all)), EXIT]);
    p
}

/// Loads the program for `rules` and attaches it to the cgroup directory `dir`.
pub fn attach_device_filter(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let prog = load(&program(rules))?;
    let cgroup = std::fs::File::open(dir).ctx(|| format!("open {}", dir.display()))?;
    let mut attr = [0u8; ATTR_SIZE];
    // bpf_attr for BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type, attach_flags.
    put_u32(&mut attr, 0, cgroup.as_raw_fd() as u32);
    put_u32(&mut attr, 4, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 8, BPF_CGROUP_DEVICE);
    put_u32(&mut attr, 12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut attr).ctx(|| format!("attach the device eBPF program to {}", dir.display()))?;
    // The attachment holds the program: our fd may close.
    Ok(())
}

/// Loads the program; only when the kernel refuses it, loads again with the verifier
/// log on, to say why (a log that fills up fails the load with ENOSPC).
fn load(insns: &[Insn]) -> Result<OwnedFd> {
    match load_with_log(insns, &mut []) {
        Ok(fd) => Ok(fd),
        Err(e) => {
            let mut log = vec![0u8; VERIFIER_LOG_SIZE];
            let _ = load_with_log(insns, &mut log);
            let end = log.iter().position(|b| *b == 0).unwrap_or(0);
            let verifier = String::from_utf8_lossy(&log[..end]).replace('\n', "; ");
            Err(Error::os(format!("load the device eBPF program ({})", verifier.trim()), e))
        }
    }
}

fn load_with_log(insns: &[Insn], log: &mut [u8]) -> std::io::Result<OwnedFd> {
    let license = b"Apache\0";
    let mut attr = [0u8; ATTR_SIZE];
    // bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns, license, log_level,
    // log_size, log_buf.
    put_u32(&mut attr, 0, BPF_PROG_TYPE_CGROUP_DEVICE);
    put_u32(&mut attr, 4, insns.len() as u32);
    put_u64(&mut attr, 8, insns.as_ptr() as u64);
    put_u64(&mut attr, 16, license.as_ptr() as u64);
    if !log.is_empty() {
        put_u32(&mut attr, 24, 1);
        put_u32(&mut attr, 28, log.len() as u32);
        put_u64(&mut attr, 32, log.as_mut_ptr() as u64);
    }
    // SAFETY: BPF_PROG_LOAD returns a new fd that we own.
    bpf(BPF_PROG_LOAD, &mut attr).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; ATTR_SIZE]) -> std::io::Result<i32> {
    // SAFETY: attr is a zeroed union bpf_attr of the size we pass; the pointers in it
    // (instructions, license, log) outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

fn put_u32(a: &mut [u8], at: usize, v: u32) {
    a[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put_u64(a: &mut [u8], at: usize, v: u64) {
    a[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::resources::devices::tests::v1_allows;
    use crate::cgroups::resources::devices::{ACC_MKNOD, ACC_READ, ACC_WRITE};

    #[test]
    fn a_rule_jumps_past_its_own_block() {
        let rule =
            |allow, kind, major, minor, access: &str| DeviceRule { allow, kind, major, minor, access: access.into() };
        let rules = [rule(false, 'a', None, None, "rwm"), rule(true, 'c', Some(1), Some(3), "rw")];
        let p = program(&rules);
        // 6 loads, type check, 3 access insns, major, minor, mov, exit, default mov+exit.
        assert_eq!(p.len(), 6 + 1 + 3 + 1 + 1 + 2 + 2);
        assert_eq!(p[6], jne_imm(2, DEV_CHAR, 7));
        assert_eq!(p[11], jne_imm(5, 3, 2));
        assert_eq!(p[12], mov_imm(0, 1));
        assert_eq!(p[14], mov_imm(0, 0));
    }

    /// Runs `prog` the way the kernel would for one device access: the few opcodes
    /// `program` emits, nothing else.
    fn run(prog: &[Insn], kind: char, major: i64, minor: i64, access: u8) -> bool {
        let typ = if kind == 'b' { DEV_BLOCK } else { DEV_CHAR } as u32;
        let ctx = [(u32::from(access) << ACCESS_SHIFT) | typ, major as u32, minor as u32];
        let mut r = [0u64; 11];
        let mut pc = 0;
        loop {
            let i = prog[pc];
            let (dst, src, imm) = (usize::from(i.regs & 0xf), usize::from(i.regs >> 4), i64::from(i.imm) as u64);
            let jump = match i.code {
                OP_LDX_W => {
                    assert_eq!(src, 1, "loads come from the context");
                    r[dst] = u64::from(ctx[i.off as usize / 4]);
                    false
                }
                OP_AND32_IMM => {
                    r[dst] = (r[dst] as u32 & imm as u32) as u64;
                    false
                }
                OP_RSH32_IMM => {
                    r[dst] = (r[dst] as u32 >> imm) as u64;
                    false
                }
                OP_MOV32_REG => {
                    r[dst] = r[src] as u32 as u64;
                    false
                }
                OP_MOV_IMM => {
                    r[dst] = imm;
                    false
                }
                OP_JNE_IMM => r[dst] != imm,
                OP_JNE_REG => r[dst] != r[src],
                OP_JEQ_IMM => r[dst] == imm,
                OP_EXIT => return r[0] == 1,
                op => panic!("opcode {op:#x} not modelled"),
            };
            pc = if jump { (pc as i64 + 1 + i64::from(i.off)) as usize } else { pc + 1 };
        }
    }

    /// The same folded rules mean the same on v2 (the program) as on v1 (the kernel's
    /// list semantics), for every access to a grid of devices around the rules'.
    #[test]
    fn the_program_enforces_what_v1_enforces() {
        let configs = [
            serde_json::json!([]),
            serde_json::json!([{ "allow": false, "access": "rwm" }, { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "rrr" }]),
            serde_json::json!([{ "allow": false, "access": "rwm" }, { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwa" }]),
            serde_json::json!([{ "allow": true, "access": "rwm" }, { "allow": false, "type": "c", "major": 1, "minor": 11, "access": "w" }]),
            serde_json::json!([{ "allow": true, "access": "rwm" }, { "allow": false, "type": "b", "major": 7, "access": "rm" }]),
            serde_json::json!([{ "allow": false, "access": "rwm" }, { "allow": true, "type": "c", "major": 1, "access": "r" },
                               { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "w" }]),
            serde_json::json!([{ "allow": true, "type": "a", "access": "r" }]),
        ];
        for config in configs {
            let config: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_value(config).unwrap();
            let rules = devices::rules(&config, &[]).unwrap();
            let prog = program(&rules);
            for kind in ['c', 'b'] {
                for (major, minor) in [(1, 3), (1, 11), (1, 12), (5, 2), (7, 0), (10, 200), (136, 4), (8, 0)] {
                    for access in 1..=(ACC_READ | ACC_WRITE | ACC_MKNOD) {
                        assert_eq!(
                            run(&prog, kind, major, minor, access),
                            v1_allows(&rules, kind, major, minor, access),
                            "{kind} {major}:{minor} access {access:#b} under {rules:?}"
                        );
                    }
                }
            }
        }
        // And the point of it: "rrr" is not write, on v2 either.
        let config = serde_json::json!([{ "allow": false, "access": "rwm" }, { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "rrr" }]);
        let rules = devices::rules(&serde_json::from_value::<Vec<_>>(config).unwrap(), &[]).unwrap();
        assert!(!run(&program(&rules), 'c', 1, 11, ACC_WRITE));
        assert!(run(&program(&rules), 'c', 1, 11, ACC_READ));
    }

    /// Loads a real program (needs root and a kernel with BPF): the verifier accepts it.
    #[test]
    fn the_kernel_verifier_accepts_the_program() {
        if !nix::unistd::geteuid().is_root() {
            strata_integration::skip("the_kernel_verifier_accepts_the_program", "loading eBPF needs root");
            return;
        }
        for config in [
            serde_json::json!([]),
            serde_json::json!([{ "allow": true, "access": "rwm" }, { "allow": false, "type": "c", "major": 1, "minor": 11, "access": "w" }]),
        ] {
            let rules = devices::rules(&serde_json::from_value::<Vec<_>>(config).unwrap(), &[]).unwrap();
            load(&program(&rules)).unwrap();
        }
    }

    /// Attaches a real filter to a cgroup2 directory this test makes (under the
    /// hybrid host's unified mount, or a pure v2 root) and opens devices from inside it.
    #[test]
    fn an_attached_filter_denies_what_the_rules_deny() {
        let mount = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(std::path::PathBuf::from)
            .find(|m| m.join("cgroup.procs").exists() && m.join("cgroup.subtree_control").exists());
        let Some(mount) = mount else {
            strata_integration::skip("an_attached_filter_denies_what_the_rules_deny", "no cgroup2 mount to attach to");
            return;
        };
        if !nix::unistd::geteuid().is_root() {
            strata_integration::skip("an_attached_filter_denies_what_the_rules_deny", "attaching eBPF needs root");
            return;
        }
        let dir = mount.join(format!("strata-bpf-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let rule =
            |allow, kind, major, minor, access: &str| DeviceRule { allow, kind, major, minor, access: access.into() };
        let rules = [
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(true, 'c', Some(1), Some(9), "r"),
        ];
        let attached = attach_device_filter(&dir, &rules);
        let open_inside = |how: &str| {
            let script = format!("echo $$ > {}/cgroup.procs && exec {how}", dir.display());
            // /dev/null as stdout was opened before the move: the check is on the command's open.
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        };
        let results = attached.as_ref().ok().map(|_| {
            [
                open_inside("head -c 1 /dev/null > /dev/null"),
                open_inside("head -c 1 /dev/urandom > /dev/null"),
                open_inside("true > /dev/urandom"),
                open_inside("head -c 1 /dev/zero > /dev/null"),
            ]
        });
        let _ = std::fs::remove_dir(&dir);
        attached.unwrap();
        assert_eq!(results, Some([true, true, false, false]), "[null, urandom read, urandom write, zero]");
    }
}
