//! Resolving an image reference to whichever source holds it (layout
//! directory, OCI archive, docker-save archive), and the verified,
//! decompressed stream of each of its layers.

use crate::archive;
use crate::error::{Error, Result};
use crate::layer_stream;
use crate::layout::Layout;
use crate::platform::PlatformSpec;
use crate::reference::Reference;
pub use crate::sources::{parse_config, LayerBlob, ResolvedImage};
use std::io::{BufRead, BufReader, Read};

/// Opens whatever `r` names: a layout directory or an archive file.
pub fn open(r: &Reference, platform: &PlatformSpec) -> Result<ResolvedImage> {
    let meta = std::fs::metadata(&r.path).map_err(|e| Error::io(&r.path, e))?;
    if meta.is_dir() {
        Layout::open(&r.path)?.resolve(&r.selector, platform)
    } else {
        archive::open(r, platform)
    }
}

/// Streams one layer's uncompressed tar to `f`, verifying the blob's size and
/// digest and the content's diff_id. A layer is never held in memory: the
/// checks complete when the stream is drained after `f` returns. When the
/// blob itself is corrupt, that is the error reported (not the decoder's).
/// The layer is decoded on a thread beside `f` (see `layer_stream`).
pub fn with_layer<T>(layer: &LayerBlob, f: impl FnOnce(&mut dyn Read) -> Result<T>) -> Result<T> {
    with_layer_progress(layer, None, f)
}

/// `with_layer`, telling `on_bytes` how many stored bytes were read as the
/// extraction proceeds (what a progress bar shows).
pub fn with_layer_progress<T>(
    layer: &LayerBlob,
    on_bytes: Option<&dyn Fn(u64)>,
    f: impl FnOnce(&mut dyn Read) -> Result<T>,
) -> Result<T> {
    layer_stream::with_layer(layer, on_bytes, f)
}

/// `with_layer_progress` for each layer in order, the next one decoded while
/// `f` applies the current one.
pub fn each_layer(
    layers: &[LayerBlob],
    on_bytes: Option<&dyn Fn(u64)>,
    f: impl FnMut(usize, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    layer_stream::each_layer(layers, on_bytes, f)
}

/// Picks the decompressor from the media type, and for docker media types
/// (whose names are not reliable in docker-save archives) from the magic bytes.
pub(crate) fn decoder<'a, R: Read + 'a>(r: R, media_type: &str, name: &str) -> Result<Box<dyn Read + 'a>> {
    // Large reads from the digesting reader below: fewer, longer hash updates.
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let magic = r.fill_buf().map_err(|e| Error::io(name, e))?.to_vec();
    let kind = if media_type.starts_with("application/vnd.oci.image.layer.") {
        match media_type.rsplit_once('+').map(|x| x.1) {
            None if media_type.ends_with(".tar") => "tar",
            Some("gzip") => "gzip",
            Some("zstd") => "zstd",
            _ => return Err(Error::MediaType { what: format!("layer {name}"), media_type: media_type.into() }),
        }
    } else if media_type.starts_with("application/vnd.docker.image.rootfs.") || media_type.is_empty() {
        sniff(&magic)
    } else {
        return Err(Error::MediaType { what: format!("layer {name}"), media_type: media_type.into() });
    };
    Ok(match kind {
        "gzip" => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        "zstd" => Box::new(zstd::stream::read::Decoder::with_buffer(r).map_err(|e| Error::io(name, e))?),
        _ => Box::new(r),
    })
}

pub fn sniff(magic: &[u8]) -> &'static str {
    if magic.starts_with(&[0x1f, 0x8b]) {
        "gzip"
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "zstd"
    } else {
        "tar"
    }
}
