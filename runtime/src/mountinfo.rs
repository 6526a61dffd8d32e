//! /proc/PID/mountinfo (proc(5)), read the one correct way: as bytes, split on single
//! spaces, the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`
//! backslash, any other `\ooo`) undone. A mount path may hold any byte but NUL: a
//! non-UTF-8 mount anywhere on the machine must not make a reader fail (it once made
//! every `create` fail through the cgroup layout). Every reader of mountinfo in the
//! workspace should call this one (the image crate and the test helpers do).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub id: u32,
    pub parent: u32,
    /// "major:minor" of the filesystem.
    pub dev: Vec<u8>,
    /// The root of the mount inside its filesystem.
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Per-mount options (rw, nosuid, relatime ...), comma-separated.
    pub options: Vec<u8>,
    /// The optional fields (shared:N, master:N, propagate_from:N, unbindable).
    pub optional: Vec<Vec<u8>>,
    pub fstype: Vec<u8>,
    pub source: Vec<u8>,
    /// Per-superblock options, comma-separated, escapes undone.
    pub super_options: Vec<u8>,
}

impl Mount {
    pub fn fstype_is(&self, t: &str) -> bool {
        self.fstype == t.as_bytes()
    }

    /// The super options one by one.
    pub fn super_option_list(&self) -> impl Iterator<Item = &[u8]> {
        self.super_options.split(|&b| b == b',')
    }
}

/// Reads and parses /proc/self/mountinfo.
pub fn read_self() -> std::io::Result<Vec<Mount>> {
    read(Path::new("/proc/self/mountinfo"))
}

/// Reads and parses a mountinfo file.
pub fn read(path: &Path) -> std::io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read(path)?))
}

/// Every well-formed line of `text`; malformed lines are skipped.
pub fn parse(text: &[u8]) -> Vec<Mount> {
    text.split(|&b| b == b'\n').filter_map(parse_line).collect()
}

/// One line; None when it is not a mountinfo line.
pub fn parse_line(line: &[u8]) -> Option<Mount> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let dash = fields.iter().position(|f| *f == b"-")?;
    if dash < 6 || fields.len() < dash + 4 {
        return None;
    }
    let number = |f: &[u8]| std::str::from_utf8(f).ok()?.parse::<u32>().ok();
    let path = |f: &[u8]| PathBuf::from(OsStr::from_bytes(&unescape(f)));
    Some(Mount {
        id: number(fields[0])?,
        parent: number(fields[1])?,
        dev: fields[2].to_vec(),
        root: path(fields[3]),
        mount_point: path(fields[4]),
        options: fields[5].to_vec(),
        optional: fields[6..dash].iter().filter(|f| !f.is_empty()).map(|f| f.to_vec()).collect(),
        fstype: unescape(fields[dash + 1]),
        source: unescape(fields[dash + 2]),
        super_options: unescape(fields[dash + 3]),
    })
}

/// Undoes the kernel's octal escapes (`\ooo`); anything else is kept as it is.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3');
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |n, c| n * 8 + (c - b'0')));
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_undone_and_bytes_kept() {
        let text = b"36 35 98:0 /mnt1 /mnt\\040a\\011b\\012c\\134d rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n\
                     40 35 0:5 / /x\xff\xfey rw - tmpfs tmp\\040fs rw,size=1k\n\
                     garbage line\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, Path::new("/mnt a\tb\nc\\d"));
        assert_eq!(m[0].root, Path::new("/mnt1"));
        assert_eq!(m[0].optional, vec![b"master:1".to_vec(), b"shared:7".to_vec()]);
        assert!(m[0].fstype_is("ext3"));
        assert_eq!(m[0].super_option_list().collect::<Vec<_>>(), vec![&b"rw"[..], b"errors=continue"]);
        assert_eq!(m[1].mount_point.as_os_str().as_bytes(), b"/x\xff\xfey");
        assert_eq!(m[1].source, b"tmp fs");
        // No optional fields, and a lone backslash or a non-octal escape stays.
        assert!(m[1].optional.is_empty());
        assert_eq!(unescape(b"a\\b\\0\\999\\"), b"a\\b\\0\\999\\");
    }

    #[test]
    fn reads_this_machine() {
        let all = read_self().unwrap();
        assert!(all.iter().any(|m| m.mount_point == Path::new("/")));
    }
}
