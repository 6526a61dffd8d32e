//! The content-addressed layer store for overlay bundles: each layer is
//! extracted once, into `<store>/layers/sha256/<diff_id hex>`, and shared by
//! every bundle that uses it. Extraction goes to a temp dir and is renamed
//! into place, so a half-extracted layer is never visible.

use crate::apply::{self, Mode};
use crate::digest;
use crate::error::{Error, Result};
use crate::image::{self, LayerBlob};
use std::fs;
use std::path::{Path, PathBuf};

pub const DEFAULT_STORE: &str = "/var/lib/strata-image";

pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        let layers = root.join("layers/sha256");
        fs::create_dir_all(&layers).map_err(|e| Error::io(&layers, e))?;
        let root = fs::canonicalize(&root).map_err(|e| Error::io(&root, e))?;
        for c in root.to_string_lossy().chars() {
            if c == ':' || c == ',' {
                return Err(Error::Invalid(format!("store {}: ':' and ',' cannot appear in overlay lowerdirs", root.display())));
            }
        }
        Ok(Store { root })
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
        let dest = self.layer_dir(&layer.diff_id)?;
        if dest.is_dir() {
            return Ok((dest, false));
        }
        let parent = dest.parent().unwrap();
        let tmp = tempfile::Builder::new().prefix(".tmp-").tempdir_in(parent).map_err(|e| Error::io(parent, e))?;
        let mode = Mode::Overlay { lowers: below.to_vec() };
        image::with_layer(layer, |r| apply::apply_layer(tmp.path(), r, &mode))?;
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

pub fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(|e| Error::io(p, e))
}
