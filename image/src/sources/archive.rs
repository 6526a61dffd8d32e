//! Archive files: OCI archives (a tarred image layout) and docker-save
//! archives (`manifest.json` + config + layer tars). Both are unpacked to a
//! private temp directory, streaming, keeping only plain files and dirs
//! with clean relative names; blobs are then verified as they are used.

use crate::digest;
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::platform::PlatformSpec;
use crate::reference::{Reference, Selector};
use crate::sources::{self, LayerBlob, ResolvedImage};
use crate::staging;
use serde::Deserialize;
use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Component, Path, PathBuf};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

pub fn open(r: &Reference, platform: &PlatformSpec) -> Result<ResolvedImage> {
    staging::sweep(&std::env::temp_dir(), staging::ARCHIVE, false)?;
    let tmp = tempfile::Builder::new()
        .prefix(&staging::prefix(staging::ARCHIVE))
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    extract_plain(&r.path, tmp.path())?;
    let mut img = if tmp.path().join("manifest.json").exists() {
        open_docker(tmp.path(), r)?
    } else if tmp.path().join("oci-layout").exists() {
        Layout::open(tmp.path())?.resolve(&r.selector, platform)?
    } else {
        return Err(Error::Invalid(format!("{}: neither an OCI archive nor a docker-save archive", r.path.display())));
    };
    img.tempdir = Some(tmp);
    Ok(img)
}

/// Keeps only regular files and directories whose names are clean relative paths.
fn extract_plain(archive: &Path, dest: &Path) -> Result<()> {
    let f = File::open(archive).map_err(|e| Error::io(archive, e))?;
    let mut ar = tar::Archive::new(BufReader::with_capacity(256 * 1024, f));
    for entry in ar.entries().map_err(|e| Error::io(archive, e))? {
        let mut entry = entry.map_err(|e| Error::io(archive, e))?;
        let path = entry.path().map_err(|e| Error::io(archive, e))?.into_owned();
        let clean = path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        let kind = entry.header().entry_type();
        if !clean || !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        let out = dest.join(&path);
        if kind.is_dir() {
            fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let mut w = File::create(&out).map_err(|e| Error::io(&out, e))?;
        std::io::copy(&mut entry, &mut w).map_err(|e| Error::io(&out, e))?;
    }
    Ok(())
}

fn open_docker(dir: &Path, r: &Reference) -> Result<ResolvedImage> {
    let mpath = dir.join("manifest.json");
    let text = fs::read(&mpath).map_err(|e| Error::io(&mpath, e))?;
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&text).map_err(|e| Error::json("docker manifest.json", e))?;
    let tags = |e: &DockerEntry| e.repo_tags.clone().unwrap_or_default();
    let chosen = match &r.selector {
        Selector::Default if entries.len() == 1 => entries.first(),
        Selector::Default => None,
        Selector::Tag(t) => entries.iter().find(|e| {
            tags(e).iter().any(|rt| {
                rt == t || rt.rsplit_once(':').is_some_and(|(_, tag)| tag == t) || *rt == format!("{t}:latest")
            })
        }),
        Selector::Digest(d) => entries.iter().find(|e| config_digest_of(&e.config).as_deref() == Some(d.as_str())),
    };
    let entry = chosen.ok_or_else(|| {
        let all: Vec<String> = entries
            .iter()
            .flat_map(tags)
            .map(|rt| format!("{}:{}", r.path.display(), rt.rsplit_once(':').map_or(rt.as_str(), |x| x.1)))
            .collect();
        let reason = match &r.selector {
            Selector::Default if !all.is_empty() => format!("holds several images: name one of {}", all.join(", ")),
            Selector::Default => "holds several images, none tagged: name one by @sha256:<config digest>".into(),
            _ => "no such image in manifest.json".into(),
        };
        Error::Reference { reference: r.to_string(), reason }
    })?;
    let config_path = inside(dir, &entry.config)?;
    let config_raw = fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let actual = digest::of_bytes(&config_raw);
    if let Some(expected) = config_digest_of(&entry.config) {
        if expected != actual {
            return Err(Error::DigestMismatch { digest: expected, actual });
        }
    }
    let config = sources::parse_config(&config_raw, &actual)?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != entry.layers.len() {
        return Err(Error::Invalid(format!(
            "docker image {}: {} layers but {} diff_ids",
            r,
            entry.layers.len(),
            diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (l, diff_id) in entry.layers.iter().zip(diff_ids) {
        let path = inside(dir, l)?;
        let size = fs::metadata(&path).map(|m| m.len()).ok();
        layers.push(LayerBlob {
            path,
            media_type: "application/vnd.docker.image.rootfs.diff.tar".into(),
            digest: config_digest_of(l),
            size,
            diff_id: diff_id.clone(),
            urls: vec![],
        });
    }
    Ok(ResolvedImage {
        manifest_digest: None,
        manifest_raw: None,
        config_digest: actual,
        config_raw,
        config,
        layers,
        tempdir: None,
    })
}

/// `<hex>.json` and `blobs/sha256/<hex>` name their own digest.
fn config_digest_of(name: &str) -> Option<String> {
    let base = name.strip_prefix("blobs/sha256/").or_else(|| name.strip_suffix(".json"))?;
    let d = format!("sha256:{base}");
    digest::hex_of(&d).ok()?;
    Some(d)
}

fn inside(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = Path::new(name);
    if !p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(Error::Invalid(format!("docker manifest.json names {name:?} outside the archive")));
    }
    Ok(dir.join(p))
}

/// Writes the layout directory `src` as an OCI archive tar at `dest`.
pub fn write_oci_archive(src: &Path, dest: &Path) -> Result<()> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    staging::sweep(parent, staging::TEMP_FILE, false)?;
    let tmp = tempfile::Builder::new()
        .prefix(&staging::prefix(staging::TEMP_FILE))
        .tempfile_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(tmp));
    b.mode(tar::HeaderMode::Deterministic);
    let mut files = Vec::new();
    for name in ["oci-layout", "index.json"] {
        files.push(PathBuf::from(name));
    }
    let blobs = src.join("blobs/sha256");
    let mut names: Vec<_> =
        fs::read_dir(&blobs).map_err(|e| Error::io(&blobs, e))?.filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    names.sort();
    for n in names.into_iter().filter(|n| !n.to_string_lossy().starts_with('.')) {
        files.push(Path::new("blobs/sha256").join(n));
    }
    for dir in ["blobs", "blobs/sha256"] {
        b.append_dir(dir, src.join(dir)).map_err(|e| Error::io(dest, e))?;
    }
    for f in files {
        b.append_path_with_name(src.join(&f), &f).map_err(|e| Error::io(src.join(&f), e))?;
    }
    let tmp =
        b.into_inner().map_err(|e| Error::io(dest, e))?.into_inner().map_err(|e| Error::io(dest, e.into_error()))?;
    tmp.persist(dest).map_err(|e| Error::io(dest, e.error))?;
    Ok(())
}
