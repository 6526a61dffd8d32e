//! Staging dirs and temp files that name their creator. Work in progress goes
//! to `<kind><pid>-<start>-<random>` beside its destination and is renamed into
//! place when done; a `kill -9` leaves it behind. Whoever next works in the
//! same place (unpack, gc) removes those whose creator is gone: no process
//! has that pid, or it started at another time (the pid was reused).

use crate::error::{Error, Result};
use crate::overlay;
use std::fs;
use std::path::{Path, PathBuf};

/// Bundles being unpacked, beside the bundle.
pub const BUNDLE: &str = ".strata-image-";
/// Archives being read, in the temp dir.
pub const ARCHIVE: &str = "strata-image-archive-";
/// Layouts being written as an archive, in the temp dir.
pub const SAVE: &str = "strata-image-save-";
/// Blobs and files of a layout being written, beside them.
pub const TEMP_FILE: &str = ".tmp-";

/// The name prefix for a new staging entry of `kind` made by this process.
pub fn prefix(kind: &str) -> String {
    let pid = std::process::id();
    format!("{kind}{pid}-{}-", start_time(pid).unwrap_or(0))
}

/// When process `pid` started (clock ticks since boot, /proc/PID/stat field 22).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and ')': count from the last ')'.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `name` is a staging entry of `kind` whose creator no longer runs.
/// Names without a creator (older versions) are never stale: nothing says whose they are.
pub fn is_stale(name: &str, kind: &str) -> bool {
    let Some(rest) = name.strip_prefix(kind) else { return false };
    let mut f = rest.splitn(3, '-');
    let (Some(Ok(pid)), Some(Ok(start)), Some(_)) =
        (f.next().map(str::parse::<u32>), f.next().map(str::parse::<u64>), f.next())
    else {
        return false;
    };
    pid != std::process::id() && start_time(pid) != Some(start)
}

/// The stale staging entries of `kind` in `dir`; removed unless `dry_run`.
/// A staging bundle's rootfs may still be mounted (an overlay unpack killed
/// mid-way): it is unmounted first, and left alone if it cannot be.
pub fn sweep(dir: &Path, kind: &str, dry_run: bool) -> Result<Vec<PathBuf>> {
    let Ok(rd) = fs::read_dir(dir) else { return Ok(vec![]) };
    let mut out = vec![];
    for e in rd.flatten() {
        if !is_stale(&e.file_name().to_string_lossy(), kind) {
            continue;
        }
        let p = e.path();
        if !dry_run {
            let rootfs = p.join("rootfs");
            overlay::unmount(&rootfs)?;
            if overlay::is_mounted(&rootfs) {
                continue;
            }
            let r = if e.file_type().is_ok_and(|t| t.is_dir()) { remove_tree(&p) } else { fs::remove_file(&p) };
            match r {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&p, err)),
                _ => {}
            }
        }
        out.push(p);
    }
    out.sort();
    Ok(out)
}

/// Removes a directory tree, also one its unprivileged owner cannot write into:
/// a rootless unpack keeps the image's read-only directories read-only, which
/// as root would not stop the removal, so they are opened up first.
pub fn remove_tree(p: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(p) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            open_up_dirs(p);
            fs::remove_dir_all(p)
        }
        r => r,
    }
}

/// Gives the owner rwx on `p` and every directory under it (the caller's
/// own: for others chmod fails and they stay as they are). Never follows a
/// symlink: only entries that are directories themselves are changed.
pub fn open_up_dirs(p: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(m) = fs::symlink_metadata(p) else { return };
    if !m.is_dir() {
        return;
    }
    let _ = fs::set_permissions(p, fs::Permissions::from_mode((m.mode() & 0o7777) | 0o700));
    for e in fs::read_dir(p).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            open_up_dirs(&e.path());
        }
    }
}

/// While armed, opens up the staging dir it names when dropped, so that the
/// `TempDir` dropped after it can remove what a failed rootless unpack left.
pub struct OpenUpOnDrop(pub Option<PathBuf>);
impl Drop for OpenUpOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            open_up_dirs(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_of_gone_creators_are_stale() {
        let mine = format!("{}abc", prefix(BUNDLE));
        assert!(!is_stale(&mine, BUNDLE), "this process runs");
        let init_start = start_time(1).unwrap();
        assert!(!is_stale(&format!("{BUNDLE}1-{init_start}-x"), BUNDLE), "pid 1 runs");
        assert!(is_stale(&format!("{BUNDLE}1-{}-x", init_start + 1), BUNDLE), "pid 1 reused");
        assert!(is_stale(&format!("{BUNDLE}4194304-5-x"), BUNDLE), "beyond pid_max");
        assert!(!is_stale(&format!("{BUNDLE}Xy12ab"), BUNDLE), "an older name says nothing");
        assert!(!is_stale(&format!("{ARCHIVE}4194304-5-x"), BUNDLE), "another kind");
    }
}
