//! The last execve goes through a 150-byte trampoline in a sealed memfd.
//!
//! Why: strata never re-executes itself, so until the final execve a container
//! process's /proc/self/exe is the host's strata binary. The kernel resolves a
//! script's interpreter (`#!/proc/self/exe`) or an ELF's PT_INTERP in the context of
//! the exec'ing process: a container whose program is such a file would make the
//! kernel run the *host* binary inside the container, dumpable, where any container
//! root can grab /proc/PID/exe and rewrite it once strata exits (CVE-2019-5736).
//! Exec'ing the trampoline first makes /proc/self/exe an anonymous, write-sealed
//! memfd during the container program's execve; the trampoline only does
//! `execve(argv[1], &argv[2], envp)` (exit 127 if that fails). Costs one extra
//! execve of a tiny static binary, not a copy of the runtime.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

const BASE: u64 = 0x40_0000;
const CODE_OFFSET: usize = 64 + 56;

/// x86_64: rdi=argv[1], rsi=&argv[2], rdx=envp; execve; exit(127).
const CODE: [u8; 41] = [
    0x48, 0x8b, 0x7c, 0x24, 0x10, // mov rdi, [rsp+16]
    0x48, 0x8d, 0x74, 0x24, 0x18, // lea rsi, [rsp+24]
    0x48, 0x8b, 0x04, 0x24, // mov rax, [rsp]   (argc)
    0x48, 0x8d, 0x54, 0xc4, 0x10, // lea rdx, [rsp+rax*8+16]   (envp)
    0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax, 59 (execve)
    0x0f, 0x05, // syscall
    0xbf, 0x7f, 0x00, 0x00, 0x00, // mov edi, 127
    0xb8, 0x3c, 0x00, 0x00, 0x00, // mov eax, 60 (exit)
    0x0f, 0x05, // syscall
    0x90, 0x90, 0x90, // padding
];

/// The trampoline as a static ELF64 executable: header, one PT_LOAD, code.
fn image() -> Vec<u8> {
    let total = (CODE_OFFSET + CODE.len()) as u64;
    let mut e = Vec::with_capacity(total as usize);
    e.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&(BASE + CODE_OFFSET as u64).to_le_bytes()); // e_entry
    e.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    e.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    e.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    e.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    e.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    e.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&5u32.to_le_bytes()); // PF_R | PF_X
    e.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    e.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    e.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    e.extend_from_slice(&total.to_le_bytes()); // p_filesz
    e.extend_from_slice(&total.to_le_bytes()); // p_memsz
    e.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    e.extend_from_slice(&CODE);
    e
}

/// A sealed, close-on-exec memfd holding the trampoline.
pub fn memfd() -> nix::Result<OwnedFd> {
    // SAFETY: memfd_create with a static name; on success we own the new fd.
    let fd = unsafe {
        libc::memfd_create(c"strata-exec".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    };
    let fd = unsafe { OwnedFd::from_raw_fd(Errno::result(fd)?) };
    let img = image();
    let n = nix::unistd::write(&fd, &img)?;
    if n != img.len() {
        return Err(Errno::EIO);
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on our own fd with integer arguments.
    Errno::result(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(fd)
}

/// execveat(trampoline, "", [strata-exec, path, argv...], envp). Returns only on error.
pub fn execve(tramp: &OwnedFd, path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
    let name = c"strata-exec";
    let mut args: Vec<*const libc::c_char> = vec![name.as_ptr(), path.as_ptr()];
    args.extend(argv.iter().map(|a| a.as_ptr()));
    args.push(std::ptr::null());
    let mut env: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    env.push(std::ptr::null());
    // SAFETY: NUL-terminated arrays of pointers into live CStrings.
    unsafe {
        libc::syscall(libc::SYS_execveat, tramp.as_raw_fd(), c"".as_ptr(), args.as_ptr(), env.as_ptr(), libc::AT_EMPTY_PATH);
    }
    Errno::last()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_trampoline_execs_its_first_argument_with_the_rest() {
        use nix::unistd::{fork, ForkResult};
        let tramp = super::memfd().unwrap();
        let dir = std::env::temp_dir().join(format!("strata-tramp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let script = format!("echo \"$0 $1 $X\" > {}", out.display());
        let args = [c"sh".to_owned(), c"-c".to_owned(), std::ffi::CString::new(script).unwrap(), c"zero".to_owned(), c"one".to_owned()];
        let env = [c"X=envok".to_owned()];
        // SAFETY: the child only execs or exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                super::execve(&tramp, c"/bin/sh", &args, &env);
                unsafe { libc::_exit(99) }
            }
            ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "zero one envok\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
