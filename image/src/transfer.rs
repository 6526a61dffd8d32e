//! Moving images and trees in and out: `import` (a rootfs tar as a one-layer
//! image), `save` (an image into an OCI layout or archive), `export` (a
//! bundle's rootfs view as a tar).

use crate::archive;
use crate::bundle::{self, BundleMeta};
use crate::commit::copy_layers;
use crate::error::{Error, Result};
use crate::image::ResolvedImage;
use crate::layout::Layout;
use crate::overlay;
use crate::reference::Reference;
use crate::staging;
use crate::treetar::{self, Source};
use crate::writer::{self, Compression};
use oci_spec::image::{Descriptor, MediaType};
use std::io::Write;
use std::path::Path;

pub fn import(tar: &Path, dest: &Reference) -> Result<Descriptor> {
    let layout = Layout::open_or_init(&dest.path)?;
    let mut f = std::fs::File::open(tar).map_err(|e| Error::io(tar, e))?;
    let nl = writer::write_layer(&layout, &mut f, Compression::Gzip)?;
    let config = writer::new_config(std::slice::from_ref(&nl.diff_id), &format!("strata-image import {}", tar.display()));
    writer::write_image(&layout, &dest.tag_or_latest()?, &config, &[nl.descriptor])
}

/// Writes `img` into the layout at `dest` (or an OCI archive when `archive`).
pub fn save(img: &ResolvedImage, dest: &Path, tag: &str, archive: bool) -> Result<Descriptor> {
    if archive {
        staging::sweep(&std::env::temp_dir(), staging::SAVE, false)?;
        let tmp = tempfile::Builder::new().prefix(&staging::prefix(staging::SAVE)).tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let d = save_layout(img, &Layout::open_or_init(tmp.path())?, tag)?;
        archive::write_oci_archive(tmp.path(), dest)?;
        return Ok(d);
    }
    save_layout(img, &Layout::open_or_init(dest)?, tag)
}

fn save_layout(img: &ResolvedImage, layout: &Layout, tag: &str) -> Result<Descriptor> {
    let layers = copy_layers(img, layout)?;
    match &img.manifest_raw {
        Some(raw) if img.layers.iter().all(|l| l.digest.is_some()) => {
            layout.write_blob(MediaType::ImageConfig, &img.config_raw)?;
            let mut desc = layout.write_blob(MediaType::ImageManifest, raw)?;
            let v: serde_json::Value = serde_json::from_slice(raw).map_err(|e| Error::json("manifest", e))?;
            if let Some(mt) = v.get("mediaType").and_then(|m| m.as_str()) {
                desc.set_media_type(MediaType::from(mt));
            }
            layout.set_tag(tag, &desc)?;
            Ok(desc)
        }
        _ => {
            let config: serde_json::Value = serde_json::from_slice(&img.config_raw).map_err(|e| Error::json("config", e))?;
            writer::write_image(layout, tag, &config, &layers)
        }
    }
}

/// Writes the bundle's rootfs (the union view for overlay bundles) as a tar.
pub fn export(bundle_dir: &Path, out: &mut dyn Write) -> Result<()> {
    let meta = BundleMeta::load(bundle_dir)?;
    let rootfs = bundle_dir.join("rootfs");
    let mounted_here = meta.is_overlay() && !overlay::is_mounted(&rootfs);
    if mounted_here {
        bundle::mount(bundle_dir)?;
    }
    let r = treetar::write_tree(&rootfs, out, Source::Plain);
    if mounted_here {
        overlay::unmount(&rootfs)?;
    }
    r
}
