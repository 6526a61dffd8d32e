//! The state store: one directory per container under `--root`, made whole and locked
//! before it appears under its id, and a lock file that serialises every command on
//! one id.
//!
//! The lock is a POSIX record lock (fcntl), not flock: it belongs to the process that
//! took it and is never inherited by the init that `create` clones, so an init can't
//! keep an id locked after `create` dies. Waits are bounded and name the holder.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::id;
use super::state::ContainerState;
use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";
const FOOTPRINT_FILE: &str = "footprint.json";

/// How long a command waits for another one on the same id before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(5);

/// runc's modes: the root is private, a container's directory only traversable (the
/// init may open the exec fifo as another user), its files private.
const ROOT_MODE: u32 = 0o700;
const DIR_MODE: u32 = 0o711;
const FILE_MODE: u32 = 0o600;

pub struct Store {
    root: PathBuf,
}

/// A container directory held under its lock; dropped, it unlocks.
pub struct Locked {
    pub id: String,
    pub dir: PathBuf,
    _lock: File,
}

/// What `create` has made on the host so far, recorded before each step makes it, so
/// that `delete -f` can undo a create that died half-way or whose state.json is lost.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Footprint {
    /// The cgroup, with `created` listing the directories create makes (or made).
    pub cgroup: Option<Cgroup>,
    /// The init's pid and start time, once it exists.
    pub pid: Option<i32>,
    pub pid_start_time: Option<u64>,
}

/// A container as `list` sees it, read without waiting for its lock.
pub enum Listed {
    Ok(Box<ContainerState>),
    /// No state.json yet, and a command (its `create`) holds the lock.
    Creating,
    /// No usable state.json and nobody making one: `delete -f` cleans it up.
    Broken(Error),
    /// Deleted since the directory was listed.
    Gone,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the directory of a new container: fails if the id is taken. The directory
    /// is made under a temporary name, locked, then renamed into place without replacing
    /// anything, so no other command ever sees it unlocked and exactly one create wins.
    pub fn reserve(&self, id: &str) -> Result<Locked> {
        id::validate(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(ROOT_MODE)
            .create(&self.root)
            .ctx(|| format!("create state root {}", self.root.display()))?;
        self.sweep_temporaries();
        let dir = self.root.join(id);
        if dir.exists() {
            return Err(Error::Exists(id.into()));
        }
        let tmp = self.root.join(format!(".{id}.{}.new", std::process::id()));
        std::fs::DirBuilder::new().mode(DIR_MODE).create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        let result = (|| {
            let lock = lock(&tmp, id, true)?;
            match rename_noreplace(&tmp, &dir) {
                Ok(()) => Ok(Locked { id: id.into(), dir: dir.clone(), _lock: lock }),
                Err(e) if e.kind() == ErrorKind::AlreadyExists || e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                    Err(Error::Exists(id.into()))
                }
                Err(e) => Err(Error::os(format!("rename {} to {}", tmp.display(), dir.display()), e)),
            }
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Removes temporary directories of creates that were killed between mkdir and rename.
    fn sweep_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) =
                name.strip_suffix(".new").and_then(|n| n.rsplit('.').next()).and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if name.starts_with('.') && crate::sys::proc_stat(pid).is_none() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Locks an existing container's directory, waiting (a bounded time) for any other
    /// command on it.
    pub fn open(&self, id: &str) -> Result<Locked> {
        id::validate(id)?;
        let dir = self.root.join(id);
        loop {
            let lock = match lock(&dir, id, false) {
                Ok(l) => l,
                Err(Error::Os { source, .. }) if source.kind() == ErrorKind::NotFound => {
                    return Err(Error::NotFound(id.into()))
                }
                Err(e) => return Err(e),
            };
            // A delete that ran while we waited has removed the directory (and the lock
            // file) under us; a create may even have made a new one: lock that instead.
            match std::fs::metadata(dir.join(LOCK_FILE)) {
                Ok(m) if lock.metadata().is_ok_and(|l| l.ino() == m.ino() && l.dev() == m.dev()) => {
                    return Ok(Locked { id: id.into(), dir, _lock: lock })
                }
                Ok(_) => continue,
                Err(_) => return Err(Error::NotFound(id.into())),
            }
        }
    }

    /// Ids of every container in the store, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::os(format!("read {}", self.root.display()), e)),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            // Not made by reserve (no lock file): some other directory, not a container.
            .filter(|e| e.path().join(LOCK_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| id::validate(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// A container's saved state, read without its lock (state.json is replaced
    /// atomically), so `list` never waits for, nor hides, a wedged or broken container.
    pub fn peek(&self, id: &str) -> Listed {
        let dir = self.root.join(id);
        match read_state(&dir, id) {
            Ok(s) => Listed::Ok(Box::new(s)),
            Err(_) if !dir.exists() => Listed::Gone,
            Err(Error::NotFound(_)) if lock_holder(&dir).is_some() => Listed::Creating,
            Err(Error::NotFound(_)) => Listed::Broken(Error::Refused(format!(
                "{} is missing (a create that died half-way?): `delete --force {id}` removes what it left",
                dir.join(STATE_FILE).display()
            ))),
            Err(e) => Listed::Broken(e),
        }
    }
}

/// rename(2) that fails instead of replacing `to` (renameat2 RENAME_NOREPLACE); on a
/// file system without it, a plain rename, which still refuses a non-empty directory.
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    let c = |p: &Path| {
        std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())).map_err(std::io::Error::other)
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), libc::RENAME_NOREPLACE) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => std::fs::rename(from, to),
        _ => Err(e),
    }
}

fn open_lock_file(dir: &Path, create: bool) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(create)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_CLOEXEC)
        .open(dir.join(LOCK_FILE))
}

fn whole_file_lock(typ: libc::c_int) -> libc::flock {
    // SAFETY: flock is plain old data; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = typ as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

/// Takes the write lock on `dir`'s lock file, retrying until [`LOCK_WAIT`] has passed.
/// Only `reserve` creates the file: a directory without one was never a container's
/// (reserve locks before the directory gets its name), so it reads as not found.
fn lock(dir: &Path, id: &str, create: bool) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = open_lock_file(dir, create).ctx(|| format!("open {}", path.display()))?;
    let deadline = Instant::now() + LOCK_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        let fl = whole_file_lock(libc::F_WRLCK);
        // SAFETY: a valid fd and flock struct.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
            return Ok(file);
        }
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES) | Some(libc::EINTR)) {
            return Err(Error::os(format!("lock {}", path.display()), e));
        }
        if Instant::now() >= deadline {
            let holder = holder_of(&file).unwrap_or(0);
            return Err(Error::Busy { id: id.into(), holder, command: command_of(holder), secs: LOCK_WAIT.as_secs() });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// The pid holding the lock on `file`, if any (F_GETLK).
fn holder_of(file: &File) -> Option<i32> {
    let mut fl = whole_file_lock(libc::F_WRLCK);
    // SAFETY: a valid fd and flock struct.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) };
    (r == 0 && fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid)
}

/// The pid holding `dir`'s lock, without taking it. Closing the probe drops any lock
/// this process holds on the file (POSIX rule): call it only while holding none there.
fn lock_holder(dir: &Path) -> Option<i32> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_CLOEXEC).open(dir.join(LOCK_FILE)).ok()?;
    holder_of(&file)
}

/// The holder's command line, for the "busy" error.
fn command_of(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let words: Vec<String> =
        raw.split(|b| *b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
    if words.is_empty() {
        "gone".into()
    } else {
        words.join(" ")
    }
}

fn read_state(dir: &Path, id: &str) -> Result<ContainerState> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(Error::NotFound(id.into())),
        Err(e) => return Err(Error::os(format!("read {}", path.display()), e)),
    };
    serde_json::from_slice(&bytes).map_err(|e| Error::Config { file: path, message: format!("corrupt state: {e}") })
}

impl Locked {
    /// Loads state.json; a directory without one is a container whose create never
    /// finished (reported as not existing; `delete -f` clears it).
    pub fn load(&self) -> Result<ContainerState> {
        read_state(&self.dir, &self.id)
    }

    /// Writes state.json atomically (temp file + rename), readable only by its owner.
    pub fn save(&self, state: &ContainerState) -> Result<()> {
        self.write_atomic(
            STATE_FILE,
            &serde_json::to_vec(state).map_err(|e| Error::os("encode state", std::io::Error::other(e)))?,
        )
    }

    /// Records what create is about to make (see [`Footprint`]).
    pub fn record(&self, f: &Footprint) -> Result<()> {
        self.write_atomic(
            FOOTPRINT_FILE,
            &serde_json::to_vec(f).map_err(|e| Error::os("encode footprint", std::io::Error::other(e)))?,
        )
    }

    /// The footprint create left, if it left a readable one.
    pub fn footprint(&self) -> Option<Footprint> {
        serde_json::from_slice(&std::fs::read(self.dir.join(FOOTPRINT_FILE)).ok()?).ok()
    }

    fn write_atomic(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(bytes).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join(name)).ctx(|| format!("rename {}", tmp.display()))
    }

    /// The user that owns the container (the owner of its state directory).
    pub fn owner(&self) -> String {
        owner_of(&self.dir)
    }

    /// Removes the container's directory; the lock goes with it.
    pub fn remove(self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::os(format!("remove {}", self.dir.display()), e)),
        }
    }
}

/// The user that owns a state directory.
pub fn owner_of(dir: &Path) -> String {
    let uid = std::fs::metadata(dir).map(|m| m.uid()).unwrap_or(0);
    crate::user::name_of_uid(uid).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_store(name: &str) -> Store {
        let root = std::env::temp_dir().join(format!("strata-store-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        Store::new(root)
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn reserve_is_exclusive_and_private() {
        let store = temp_store("reserve");
        let locked = store.reserve("a").unwrap();
        assert!(matches!(store.reserve("a"), Err(Error::Exists(_))));
        locked.record(&Footprint { pid: Some(7), ..Default::default() }).unwrap();
        assert_eq!(locked.footprint().unwrap().pid, Some(7));
        assert_eq!(
            (mode(store.root()), mode(&locked.dir), mode(&locked.dir.join(FOOTPRINT_FILE))),
            (0o700, 0o711, 0o600)
        );
        // No temporary directory is left, and only the id is listed.
        assert_eq!(store.ids().unwrap(), ["a"]);
        assert_eq!(std::fs::read_dir(store.root()).unwrap().count(), 1);
        locked.remove().unwrap();
        assert!(matches!(store.open("a"), Err(Error::NotFound(_))));
        std::fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn peek_tells_missing_from_corrupt_state() {
        let store = temp_store("peek");
        let locked = store.reserve("b").unwrap();
        drop(locked);
        assert!(matches!(store.peek("b"), Listed::Broken(Error::Refused(m)) if m.contains("state.json is missing")));
        std::fs::write(store.root().join("b").join(STATE_FILE), "garbage").unwrap();
        assert!(matches!(store.peek("b"), Listed::Broken(Error::Config { .. })));
        assert!(matches!(store.peek("nope"), Listed::Gone));
        std::fs::remove_dir_all(store.root()).unwrap();
    }

    #[test]
    fn temporaries_of_dead_creates_are_swept() {
        let store = temp_store("sweep");
        std::fs::create_dir_all(store.root()).unwrap();
        // pid 0x7fffffff never exists; our own pid does.
        let dead = store.root().join(".x.2147483647.new");
        let live = store.root().join(format!(".y.{}.new", std::process::id()));
        std::fs::create_dir(&dead).unwrap();
        std::fs::create_dir(&live).unwrap();
        store.reserve("c").unwrap().remove().unwrap();
        assert!(!dead.exists() && live.exists());
        std::fs::remove_dir_all(store.root()).unwrap();
    }
}
