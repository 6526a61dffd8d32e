//! Performing the instructions, stage by stage: the config-only ones edit the
//! config and add an empty history entry; RUN, COPY, ADD and a WORKDIR that
//! makes its directory run in a `Session` and commit its read-write layer
//! (unless the cache has that step's layer).

mod archive;
mod copy;
mod mounts;
mod remote;
mod run;

use super::cache::{self, Cache, Entry};
use super::context::{self, Ignore};
use super::parser::{self, Containerfile, Instruction};
use super::session::Session;
use super::{BuildOptions, Layer, StageState};
use crate::apply::{self, Mode};
use crate::error::{Error, Result};
use crate::image::{self, LayerBlob};
use crate::layout::Layout;
use crate::platform::PlatformSpec;
use crate::reference::Reference;
use crate::store::Store;
use crate::treetar::{self, Source};
use crate::writer::{self, Compression};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Builder<'a> {
    cf: &'a Containerfile,
    opts: &'a BuildOptions,
    layout: Layout,
    store: Store,
    cache: Cache,
    work: tempfile::TempDir,
    ignore: Ignore,
    global_args: BTreeMap<String, String>,
    done: Vec<StageState>,
    step: usize,
    total: usize,
    seq: usize,
    /// Cgroup dirs of the RUN containers' parent that existed before this build.
    parents_before: Vec<PathBuf>,
}

impl<'a> Builder<'a> {
    pub fn new(cf: &'a Containerfile, opts: &'a BuildOptions, layout: Layout, store: Store) -> Result<Builder<'a>> {
        let builds = store.root.join("builds");
        fs::create_dir_all(&builds).map_err(|e| Error::io(&builds, e))?;
        sweep_stale(&builds)?;
        let work = tempfile::Builder::new()
            .prefix(&crate::staging::prefix(crate::staging::TEMP_FILE))
            .tempdir_in(&builds)
            .map_err(|e| Error::io(&builds, e))?;
        let cache = Cache::open(&store.root)?;
        let ignore = Ignore::load(&opts.context)?;
        let mut global_args = BTreeMap::new();
        for i in &cf.global_args {
            let vars = |n: &str| global_args.get(n).cloned();
            for (k, v) in arg_decls(cf, i, &vars)? {
                if let Some(v) = opts.build_args.get(&k).cloned().or(v) {
                    global_args.insert(k, v);
                }
            }
        }
        let parents_before = cgroup_parents(&opts.cgroup_parent).into_iter().filter(|p| p.is_dir()).collect();
        Ok(Builder {
            cf,
            opts,
            layout,
            store,
            cache,
            work,
            ignore,
            global_args,
            done: vec![],
            step: 0,
            total: 0,
            seq: 0,
            parents_before,
        })
    }

    pub fn run_stages(&mut self, target: usize) -> Result<StageState> {
        self.total = self.cf.stages[..=target].iter().map(|s| 1 + s.instructions.len()).sum();
        for (n, stage) in self.cf.stages[..=target].iter().enumerate() {
            let prefix = if target > 0 { format!("[{}/{}] ", n + 1, target + 1) } else { String::new() };
            self.say(&format!("{prefix}STEP {}/{}: {}", self.step + 1, self.total, stage.from.text()));
            self.step += 1;
            let mut st = self.from(&stage.from, &stage.base)?;
            for i in &stage.instructions {
                self.say(&format!("{prefix}STEP {}/{}: {}", self.step + 1, self.total, i.text()));
                self.step += 1;
                self.instruction(&mut st, i)?;
            }
            self.done.push(st);
        }
        Ok(self.done.pop().unwrap())
    }

    /// Writes the image of a built stage and tags it.
    pub fn commit(&mut self, mut st: StageState) -> Result<oci_spec::image::Descriptor> {
        st.config["rootfs"] =
            json!({"type": "layers", "diff_ids": st.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()});
        st.config["created"] = json!(writer::now_rfc3339());
        let descs: Vec<_> = st.layers.iter().map(|l| l.desc.clone()).collect();
        let tag = self.opts.dest.tag_or_latest()?;
        self.say(&format!("COMMIT {}", self.opts.dest));
        writer::write_image(&self.layout, &tag, &st.config, &descs)
    }

    fn say(&self, line: &str) {
        if !self.opts.quiet {
            println!("{line}");
            let _ = std::io::stdout().flush();
        }
    }

    fn err(&self, i: &Instruction, what: impl std::fmt::Display) -> Error {
        self.cf.error(i, what)
    }

    fn from(&mut self, i: &Instruction, base: &str) -> Result<StageState> {
        let ga = &self.global_args;
        let vars = |n: &str| ga.get(n).cloned();
        let base = parser::expand(base, self.cf.escape, &vars).map_err(|e| self.err(i, e))?;
        let shell = vec!["/bin/sh".to_string(), "-c".to_string()];
        if base == "scratch" {
            let p = PlatformSpec::host();
            let config = json!({"architecture": p.arch, "os": p.os, "config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []});
            return Ok(StageState {
                layers: vec![],
                config,
                key: cache::key("", &["scratch"]),
                args: BTreeMap::new(),
                shell,
                cmd_set: false,
            });
        }
        if let Some(n) = super::stage_index(self.cf, &base)
            .filter(|n| *n < self.done.len() && !base.chars().all(|c| c.is_ascii_digit()))
        {
            let mut st = self.done[n].clone();
            st.args.clear();
            st.cmd_set = false;
            return Ok(st);
        }
        let (layers, config, digest) = self.open_image(&base).map_err(|e| self.err(i, e))?;
        let mut config: Value = serde_json::from_slice(&config).map_err(|e| Error::json("base config", e))?;
        if !config["config"].is_object() {
            config["config"] = json!({});
        }
        Ok(StageState {
            layers,
            config,
            key: cache::key("", &["from", &digest]),
            args: BTreeMap::new(),
            shell,
            cmd_set: false,
        })
    }

    /// An image's layers (copied into the destination layout), raw config and config digest.
    fn open_image(&self, r: &str) -> Result<(Vec<Layer>, Vec<u8>, String)> {
        let img = image::open(&Reference::parse(r)?, &PlatformSpec::host())?;
        let descs = crate::commit::copy_layers(&img, &self.layout)?;
        let layers =
            descs.into_iter().zip(&img.layers).map(|(desc, l)| Layer { desc, diff_id: l.diff_id.clone() }).collect();
        Ok((layers, img.config_raw.clone(), img.config_digest.clone()))
    }

    /// Another stage's layers (built already) or an image's, and that tree's cache key.
    fn tree_of(&self, name: &str) -> Result<(Vec<Layer>, String)> {
        match super::stage_index(self.cf, name) {
            Some(n) if n < self.done.len() => Ok((self.done[n].layers.clone(), self.done[n].key.clone())),
            Some(_) => Err(Error::Invalid(format!("from={name}: stage not built yet"))),
            None => {
                let (layers, _, digest) = self.open_image(name)?;
                Ok((layers, digest))
            }
        }
    }

    fn instruction(&mut self, st: &mut StageState, i: &Instruction) -> Result<()> {
        let esc = self.cf.escape;
        let snapshot = st.clone();
        let vars = move |n: &str| snapshot.lookup(n);
        let words = |t: &str| parser::words(t, esc, Some(&vars)).map_err(|e| self.err(i, e));
        let nop = |s: &str| format!("/bin/sh -c #(nop)  {s}");
        match i.keyword.as_str() {
            "ENV" => {
                let pairs = parser::pairs(&i.args, esc, &vars).map_err(|e| self.err(i, e))?;
                for (k, v) in &pairs {
                    st.set_env(k, v);
                }
                let text = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
                self.config_only(st, &nop(&format!("ENV {text}")));
            }
            "ARG" => {
                let decls = arg_decls(self.cf, i, &vars)?;
                for (k, default) in &decls {
                    // Without a value an ARG stays unset: not in a RUN's environment.
                    let v = self
                        .opts
                        .build_args
                        .get(k)
                        .cloned()
                        .or(default.clone())
                        .or_else(|| self.global_args.get(k).cloned());
                    match v {
                        Some(v) => st.args.insert(k.clone(), v),
                        None => st.args.remove(k),
                    };
                }
                let text = decls
                    .iter()
                    .map(|(k, d)| d.as_ref().map_or(k.clone(), |d| format!("{k}={d}")))
                    .collect::<Vec<_>>()
                    .join(" ");
                self.config_only(st, &nop(&format!("ARG {text}")));
            }
            "LABEL" => {
                let pairs = parser::pairs(&i.args, esc, &vars).map_err(|e| self.err(i, e))?;
                if !st.config["config"]["Labels"].is_object() {
                    st.config["config"]["Labels"] = json!({});
                }
                for (k, v) in &pairs {
                    st.config["config"]["Labels"][k] = json!(v);
                }
                let text = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
                self.config_only(st, &nop(&format!("LABEL {text}")));
            }
            "MAINTAINER" => {
                let who = parser::expand(&i.args, esc, &vars).map_err(|e| self.err(i, e))?;
                st.config["author"] = json!(who);
                self.config_only(st, &nop(&format!("MAINTAINER {who}")));
            }
            "USER" => {
                let u = words(&i.args)?.join(" ");
                st.config["config"]["User"] = json!(u);
                self.config_only(st, &nop(&format!("USER {u}")));
            }
            "STOPSIGNAL" => {
                let s = words(&i.args)?.join(" ");
                st.config["config"]["StopSignal"] = json!(s);
                self.config_only(st, &nop(&format!("STOPSIGNAL {s}")));
            }
            "EXPOSE" => {
                let mut ports = vec![];
                for p in words(&i.args)? {
                    let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit() || c == '-') {
                        return Err(self.err(i, format!("{p}: not a port")));
                    }
                    ports.push(format!("{port}/{}", proto.to_ascii_lowercase()));
                }
                if !st.config["config"]["ExposedPorts"].is_object() {
                    st.config["config"]["ExposedPorts"] = json!({});
                }
                for p in &ports {
                    st.config["config"]["ExposedPorts"][p] = json!({});
                }
                self.config_only(st, &nop(&format!("EXPOSE {}", ports.join(" "))));
            }
            "VOLUME" => {
                let vols = match parser::json_array(&i.args) {
                    Some(v) => v,
                    None => words(&i.args)?,
                };
                if !st.config["config"]["Volumes"].is_object() {
                    st.config["config"]["Volumes"] = json!({});
                }
                for v in &vols {
                    st.config["config"]["Volumes"][v] = json!({});
                }
                self.config_only(st, &nop(&format!("VOLUME {}", json!(vols))));
            }
            "SHELL" => {
                let sh = parser::json_array(&i.args)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| self.err(i, "SHELL needs the JSON form [\"executable\", \"param\"]"))?;
                st.shell = sh.clone();
                st.config["config"]["Shell"] = json!(sh);
                self.config_only(st, &nop(&format!("SHELL {}", json!(sh))));
            }
            "CMD" | "ENTRYPOINT" => {
                let argv = self.command(st, &i.args);
                let field = if i.keyword == "CMD" { "Cmd" } else { "Entrypoint" };
                st.config["config"][field] = json!(argv);
                if i.keyword == "CMD" {
                    st.cmd_set = true;
                } else if !st.cmd_set {
                    st.config["config"]["Cmd"] = Value::Null;
                }
                self.config_only(st, &nop(&format!("{} {}", i.keyword, json!(argv))));
            }
            "WORKDIR" => {
                let w = parser::expand(&i.args, esc, &vars).map_err(|e| self.err(i, e))?;
                let w = if w.starts_with('/') { w } else { format!("{}/{w}", st.workdir().trim_end_matches('/')) };
                let w = format!("/{}", context::clean(&w).join("/"));
                st.config["config"]["WorkingDir"] = json!(w);
                let created_by = nop(&format!("WORKDIR {w}"));
                let key = cache::key(&st.key, &[&created_by]);
                self.layer_step(st, i, &key, &created_by, true, &mut |b, s, st| {
                    b.make_dirs(s, std::slice::from_ref(&w), &user_of(st))
                })?;
            }
            "HEALTHCHECK" | "ONBUILD" => {
                // As buildah does for OCI images: the OCI config has no field for them.
                eprintln!(
                    "strata-image: {}:{}: {} is not part of the OCI image format: ignored",
                    self.cf.file, i.line, i.keyword
                );
                self.config_only(st, &nop(&i.text()));
            }
            "RUN" => self.run(st, i)?,
            "COPY" | "ADD" => self.copy(st, i)?,
            other => return Err(self.err(i, format!("{other}: not supported"))),
        }
        Ok(())
    }

    /// The exec form as is, or the shell form through SHELL.
    fn command(&self, st: &StageState, args: &str) -> Vec<String> {
        match parser::json_array(args) {
            Some(v) => v,
            None if args.trim().is_empty() => vec![],
            None => st.shell.iter().cloned().chain([args.to_string()]).collect(),
        }
    }

    fn config_only(&self, st: &mut StageState, created_by: &str) {
        st.key = cache::key(&st.key, &[created_by]);
        st.history(created_by, true);
    }

    /// The store directories of `layers`, extracting what the store lacks; topmost first.
    fn lowers(&self, layers: &[Layer]) -> Result<Vec<PathBuf>> {
        let mut below: Vec<PathBuf> = vec![];
        for l in layers {
            let digest = l.desc.digest().to_string();
            let blob = LayerBlob {
                path: self.layout.blob_path(&digest)?,
                media_type: l.desc.media_type().to_string(),
                digest: Some(digest),
                size: Some(l.desc.size()),
                diff_id: l.diff_id.clone(),
                urls: vec![],
            };
            let (dir, _) = self.store.ensure(&blob, &below)?;
            below.insert(0, dir);
        }
        if below.is_empty() {
            below.push(self.store.empty_layer()?);
        }
        Ok(below)
    }

    fn session(&mut self, layers: &[Layer]) -> Result<Session> {
        let lowers = self.lowers(layers)?;
        self.seq += 1;
        Session::mount(self.work.path().join(format!("s{}", self.seq)), &lowers)
    }

    /// A step that may change the filesystem: from the cache, or run `f` in a
    /// working container and commit what it wrote. `optional`: an unchanged
    /// tree makes no layer (WORKDIR of an existing directory).
    fn layer_step(
        &mut self,
        st: &mut StageState,
        i: &Instruction,
        key: &str,
        created_by: &str,
        optional: bool,
        f: &mut dyn FnMut(&mut Self, &mut Session, &StageState) -> Result<()>,
    ) -> Result<()> {
        st.key = key.to_string();
        if !self.opts.no_cache {
            if let Some(e) = self.cache.get(key, &self.layout) {
                match (e.layer, e.diff_id) {
                    (Some(desc), Some(diff_id)) => {
                        self.say(&format!("--> Using cache {}", &desc.digest().to_string()[7..19]));
                        st.layers.push(Layer { desc, diff_id });
                        st.history(created_by, false);
                    }
                    _ => st.history(created_by, true),
                }
                return Ok(());
            }
        }
        let mut s = self.session(&st.layers).map_err(|e| self.err(i, e))?;
        f(self, &mut s, st).map_err(|e| match e {
            Error::Invalid(m) if m.starts_with(&format!("{}:", self.cf.file)) => Error::Invalid(m),
            e => self.err(i, e),
        })?;
        s.unmount()?;
        let upper = s.upper();
        let empty = fs::read_dir(&upper).map_err(|e| Error::io(&upper, e))?.next().is_none();
        if optional && empty {
            self.cache.put(key, &Entry { layer: None, diff_id: None })?;
            st.history(created_by, true);
            return Ok(());
        }
        let nl = writer::write_layer_with(&self.layout, Compression::Gzip, &mut |w| {
            treetar::write_tree(&upper, w, Source::OverlayUpper)
        })?;
        // The read-write layer is already that layer as the store keeps it (overlay
        // whiteouts and opaque dirs): it moves there instead of being extracted again
        // for the next step. Same filesystem: both are under the store's root.
        let dest = self.store.layer_dir(&nl.diff_id)?;
        if !dest.exists() {
            let _ = fs::rename(&upper, &dest);
        }
        drop(s);
        self.cache.put(key, &Entry { layer: Some(nl.descriptor.clone()), diff_id: Some(nl.diff_id.clone()) })?;
        self.say(&format!("--> {}", &nl.descriptor.digest().to_string()[7..19]));
        st.layers.push(Layer { desc: nl.descriptor, diff_id: nl.diff_id });
        st.history(created_by, false);
        Ok(())
    }

    /// Makes the directories (absolute image paths) that do not exist yet: 0755,
    /// owned by `user` (the USER in effect, as buildah makes a WORKDIR).
    fn make_dirs(&self, s: &Session, dirs: &[String], user: &str) -> Result<()> {
        let rootfs = s.rootfs();
        let u = crate::passwd::resolve(&rootfs, user)?;
        let mut tar = tar::Builder::new(Vec::new());
        for d in dirs {
            let comps = context::clean(d);
            for n in 1..=comps.len() {
                if exists_in(&rootfs, &comps[..n]) {
                    continue;
                }
                let mut h = dir_header(0o755, u.uid as u64, u.gid as u64);
                tar.append_data(&mut h, comps[..n].join("/"), std::io::empty()).map_err(|e| Error::io(d, e))?;
            }
        }
        let bytes = tar.into_inner().map_err(|e| Error::io(&rootfs, e))?;
        if bytes.len() > 1024 {
            apply::apply_layer(&rootfs, &mut &bytes[..], &Mode::Flatten)?;
        }
        Ok(())
    }
}

/// What builds killed mid-way left under `builds`: their containers are deleted,
/// their working containers unmounted, then their dirs removed.
fn sweep_stale(builds: &Path) -> Result<()> {
    use crate::staging::{self, TEMP_FILE};
    for p in staging::sweep(builds, TEMP_FILE, true)? {
        let rt_store = strata::container::Store::new(p.join("state"));
        for id in rt_store.ids().unwrap_or_default() {
            let _ = strata::container::delete(&rt_store, &id, true);
        }
        let mut mounts: Vec<PathBuf> =
            crate::overlay::mounts().into_iter().map(|(m, _)| m).filter(|m| m.starts_with(&p)).collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in mounts {
            crate::overlay::unmount(&m)?;
        }
    }
    staging::sweep(builds, TEMP_FILE, false).map(drop)
}

/// The USER in effect ("" for root).
fn user_of(st: &StageState) -> String {
    st.config["config"]["User"].as_str().unwrap_or("").to_string()
}

/// Where the RUN containers' parent cgroup is, in each hierarchy.
fn cgroup_parents(parent: &str) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> =
        fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path()).collect();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    roots.into_iter().map(|r| r.join(parent.trim_start_matches('/'))).collect()
}

impl Drop for Builder<'_> {
    /// The parent cgroups this build's containers made (their own are gone with
    /// them); rmdir only removes empty ones, so a concurrent build keeps its own.
    fn drop(&mut self) {
        if self.seq == 0 || self.opts.cgroup_parent.trim_matches('/').is_empty() {
            return;
        }
        for p in cgroup_parents(&self.opts.cgroup_parent) {
            if !self.parents_before.contains(&p) && p.is_dir() {
                let _ = fs::remove_dir(&p);
            }
        }
    }
}

/// ARG NAME[=default] ... of one instruction (defaults expanded).
fn arg_decls(
    cf: &Containerfile,
    i: &Instruction,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, Option<String>)>> {
    let ws = parser::words(&i.args, cf.escape, Some(vars)).map_err(|e| cf.error(i, e))?;
    Ok(ws
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect())
}

fn resolve_meta(root: &Path, comps: &[String]) -> Option<fs::Metadata> {
    context::resolve_in(root, comps, true).ok().and_then(|p| fs::metadata(p).ok())
}

fn exists_in(root: &Path, comps: &[String]) -> bool {
    resolve_meta(root, comps).is_some()
}

fn dir_header(mode: u32, uid: u64, gid: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_size(0);
    h.set_mtime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
    h
}
