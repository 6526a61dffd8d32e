//! `commit`: a bundle's changes become a new image layer on top of the
//! bundle's image, written to a layout and tagged. An overlay bundle's changes
//! are its read-write (upper) layer; a flatten bundle's are the diff of its
//! rootfs against the tree recorded at unpack (`flatdiff`). The stage also
//! holds what writes images (`treetar`, `writer`), reads their history, and
//! pauses the containers whose changes are read (`freeze`).

pub mod flatdiff;
pub mod freeze;
pub mod history;
pub mod treetar;
pub mod writer;

use crate::bundle::{self, BundleMeta};
use crate::error::{Error, Result};
use crate::image::{self, ResolvedImage};
use crate::layout::{parse_digest, Layout};
use crate::platform::PlatformSpec;
use crate::reference::Reference;
use freeze::Runtime;
use oci_spec::image::{Descriptor, MediaType};
use serde_json::json;
use std::fs::File;
use treetar::Source;
use writer::Compression;

#[derive(Default)]
pub struct CommitOptions {
    pub message: Option<String>,
    pub author: Option<String>,
    /// Pause the bundle's running containers (found through this runtime) while
    /// the changes are read. None: read them live; a file that changes size
    /// meanwhile then fails the commit (see `treetar`), one rewritten in place
    /// goes in as it was read.
    pub pause: Option<Runtime>,
}

pub fn commit(bundle_dir: &std::path::Path, dest: &Reference, opts: &CommitOptions) -> Result<Descriptor> {
    let meta = BundleMeta::load(bundle_dir)?;
    let tree = bundle_dir.join(flatdiff::TREE_FILE);
    if !meta.is_overlay() && !tree.exists() {
        return Err(Error::Invalid(format!(
            "{}: flatten bundle without a tree record (made by an older strata-image): nothing to diff against",
            tree.display()
        )));
    }
    let base = image::open(&Reference::parse(&meta.image)?, &PlatformSpec::host())?;
    if base.config_digest != meta.config_digest {
        return Err(Error::Invalid(format!(
            "{}: image {} changed since the bundle was made",
            bundle_dir.display(),
            meta.image
        )));
    }
    let layout = Layout::open_or_init(&dest.path)?;
    let mut layers = copy_layers(&base, &layout)?;
    let frozen = opts.pause.as_ref().map(|rt| freeze::freeze(bundle_dir, rt)).transpose()?;
    let new = if meta.is_overlay() {
        let upper = bundle::upper_dir(bundle_dir);
        writer::write_layer_with(&layout, Compression::Gzip, &mut |w| {
            treetar::write_tree(&upper, w, Source::OverlayUpper)
        })
    } else {
        let rootfs = bundle_dir.join("rootfs");
        let owners = meta.owners();
        writer::write_layer_with(&layout, Compression::Gzip, &mut |w| {
            flatdiff::write_diff_owned(&rootfs, &tree, w, owners).map(drop)
        })
    };
    let thawed = frozen.map(freeze::Frozen::thaw).unwrap_or(Ok(()));
    let new = new?;
    thawed?;
    layers.push(new.descriptor.clone());

    let mut config: serde_json::Value =
        serde_json::from_slice(&base.config_raw).map_err(|e| Error::json("base config", e))?;
    let now = writer::now_rfc3339();
    config["created"] = json!(now);
    if let Some(a) = &opts.author {
        config["author"] = json!(a);
    }
    config["rootfs"]["type"] = json!("layers");
    push(&mut config["rootfs"]["diff_ids"], json!(new.diff_id));
    let mut h = json!({"created": now, "created_by": "strata-image commit"});
    if let Some(m) = &opts.message {
        h["comment"] = json!(m);
    }
    if let Some(a) = &opts.author {
        h["author"] = json!(a);
    }
    push(&mut config["history"], h);
    writer::write_image(&layout, &dest.tag_or_latest()?, &config, &layers)
}

fn push(v: &mut serde_json::Value, item: serde_json::Value) {
    if !v.is_array() {
        *v = json!([]);
    }
    v.as_array_mut().unwrap().push(item);
}

/// Makes sure `layout` holds the image's layer blobs (verified while copied)
/// and returns their descriptors.
pub fn copy_layers(img: &ResolvedImage, layout: &Layout) -> Result<Vec<Descriptor>> {
    let manifest: Option<oci_spec::image::ImageManifest> = match &img.manifest_raw {
        Some(raw) => Some(serde_json::from_slice(raw).map_err(|e| Error::json("manifest", e))?),
        None => None,
    };
    let mut out = Vec::new();
    for (i, l) in img.layers.iter().enumerate() {
        match (&l.digest, &manifest) {
            (Some(d), Some(m)) => {
                if !layout.has_blob(d) {
                    let mut f = File::open(&l.path).map_err(|e| Error::io(&l.path, e))?;
                    let mut v = crate::digest::Verifier::new(
                        &mut f,
                        crate::digest::Check::Blob { digest: d.clone(), size: l.size },
                    );
                    let nl = writer::write_layer(layout, &mut v, Compression::None)?;
                    v.finish()?;
                    let _ = nl;
                }
                out.push(m.layers()[i].clone());
            }
            _ => {
                // docker-save layer: stored as is; it hashes to its diff_id when uncompressed.
                let mut f = File::open(&l.path).map_err(|e| Error::io(&l.path, e))?;
                let nl = writer::write_layer(layout, &mut f, Compression::None)?;
                let mut magic = [0u8; 4];
                let n = std::io::Read::read(&mut File::open(&l.path).map_err(|e| Error::io(&l.path, e))?, &mut magic)
                    .unwrap_or(0);
                let mt = match image::sniff(&magic[..n]) {
                    "gzip" => MediaType::ImageLayerGzip,
                    "zstd" => MediaType::ImageLayerZstd,
                    _ => MediaType::ImageLayer,
                };
                out.push(Descriptor::new(mt, nl.descriptor.size(), parse_digest(nl.descriptor.digest().as_ref())?));
            }
        }
    }
    Ok(out)
}
