//! Resolving an image reference to whichever source holds it (layout
//! directory, OCI archive, docker-save archive), and the verified,
//! decompressed stream of each of its layers.

use crate::archive;
use crate::digest::{Check, Verifier};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::platform::PlatformSpec;
use crate::reference::Reference;
pub use crate::sources::{parse_config, LayerBlob, ResolvedImage};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

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
    let name = layer.name().to_string();
    let file = File::open(&layer.path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound
            if !layer.urls.is_empty()
                || layer.media_type.contains("nondistributable")
                || layer.media_type.contains("foreign") =>
        {
            Error::Invalid(format!(
                "blob {name}: non-distributable layer not present locally (urls: {})",
                layer.urls.join(" ")
            ))
        }
        io::ErrorKind::NotFound => Error::MissingBlob { digest: name.clone(), path: layer.path.clone() },
        _ => Error::io(&layer.path, e),
    })?;
    let check = match &layer.digest {
        Some(d) => Check::Blob { digest: d.clone(), size: layer.size },
        None => Check::Blob { digest: layer.diff_id.clone(), size: None },
    };
    let counted = Counting { inner: file, on_bytes };
    let mut outer = Verifier::new(BufReader::with_capacity(256 * 1024, counted), check);
    let docker_save = layer.digest.is_none();
    let inner_result: Result<T> = (|| {
        let decoder = decoder(&mut outer, &layer.media_type, &name)?;
        let mut inner = Verifier::new(decoder, Check::DiffId { layer: name.clone(), diff_id: layer.diff_id.clone() });
        let out = f(&mut inner)?;
        inner.finish()?;
        Ok(out)
    })();
    // Drain and verify the stored blob whatever happened above, so that a
    // corrupt blob is named as such rather than as a decoding error.
    let outer_result = outer.finish();
    match (inner_result, outer_result) {
        (_, Err(e)) if !docker_save => Err(e.in_layer(&name)),
        (Err(e), _) => Err(e.in_layer(&name)),
        (Ok(v), _) => Ok(v),
    }
}

struct Counting<'a, R> {
    inner: R,
    on_bytes: Option<&'a dyn Fn(u64)>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(f) = self.on_bytes {
            f(n as u64);
        }
        Ok(n)
    }
}

/// Picks the decompressor from the media type, and for docker media types
/// (whose names are not reliable in docker-save archives) from the magic bytes.
fn decoder<'a, R: Read + 'a>(r: R, media_type: &str, name: &str) -> Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::new(r);
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
