//! `gc`: frees what nothing uses. In a layer store, the extracted layers that
//! no registered bundle is layered on (and leftovers of interrupted
//! extractions); in an image layout, the blobs no tag or index entry reaches.

use crate::bundle::BundleMeta;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::overlay;
use crate::staging;
use crate::store::Store;
use crate::usage;
use serde::Serialize;
use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

#[derive(Serialize, Debug, Default)]
pub struct GcReport {
    /// Layer diff_ids or blob digests removed (or that would be, with dry_run).
    pub removed: Vec<String>,
    /// Bytes they held (apparent size).
    pub freed: u64,
    /// How many were kept because something uses them.
    pub kept: usize,
    /// Registry entries of bundles that no longer exist, dropped.
    pub stale_bundles: Vec<PathBuf>,
    /// Leftovers of killed unpacks, saves and commits (see `staging`), removed.
    pub staging: Vec<PathBuf>,
}

/// Removes the store's layers that no registered bundle uses. A registered
/// path that no longer holds a bundle of this store is dropped from the
/// registry; a layer named by any mounted overlay is kept whatever the registry says.
pub fn gc_store(store: &Store, dry_run: bool) -> Result<GcReport> {
    let _lock = store.lock(true)?;
    let mut report = GcReport::default();
    let mut used: HashSet<PathBuf> = HashSet::new();
    for (entry, bundle) in store.bundles()? {
        match BundleMeta::load(&bundle) {
            Ok(meta) if meta.store.as_deref() == Some(store.root.as_path()) => used.extend(meta.lowers),
            _ => {
                if !dry_run {
                    fs::remove_file(&entry).map_err(|e| Error::io(&entry, e))?;
                }
                // An unpack registers its bundle before staging it beside its final path.
                if let Some(parent) = bundle.parent() {
                    report.staging.extend(staging::sweep(parent, staging::BUNDLE, dry_run)?);
                }
                report.stale_bundles.push(bundle);
            }
        }
    }
    for kind in [staging::ARCHIVE, staging::SAVE] {
        report.staging.extend(staging::sweep(&std::env::temp_dir(), kind, dry_run)?);
    }
    let dir = store.root.join("layers/sha256");
    for e in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let e = e.map_err(|e| Error::io(&dir, e))?;
        let (path, name) = (e.path(), e.file_name().to_string_lossy().into_owned());
        let leftover = name.starts_with(".tmp-"); // an extraction that never finished
        if !leftover && (used.contains(&path) || overlay::layer_in_use(&path)) {
            report.kept += 1;
            continue;
        }
        report.freed += usage::tree_size(&path)?.bytes;
        report.removed.push(if leftover { name } else { format!("sha256:{name}") });
        if !dry_run {
            fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    report.removed.sort();
    Ok(report)
}

/// Removes the layout's blobs that index.json does not reach (through
/// nested indexes, manifests, configs and layers).
pub fn gc_layout(layout: &Layout, dry_run: bool) -> Result<GcReport> {
    let mut reach: HashSet<String> = HashSet::new();
    let mut todo: Vec<oci_spec::image::Descriptor> = layout.index()?.manifests().clone();
    while let Some(d) = todo.pop() {
        let digest = d.digest().to_string();
        if !reach.insert(digest.clone()) {
            continue;
        }
        let mt = d.media_type().to_string();
        if mt.contains("index") || mt.contains("manifest") {
            let v: serde_json::Value =
                serde_json::from_slice(&layout.read_blob(&d)?).map_err(|e| Error::json(format!("blob {digest}"), e))?;
            let children = v["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(v["layers"].as_array().into_iter().flatten())
                .chain(std::iter::once(&v["config"]));
            for c in children.filter(|c| c.is_object()) {
                todo.push(
                    serde_json::from_value(c.clone())
                        .map_err(|e| Error::json(format!("descriptor in blob {digest}"), e))?,
                );
            }
        }
    }
    let mut report = GcReport::default();
    let dir = layout.root.join("blobs/sha256");
    for d in [&layout.root, &dir] {
        report.staging.extend(staging::sweep(d, staging::TEMP_FILE, dry_run)?);
    }
    for e in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let e = e.map_err(|e| Error::io(&dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() != 64 || !name.bytes().all(|c| c.is_ascii_hexdigit()) {
            continue; // a blob being written (temp file), never a finished blob
        }
        let digest = format!("sha256:{name}");
        if reach.contains(&digest) {
            report.kept += 1;
            continue;
        }
        let m = e.metadata().map_err(|err| Error::io(e.path(), err))?;
        report.freed += m.len();
        report.removed.push(digest);
        if !dry_run {
            fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
        }
    }
    report.removed.sort();
    Ok(report)
}
