//! The cgroup v2 device controller is an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE)
//! attached to the cgroup. The program is assembled here by hand, a few instructions
//! per rule, and loaded with the raw bpf() system call: no libbpf, no compiler.
//!
//! The kernel calls it with `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }`, access_type = (access << 16) | type. It returns 1 to allow. Rules
//! are tested last to first, so the last matching rule wins; when none matches, the
//! access is allowed, as in a v1 device cgroup that no "a" rule has reset (configs
//! start with a deny-all rule, which then matches everything).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::resources::DeviceRule;
use crate::error::{Context, Error, Result};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

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
    insn(0x61, dst, src, off, 0)
}
/// w_dst &= imm
const fn and32(dst: u8, imm: i32) -> Insn {
    insn(0x54, dst, 0, 0, imm)
}
/// w_dst >>= imm
const fn rsh32(dst: u8, imm: i32) -> Insn {
    insn(0x74, dst, 0, 0, imm)
}
/// w_dst = w_src
const fn mov32_reg(dst: u8, src: u8) -> Insn {
    insn(0xbc, dst, src, 0, 0)
}
/// r_dst = imm
const fn mov_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
/// if r_dst != imm goto +off
const fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x55, dst, 0, off, imm)
}
/// if r_dst != r_src goto +off
const fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x5d, dst, src, off, 0)
}
const EXIT: Insn = insn(0x95, 0, 0, 0, 0);

/// The program for `rules`: r2 = type, r3 = access, r4 = major, r5 = minor; then one
/// block per rule (last rule first) that jumps past itself on a mismatch.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut p = vec![ldx_w(2, 1, 0), and32(2, 0xffff), ldx_w(3, 1, 0), rsh32(3, 16), ldx_w(4, 1, 4), ldx_w(5, 1, 8)];
    for r in rules.iter().rev() {
        let mut checks: Vec<Vec<Insn>> = Vec::new();
        match r.kind {
            'c' => checks.push(vec![jne_imm(2, DEV_CHAR, 0)]),
            'b' => checks.push(vec![jne_imm(2, DEV_BLOCK, 0)]),
            _ => {}
        }
        let access = r.access.chars().fold(0, |a, c| {
            a | match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => 0,
            }
        });
        if access != ACC_READ | ACC_WRITE | ACC_MKNOD {
            // Every access asked for must be among the rule's.
            checks.push(vec![mov32_reg(1, 3), and32(1, access), jne_reg(1, 3, 0)]);
        }
        if let Some(m) = r.major {
            checks.push(vec![jne_imm(4, m as i32, 0)]);
        }
        if let Some(m) = r.minor {
            checks.push(vec![jne_imm(5, m as i32, 0)]);
        }
        let catch_all = checks.is_empty();
        let mut block: Vec<Insn> = checks.into_iter().flatten().collect();
        block.extend([mov_imm(0, i32::from(r.allow)), EXIT]);
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if matches!(ins.code, 0x55 | 0x5d) {
                // Jump to the first instruction after this block.
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
        if catch_all {
            // Matches everything: earlier rules and the default can't be reached, and
            // the verifier refuses unreachable code.
            return p;
        }
    }
    p.extend([mov_imm(0, 1), EXIT]);
    p
}

/// Loads the program for `rules` and attaches it to the cgroup directory `dir`.
pub fn attach_device_filter(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let prog = load(&program(rules))?;
    let cgroup = std::fs::File::open(dir).ctx(|| format!("open {}", dir.display()))?;
    let mut attr = [0u8; 128];
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
            let mut log = vec![0u8; 1 << 16];
            let _ = load_with_log(insns, &mut log);
            let end = log.iter().position(|b| *b == 0).unwrap_or(0);
            let verifier = String::from_utf8_lossy(&log[..end]).replace('\n', "; ");
            Err(Error::os(format!("load the device eBPF program ({})", verifier.trim()), e))
        }
    }
}

fn load_with_log(insns: &[Insn], log: &mut [u8]) -> std::io::Result<OwnedFd> {
    let license = b"Apache\0";
    let mut attr = [0u8; 128];
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

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<i32> {
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

    #[test]
    fn a_rule_jumps_past_its_own_block() {
        let rules = [DeviceRule { allow: true, kind: 'c', major: Some(1), minor: Some(3), access: "rw".into() }];
        let p = program(&rules);
        // 6 loads, type check, 3 access insns, major, minor, mov, exit, default mov+exit.
        assert_eq!(p.len(), 6 + 1 + 3 + 1 + 1 + 2 + 2);
        assert_eq!(p[6], jne_imm(2, DEV_CHAR, 7));
        assert_eq!(p[11], jne_imm(5, 3, 2));
        assert_eq!(p[12], mov_imm(0, 1));
    }

    /// Loads a real program (needs root and a kernel with BPF): the verifier accepts it.
    #[test]
    fn the_kernel_verifier_accepts_the_program() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let rules = super::super::resources::devices::rules(&[], &[]).unwrap();
        load(&program(&rules)).unwrap();
    }

    /// Attaches a real filter to a cgroup2 directory this test makes (under the
    /// hybrid host's unified mount, or a pure v2 root) and opens devices from inside it.
    #[test]
    fn an_attached_filter_denies_what_the_rules_deny() {
        let mount = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(std::path::PathBuf::from)
            .find(|m| m.join("cgroup.procs").exists() && m.join("cgroup.subtree_control").exists());
        let (Some(mount), true) = (mount, nix::unistd::geteuid().is_root()) else { return };
        let dir = mount.join(format!("strata-bpf-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let rule = |allow, kind, major, minor| DeviceRule { allow, kind, major, minor, access: "rwm".into() };
        let rules = [rule(false, 'a', None, None), rule(true, 'c', Some(1), Some(3)), rule(true, 'c', Some(1), Some(9))];
        let attached = attach_device_filter(&dir, &rules);
        let open_inside = |dev: &str| {
            let script = format!("echo $$ > {}/cgroup.procs && exec head -c 1 {dev} > /dev/null", dir.display());
            // /dev/null as stdout was opened before the move: the check is on `head`'s open.
            std::process::Command::new("sh").arg("-c").arg(script).status().unwrap().success()
        };
        let results = attached.as_ref().ok().map(|_| (open_inside("/dev/null"), open_inside("/dev/urandom"), open_inside("/dev/zero")));
        let _ = std::fs::remove_dir(&dir);
        attached.unwrap();
        assert_eq!(results, Some((true, true, false)), "(null allowed, urandom allowed, zero denied)");
    }
}
