//! Keeping the shim's resident set to what it uses while it waits. The shim runs most
//! of its code once (startup, Create, Start), then sits waiting for exits and requests
//! for the life of the container. The kernel maps the executable's pages in 64 KiB
//! windows as they are touched, so after Start most of the binary's text is mapped,
//! though a waiting shim uses little of it. [`release_code_pages`] unmaps the binary's
//! read-only file mappings (MADV_DONTNEED: the pages stay in the page cache, shared
//! with every other shim, and fault back in when used): the resident set is then the
//! shim's data plus the code it actually runs again. Nothing anonymous is touched.

/// Drops the mappings of the executable's read-only, file-backed segments whose pages
/// were never written (RELRO is read-only too, but holds relocated, private copies).
pub fn release_code_pages() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else { return };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return };
    let exe = exe.to_string_lossy();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let Some(first) = f.next() else { continue };
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let perms = f.next().unwrap_or("");
            let ours = f.nth(3) == Some(&*exe) && perms.starts_with('r') && &perms[1..2] == "-" && perms.ends_with('p');
            current = match (ours, usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) {
                (true, Ok(s), Ok(e)) => Some((s, e)),
                _ => None,
            };
        } else if first == "Anonymous:" {
            if let (Some((start, end)), Some("0")) = (current.take(), f.next()) {
                // SAFETY: a private, read-only file mapping of our own binary with no
                // private (written) page: dropping it loses nothing; the next access
                // reads the page back from the page cache.
                unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
            }
        }
    }
}
