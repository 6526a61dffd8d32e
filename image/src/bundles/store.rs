//! The content-addressed layer store for overlay bundles: each layer is
//! extracted once, into `<store>/layers/sha256/<diff_id hex>`, and shared by
//! every bundle that uses it. Extraction goes to a temp dir and is renamed
//! into place, so a half-extracted layer is never visible.
//!
//! The store keeps a registry of the bundles using it (`bundles/<key>`, a
//! symlink to the bundle), because `gc` must know every bundle whose rootfs
//! is layered on it and bundles can live anywhere. Unpack holds the store's
//! lock shared from extraction until registration; gc holds it exclusive, so
//! it never removes a layer an unpack in flight is about to use.

use crate::apply::{self, Mode};
use crate::digest;
use crate::error::{Error, Result};
use crate::image::{self, LayerBlob};
use crate::staging;
use std::fs;
use std::path::{Path, PathBuf};

/// root's store.
pub const DEFAULT_STORE: &str = "/var/lib/strata-image";

/// The store a caller gets by default: root's, or for anyone else the XDG data
/// dir (`$XDG_DATA_HOME/strata-image`, else `~/.local/share/strata-image`), as
/// rootless podman keeps its storage under `~/.local/share/containers`. Not
/// needed by flatten bundles; an unprivileged caller cannot mount overlays anyway,
/// but du, gc and an unpack's refusal then name a path that is theirs.
pub fn default_store() -> &'static str {
    static STORE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    STORE.get_or_init(|| {
        if nix::unistd::geteuid().is_root() {
            return DEFAULT_STORE.into();
        }
        let abs = |v: Option<std::ffi::OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
        let data = abs(std::env::var_os("XDG_DATA_HOME"))
            .or_else(|| abs(std::env::var_os("HOME")).map(|h| h.join(".local/share")))
            .map(|d| d.join("strata-image"));
        // Without a home the caller is told, by the failing mkdir, which path it tried.
        data.map_or_else(|| DEFAULT_STORE.into(), |d| d.to_string_lossy().into_owned())
    })
}

pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        let layers = root.join("layers/sha256");
        fs::create_dir_all(&layers).map_err(|e| Error::io(&layers, e))?;
        let root = fs::canonicalize(&root).map_err(|e| Error::io(&root, e))?;
        if root.to_str().is_none() {
            // Bundles record their layer dirs in strata-image.json, which holds only text.
            return Err(Error::Invalid(format!("store {}: the path is not UTF-8", root.display())));
        }
        Ok(Store { root })
    }

    /// Opens a store without making one: what only looks (du) has nothing to look at otherwise.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        if !root.join("layers/sha256").is_dir() {
            return Err(Error::Invalid(format!(
                "store {}: no layer store there (unpack --overlay makes it)",
                root.display()
            )));
        }
        Store::open(root)
    }

    pub fn layer_dir(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers/sha256").join(digest::hex_of(diff_id)?))
    }

    /// An empty lower layer, for images without layers.
    pub fn empty_layer(&self) -> Result<PathBuf> {
        let p = self.root.join("empty");
        fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        Ok(p)
    }

    /// Extracts `layer` unless the store has it; `below` are the layers under
    /// it, topmost first. Returns the layer's directory and whether it was
    /// extracted now.
    pub fn ensure(&self, layer: &LayerBlob, below: &[PathBuf]) -> Result<(PathBuf, bool)> {
        self.ensure_with(layer, below, None)
    }

    /// `ensure`, reporting the stored bytes read while extracting.
    pub fn ensure_with(
        &self,
        layer: &LayerBlob,
        below: &[PathBuf],
        on_bytes: Option<&dyn Fn(u64)>,
    ) -> Result<(PathBuf, bool)> {
        let dest = self.layer_dir(&layer.diff_id)?;
        if dest.is_dir() {
            return Ok((dest, false));
        }
        let parent = dest.parent().unwrap();
        // Extractions cut short by a kill are removed by the next one (or gc).
        staging::sweep(parent, staging::TEMP_FILE, false)?;
        let tmp = tempfile::Builder::new()
            .prefix(&staging::prefix(staging::TEMP_FILE))
            .tempdir_in(parent)
            .map_err(|e| Error::io(parent, e))?;
        let mode = Mode::Overlay { lowers: below.to_vec() };
        image::with_layer_progress(layer, on_bytes, |r| apply::apply_layer(tmp.path(), r, &mode))?;
        set_mode(tmp.path(), 0o755)?;
        match fs::rename(tmp.path(), &dest) {
            Ok(()) => {
                let _ = tmp.keep();
                Ok((dest, true))
            }
            // Another unpack finished the same layer first: use theirs.
            Err(_) if dest.is_dir() => Ok((dest, false)),
            Err(e) => Err(Error::io(&dest, e)),
        }
    }

    fn registry(&self) -> PathBuf {
        self.root.join("bundles")
    }

    /// The registry entry of `bundle` (its parent must exist: unpack registers
    /// a bundle before making it).
    fn entry_of(&self, bundle: &Path) -> Result<(PathBuf, PathBuf)> {
        let canon = match (fs::canonicalize(bundle), bundle.parent(), bundle.file_name()) {
            (Ok(c), _, _) => c,
            (Err(e), Some(parent), Some(name)) if e.kind() == std::io::ErrorKind::NotFound => {
                let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
                fs::canonicalize(parent).map_err(|e| Error::io(parent, e))?.join(name)
            }
            (Err(e), _, _) => return Err(Error::io(bundle, e)),
        };
        let key = digest::of_bytes(canon.as_os_str().as_encoded_bytes());
        let hex = digest::hex_of(&key)?;
        Ok((self.registry().join(&hex[..32]), canon))
    }

    /// Records that `bundle` is layered on this store.
    pub fn register(&self, bundle: &Path) -> Result<()> {
        let (link, target) = self.entry_of(bundle)?;
        let dir = self.registry();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).map_err(|e| Error::io(&link, e))
    }

    pub fn unregister(&self, bundle: &Path) -> Result<()> {
        let (link, _) = self.entry_of(bundle)?;
        match fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&link, e)),
            _ => Ok(()),
        }
    }

    /// The registered bundles: (registry entry, bundle path).
    pub fn bundles(&self) -> Result<Vec<(PathBuf, PathBuf)>> {
        let dir = self.registry();
        let Ok(rd) = fs::read_dir(&dir) else { return Ok(vec![]) };
        let mut out = vec![];
        for e in rd {
            let e = e.map_err(|e| Error::io(&dir, e))?;
            if let Ok(t) = fs::read_link(e.path()) {
                out.push((e.path(), t));
            }
        }
        out.sort();
        Ok(out)
    }

    /// flock(2) on `<store>/lock`: shared for unpack, exclusive for gc.
    pub fn lock(&self, exclusive: bool) -> Result<StoreLock> {
        use nix::fcntl::{Flock, FlockArg};
        let p = self.root.join("lock");
        let f =
            fs::OpenOptions::new().create(true).truncate(false).write(true).open(&p).map_err(|e| Error::io(&p, e))?;
        let op = if exclusive { FlockArg::LockExclusive } else { FlockArg::LockShared };
        let lock = Flock::lock(f, op).map_err(|(_, e)| Error::sys("flock", &p, e))?;
        Ok(StoreLock(lock))
    }

    /// Extracted layers in the store.
    pub fn layers(&self) -> Result<Vec<String>> {
        let dir = self.root.join("layers/sha256");
        let mut out: Vec<String> = fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .map(|n| format!("sha256:{n}"))
            .collect();
        out.sort();
        Ok(out)
    }
}

/// Held while the lock is; released when dropped (the fd closes).
pub struct StoreLock(#[allow(dead_code)] nix::fcntl::Flock<fs::File>);

pub fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(|e| Error::io(p, e))
}
