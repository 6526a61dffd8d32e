//! `du`: the seeds' two sizes of a container. "size" is what the container
//! itself wrote (its read-write layer: an overlay bundle's upper dir, or for a
//! flatten bundle the diff against the tree recorded at unpack); "virtual
//! size" is the image's layers plus that, as docker counts it (a file the
//! container rewrote counts in both; the same for both bundle modes).
//! Sizes are apparent bytes of regular files and symlinks, hardlinks counted once.

use crate::bundle::{self, BundleMeta};
use crate::error::{Error, Result};
use crate::flatdiff;
use crate::store::Store;
use serde::Serialize;
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Serialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TreeSize {
    pub bytes: u64,
    /// Entries of any type (dirs included).
    pub entries: u64,
}

/// Size of the tree under `root` (not following symlinks).
pub fn tree_size(root: &Path) -> Result<TreeSize> {
    let mut t = TreeSize::default();
    let mut seen = HashSet::new();
    add_dir(root, &mut t, &mut seen)?;
    Ok(t)
}

fn add_dir(dir: &Path, t: &mut TreeSize, seen: &mut HashSet<(u64, u64)>) -> Result<()> {
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        let m = fs::symlink_metadata(&p).map_err(|e| Error::io(&p, e))?;
        t.entries += 1;
        if m.is_dir() {
            add_dir(&p, t, seen)?;
        } else if (m.is_file() || m.file_type().is_symlink()) && (m.nlink() == 1 || seen.insert((m.dev(), m.ino()))) {
            t.bytes += m.size();
        }
    }
    Ok(())
}

#[derive(Serialize, Debug, Clone)]
pub struct LayerUsage {
    pub diff_id: String,
    pub size: u64,
    /// Overlay only: the extracted layer in the store.
    pub path: Option<PathBuf>,
}

#[derive(Serialize, Debug, Clone)]
pub struct BundleUsage {
    pub bundle: PathBuf,
    pub mode: String,
    pub image: String,
    /// The read-write layer: what the container changed.
    pub size: u64,
    /// The whole view: image layers plus the read-write layer.
    pub virtual_size: u64,
    /// The image's layers, bottom first (overlay: extracted sizes; flatten: the
    /// layers are merged in one tree, so only their ids, size 0).
    pub layers: Vec<LayerUsage>,
}

pub fn bundle_usage(b: &Path) -> Result<BundleUsage> {
    let meta = BundleMeta::load(b)?;
    let (size, layers, image_size) = if meta.is_overlay() {
        let size = tree_size(&bundle::upper_dir(b))?.bytes;
        // meta.lowers is topmost first; an image without layers has one empty lower.
        let mut layers = vec![];
        for (diff_id, dir) in meta.diff_ids.iter().zip(meta.lowers.iter().rev()) {
            layers.push(LayerUsage { diff_id: diff_id.clone(), size: tree_size(dir)?.bytes, path: Some(dir.clone()) });
        }
        let image_size = layers.iter().map(|l| l.size).sum();
        (size, layers, image_size)
    } else {
        let tree = b.join(flatdiff::TREE_FILE);
        let stats = flatdiff::write_diff(&b.join("rootfs"), &tree, &mut std::io::sink())?;
        let layers = meta.diff_ids.iter().map(|d| LayerUsage { diff_id: d.clone(), size: 0, path: None }).collect();
        (stats.bytes, layers, flatdiff::recorded_size(&tree)?)
    };
    Ok(BundleUsage {
        bundle: b.to_path_buf(),
        mode: meta.mode.clone(),
        image: meta.image.clone(),
        size,
        virtual_size: image_size + size,
        layers,
    })
}

#[derive(Serialize, Debug, Clone)]
pub struct StoreLayerUsage {
    pub diff_id: String,
    pub size: u64,
    /// Registered bundles layered on it.
    pub bundles: usize,
}

#[derive(Serialize, Debug, Clone)]
pub struct StoreUsage {
    pub store: PathBuf,
    pub layers: Vec<StoreLayerUsage>,
    /// All layers: what the store holds on disk.
    pub total: u64,
    /// Layers no registered bundle uses: what `gc` would free.
    pub reclaimable: u64,
}

pub fn store_usage(store: &Store) -> Result<StoreUsage> {
    let mut users: Vec<PathBuf> = vec![];
    for (_, b) in store.bundles()? {
        if let Ok(meta) = BundleMeta::load(&b) {
            users.extend(meta.lowers);
        }
    }
    let mut layers = vec![];
    for diff_id in store.layers()? {
        let dir = store.layer_dir(&diff_id)?;
        let bundles = users.iter().filter(|u| **u == dir).count();
        layers.push(StoreLayerUsage { size: tree_size(&dir)?.bytes, diff_id, bundles });
    }
    let total = layers.iter().map(|l| l.size).sum();
    let reclaimable = layers.iter().filter(|l| l.bundles == 0).map(|l| l.size).sum();
    Ok(StoreUsage { store: store.root.clone(), layers, total, reclaimable })
}
