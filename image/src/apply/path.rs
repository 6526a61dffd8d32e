//! Cleaning tar entry names into components under the root.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// Splits a tar name into normal components as if it were resolved from `/`:
/// leading `/` and `.` vanish, `..` removes the previous component and is
/// clamped at the root. Symlinks are not looked at here; the kernel resolves
/// them inside the root later (RESOLVE_IN_ROOT).
pub fn clean(raw: &[u8]) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(raw: &str) -> String {
        clean(raw.as_bytes()).iter().map(|c| c.to_str().unwrap()).collect::<Vec<_>>().join("/")
    }

    #[test]
    fn clamps_at_root() {
        assert_eq!(s("../../etc/passwd"), "etc/passwd");
        assert_eq!(s("/abs/./x/../y"), "abs/y");
        assert_eq!(s("./"), "");
        assert_eq!(s("a/b/../../../../c"), "c");
    }
}
