//! The last execve goes through a small trampoline in a sealed memfd.
//!
//! Why: strata never re-executes itself, so until the final execve a container
//! process's /proc/self/exe is the host's strata binary. The kernel resolves a
//! script's interpreter (`#!/proc/self/exe`) or an ELF's PT_INTERP in the context of
//! the exec'ing process: a container whose program is such a file would make the
//! kernel run the *host* binary inside the container, dumpable, where any container
//! root can grab /proc/PID/exe and rewrite it once strata exits (CVE-2019-5736).
//! Exec'ing the trampoline first makes /proc/self/exe an anonymous, write-sealed
//! memfd during the container program's execve; the trampoline only does
//! `execve(argv[1], &argv[2], envp)`, and if that fails prints `exec PATH: ERROR` and
//! exits 1, as runc's init does. Costs one extra execve of a tiny static binary (code
//! and a table of errno texts), not a copy of the runtime.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

const BASE: u64 = 0x40_0000;
const CODE_OFFSET: usize = 64 + 56;

/// x86_64, assembled from: rdi=argv[1], rsi=&argv[2], rdx=envp; execve; on failure
/// write "exec " argv[1] ": " MESSAGES[errno] "\n" to stderr and exit_group(1): runc's
/// init reports a failed exec the same way. `rbx` points at [`data`], which follows the
/// code: "exec ", ": ", "\n", then per errno 0..256 a (u16 offset from rbx, u16 length)
/// entry, then the texts.
const CODE: [u8; 182] = [
    0x48, 0x8b, 0x7c, 0x24, 0x10, // mov rdi,[rsp+0x10]
    0x48, 0x8d, 0x74, 0x24, 0x18, // lea rsi,[rsp+0x18]
    0x48, 0x8b, 0x04, 0x24, // mov rax,[rsp]
    0x48, 0x8d, 0x54, 0xc4, 0x10, // lea rdx,[rsp+rax*8+0x10]
    0xb8, 0x3b, 0x00, 0x00, 0x00, // mov eax,0x3b
    0x0f, 0x05, // syscall
    0x48, 0xf7, 0xd8, // neg rax
    0x49, 0x89, 0xc4, // mov r12,rax
    0x48, 0x8d, 0x1d, 0x8f, 0x00, 0x00, 0x00, // lea rbx,[rip+0x8f]
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi,0x2
    0x48, 0x8d, 0x33, // lea rsi,[rbx]
    0xba, 0x05, 0x00, 0x00, 0x00, // mov edx,0x5
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax,0x1
    0x0f, 0x05, // syscall
    0x48, 0x8b, 0x74, 0x24, 0x10, // mov rsi,[rsp+0x10]
    0x31, 0xd2, // xor edx,edx
    0x80, 0x3c, 0x16, 0x00, // cmp byte [rsi+rdx*1],0x0
    0x74, 0x05, // je 0x4d
    0x48, 0xff, 0xc2, // inc rdx
    0xeb, 0xf5, // jmp 0x42
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi,0x2
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax,0x1
    0x0f, 0x05, // syscall
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi,0x2
    0x48, 0x8d, 0x73, 0x05, // lea rsi,[rbx+0x5]
    0xba, 0x02, 0x00, 0x00, 0x00, // mov edx,0x2
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax,0x1
    0x0f, 0x05, // syscall
    0x49, 0x81, 0xfc, 0x00, 0x01, 0x00, 0x00, // cmp r12,0x100
    0x72, 0x03, // jb 0x7a
    0x45, 0x31, 0xe4, // xor r12d,r12d
    0x42, 0x0f, 0xb7, 0x74, 0xa3, 0x08, // movzx esi,word [rbx+r12*4+0x8]
    0x42, 0x0f, 0xb7, 0x54, 0xa3, 0x0a, // movzx edx,word [rbx+r12*4+0xa]
    0x48, 0x01, 0xde, // add rsi,rbx
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi,0x2
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax,0x1
    0x0f, 0x05, // syscall
    0xbf, 0x02, 0x00, 0x00, 0x00, // mov edi,0x2
    0x48, 0x8d, 0x73, 0x07, // lea rsi,[rbx+0x7]
    0xba, 0x01, 0x00, 0x00, 0x00, // mov edx,0x1
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax,0x1
    0x0f, 0x05, // syscall
    0xbf, 0x01, 0x00, 0x00, 0x00, // mov edi,0x1
    0xb8, 0xe7, 0x00, 0x00, 0x00, // mov eax,0xe7
    0x0f, 0x05, // syscall
];

/// The trampoline as a static ELF64 executable: header, one PT_LOAD, code.
fn image() -> Vec<u8> {
    let data = data();
    let total = (CODE_OFFSET + CODE.len() + data.len()) as u64;
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
    e.extend_from_slice(&data);
    e
}

/// Errno values the table covers; larger ones print entry 0.
const ERRNO_ENTRIES: usize = 256;

/// The data [`CODE`] reads after itself: its fixed strings, then the errno table. The
/// texts are the C library's, lower-cased like Go's (`exec format error`).
fn data() -> Vec<u8> {
    let mut d = b"exec : \n".to_vec();
    let table_at = d.len();
    d.resize(table_at + 4 * ERRNO_ENTRIES, 0);
    for n in 0..ERRNO_ENTRIES {
        let text = match n {
            0 => "unknown error".to_string(),
            n => Errno::from_raw(n as i32).desc().to_lowercase(),
        };
        let (off, len) = (d.len() as u16, text.len() as u16);
        d[table_at + 4 * n..table_at + 4 * n + 2].copy_from_slice(&off.to_le_bytes());
        d[table_at + 4 * n + 2..table_at + 4 * n + 4].copy_from_slice(&len.to_le_bytes());
        d.extend_from_slice(text.as_bytes());
    }
    d
}

/// A sealed, close-on-exec memfd holding the trampoline.
pub fn memfd() -> nix::Result<OwnedFd> {
    // SAFETY: memfd_create with a static NUL-terminated name and integer flags.
    let fd = unsafe { libc::memfd_create(c"strata-exec".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    // SAFETY: memfd_create succeeded: the fd is new and nothing else owns it.
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

/// The trampoline's argv and envp: NULL-terminated pointer arrays into `path`, `argv`
/// and `envp`, which must outlive the returned vectors' use.
fn vectors(path: &CStr, argv: &[CString], envp: &[CString]) -> (Vec<*const libc::c_char>, Vec<*const libc::c_char>) {
    let mut args: Vec<*const libc::c_char> = vec![c"strata-exec".as_ptr(), path.as_ptr()];
    args.extend(argv.iter().map(|a| a.as_ptr()));
    args.push(std::ptr::null());
    let mut env: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    env.push(std::ptr::null());
    (args, env)
}

/// execveat(trampoline, "", [strata-exec, path, argv...], envp). Returns only on error.
pub fn execve(tramp: &OwnedFd, path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
    let (args, env) = vectors(path, argv, envp);
    execveat(tramp, &args, &env)
}

/// The bare execveat, allocation-free (callable in a child forked from threads).
fn execveat(tramp: &OwnedFd, args: &[*const libc::c_char], env: &[*const libc::c_char]) -> Errno {
    // SAFETY: `args` and `env` come from `vectors`: NULL-terminated arrays of pointers
    // into CStrings that outlive the call; "" with AT_EMPTY_PATH names the fd itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            tramp.as_raw_fd(),
            c"".as_ptr(),
            args.as_ptr(),
            env.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    Errno::last()
}

/// The same exec through plain execve of /proc/self/fd/N, for a process under a
/// seccomp filter: profiles written for runc allow execve but not always execveat.
/// Needs a /proc in the container (the caller falls back to a direct exec).
pub fn execve_via_proc(tramp: &OwnedFd, path: &CStr, argv: &[CString], envp: &[CString]) -> Errno {
    let Ok(fd_path) = CString::new(format!("/proc/self/fd/{}", tramp.as_raw_fd())) else { return Errno::EINVAL };
    let (args, env) = vectors(path, argv, envp);
    // SAFETY: as in `execve`; `fd_path` is a live NUL-terminated string.
    unsafe { libc::execve(fd_path.as_ptr(), args.as_ptr(), env.as_ptr()) };
    Errno::last()
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::os::fd::AsRawFd;

    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    /// Runs the trampoline on `path`/`args` in a forked child with stderr in `err`;
    /// returns the child's exit code. Everything is allocated before the fork: the
    /// test harness is multi-threaded, so the child may only make raw system calls.
    fn run(dir: &std::path::Path, path: &std::ffi::CStr, args: &[CString], env: &[CString]) -> (i32, String) {
        let tramp = super::memfd().unwrap();
        let (argv, envp) = super::vectors(path, args, env);
        let err = std::fs::File::create(dir.join("stderr")).unwrap();
        // SAFETY: the child only calls dup2, execveat and _exit, all async-signal-safe.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => unsafe {
                libc::dup2(err.as_raw_fd(), 2);
                super::execveat(&tramp, &argv, &envp);
                libc::_exit(99)
            },
            ForkResult::Parent { child } => match waitpid(child, None).unwrap() {
                WaitStatus::Exited(_, code) => (code, std::fs::read_to_string(dir.join("stderr")).unwrap()),
                other => panic!("trampoline child: {other:?}"),
            },
        }
    }

    #[test]
    fn the_trampoline_execs_its_first_argument_with_the_rest() {
        let dir = std::env::temp_dir().join(format!("strata-tramp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let script = format!("echo \"$0 $1 $X\" > {}", out.display());
        let args =
            [c"sh".to_owned(), c"-c".to_owned(), CString::new(script).unwrap(), c"zero".to_owned(), c"one".to_owned()];
        let env = [c"X=envok".to_owned()];
        assert_eq!(run(&dir, c"/bin/sh", &args, &env), (0, String::new()));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "zero one envok\n");

        // A failed exec reads as runc's: the path, the error, exit status 1.
        let got = run(&dir, c"/no/such/program", &[c"x".to_owned()], &[]);
        assert_eq!(got, (1, "exec /no/such/program: no such file or directory\n".to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
