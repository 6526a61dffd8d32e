//! Bundles: building one from an image (flatten or overlay), remounting,
//! unmounting and removing it. A bundle is built in a temp dir beside its
//! final path and renamed into place, so a failed unpack leaves nothing.

use crate::apply::{self, Mode, Owners};
use crate::error::{Error, Result};
use crate::image::{self, ResolvedImage};
use crate::layout::write_atomic;
use crate::overlay;
use crate::platform::PlatformSpec;
use crate::reference::Reference;
use crate::runtime_config;
use crate::staging;
use crate::store::{self, Store};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

pub const META_FILE: &str = "strata-image.json";

#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct BundleMeta {
    /// "flatten" or "overlay"
    pub mode: String,
    pub image: String,
    pub manifest_digest: Option<String>,
    pub config_digest: String,
    pub diff_ids: Vec<String>,
    /// Overlay only: lower layer dirs, topmost first.
    #[serde(default)]
    pub lowers: Vec<PathBuf>,
    #[serde(default)]
    pub store: Option<PathBuf>,
    /// Unpacked rootless: the caller owns every file, the image's owners are in
    /// the `user.rootlesscontainers` xattr, config.json is for a rootless runtime.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rootless: bool,
    /// What the rootfs holds differently from the image, one line each (rootless:
    /// device nodes left as empty files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl BundleMeta {
    pub fn load(bundle: &Path) -> Result<BundleMeta> {
        let p = bundle.join(META_FILE);
        let text = fs::read(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_slice(&text).map_err(|e| Error::json(p.display().to_string(), e))
    }
    pub fn is_overlay(&self) -> bool {
        self.mode == "overlay"
    }
    /// Who owns the rootfs' files: what export and commit read owners from.
    pub fn owners(&self) -> Owners {
        if self.rootless {
            Owners::Rootless
        } else {
            Owners::Image
        }
    }
}

pub fn upper_dir(bundle: &Path) -> PathBuf {
    bundle.join("overlay/upper")
}
pub fn work_dir(bundle: &Path) -> PathBuf {
    bundle.join("overlay/work")
}

/// What unpack tells as it works, for the CLI's progress bar. Byte counts are
/// of the stored (compressed) blobs: the only sizes known before extracting.
pub trait Progress {
    /// Before the first layer: each layer's stored size, where known.
    fn start(&self, _sizes: &[Option<u64>]) {}
    /// `n` more stored bytes of the current layer were read.
    fn bytes(&self, _n: u64) {}
    /// Layer `index` of `count` is in place: extracted now, or found in the store.
    fn layer(&self, index: usize, count: usize, diff_id: &str, fresh: bool);
}

pub struct UnpackOptions {
    pub platform: PlatformSpec,
    pub overlay: bool,
    pub store: PathBuf,
    /// Extract as an unprivileged caller can (see `BundleMeta::rootless`).
    pub rootless: bool,
    pub args: Option<Vec<String>>,
    pub progress: Option<Box<dyn Progress>>,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            platform: PlatformSpec::host(),
            overlay: false,
            store: store::default_store().into(),
            rootless: false,
            args: None,
            progress: None,
        }
    }
}

/// Drops the store registration of a bundle whose unpack failed.
struct Registration<'a>(Option<(&'a Store, &'a Path)>);
impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Some((store, bundle)) = self.0.take() {
            let _ = store.unregister(bundle);
        }
    }
}

/// In an overlay bundle's rootfs dir, under the mount: seen only when the
/// overlay is not mounted, by whoever looks into the empty dir.
pub const NOT_MOUNTED_FILE: &str = ".strata-image-not-mounted";
const NOT_MOUNTED_TEXT: &str = "This overlay bundle's rootfs is not mounted: run `strata-image mount BUNDLE` first.\n";

pub fn unpack(r: &Reference, bundle: &Path, opts: &UnpackOptions) -> Result<BundleMeta> {
    if bundle.exists() {
        return Err(Error::Invalid(format!("bundle {} already exists", bundle.display())));
    }
    check_privilege(opts)?;
    let img = image::open(r, &opts.platform)?;
    let parent = bundle.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    staging::sweep(parent, staging::BUNDLE, false)?;
    // Overlay: registered before anything is staged, under the store's shared
    // lock, so gc keeps the layers in use, and after a kill finds the stale
    // registration and sweeps the staging dir beside it.
    let store = opts.overlay.then(|| Store::open(&opts.store)).transpose()?;
    let _lock = store.as_ref().map(|s| s.lock(false)).transpose()?;
    let mut registration = Registration(None);
    if let Some(s) = &store {
        s.register(bundle)?;
        registration.0 = Some((s, bundle));
    }
    let tmp = tempfile::Builder::new()
        .prefix(&staging::prefix(staging::BUNDLE))
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    // Dropped before `tmp`: a rootless rootfs may hold read-only directories.
    let mut open_up = staging::OpenUpOnDrop(opts.rootless.then(|| tmp.path().to_path_buf()));
    let rootfs = tmp.path().join("rootfs");
    if opts.overlay {
        fs::create_dir(&rootfs).map_err(|e| Error::io(&rootfs, e))?;
    } else {
        // A flat rootfs gets a flex group of its own on ext4 (see `spread`).
        super::spread::create_dir(tmp.path(), "rootfs").map_err(|e| Error::io(&rootfs, e))?;
    }
    store::set_mode(&rootfs, 0o755)?;
    let mut meta = BundleMeta {
        mode: if opts.overlay { "overlay" } else { "flatten" }.into(),
        image: r.to_string(),
        manifest_digest: img.manifest_digest.clone(),
        config_digest: img.config_digest.clone(),
        diff_ids: img.layers.iter().map(|l| l.diff_id.clone()).collect(),
        lowers: vec![],
        store: None,
        rootless: opts.rootless,
        notes: vec![],
    };
    if let Some(p) = &opts.progress {
        p.start(&img.layers.iter().map(|l| l.size).collect::<Vec<_>>());
    }
    let on_bytes = |n: u64| {
        if let Some(p) = &opts.progress {
            p.bytes(n)
        }
    };
    let spec = if let Some(store) = &store {
        meta.lowers = extract_to_store(&img, store, opts, &on_bytes)?;
        meta.store = Some(store.root.clone());
        let (upper, work) = (upper_dir(tmp.path()), work_dir(tmp.path()));
        for d in [&upper, &work] {
            fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        store::set_mode(&upper, 0o755)?;
        let marker = rootfs.join(NOT_MOUNTED_FILE);
        fs::write(&marker, NOT_MOUNTED_TEXT).map_err(|e| Error::io(&marker, e))?;
        // The config needs the union view (users are looked up in it). It is
        // mounted here only for that, and again once the bundle is in place,
        // so that the mount's options never name a staging path.
        overlay::mount_overlay(&meta.lowers, &upper, &work, &rootfs)?;
        let spec = runtime_config::generate(&img.config, &rootfs, opts.args.as_deref());
        overlay::unmount(&rootfs)?;
        spec?
    } else {
        let n = img.layers.len();
        let owners = if opts.rootless { Owners::Rootless } else { Owners::Image };
        image::each_layer(&img.layers, Some(&on_bytes), |i, rd| {
            let stats = apply::apply_layer_owned(&rootfs, rd, &Mode::Flatten, owners)?;
            meta.notes.extend(stats.notes);
            if let Some(p) = &opts.progress {
                p.layer(i, n, &img.layers[i].diff_id, true);
            }
            Ok(())
        })?;
        // What commit will diff the rootfs against.
        crate::flatdiff::record(&rootfs, &tmp.path().join(crate::flatdiff::TREE_FILE))?;
        runtime_config::generate_for(&img.config, &rootfs, opts.args.as_deref(), opts.rootless)?
    };
    let text = serde_json::to_vec_pretty(&spec).map_err(|e| Error::json("config.json", e))?;
    write_atomic(&tmp.path().join("config.json"), &text)?;
    let text = serde_json::to_vec_pretty(&meta).map_err(|e| Error::json(META_FILE, e))?;
    write_atomic(&tmp.path().join(META_FILE), &text)?;
    store::set_mode(tmp.path(), 0o700)?;
    fs::rename(tmp.path(), bundle).map_err(|e| Error::io(bundle, e))?;
    open_up.0 = None;
    let _ = tmp.keep();
    if store.is_some() {
        if let Err(e) = mount(bundle) {
            let _ = remove(bundle);
            return Err(e);
        }
    }
    registration.0 = None;
    Ok(meta)
}

/// Refuses, before anything is made, what this caller cannot finish.
fn check_privilege(opts: &UnpackOptions) -> Result<()> {
    if opts.overlay && opts.rootless {
        // A user namespace's overlay mount lives only as long as its mount
        // namespace: the bundle's rootfs would be unmounted when unpack exits,
        // and layers stored rootless would need user.overlay.* whiteouts.
        return Err(Error::Invalid(
            "--overlay with --rootless: an unprivileged user's overlay mount exists only inside its own \
             user and mount namespace and is gone when strata-image exits; unpack a flatten bundle instead"
                .into(),
        ));
    }
    if !opts.rootless && !nix::unistd::geteuid().is_root() {
        return Err(Error::Invalid(format!(
            "{}: giving files their image owners needs root; as an unprivileged user pass --rootless",
            if opts.overlay { "unpack --overlay (an overlay mount)" } else { "unpack" }
        )));
    }
    Ok(())
}

fn extract_to_store(
    img: &ResolvedImage,
    store: &Store,
    opts: &UnpackOptions,
    on_bytes: &dyn Fn(u64),
) -> Result<Vec<PathBuf>> {
    let mut below: Vec<PathBuf> = Vec::new(); // topmost first
    let n = img.layers.len();
    for (i, l) in img.layers.iter().enumerate() {
        let (dir, fresh) = store.ensure_with(l, &below, Some(on_bytes))?;
        if let Some(p) = &opts.progress {
            if !fresh {
                p.bytes(l.size.unwrap_or(0)); // nothing to read: the bar jumps over it
            }
            p.layer(i, n, &l.diff_id, fresh);
        }
        below.insert(0, dir);
    }
    if below.is_empty() {
        below.push(store.empty_layer()?);
    }
    Ok(below)
}

/// Mounts an overlay bundle's rootfs again (after `umount` or a reboot).
pub fn mount(bundle: &Path) -> Result<()> {
    let meta = BundleMeta::load(bundle)?;
    let rootfs = bundle.join("rootfs");
    if !meta.is_overlay() || overlay::is_mounted(&rootfs) {
        return Ok(());
    }
    overlay::mount_overlay(&meta.lowers, &upper_dir(bundle), &work_dir(bundle), &rootfs)
}

/// Unmounts an overlay bundle's rootfs (a no-op for flatten bundles).
pub fn umount(bundle: &Path) -> Result<()> {
    BundleMeta::load(bundle)?;
    overlay::unmount(&bundle.join("rootfs"))
}

/// Unmounts and deletes a bundle. Refuses to recurse into a rootfs that is
/// still a mount point (it would delete the layers' union view).
pub fn remove(bundle: &Path) -> Result<()> {
    let meta = BundleMeta::load(bundle)?;
    let rootfs = bundle.join("rootfs");
    overlay::unmount(&rootfs)?;
    if overlay::is_mounted(&rootfs) {
        return Err(Error::Invalid(format!("{}: still mounted", rootfs.display())));
    }
    if let Some(root) = meta.store.as_ref().filter(|r| r.is_dir()) {
        Store::open(root)?.unregister(bundle)?;
    }
    staging::remove_tree(bundle).map_err(|e| Error::io(bundle, e))
}
