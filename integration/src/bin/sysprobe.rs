//! `sysprobe NR [ARG...]`: makes one raw syscall and prints `ok RET` or `errno N`.
//! A static binary copied into test rootfs, so seccomp tests can call exactly the
//! syscall and arguments a rule is about (busybox can't, e.g. personality(4)).

fn main() {
    if std::env::var_os("SYSPROBE_CATCH_SIGSYS").is_some() {
        // SAFETY: installs a handler that only calls async-signal-safe functions.
        unsafe { libc::signal(libc::SIGSYS, on_sigsys as *const () as libc::sighandler_t) };
    }
    let args: Vec<u64> = std::env::args().skip(1).map(|a| parse(&a)).collect();
    let Some((&nr, rest)) = args.split_first() else {
        eprintln!("usage: sysprobe NR [ARG...]");
        std::process::exit(2);
    };
    let mut a = [0u64; 6];
    a[..rest.len().min(6)].copy_from_slice(&rest[..rest.len().min(6)]);
    // SAFETY: the tests only call syscalls whose arguments are plain integers.
    let r = unsafe { libc::syscall(nr as libc::c_long, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if r < 0 {
        println!("errno {}", std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    } else {
        println!("ok {r}");
    }
}

fn parse(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).expect("hex number"),
        None => s.parse::<i64>().map(|v| v as u64).or_else(|_| s.parse::<u64>()).expect("number"),
    }
}

/// With SYSPROBE_CATCH_SIGSYS set: SCMP_ACT_TRAP delivers a catchable SIGSYS, the
/// kill actions don't, so the output tells them apart.
extern "C" fn on_sigsys(_: libc::c_int) {
    let msg = b"caught SIGSYS\n";
    // SAFETY: write and _exit are async-signal-safe.
    unsafe {
        libc::write(1, msg.as_ptr().cast(), msg.len());
        libc::_exit(0);
    }
}
