//! `RUN --mount=...`: what a step sees besides its image, as buildah and
//! BuildKit give it, and none of it in the step's layer:
//! - `type=bind` (the default): a path of the context, of an earlier stage or
//!   of an image (`from=`), read-only; `rw` lets the step write to a throwaway
//!   overlay over it.
//! - `type=cache`: a directory kept across builds under the store
//!   (`<store>/build-mounts/`), by `id` (default: the target), created with
//!   `mode`/`uid`/`gid`. `sharing=locked` (and `private`, which BuildKit
//!   answers with a fresh directory) holds an exclusive lock on it for the step:
//!   concurrent builds wait rather than share it.
//! - `type=tmpfs`: an empty tmpfs (`size=` bytes).
//!
//! A bind of the context counts its contents into the step's cache key (a
//! changed file reruns the step); a stage's or image's by that tree's key.

use super::{Builder, Session};
use crate::build::context::{self, Ignore, Item};
use crate::build::parser::Instruction;
use crate::build::StageState;
use crate::error::{Error, Result};
use serde_json::{json, Value};
use sha2::Digest;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The mounts of one RUN, ready for its container.
#[derive(Default)]
pub(super) struct RunMounts {
    /// OCI runtime-spec mounts.
    pub specs: Vec<Value>,
    /// What the step's cache key adds: each mount as written, with its source's identity.
    pub key: Vec<String>,
    /// Trees mounted for the step (stages, images, rw overlays): unmounted when dropped.
    pub sessions: Vec<Session>,
    /// `sharing=locked` caches, held until the step ends.
    pub locks: Vec<nix::fcntl::Flock<fs::File>>,
}

/// One `--mount=` value: `key=value` fields (a bare `ro`/`rw` is a flag).
fn fields(spec: &str) -> Vec<(String, String)> {
    spec.split(',')
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
            None => (f.trim().to_ascii_lowercase(), "true".to_string()),
        })
        .collect()
}

fn truthy(v: &str) -> bool {
    !matches!(v, "false" | "0")
}

impl Builder<'_> {
    /// Resolves every `--mount` of RUN `i`; a bad one fails with its field named.
    pub(super) fn run_mounts(&mut self, st: &StageState, i: &Instruction) -> Result<RunMounts> {
        let mut out = RunMounts::default();
        let specs: Vec<String> =
            i.flags.iter().filter(|(f, _)| f == "mount").map(|(_, v)| v.clone().unwrap_or_default()).collect();
        let cf = self.cf;
        for spec in specs {
            let bad = |what: String| cf.error(i, format!("--mount={spec}: {what}"));
            let fs_ = fields(&spec);
            let get = |k: &[&str]| fs_.iter().rev().find(|(n, _)| k.contains(&n.as_str())).map(|(_, v)| v.clone());
            let kind = get(&["type"]).unwrap_or_else(|| "bind".into());
            let known: &[&str] = match kind.as_str() {
                "bind" => &[
                    "type",
                    "target",
                    "dst",
                    "destination",
                    "source",
                    "src",
                    "from",
                    "ro",
                    "readonly",
                    "rw",
                    "readwrite",
                ],
                "cache" => &[
                    "type",
                    "target",
                    "dst",
                    "destination",
                    "id",
                    "sharing",
                    "mode",
                    "uid",
                    "gid",
                    "ro",
                    "readonly",
                    "rw",
                    "readwrite",
                ],
                "tmpfs" => &["type", "target", "dst", "destination", "size"],
                other => return Err(bad(format!("type={other}: not supported (bind, cache, tmpfs are)"))),
            };
            if let Some((k, _)) = fs_.iter().find(|(k, _)| !known.contains(&k.as_str())) {
                return Err(bad(format!("{k}: not a field of a {kind} mount")));
            }
            let target = get(&["target", "dst", "destination"]).ok_or_else(|| bad("needs target=".into()))?;
            let target = if target.starts_with('/') {
                target
            } else {
                format!("{}/{}", st.workdir().trim_end_matches('/'), target)
            };
            let ro = match (get(&["ro", "readonly"]), get(&["rw", "readwrite"])) {
                (Some(v), _) => truthy(&v),
                (None, Some(v)) => !truthy(&v),
                (None, None) => kind == "bind", // binds are read-only unless rw, caches writable
            };
            match kind.as_str() {
                "bind" => {
                    let src = get(&["source", "src"]).unwrap_or_else(|| "/".into());
                    let (root, tree_key) = match get(&["from"]) {
                        None => (self.opts.context.clone(), None),
                        Some(from) => {
                            let (layers, key) = self.tree_of(&from).map_err(|e| bad(e.to_string()))?;
                            let s = self.session(&layers).map_err(|e| bad(e.to_string()))?;
                            let root = s.rootfs();
                            out.sessions.push(s);
                            (root, Some(key))
                        }
                    };
                    let comps = context::clean(&src);
                    let host = context::resolve_in(&root, &comps, true).map_err(|e| bad(e.to_string()))?;
                    let meta =
                        fs::metadata(&host).map_err(|_| bad(format!("source={src}: no such file or directory")))?;
                    let identity = match tree_key {
                        Some(k) => k,
                        None => {
                            let mut items = vec![Item { host: host.clone(), dest: PathBuf::new(), meta: meta.clone() }];
                            if meta.is_dir() {
                                context::walk_dir(&comps, &host, &PathBuf::new(), &Ignore::default(), &mut items)?;
                            }
                            context::hash_items(&items)?
                        }
                    };
                    let source = if !ro && meta.is_dir() {
                        // Writes go to an overlay that is thrown away with the step.
                        self.seq += 1;
                        let s = Session::mount(self.work.path().join(format!("m{}", self.seq)), &[host])?;
                        let r = s.rootfs();
                        out.sessions.push(s);
                        r
                    } else {
                        host
                    };
                    let opts = if ro { ["rbind", "ro"] } else { ["rbind", "rw"] };
                    out.specs.push(json!({"destination": target, "type": "bind", "source": source, "options": opts}));
                    out.key.push(format!("{spec} {identity}"));
                }
                "cache" => {
                    let id = get(&["id"]).unwrap_or_else(|| target.clone());
                    let exclusive = match get(&["sharing"]).as_deref() {
                        None | Some("shared") => false,
                        Some("private" | "locked") => true,
                        Some(o) => return Err(bad(format!("sharing={o}: expected shared, private or locked"))),
                    };
                    let num = |k: &str, radix: u32, default: u32| -> Result<u32> {
                        match get(&[k]) {
                            None => Ok(default),
                            Some(v) => {
                                u32::from_str_radix(&v, radix).map_err(|_| bad(format!("{k}={v}: not a number")))
                            }
                        }
                    };
                    let (mode, uid, gid) = (num("mode", 8, 0o755)?, num("uid", 10, 0)?, num("gid", 10, 0)?);
                    let dir =
                        self.store.root.join("build-mounts").join(hex::encode(sha2::Sha256::digest(id.as_bytes())));
                    if !dir.exists() {
                        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                        fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).map_err(|e| Error::io(&dir, e))?;
                        nix::unistd::chown(&dir, Some(uid.into()), Some(gid.into()))
                            .map_err(|e| Error::sys("chown", &dir, e))?;
                    }
                    if exclusive {
                        let p = dir.with_extension("lock");
                        let f = fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
                        let l = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
                            .map_err(|(_, e)| Error::sys("flock", &p, e))?;
                        out.locks.push(l);
                    }
                    let opts = if ro { ["rbind", "ro"] } else { ["rbind", "rw"] };
                    out.specs.push(json!({"destination": target, "type": "bind", "source": dir, "options": opts}));
                    out.key.push(spec.clone());
                }
                _ => {
                    let mut opts = vec!["nosuid".to_string(), "nodev".to_string(), "mode=755".to_string()];
                    if let Some(size) = get(&["size"]) {
                        if size.is_empty() || !size.chars().all(|c| c.is_ascii_digit()) {
                            return Err(bad(format!("size={size}: not a number of bytes")));
                        }
                        opts.push(format!("size={size}"));
                    }
                    out.specs.push(json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": opts}));
                    out.key.push(spec.clone());
                }
            }
        }
        Ok(out)
    }
}
