//! `no-clone3 PROG [ARG...]`: runs PROG under a seccomp filter that answers clone3 with
//! ENOSYS, as Docker's and other older profiles do, so tests can run a runtime the way
//! it runs inside such a container.

use std::ffi::CString;

fn main() {
    let args: Vec<CString> = std::env::args().skip(1).map(|a| CString::new(a).expect("no NUL in args")).collect();
    if args.is_empty() {
        eprintln!("usage: no-clone3 PROG [ARG...]");
        std::process::exit(2);
    }
    let stmt = |code: u32, k: u32| libc::sock_filter { code: code as u16, jt: 0, jf: 0, k };
    let prog = [
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0), // seccomp_data.nr
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_clone3 as u32,
        },
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut _ };
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: prctl and seccomp take integers and a program that outlives the calls;
    // execvp gets a NULL-terminated argv of live CStrings.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0
        {
            eprintln!("no-clone3: install filter: {}", std::io::Error::last_os_error());
            std::process::exit(2);
        }
        libc::execvp(argv[0], argv.as_ptr());
    }
    eprintln!("no-clone3: exec {:?}: {}", args[0], std::io::Error::last_os_error());
    std::process::exit(127);
}
