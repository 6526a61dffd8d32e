//! Writing images: a layer blob from a tar stream (hashing the tar for its
//! diff_id and the stored bytes for the digest in one pass), and the config,
//! manifest and tag that make an image of a list of layers.

use crate::digest::HashWriter;
use crate::error::{Error, Result};
use crate::layout::{parse_digest, Layout};
use oci_spec::image::{Descriptor, MediaType};
use serde_json::{json, Value};
use std::io::{self, BufWriter, Read, Write};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn media_type(self) -> MediaType {
        match self {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }
}

#[derive(Clone, Debug)]
pub struct NewLayer {
    pub descriptor: Descriptor,
    pub diff_id: String,
}

/// Streams `tar` into a new layer blob of `layout`.
pub fn write_layer(layout: &Layout, tar: &mut dyn Read, c: Compression) -> Result<NewLayer> {
    write_layer_with(layout, c, &mut |w| io::copy(tar, w).map(drop).map_err(|e| Error::io("layer", e)))
}

/// Makes a layer blob of what `produce` writes (the uncompressed tar),
/// hashing it for the diff_id and the stored bytes for the digest in one pass.
pub fn write_layer_with(
    layout: &Layout,
    c: Compression,
    produce: &mut dyn FnMut(&mut dyn Write) -> Result<()>,
) -> Result<NewLayer> {
    let tmp = layout.temp_blob()?;
    let path = tmp.path().to_path_buf();
    let e = |err: io::Error| Error::io(&path, err);
    let stored = HashWriter::new(BufWriter::with_capacity(256 * 1024, tmp));
    let (stored, diff_id) = match c {
        Compression::None => {
            let mut w = HashWriter::new(stored);
            produce(&mut w)?;
            let d = w.sum().0;
            (w.inner, d)
        }
        Compression::Gzip => {
            let mut w = HashWriter::new(flate2::write::GzEncoder::new(stored, flate2::Compression::default()));
            produce(&mut w)?;
            let d = w.sum().0;
            (w.inner.finish().map_err(e)?, d)
        }
        Compression::Zstd => {
            let mut w = HashWriter::new(zstd::stream::write::Encoder::new(stored, 3).map_err(e)?);
            produce(&mut w)?;
            let d = w.sum().0;
            (w.inner.finish().map_err(e)?, d)
        }
    };
    let (digest, size) = stored.sum();
    let mut file = stored.inner.into_inner().map_err(|err| e(err.into_error()))?;
    file.flush().map_err(e)?;
    layout.adopt_blob(file, &digest)?;
    Ok(NewLayer { descriptor: Descriptor::new(c.media_type(), size, parse_digest(&digest)?), diff_id })
}

/// A minimal image config for `layers` (diff_ids), with one history entry
/// per layer.
pub fn new_config(diff_ids: &[String], created_by: &str) -> Value {
    let now = now_rfc3339();
    let platform = crate::platform::PlatformSpec::host();
    json!({
        "created": now,
        "architecture": platform.arch,
        "os": platform.os,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": diff_ids.iter().map(|_| json!({"created": now, "created_by": created_by})).collect::<Vec<_>>()
    })
}

/// Writes `config` and a manifest naming `layers`, and points `tag` at it.
pub fn write_image(layout: &Layout, tag: &str, config: &Value, layers: &[Descriptor]) -> Result<Descriptor> {
    let config_bytes = serde_json::to_vec(config).map_err(|e| Error::json("config", e))?;
    let config_desc = layout.write_blob(MediaType::ImageConfig, &config_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::json("manifest", e))?;
    let desc = layout.write_blob(MediaType::ImageManifest, &bytes)?;
    layout.set_tag(tag, &desc)?;
    Ok(desc)
}

/// RFC 3339 UTC time without a date library.
pub fn now_rfc3339() -> String {
    let secs =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}
