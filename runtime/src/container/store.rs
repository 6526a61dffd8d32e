//! The state store: one directory per container under `--root`, taken atomically by
//! mkdir, and a lock file that serialises every command on one id.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::id;
use super::state::ContainerState;
use crate::error::{Context, Error, Result};

const STATE_FILE: &str = "state.json";
const LOCK_FILE: &str = "lock";

pub struct Store {
    root: PathBuf,
}

/// A container directory held under its lock; dropped, it unlocks.
pub struct Locked {
    pub id: String,
    pub dir: PathBuf,
    _lock: Flock<File>,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the directory of a new container: fails if the id is taken.
    pub fn reserve(&self, id: &str) -> Result<Locked> {
        id::validate(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .ctx(|| format!("create state root {}", self.root.display()))?;
        let dir = self.root.join(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(Error::Exists(id.into())),
            Err(e) => return Err(Error::os(format!("create {}", dir.display()), e)),
        }
        match lock(&dir) {
            Ok(lock) => Ok(Locked { id: id.into(), dir, _lock: lock }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// Locks an existing container's directory (waiting for any other command on it).
    pub fn open(&self, id: &str) -> Result<Locked> {
        id::validate(id)?;
        let dir = self.root.join(id);
        let lock = match lock(&dir) {
            Ok(l) => l,
            Err(Error::Os { source, .. }) if source.kind() == ErrorKind::NotFound => {
                return Err(Error::NotFound(id.into()))
            }
            Err(e) => return Err(e),
        };
        // A delete that ran while we waited has removed the directory under us.
        if !dir.exists() {
            return Err(Error::NotFound(id.into()));
        }
        Ok(Locked { id: id.into(), dir, _lock: lock })
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
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| id::validate(id).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn lock(dir: &Path) -> Result<Flock<File>> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .ctx(|| format!("open {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| Error::os(format!("lock {}", path.display()), e))
}

impl Locked {
    /// Loads state.json; a directory without one is a container whose create never
    /// finished (reported as not existing; `delete -f` clears it).
    pub fn load(&self) -> Result<ContainerState> {
        let path = self.dir.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(Error::NotFound(self.id.clone())),
            Err(e) => return Err(Error::os(format!("read {}", path.display()), e)),
        };
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Config { file: path, message: format!("corrupt state: {e}") })
    }

    /// Writes state.json atomically (temp file + rename).
    pub fn save(&self, state: &ContainerState) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let json = serde_json::to_vec(state).map_err(|e| Error::os("encode state", std::io::Error::other(e)))?;
        let mut f = File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        f.write_all(&json).ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join(STATE_FILE)).ctx(|| format!("rename {}", tmp.display()))
    }

    /// The user that owns the container (the owner of its state directory).
    pub fn owner(&self) -> String {
        let uid = std::fs::metadata(&self.dir).map(|m| m.uid()).unwrap_or(0);
        crate::user::name_of_uid(uid).unwrap_or_default()
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
