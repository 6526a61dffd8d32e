//! `build`: a Containerfile to an image, without a daemon. Each stage starts
//! from an image (or `scratch`, or an earlier stage); each filesystem-changing
//! instruction (RUN, COPY, ADD, a WORKDIR that makes its directory) runs in a
//! working container — the current layers from the store plus one read-write
//! layer — and that layer is committed as the next one. The other
//! instructions only change the config. Every instruction adds a history entry.
//!
//! `parser` reads the file, `context` picks COPY sources (ignore files, globs),
//! `steps` performs the instructions (`steps/run`, `steps/copy`), `cache`
//! remembers the layer each step made, `session` is the working container.
//!
//! Beyond the classic instructions: here-documents (`parser`, run as BuildKit runs them), `RUN
//! --mount` of binds, caches and tmpfs (`steps/mounts`), ADD of URLs
//! (`steps/remote`) and of tars compressed as docker accepts (`steps/archive`).
//! Not supported, each failing with a message that names the line: `RUN
//! --mount=type=secret|ssh`, `COPY --parents`/`--exclude`. HEALTHCHECK and
//! ONBUILD are ignored with a warning, as buildah does for OCI images.

pub mod cache;
pub mod context;
pub mod heredoc;
pub mod parser;
pub mod session;
mod steps;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::reference::Reference;
use crate::store::Store;
use crate::writer;
use oci_spec::image::Descriptor;
use parser::Containerfile;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub struct BuildOptions {
    /// The Containerfile; None: `Containerfile`, else `Dockerfile`, in the context.
    pub file: Option<PathBuf>,
    pub context: PathBuf,
    pub dest: Reference,
    /// `--build-arg K=V` (a bare `K` takes the value from the environment).
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// RUN shares the host's network namespace (default: a new, empty one).
    pub network_host: bool,
    pub store: PathBuf,
    /// RUN containers' cgroups go under `/<parent>/<id>`.
    pub cgroup_parent: String,
    /// No step lines (RUN output still streams).
    pub quiet: bool,
    /// Told about large COPY/ADD steps (the CLI draws a bar on a terminal).
    pub progress: Option<Box<dyn Progress>>,
}

/// COPY/ADD steps of at least `LARGE_COPY` bytes report their progress.
pub const LARGE_COPY: u64 = 32 << 20;

pub trait Progress {
    /// A large copy starts: `total` bytes of file content.
    fn start(&self, what: &str, total: u64);
    fn bytes(&self, n: u64);
    fn done(&self);
}

/// One layer of the image being built.
#[derive(Clone, Debug)]
pub struct Layer {
    pub desc: Descriptor,
    pub diff_id: String,
}

/// A stage as far as it has been built.
#[derive(Clone, Debug)]
pub struct StageState {
    pub layers: Vec<Layer>,
    /// The whole image config (config, history, rootfs.diff_ids at the end).
    pub config: Value,
    /// Chains every instruction so far: the cache key of the next step derives from it.
    pub key: String,
    /// ARGs declared in this stage, with their values.
    pub args: BTreeMap<String, String>,
    pub shell: Vec<String>,
    /// CMD was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

impl StageState {
    pub fn env(&self) -> Vec<(String, String)> {
        self.config["config"]["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str())
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    /// A variable as instructions see it: ENV first, then ARG.
    pub fn lookup(&self, name: &str) -> Option<String> {
        self.env().into_iter().find(|(k, _)| k == name).map(|(_, v)| v).or_else(|| self.args.get(name).cloned())
    }

    pub fn set_env(&mut self, k: &str, v: &str) {
        // A name set again moves to the end, as buildah does.
        let mut env: Vec<Value> =
            self.env().into_iter().filter(|(ek, _)| ek != k).map(|(ek, ev)| json!(format!("{ek}={ev}"))).collect();
        env.push(json!(format!("{k}={v}")));
        self.config["config"]["Env"] = json!(env);
    }

    pub fn workdir(&self) -> String {
        self.config["config"]["WorkingDir"].as_str().filter(|w| !w.is_empty()).unwrap_or("/").to_string()
    }

    pub fn history(&mut self, created_by: &str, empty: bool) {
        let mut h = json!({"created": writer::now_rfc3339(), "created_by": created_by});
        if empty {
            h["empty_layer"] = json!(true);
        }
        if !self.config["history"].is_array() {
            self.config["history"] = json!([]);
        }
        self.config["history"].as_array_mut().unwrap().push(h);
    }
}

/// Builds the image and tags it; returns the manifest's descriptor.
pub fn build(opts: &BuildOptions) -> Result<Descriptor> {
    if !nix::unistd::geteuid().is_root() {
        // Refused before the store or a working container is touched.
        return Err(Error::Invalid(
            "build needs root: its layer store gives files their image owners and its working \
             containers are overlay mounts (no rootless build yet; unpack --rootless works)"
                .into(),
        ));
    }
    let file = match &opts.file {
        Some(f) => f.clone(),
        None => ["Containerfile", "Dockerfile"]
            .iter()
            .map(|n| opts.context.join(n))
            .find(|p| p.exists())
            .unwrap_or_else(|| opts.context.join("Containerfile")),
    };
    let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
    let cf = parser::parse(&file.display().to_string(), &text)?;
    if !opts.context.is_dir() {
        return Err(Error::Invalid(format!("{}: the build context is not a directory", opts.context.display())));
    }
    let target = match &opts.target {
        None => cf.stages.len() - 1,
        Some(t) => {
            stage_index(&cf, t).ok_or_else(|| Error::Invalid(format!("--target {t}: no such stage in {}", cf.file)))?
        }
    };
    let layout = Layout::open_or_init(&opts.dest.path)?;
    let store = Store::open(&opts.store)?;
    let _lock = store.lock(false)?;
    let mut b = steps::Builder::new(&cf, opts, layout, store)?;
    let st = b.run_stages(target)?;
    b.commit(st)
}

/// A stage by name (case-insensitive) or index.
pub fn stage_index(cf: &Containerfile, name: &str) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    cf.stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
        .or_else(|| name.parse::<usize>().ok().filter(|i| *i < cf.stages.len()))
}
