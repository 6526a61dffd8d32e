//! The `strata-image` executable: a thin layer over the library.

fn main() {
    // Rust ignores SIGPIPE, so `strata-image history ... | head` would panic in
    // println!; like other command-line tools, end quietly when the reader leaves.
    // SAFETY: no other thread exists yet, and SIG_DFL installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    std::process::exit(strata_image::cli::run());
}
