//! OCI image layout directories: reading index.json (nested indexes,
//! platforms, tags), verified blob access, and writing blobs and tags.

use crate::digest::{self, Check, Verifier};
use crate::error::{Error, Result};
use crate::platform::PlatformSpec;
use crate::reference::Selector;
use crate::sources::{self, LayerBlob, ResolvedImage};
use crate::staging;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
const MAX_JSON: u64 = 16 << 20;
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let header = root.join("oci-layout");
        let text = fs::read(&header).map_err(|e| Error::io(&header, e))?;
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| Error::json(header.display().to_string(), e))?;
        if v.get("imageLayoutVersion").and_then(|v| v.as_str()).is_none() {
            return Err(Error::Invalid(format!("{}: no imageLayoutVersion", header.display())));
        }
        Ok(Layout { root })
    }

    /// Opens the layout at `root`, creating an empty one if nothing is there.
    pub fn open_or_init(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        if root.join("oci-layout").exists() {
            return Layout::open(root);
        }
        let blobs = root.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| Error::io(&blobs, e))?;
        write_atomic(&root.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        write_atomic(
            &root.join("index.json"),
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
        )?;
        Ok(Layout { root })
    }

    pub fn index(&self) -> Result<ImageIndex> {
        let p = self.root.join("index.json");
        let f = fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_reader(std::io::BufReader::new(f)).map_err(|e| Error::json(p.display().to_string(), e))
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest::hex_of(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    /// Reads a small blob whole, verifying its size and digest.
    pub fn read_blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let d = desc.digest().to_string();
        if desc.size() > MAX_JSON {
            return Err(Error::Invalid(format!("blob {d}: {} bytes is too large for a JSON document", desc.size())));
        }
        let path = self.blob_path(&d)?;
        let f = fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingBlob { digest: d.clone(), path: path.clone() },
            _ => Error::io(&path, e),
        })?;
        let mut v = Verifier::new(f, Check::Blob { digest: d, size: Some(desc.size()) });
        let mut out = Vec::with_capacity(desc.size() as usize);
        v.read_to_end(&mut out).map_err(|e| Error::io(&path, e))?;
        v.finish()?;
        Ok(out)
    }

    /// All tags of index.json (top level only), in index order.
    pub fn tags(&self) -> Result<Vec<(String, Descriptor)>> {
        Ok(self.index()?.manifests().iter().filter_map(|d| Some((ref_name(d)?.to_string(), d.clone()))).collect())
    }

    /// Finds the manifest `sel` names for `platform` and reads its config.
    pub fn resolve(&self, sel: &Selector, platform: &PlatformSpec) -> Result<ResolvedImage> {
        let index = self.index()?;
        let what = format!("{}", self.root.display());
        let candidates: Vec<Descriptor> = match sel {
            Selector::Tag(t) => index.manifests().iter().filter(|d| ref_name(d) == Some(t)).cloned().collect(),
            Selector::Digest(dg) => {
                let found =
                    index.manifests().iter().filter(|d| d.digest().to_string() == *dg).cloned().collect::<Vec<_>>();
                if found.is_empty() {
                    // Any blob may be named by digest; its media type is read from the blob.
                    vec![Descriptor::new(MediaType::ImageManifest, self.blob_len(dg)?, parse_digest(dg)?)]
                } else {
                    found
                }
            }
            Selector::Default => {
                let all = index.manifests().clone();
                let latest: Vec<_> = all.iter().filter(|d| ref_name(d) == Some("latest")).cloned().collect();
                let mut tags: Vec<&str> = vec![];
                for t in all.iter().filter_map(ref_name) {
                    if !tags.contains(&t) {
                        tags.push(t);
                    }
                }
                if latest.is_empty() && tags.len() > 1 {
                    return Err(Error::Reference {
                        reference: what,
                        reason: format!(
                            "holds several images and none is tagged latest: name one of {}",
                            tags.iter().map(|t| format!("{}:{t}", self.root.display())).collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
                if all.len() == 1 || latest.is_empty() {
                    all
                } else {
                    latest
                }
            }
        };
        if candidates.is_empty() {
            return Err(Error::Reference {
                reference: format!("{what}{}", sel_text(sel)),
                reason: "not found in index.json".into(),
            });
        }
        let desc = self.pick(&candidates, platform, &what)?;
        self.resolve_descriptor(&desc, platform, 0)
    }

    fn blob_len(&self, d: &str) -> Result<u64> {
        let p = self.blob_path(d)?;
        fs::metadata(&p).map(|m| m.len()).map_err(|_| Error::MissingBlob { digest: d.into(), path: p })
    }

    /// The one of `cands` for `platform`: a descriptor that names another
    /// platform is never taken, even alone, so `--platform` cannot silently
    /// give an image of the wrong architecture.
    fn pick(&self, cands: &[Descriptor], platform: &PlatformSpec, what: &str) -> Result<Descriptor> {
        let matching: Vec<_> =
            cands.iter().filter(|d| d.platform().as_ref().is_some_and(|p| platform.matches(p))).collect();
        if let Some(d) = matching.first() {
            return Ok((*d).clone());
        }
        let unplatformed: Vec<_> = cands.iter().filter(|d| d.platform().is_none()).collect();
        if unplatformed.len() == 1 {
            return Ok(unplatformed[0].clone());
        }
        let mut have: Vec<String> = cands
            .iter()
            .filter_map(|d| d.platform().as_ref())
            .map(|p| {
                let v = p.variant().as_ref().map(|v| format!("/{v}")).unwrap_or_default();
                format!("{}/{}{v}", p.os(), p.architecture())
            })
            .collect();
        have.dedup();
        let reason = match have.is_empty() {
            true => format!("no single manifest for platform {platform}"),
            false => {
                format!("no manifest for platform {platform} (it has {}; choose with --platform)", have.join(", "))
            }
        };
        Err(Error::Reference { reference: what.into(), reason })
    }

    fn resolve_descriptor(&self, desc: &Descriptor, platform: &PlatformSpec, depth: usize) -> Result<ResolvedImage> {
        if depth > 8 {
            return Err(Error::Invalid(format!("blob {}: indexes nested too deeply", desc.digest())));
        }
        let raw = self.read_blob(desc)?;
        let d = desc.digest().to_string();
        let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| Error::json(format!("blob {d}"), e))?;
        let mt = v
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| desc.media_type().to_string());
        let is_index = mt == MediaType::ImageIndex.to_string()
            || mt == DOCKER_LIST
            || (v.get("manifests").is_some() && v.get("layers").is_none());
        if is_index {
            let idx: ImageIndex = serde_json::from_value(v).map_err(|e| Error::json(format!("index {d}"), e))?;
            let child = self.pick(idx.manifests(), platform, &format!("index {d}"))?;
            return self.resolve_descriptor(&child, platform, depth + 1);
        }
        if mt != MediaType::ImageManifest.to_string() && mt != DOCKER_MANIFEST {
            return Err(Error::MediaType { what: format!("blob {d}"), media_type: mt });
        }
        let manifest: ImageManifest = serde_json::from_value(v).map_err(|e| Error::json(format!("manifest {d}"), e))?;
        let config_raw = self.read_blob(manifest.config())?;
        let config = sources::parse_config(&config_raw, manifest.config().digest().as_ref())?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(Error::Invalid(format!(
                "manifest {d}: {} layers but config has {} diff_ids",
                manifest.layers().len(),
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (l, diff_id) in manifest.layers().iter().zip(diff_ids) {
            let digest = l.digest().to_string();
            layers.push(LayerBlob {
                path: self.blob_path(&digest)?,
                media_type: l.media_type().to_string(),
                digest: Some(digest),
                size: Some(l.size()),
                diff_id: diff_id.clone(),
                urls: l.urls().clone().unwrap_or_default(),
            });
        }
        Ok(ResolvedImage {
            manifest_digest: Some(d),
            manifest_raw: Some(raw),
            config_digest: manifest.config().digest().to_string(),
            config_raw,
            config,
            layers,
            tempdir: None,
        })
    }

    /// Moves a finished temp file into blobs/ under its digest.
    pub fn adopt_blob(&self, tmp: tempfile::NamedTempFile, digest: &str) -> Result<PathBuf> {
        let dest = self.blob_path(digest)?;
        set_mode_644(tmp.path())?;
        tmp.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
        Ok(dest)
    }

    pub fn temp_blob(&self) -> Result<tempfile::NamedTempFile> {
        let dir = self.root.join("blobs/sha256");
        tempfile::Builder::new()
            .prefix(&staging::prefix(staging::TEMP_FILE))
            .tempfile_in(&dir)
            .map_err(|e| Error::io(&dir, e))
    }

    pub fn write_blob(&self, media_type: MediaType, bytes: &[u8]) -> Result<Descriptor> {
        let d = digest::of_bytes(bytes);
        if !self.has_blob(&d) {
            let mut tmp = self.temp_blob()?;
            tmp.write_all(bytes).map_err(|e| Error::io(tmp.path(), e))?;
            self.adopt_blob(tmp, &d)?;
        }
        Ok(Descriptor::new(media_type, bytes.len() as u64, parse_digest(&d)?))
    }

    /// Points `tag` at `desc` in index.json (replacing what it named before).
    pub fn set_tag(&self, tag: &str, desc: &Descriptor) -> Result<()> {
        self.set_tag_named(tag, desc, None)
    }

    /// `set_tag`, also recording the image's full name (`IMAGE_NAME`).
    pub fn set_tag_named(&self, tag: &str, desc: &Descriptor, name: Option<&str>) -> Result<()> {
        let mut index = self.index()?;
        let mut manifests: Vec<Descriptor> =
            index.manifests().iter().filter(|d| ref_name(d) != Some(tag)).cloned().collect();
        let mut d = desc.clone();
        let mut ann = d.annotations().clone().unwrap_or_default();
        ann.insert(REF_NAME.into(), tag.into());
        if let Some(n) = name {
            ann.insert(IMAGE_NAME.into(), n.into());
        }
        d.set_annotations(Some(ann));
        manifests.push(d);
        index.set_manifests(manifests);
        let text = serde_json::to_vec(&index).map_err(|e| Error::json("index.json", e))?;
        write_atomic(&self.root.join("index.json"), &text)
    }
}

/// The full image name (`registry/repo:tag`) that containerd and podman give
/// an image they import from an archive; `REF_NAME` is only its tag.
pub const IMAGE_NAME: &str = "io.containerd.image.name";

pub fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

pub fn parse_digest(d: &str) -> Result<oci_spec::image::Digest> {
    digest::hex_of(d)?;
    d.parse().map_err(|_| Error::InvalidDigest(d.into()))
}

fn sel_text(sel: &Selector) -> String {
    match sel {
        Selector::Default => String::new(),
        Selector::Tag(t) => format!(":{t}"),
        Selector::Digest(d) => format!("@{d}"),
    }
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(&staging::prefix(staging::TEMP_FILE))
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    set_mode_644(tmp.path())?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

fn set_mode_644(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o644)).map_err(|e| Error::io(p, e))
}
