//! Performing the instructions, stage by stage: the config-only ones edit the
//! config and add an empty history entry; RUN, COPY, ADD and a WORKDIR that
//! makes its directory run in a `Session` and commit its read-write layer
//! (unless the cache has that step's layer).

use super::cache::{self, Cache, Entry};
use super::context::{self, Ignore, Item};
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
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
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

/// A COPY/ADD, its sources resolved.
struct CopyPlan {
    srcs: Vec<Src>,
    /// Absolute image path.
    dest: String,
    /// The destination is a directory whether or not it exists (`dir/`, several sources).
    dest_dir_hint: bool,
    add: bool,
    chown: Option<String>,
    chmod: Option<u32>,
}

/// What a COPY/ADD source resolved to before the working container exists.
struct Src {
    rel: Vec<String>,
    host: PathBuf,
    meta: fs::Metadata,
    /// For a directory: its contents, `dest` relative to the directory.
    children: Vec<Item>,
}

impl<'a> Builder<'a> {
    pub fn new(cf: &'a Containerfile, opts: &'a BuildOptions, layout: Layout, store: Store) -> Result<Builder<'a>> {
        let builds = store.root.join("builds");
        fs::create_dir_all(&builds).map_err(|e| Error::io(&builds, e))?;
        sweep_stale(&builds)?;
        let work = tempfile::Builder::new().prefix(&crate::staging::prefix(crate::staging::TEMP_FILE)).tempdir_in(&builds).map_err(|e| Error::io(&builds, e))?;
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
        Ok(Builder { cf, opts, layout, store, cache, work, ignore, global_args, done: vec![], step: 0, total: 0, seq: 0, parents_before })
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
        st.config["rootfs"] = json!({"type": "layers", "diff_ids": st.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()});
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
            return Ok(StageState { layers: vec![], config, key: cache::key("", &["scratch"]), args: BTreeMap::new(), shell, cmd_set: false });
        }
        if let Some(n) = super::stage_index(self.cf, &base).filter(|n| *n < self.done.len() && !base.chars().all(|c| c.is_ascii_digit())) {
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
        Ok(StageState { layers, config, key: cache::key("", &["from", &digest]), args: BTreeMap::new(), shell, cmd_set: false })
    }

    /// An image's layers (copied into the destination layout), raw config and config digest.
    fn open_image(&self, r: &str) -> Result<(Vec<Layer>, Vec<u8>, String)> {
        let img = image::open(&Reference::parse(r)?, &PlatformSpec::host())?;
        let descs = crate::commit::copy_layers(&img, &self.layout)?;
        let layers = descs.into_iter().zip(&img.layers).map(|(desc, l)| Layer { desc, diff_id: l.diff_id.clone() }).collect();
        Ok((layers, img.config_raw.clone(), img.config_digest.clone()))
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
                    let v = self.opts.build_args.get(k).cloned().or(default.clone()).or_else(|| self.global_args.get(k).cloned());
                    match v {
                        Some(v) => st.args.insert(k.clone(), v),
                        None => st.args.remove(k),
                    };
                }
                let text = decls.iter().map(|(k, d)| d.as_ref().map_or(k.clone(), |d| format!("{k}={d}"))).collect::<Vec<_>>().join(" ");
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
                let sh = parser::json_array(&i.args).filter(|v| !v.is_empty()).ok_or_else(|| self.err(i, "SHELL needs the JSON form [\"executable\", \"param\"]"))?;
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
                self.layer_step(st, i, &key, &created_by, true, &mut |b, s, st| b.make_dirs(s, std::slice::from_ref(&w), &user_of(st)))?;
            }
            "HEALTHCHECK" | "ONBUILD" => {
                // As buildah does for OCI images: the OCI config has no field for them.
                eprintln!("strata-image: {}:{}: {} is not part of the OCI image format: ignored", self.cf.file, i.line, i.keyword);
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
    fn layer_step(&mut self, st: &mut StageState, i: &Instruction, key: &str, created_by: &str, optional: bool, f: &mut dyn FnMut(&mut Self, &mut Session, &StageState) -> Result<()>) -> Result<()> {
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
        let nl = writer::write_layer_with(&self.layout, Compression::Gzip, &mut |w| treetar::write_tree(&upper, w, Source::OverlayUpper))?;
        drop(s);
        self.cache.put(key, &Entry { layer: Some(nl.descriptor.clone()), diff_id: Some(nl.diff_id.clone()) })?;
        self.say(&format!("--> {}", &nl.descriptor.digest().to_string()[7..19]));
        st.layers.push(Layer { desc: nl.descriptor, diff_id: nl.diff_id });
        st.history(created_by, false);
        Ok(())
    }

    fn run(&mut self, st: &mut StageState, i: &Instruction) -> Result<()> {
        for (f, v) in &i.flags {
            match (f.as_str(), v.as_deref()) {
                ("network", Some("host" | "none" | "default")) => {}
                _ => return Err(self.err(i, format!("RUN --{f}: not supported"))),
            }
        }
        let argv = self.command(st, &i.args);
        if argv.is_empty() {
            return Err(self.err(i, "nothing to run"));
        }
        let host_net = match i.flag("network") {
            Some("host") => true,
            Some("none") => false,
            _ => self.opts.network_host,
        };
        // ARG values reach RUN as environment variables; ENV wins over ARG.
        let env = st.env();
        let args: Vec<(String, String)> = st.args.iter().filter(|(k, _)| !env.iter().any(|(e, _)| e == *k)).map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut created_by = String::from("RUN ");
        if !args.is_empty() {
            created_by.push_str(&format!("|{} {} ", args.len(), args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")));
        }
        created_by.push_str(&argv.join(" "));
        let key = cache::key(&st.key, &[&created_by, &json!(env).to_string(), &json!(args).to_string(), if host_net { "host" } else { "" }]);
        let workdir = st.workdir();
        self.layer_step(st, i, &key, &created_by, false, &mut |b, s, st| {
            b.make_dirs(s, std::slice::from_ref(&workdir), &user_of(st))?;
            let spec = b.run_spec(st, &s.rootfs(), &argv, &args, host_net)?;
            let id = format!("strata-build-{}-{}", std::process::id(), b.seq);
            let state = b.work.path().join("state");
            // Mount points the runtime makes (/proc, /dev, ... in an image without
            // them) are the container's, not the step's: they leave the layer again.
            let rootfs = s.rootfs();
            let mut made: Vec<Vec<String>> = spec["mounts"].as_array().into_iter().flatten().filter_map(|m| m["destination"].as_str()).map(context::clean).filter(|c| !c.is_empty() && !exists_in(&rootfs, c)).collect();
            let code = s.run(&state, &id, &spec)?;
            if code != 0 {
                return Err(b.err(i, format!("exit code {code}")));
            }
            s.unmount()?;
            made.sort_by_key(|c| std::cmp::Reverse(c.len()));
            for c in made {
                let p = c.iter().fold(s.upper(), |p, c| p.join(c));
                match fs::symlink_metadata(&p) {
                    Ok(m) if m.is_dir() => drop(fs::remove_dir(&p)), // only when empty
                    Ok(m) if m.is_file() && m.len() == 0 => drop(fs::remove_file(&p)),
                    _ => {}
                }
            }
            Ok(())
        })
    }

    fn run_spec(&self, st: &StageState, rootfs: &Path, argv: &[String], args: &[(String, String)], host_net: bool) -> Result<Value> {
        let mut cfg = st.config.clone();
        let mut env: Vec<String> = st.env().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
        cfg["config"]["Env"] = json!(env);
        if let Some(c) = cfg["config"].as_object_mut() {
            c.remove("Volumes"); // RUN writes into the image, not into fresh volumes
        }
        cfg["rootfs"] = json!({"type": "layers", "diff_ids": []});
        let ic: oci_spec::image::ImageConfiguration = serde_json::from_value(cfg).map_err(|e| Error::json("image config", e))?;
        let mut spec = crate::runtime_config::generate(&ic, rootfs, Some(argv))?;
        spec["process"]["cwd"] = json!(st.workdir());
        spec["process"]["terminal"] = json!(false);
        spec["linux"]["cgroupsPath"] = json!(format!("/{}/strata-build-{}-{}", self.opts.cgroup_parent, std::process::id(), self.seq));
        if host_net {
            if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
                ns.retain(|n| n["type"] != "network");
            }
            // The host's name resolution, over the image's files where it has them
            // (a mount point made here would be left in the layer).
            for f in ["etc/resolv.conf", "etc/hosts"] {
                let comps: Vec<String> = f.split('/').map(str::to_string).collect();
                let in_image = context::resolve_in(rootfs, &comps, true).ok().and_then(|p| fs::symlink_metadata(p).ok());
                if in_image.is_some_and(|m| m.is_file()) && Path::new("/").join(f).is_file() {
                    spec["mounts"].as_array_mut().unwrap().push(json!({"destination": format!("/{f}"), "type": "bind", "source": format!("/{f}"), "options": ["rbind", "ro"]}));
                }
            }
        }
        // The capabilities docker and buildah give a build step (runc's default has three).
        let caps = json!(RUN_CAPS.iter().map(|c| format!("CAP_{c}")).collect::<Vec<_>>());
        spec["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
        spec["annotations"] = json!({});
        Ok(spec)
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

    fn copy(&mut self, st: &mut StageState, i: &Instruction) -> Result<()> {
        let add = i.keyword == "ADD";
        for (f, _) in &i.flags {
            if !matches!(f.as_str(), "from" | "chown" | "chmod" | "link") {
                return Err(self.err(i, format!("--{f}: not supported")));
            }
        }
        let esc = self.cf.escape;
        let snapshot = st.clone();
        let vars = move |n: &str| snapshot.lookup(n);
        let mut ws = match parser::json_array(&i.args) {
            Some(v) => v.iter().map(|w| parser::expand(w, esc, &vars)).collect::<std::result::Result<Vec<_>, _>>(),
            None => parser::words(&i.args, esc, Some(&vars)),
        }
        .map_err(|e| self.err(i, e))?;
        if ws.len() < 2 {
            return Err(self.err(i, "needs a source and a destination"));
        }
        let dest_word = ws.pop().unwrap();
        if add && ws.iter().any(|s| s.contains("://")) {
            return Err(self.err(i, "ADD of a URL is not supported"));
        }
        let dest = if dest_word.starts_with('/') { dest_word.clone() } else { format!("{}/{}", st.workdir().trim_end_matches('/'), dest_word) };
        let dest_dir_hint = dest_word.ends_with('/') || ws.len() > 1 || ws.iter().any(|s| context::has_glob(s)) || dest_word == "." ;
        let chmod = match i.flag("chmod") {
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| self.err(i, format!("--chmod={m}: not an octal mode")))?),
            None => None,
        };
        let chown = i.flag("chown").map(str::to_string);

        // The source tree: the context, another stage's or image's tree.
        let mut from_session = None;
        let (root, ignore, from_key) = match i.flag("from") {
            None => (self.opts.context.clone(), self.ignore.clone(), None),
            Some(f) => {
                let f = parser::expand(f, esc, &vars).map_err(|e| self.err(i, e))?;
                let (layers, key) = match super::stage_index(self.cf, &f) {
                    Some(n) if n < self.done.len() => (self.done[n].layers.clone(), self.done[n].key.clone()),
                    Some(_) => return Err(self.err(i, format!("--from={f}: stage not built yet"))),
                    None => {
                        let (layers, _, digest) = self.open_image(&f).map_err(|e| self.err(i, e))?;
                        (layers, digest)
                    }
                };
                // Another stage's tree is known by its key: a cached step needs no mount.
                let created_by = format!("{} {}", i.keyword, i.text().split_once(' ').map(|x| x.1).unwrap_or(""));
                let key = cache::key(&st.key, &[&created_by, &dest, &key]);
                if !self.opts.no_cache && self.cache.get(&key, &self.layout).is_some() {
                    return self.layer_step(st, i, &key, &created_by, false, &mut |_, _, _| Ok(()));
                }
                let s = self.session(&layers).map_err(|e| self.err(i, e))?;
                let root = s.rootfs();
                from_session = Some(s);
                (root, Ignore::default(), Some(key))
            }
        };
        let mut srcs = vec![];
        for w in &ws {
            let found = context::sources(&root, w, &ignore)?;
            if found.is_empty() {
                return Err(self.err(i, format!("{w}: no such file or directory{}", if from_key.is_none() { " in the build context" } else { "" })));
            }
            for rel in found {
                let host = context::resolve_in(&root, &rel, true)?;
                let meta = fs::symlink_metadata(&host).map_err(|e| Error::io(&host, e))?;
                let mut children = vec![];
                if meta.is_dir() {
                    context::walk_dir(&rel, &host, Path::new(""), &ignore, &mut children)?;
                }
                srcs.push(Src { rel, host, meta, children });
            }
        }
        let created_by = format!("{} {}", i.keyword, i.text().split_once(' ').map(|x| x.1).unwrap_or(""));
        // From another tree the key was made above; from the context it hashes the sources.
        let key = match &from_key {
            Some(k) => k.clone(),
            None => {
                let mut items = vec![];
                for s in &srcs {
                    let base = PathBuf::from(s.rel.join("/"));
                    items.push(Item { host: s.host.clone(), dest: base.clone(), meta: s.meta.clone() });
                    items.extend(s.children.iter().map(|c| Item { dest: base.join(&c.dest), ..c.clone() }));
                }
                cache::key(&st.key, &[&created_by, &dest, &context::hash_items(&items)?])
            }
        };
        let plan = CopyPlan { srcs, dest, dest_dir_hint, add, chown, chmod };
        let r = self.layer_step(st, i, &key, &created_by, false, &mut |b, s, _| b.copy_into(s, &plan));
        drop(from_session);
        r
    }

    fn copy_into(&self, s: &Session, plan: &CopyPlan) -> Result<()> {
        let CopyPlan { srcs, dest, dest_dir_hint, add, chown, chmod } = plan;
        let (dest_dir_hint, add, chmod) = (*dest_dir_hint, *add, *chmod);
        let rootfs = s.rootfs();
        let (uid, gid) = match chown {
            Some(c) => {
                let u = crate::passwd::resolve(&rootfs, c)?;
                (u.uid as u64, u.gid as u64)
            }
            None => (0, 0),
        };
        let dcomps = context::clean(dest);
        let dest_is_dir = dest_dir_hint || resolve_meta(&rootfs, &dcomps).is_some_and(|m| m.is_dir());
        let tmp = tempfile::tempfile_in(self.work.path()).map_err(|e| Error::io(self.work.path(), e))?;
        let mut tar = tar::Builder::new(std::io::BufWriter::new(tmp));
        tar.follow_symlinks(false);
        let mut made: Vec<Vec<String>> = vec![];
        let mut links = Links::new();
        let total: u64 = srcs.iter().map(|s| s.meta.len() * s.meta.is_file() as u64 + s.children.iter().filter(|c| c.meta.is_file()).map(|c| c.meta.len()).sum::<u64>()).sum();
        let progress = self.opts.progress.as_deref().filter(|_| total >= super::LARGE_COPY);
        if let Some(p) = progress {
            p.start(dest, total);
        }
        let on_bytes = |n: u64| {
            if let Some(p) = progress {
                p.bytes(n)
            }
        };
        let mut parents = |tar: &mut tar::Builder<_>, comps: &[String], upto_incl: bool| -> Result<()> {
            let n = if upto_incl { comps.len() } else { comps.len().saturating_sub(1) };
            for k in 1..=n {
                let p = comps[..k].to_vec();
                if made.contains(&p) || exists_in(&rootfs, &p) {
                    continue;
                }
                let mut h = dir_header(0o755, uid, gid);
                tar.append_data(&mut h, p.join("/"), std::io::empty()).map_err(|e| Error::io(&rootfs, e))?;
                made.push(p);
            }
            Ok(())
        };
        for src in srcs {
            if src.meta.is_dir() {
                parents(&mut tar, &dcomps, true)?;
                let base: PathBuf = dcomps.iter().collect();
                for c in &src.children {
                    append_item(&mut tar, &mut links, &c.host, &base.join(&c.dest), &c.meta, (uid, gid, chmod), &on_bytes)?;
                }
            } else if add && archive_kind(&src.host)?.is_some() {
                parents(&mut tar, &dcomps, true)?;
                retar(&src.host, &dcomps.join("/"), &mut tar)?;
            } else {
                let mut t = dcomps.clone();
                if dest_is_dir {
                    t.push(src.rel.last().cloned().unwrap_or_default());
                }
                parents(&mut tar, &t, false)?;
                append_item(&mut tar, &mut links, &src.host, &t.iter().collect::<PathBuf>(), &src.meta, (uid, gid, chmod), &on_bytes)?;
            }
        }
        if let Some(p) = progress {
            p.done();
        }
        let mut f = tar.into_inner().map_err(|e| Error::io(&rootfs, e))?.into_inner().map_err(|e| Error::io(&rootfs, e.into_error()))?;
        std::io::Seek::rewind(&mut f).map_err(|e| Error::io(&rootfs, e))?;
        apply::apply_layer(&rootfs, &mut std::io::BufReader::new(f), &Mode::Flatten)?;
        Ok(())
    }
}

const RUN_CAPS: [&str; 11] = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"];

/// What builds killed mid-way left under `builds`: their containers are deleted,
/// their working containers unmounted, then their dirs removed.
fn sweep_stale(builds: &Path) -> Result<()> {
    use crate::staging::{self, TEMP_FILE};
    for p in staging::sweep(builds, TEMP_FILE, true)? {
        let rt_store = strata::container::Store::new(p.join("state"));
        for id in rt_store.ids().unwrap_or_default() {
            let _ = strata::container::delete(&rt_store, &id, true);
        }
        let mut mounts: Vec<PathBuf> = crate::overlay::mounts().into_iter().map(|(m, _)| m).filter(|m| m.starts_with(&p)).collect();
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
    let mut roots: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten().map(|e| e.path()).collect();
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
fn arg_decls(cf: &Containerfile, i: &Instruction, vars: &dyn Fn(&str) -> Option<String>) -> Result<Vec<(String, Option<String>)>> {
    let ws = parser::words(&i.args, cf.escape, Some(vars)).map_err(|e| cf.error(i, e))?;
    Ok(ws.into_iter().map(|w| match w.split_once('=') {
        Some((k, v)) => (k.to_string(), Some(v.to_string())),
        None => (w, None),
    }).collect())
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

/// First destination written for each (dev, ino) with more than one link:
/// files hardlinked in the source stay hardlinked in the layer.
type Links = std::collections::HashMap<(u64, u64), PathBuf>;

/// Owner and mode a COPY gives: uid, gid, --chmod.
type Own = (u64, u64, Option<u32>);

fn append_item<W: Write>(tar: &mut tar::Builder<W>, links: &mut Links, host: &Path, dest: &Path, m: &fs::Metadata, own: Own, on_bytes: &dyn Fn(u64)) -> Result<()> {
    let (uid, gid, chmod) = own;
    let io = |e| Error::io(host, e);
    let mut h = tar::Header::new_gnu();
    if m.is_file() && m.nlink() > 1 {
        if let Some(first) = links.get(&(m.dev(), m.ino())) {
            h.set_metadata_in_mode(m, tar::HeaderMode::Complete);
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            return tar.append_link(&mut h, dest, first).map_err(io);
        }
        links.insert((m.dev(), m.ino()), dest.to_path_buf());
    }
    h.set_metadata_in_mode(m, tar::HeaderMode::Complete);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mode(chmod.unwrap_or(m.mode() & 0o7777));
    let ft = m.file_type();
    if ft.is_dir() {
        h.set_size(0);
        tar.append_data(&mut h, dest, std::io::empty()).map_err(io)
    } else if ft.is_symlink() {
        h.set_size(0);
        h.set_mode(m.mode() & 0o7777);
        tar.append_link(&mut h, dest, fs::read_link(host).map_err(io)?).map_err(io)
    } else if ft.is_file() {
        let f = fs::File::open(host).map_err(io)?;
        tar.append_data(&mut h, dest, f.take(m.len())).map_err(io)?;
        on_bytes(m.len());
        Ok(())
    } else {
        Ok(()) // sockets, devices, fifos of a context are not copied
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Archive {
    Tar,
    Gzip,
    Zstd,
}

/// Whether ADD extracts `p`: a tar, plain or gzip/zstd compressed.
fn archive_kind(p: &Path) -> Result<Option<Archive>> {
    let mut f = fs::File::open(p).map_err(|e| Error::io(p, e))?;
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]).map_err(|e| Error::io(p, e))? {
            0 => break,
            k => n += k,
        }
    }
    head.truncate(n);
    Ok(match image::sniff(&head) {
        "gzip" => Some(Archive::Gzip),
        "zstd" => Some(Archive::Zstd),
        _ if n >= 262 && &head[257..262] == b"ustar" => Some(Archive::Tar),
        _ => None,
    })
}

/// Copies the entries of the archive at `p` into `out`, under `prefix`.
fn retar<W: Write>(p: &Path, prefix: &str, out: &mut tar::Builder<W>) -> Result<()> {
    let f = std::io::BufReader::new(fs::File::open(p).map_err(|e| Error::io(p, e))?);
    let rd: Box<dyn Read> = match archive_kind(p)? {
        Some(Archive::Gzip) => Box::new(flate2::read::GzDecoder::new(f)),
        Some(Archive::Zstd) => Box::new(zstd::stream::read::Decoder::new(f).map_err(|e| Error::io(p, e))?),
        _ => Box::new(f),
    };
    let mut a = tar::Archive::new(rd);
    let io = |e| Error::io(p, e);
    let under = |name: &[u8]| -> PathBuf {
        let mut c = vec![prefix.to_string()];
        c.extend(crate::apply::clean(name).iter().map(|s| s.to_string_lossy().into_owned()));
        c.iter().filter(|s| !s.is_empty()).collect()
    };
    for e in a.entries().map_err(io)? {
        let mut e = e.map_err(io)?;
        let name = under(&e.path_bytes());
        let mut pax: Vec<(String, Vec<u8>)> = vec![];
        if let Ok(Some(exts)) = e.pax_extensions() {
            for x in exts.flatten() {
                if let Ok(k) = x.key() {
                    if k.starts_with("SCHILY.xattr.") {
                        pax.push((k.to_string(), x.value_bytes().to_vec()));
                    }
                }
            }
        }
        if !pax.is_empty() {
            out.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).map_err(io)?;
        }
        let mut h = e.header().clone();
        match h.entry_type() {
            tar::EntryType::Link => {
                let target = under(&e.link_name_bytes().unwrap_or_default());
                out.append_link(&mut h, &name, target).map_err(io)?;
            }
            tar::EntryType::Symlink => {
                let target = PathBuf::from(String::from_utf8_lossy(&e.link_name_bytes().unwrap_or_default()).into_owned());
                out.append_link(&mut h, &name, target).map_err(io)?;
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink => {}
            _ => out.append_data(&mut h, &name, &mut e).map_err(io)?,
        }
    }
    Ok(())
}
