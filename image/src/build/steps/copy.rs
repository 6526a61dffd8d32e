//! COPY and ADD: sources from the context (ignore file applied), another
//! stage or an image, written as one tar (owners, modes, hardlinks kept; ADD
//! extracts local archives) and applied onto the working container.

use super::archive::{archive_kind, retar};
use super::remote;
use super::{dir_header, exists_in, Builder};
use crate::apply::{self, Mode};
use crate::build::cache;
use crate::build::context::{self, Ignore, Item};
use crate::build::parser::{self, Heredoc, Instruction};
use crate::build::session::Session;
use crate::build::StageState;
use crate::error::{Error, Result};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
    /// Copied as is even by ADD (downloads, here-documents): never extracted.
    literal: bool,
}

impl Builder<'_> {
    pub(super) fn copy(&mut self, st: &mut StageState, i: &Instruction) -> Result<()> {
        let add = i.keyword == "ADD";
        for (f, _) in &i.flags {
            let known = matches!(f.as_str(), "from" | "chown" | "chmod" | "link") || (add && f == "checksum");
            if !known {
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
        if !add && ws.iter().any(|s| remote::is_url(s)) {
            return Err(self.err(i, "COPY cannot copy from a URL: use ADD"));
        }
        if i.flag("checksum").is_some() && !ws.iter().all(|s| remote::is_url(s)) {
            return Err(self.err(i, "--checksum is only for http(s) sources"));
        }
        let dest = if dest_word.starts_with('/') {
            dest_word.clone()
        } else {
            format!("{}/{}", st.workdir().trim_end_matches('/'), dest_word)
        };
        let dest_dir_hint = dest_word.ends_with('/')
            || ws.len() > 1
            || ws.iter().any(|s| !remote::is_url(s) && context::has_glob(s))
            || dest_word == ".";
        let chmod = match i.flag("chmod") {
            Some(m) => {
                Some(u32::from_str_radix(m, 8).map_err(|_| self.err(i, format!("--chmod={m}: not an octal mode")))?)
            }
            None => None,
        };
        let chown = i.flag("chown").map(str::to_string);

        // The source tree: the context, another stage's or image's tree.
        let mut from_session = None;
        let (root, ignore, from_key) = match i.flag("from") {
            None => (self.opts.context.clone(), self.ignore.clone(), None),
            Some(f) => {
                let f = parser::expand(f, esc, &vars).map_err(|e| self.err(i, e))?;
                let (layers, key) = self.tree_of(&f).map_err(|e| self.err(i, e))?;
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
            if let Some(h) =
                w.strip_prefix("<<").and_then(|n| i.heredocs.iter().find(|h| h.name == n.trim_start_matches('-')))
            {
                srcs.push(self.heredoc_file(i, h, &vars)?);
                continue;
            }
            if remote::is_url(w) {
                self.seq += 1;
                let dir = self.work.path().join(format!("download{}", self.seq));
                let host = remote::fetch(w, &dir, i.flag("checksum")).map_err(|e| self.err(i, e))?;
                let meta = fs::symlink_metadata(&host).map_err(|e| Error::io(&host, e))?;
                let name = host.file_name().unwrap_or_default().to_string_lossy().into_owned();
                srcs.push(Src { rel: vec![name], host, meta, children: vec![], literal: true });
                continue;
            }
            let found = context::sources(&root, w, &ignore)?;
            if found.is_empty() {
                return Err(self.err(
                    i,
                    format!(
                        "{w}: no such file or directory{}",
                        if from_key.is_none() { " in the build context" } else { "" }
                    ),
                ));
            }
            for rel in found {
                let host = context::resolve_in(&root, &rel, true)?;
                let meta = fs::symlink_metadata(&host).map_err(|e| Error::io(&host, e))?;
                let mut children = vec![];
                if meta.is_dir() {
                    context::walk_dir(&rel, &host, Path::new(""), &ignore, &mut children)?;
                }
                srcs.push(Src { rel, host, meta, children, literal: false });
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

    /// A here-document source (`COPY <<EOF /dest`): a file named after it, mode 0644
    /// as BuildKit makes it, variables expanded unless the name was quoted.
    fn heredoc_file(&mut self, i: &Instruction, h: &Heredoc, vars: &dyn Fn(&str) -> Option<String>) -> Result<Src> {
        if h.name.contains('/') {
            return Err(self.err(i, format!("<<{}: a here-document's name is its file name: no /", h.name)));
        }
        let content = match h.expand {
            true => parser::expand(&h.content(), self.cf.escape, vars).map_err(|e| self.err(i, e))?,
            false => h.content(),
        };
        self.seq += 1;
        let dir = self.work.path().join(format!("heredoc{}", self.seq));
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let host = dir.join(&h.name);
        fs::write(&host, content).map_err(|e| Error::io(&host, e))?;
        fs::set_permissions(&host, fs::Permissions::from_mode(0o644)).map_err(|e| Error::io(&host, e))?;
        let meta = fs::symlink_metadata(&host).map_err(|e| Error::io(&host, e))?;
        Ok(Src { rel: vec![h.name.clone()], host, meta, children: vec![], literal: true })
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
        let total: u64 = srcs
            .iter()
            .map(|s| {
                s.meta.len() * s.meta.is_file() as u64
                    + s.children.iter().filter(|c| c.meta.is_file()).map(|c| c.meta.len()).sum::<u64>()
            })
            .sum();
        let progress = self.opts.progress.as_deref().filter(|_| total >= crate::build::LARGE_COPY);
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
                    append_item(
                        &mut tar,
                        &mut links,
                        &c.host,
                        &base.join(&c.dest),
                        &c.meta,
                        (uid, gid, chmod),
                        &on_bytes,
                    )?;
                }
            } else if let Some(kind) = if add && !src.literal { archive_kind(&src.host)? } else { None } {
                parents(&mut tar, &dcomps, true)?;
                retar(&src.host, kind, &dcomps.join("/"), &mut tar)?;
            } else {
                let mut t = dcomps.clone();
                if dest_is_dir {
                    t.push(src.rel.last().cloned().unwrap_or_default());
                }
                parents(&mut tar, &t, false)?;
                append_item(
                    &mut tar,
                    &mut links,
                    &src.host,
                    &t.iter().collect::<PathBuf>(),
                    &src.meta,
                    (uid, gid, chmod),
                    &on_bytes,
                )?;
            }
        }
        if let Some(p) = progress {
            p.done();
        }
        let mut f = tar
            .into_inner()
            .map_err(|e| Error::io(&rootfs, e))?
            .into_inner()
            .map_err(|e| Error::io(&rootfs, e.into_error()))?;
        std::io::Seek::rewind(&mut f).map_err(|e| Error::io(&rootfs, e))?;
        apply::apply_layer(&rootfs, &mut std::io::BufReader::new(f), &Mode::Flatten)?;
        Ok(())
    }
}

fn resolve_meta(root: &Path, comps: &[String]) -> Option<fs::Metadata> {
    context::resolve_in(root, comps, true).ok().and_then(|p| fs::metadata(p).ok())
}

/// First destination written for each (dev, ino) with more than one link:
/// files hardlinked in the source stay hardlinked in the layer.
type Links = std::collections::HashMap<(u64, u64), PathBuf>;

/// Owner and mode a COPY gives: uid, gid, --chmod.
type Own = (u64, u64, Option<u32>);

fn append_item<W: Write>(
    tar: &mut tar::Builder<W>,
    links: &mut Links,
    host: &Path,
    dest: &Path,
    m: &fs::Metadata,
    own: Own,
    on_bytes: &dyn Fn(u64),
) -> Result<()> {
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
