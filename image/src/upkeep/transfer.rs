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

/// Makes a one-layer image of the rootfs tar at `tar` (plain, gzip or zstd).
/// The whole tar is checked before anything is written, so a file that is not
/// one leaves no layout and no blob behind.
pub fn import(tar: &Path, dest: &Reference) -> Result<Descriptor> {
    check_tar(tar)?;
    let layout = Layout::open_or_init(&dest.path)?;
    let mut r = open_tar(tar)?;
    let nl = writer::write_layer(&layout, &mut r, Compression::Gzip)?;
    let config =
        writer::new_config(std::slice::from_ref(&nl.diff_id), &format!("strata-image import {}", tar.display()));
    writer::write_image(&layout, &dest.tag_or_latest()?, &config, &[nl.descriptor])
}

/// The tar at `path`, decompressed if its magic says gzip or zstd.
fn open_tar(path: &Path) -> Result<Box<dyn std::io::Read>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = std::io::BufReader::new(f);
    let magic = std::io::BufRead::fill_buf(&mut r).map_err(|e| Error::io(path, e))?;
    Ok(match crate::image::sniff(magic) {
        "gzip" => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        "zstd" => Box::new(zstd::stream::read::Decoder::with_buffer(r).map_err(|e| Error::io(path, e))?),
        _ => Box::new(r),
    })
}

/// Reads the tar at `path` through, entry by entry: an error names the file
/// (in one line: the tar crate's own messages quote the bad bytes).
fn check_tar(path: &Path) -> Result<()> {
    let not_tar = |why: String| Error::Invalid(format!("{}: not a tar archive ({why})", path.display()));
    let mut r = open_tar(path)?;
    let mut first = [0u8; 512];
    std::io::Read::read_exact(&mut r, &mut first).map_err(|_| not_tar("shorter than one 512-byte tar block".into()))?;
    if first.iter().any(|&b| b != 0) && !header_checksum_ok(&first) {
        return Err(not_tar("its first block is not a tar header".into()));
    }
    let mut ar = tar::Archive::new(std::io::Read::chain(&first[..], r));
    let bad = |n: usize, e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => not_tar(format!("truncated in entry {}", n + 1)),
        _ => not_tar(format!("entry {} has a bad header", n + 1)),
    };
    for (n, e) in ar.entries().map_err(|e| bad(0, e))?.enumerate() {
        let mut e = e.map_err(|e| bad(n, e))?;
        std::io::copy(&mut e, &mut std::io::sink()).map_err(|e| bad(n, e))?;
    }
    Ok(())
}

/// A tar header's checksum: the sum of its bytes, the checksum field counted as spaces.
fn header_checksum_ok(h: &[u8; 512]) -> bool {
    let field = String::from_utf8_lossy(&h[148..156]);
    let Ok(stored) = u32::from_str_radix(field.trim_matches(|c: char| c == ' ' || c == '\0'), 8) else { return false };
    let sum: u32 = h.iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { b as u32 }).sum();
    sum == stored
}

/// Writes `img` into the layout at `dest` (or an OCI archive when `archive`),
/// tagged `tag`, and with `name` (a full `repo:tag`, see `layout::IMAGE_NAME`)
/// as the name engines give it when they load the archive.
pub fn save(img: &ResolvedImage, dest: &Path, tag: &str, name: Option<&str>, archive: bool) -> Result<Descriptor> {
    let write = |layout: &Layout| -> Result<Descriptor> {
        let d = save_layout(img, layout, tag)?;
        if name.is_some() {
            layout.set_tag_named(tag, &d, name)?;
        }
        Ok(d)
    };
    if archive {
        staging::sweep(&std::env::temp_dir(), staging::SAVE, false)?;
        let tmp = tempfile::Builder::new()
            .prefix(&staging::prefix(staging::SAVE))
            .tempdir()
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let d = write(&Layout::open_or_init(tmp.path())?)?;
        archive::write_oci_archive(tmp.path(), dest)?;
        return Ok(d);
    }
    write(&Layout::open_or_init(dest)?)
}

/// The name an image saved from `source` gets when none is given:
/// `localhost/<the layout's or archive's file name>:<tag>`, in the characters a
/// repository name allows.
pub fn default_name(source: &Reference, tag: &str) -> String {
    let file = source.path.file_name().map(|f| f.to_string_lossy().to_lowercase()).unwrap_or_default();
    let stem = [".tar.gz", ".tgz", ".tar"].iter().find_map(|x| file.strip_suffix(x)).unwrap_or(&file);
    let repo: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' }).collect();
    let repo = repo.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    format!("localhost/{}:{tag}", if repo.is_empty() { "image" } else { repo })
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
            let config: serde_json::Value =
                serde_json::from_slice(&img.config_raw).map_err(|e| Error::json("config", e))?;
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
    let r = treetar::write_tree_owned(&rootfs, out, Source::Plain, meta.owners());
    if mounted_here {
        overlay::unmount(&rootfs)?;
    }
    r
}
