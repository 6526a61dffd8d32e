//! Reading and writing cgroup interface files. Every write names the config field it
//! serves, so a value the kernel rejects comes back as
//! `linux.resources.memory.limit: write "12" to .../memory.limit_in_bytes: Invalid argument`.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

/// Writes `value` to `dir/file`; an error names `field`, the file and the kernel's reason.
pub fn write(field: &str, dir: &Path, file: &str, value: impl AsRef<str>) -> Result<()> {
    write_reusing(field, dir, file, &mut None, value)
}

/// [`write`] through `open`, the file opened on first use and kept: a file that takes
/// one value per write(2) (devices.allow) and gets many costs one path walk, not one
/// per value.
pub fn write_reusing(
    field: &str,
    dir: &Path,
    file: &str,
    open: &mut Option<std::fs::File>,
    value: impl AsRef<str>,
) -> Result<()> {
    let value = value.as_ref();
    let written = match open {
        Some(f) => f.write(value.as_bytes()),
        // std::fs::write's flags (what the single write always used).
        None => std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(file))
            .and_then(|f| open.insert(f).write(value.as_bytes())),
    };
    let why = match written {
        Ok(n) if n == value.len() => return Ok(()),
        Ok(_) => "short write".to_string(),
        Err(e) if e.kind() == ErrorKind::NotFound => "this host's kernel has no such cgroup file".to_string(),
        Err(e) => e.to_string(),
    };
    Err(Error::field(field, format!("write {value:?} to {}: {why}", dir.join(file).display())))
}

/// The trimmed content of `dir/file`.
pub fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    std::fs::read_to_string(&path).map(|s| s.trim().to_string()).ctx(|| format!("read {}", path.display()))
}

/// `dir/file` parsed as a number; "max" reads as u64::MAX. None when absent or unparsable.
pub fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    let s = std::fs::read_to_string(dir.join(file)).ok()?;
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// "key value" lines (memory.stat, cpu.stat, memory.events) as pairs.
pub fn read_keyed(dir: &Path, file: &str) -> Vec<(String, u64)> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// One value of a keyed file.
pub fn keyed(dir: &Path, file: &str, key: &str) -> Option<u64> {
    read_keyed(dir, file).into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

pub fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// The directory of a controller for one container, and which cgroup version holds it.
#[derive(Clone, Debug)]
pub struct ControllerDir {
    pub dir: PathBuf,
    pub v2: bool,
}
