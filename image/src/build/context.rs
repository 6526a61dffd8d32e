//! The build context and what COPY/ADD take from it (or from another stage's
//! tree): `.containerignore`/`.dockerignore` patterns, source globs, symlinks
//! resolved inside the source root, and the list of entries one COPY writes,
//! hashed for the build cache.

use crate::digest::HashWriter;
use crate::error::{Error, Result};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Ignore patterns, in file order; the last one matching a path decides.
#[derive(Default, Debug, Clone)]
pub struct Ignore {
    patterns: Vec<(bool, Vec<String>)>,
}

impl Ignore {
    /// `.containerignore`, else `.dockerignore`, of the context; none: nothing ignored.
    pub fn load(context: &Path) -> Result<Ignore> {
        for name in [".containerignore", ".dockerignore"] {
            let p = context.join(name);
            match fs::read_to_string(&p) {
                Ok(text) => return Ok(Ignore::parse(&text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        Ok(Ignore::default())
    }

    pub fn parse(text: &str) -> Ignore {
        let mut patterns = vec![];
        for l in text.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (neg, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let comps = clean(p);
            if !comps.is_empty() {
                patterns.push((neg, comps));
            }
        }
        Ignore { patterns }
    }

    /// Whether `rel` (relative to the context) is left out: a pattern matches
    /// a path when it matches the path or one of its parent directories.
    pub fn excluded(&self, rel: &Path) -> bool {
        let comps: Vec<String> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let mut out = false;
        for (neg, p) in &self.patterns {
            if (1..=comps.len()).any(|n| glob_path(p, &comps[..n])) {
                out = !neg;
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// A path's normal components as if resolved from `/` (`..` clamps at the root).
pub fn clean(p: &str) -> Vec<String> {
    crate::apply::clean(p.as_bytes()).into_iter().map(|c| c.to_string_lossy().into_owned()).collect()
}

/// Pattern components against path components; `**` spans any number of them.
fn glob_path(pat: &[String], path: &[String]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|k| glob_path(rest, &path[k..])),
        Some((p, rest)) => path.split_first().is_some_and(|(c, prest)| glob(p, c) && glob_path(rest, prest)),
    }
}

/// One component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`, `\` escapes.
pub fn glob(pat: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    fn m(p: &[char], s: &[char]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some('*') => (0..=s.len()).any(|k| m(&p[1..], &s[k..])),
            Some('?') => !s.is_empty() && m(&p[1..], &s[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(1).position(|&c| c == ']').map(|e| e + 1) else {
                    return s.first() == Some(&'[') && m(&p[1..], &s[1..]);
                };
                let Some(&c) = s.first() else { return false };
                let set = &p[1..end];
                let (neg, set) = match set.first() {
                    Some('!' | '^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && m(&p[end + 1..], &s[1..])
            }
            Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && m(&p[2..], &s[1..]),
            Some(&c) => s.first() == Some(&c) && m(&p[1..], &s[1..]),
        }
    }
    m(&p, &s)
}

pub fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Resolves `rel` under `root`, following symlinks as if `root` were `/`.
/// Returns the host path (every symlink on the way resolved, the last too
/// when `follow_last`).
pub fn resolve_in(root: &Path, rel: &[String], follow_last: bool) -> Result<PathBuf> {
    let mut todo: Vec<String> = rel.iter().rev().cloned().collect();
    let mut done: Vec<String> = vec![];
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        let here = done.iter().fold(root.to_path_buf(), |p, c| p.join(c)).join(&c);
        let last = todo.is_empty();
        match fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() && (!last || follow_last) => {
                hops += 1;
                if hops > 40 {
                    return Err(Error::Invalid(format!("{}: too many levels of symbolic links", here.display())));
                }
                let target = fs::read_link(&here).map_err(|e| Error::io(&here, e))?;
                let t = target.to_string_lossy();
                if t.starts_with('/') {
                    done.clear();
                }
                let mut comps: Vec<String> = vec![];
                for part in t.split('/') {
                    match part {
                        "" | "." => {}
                        ".." => {
                            if comps.pop().is_none() {
                                done.pop();
                            }
                        }
                        p => comps.push(p.to_string()),
                    }
                }
                todo.extend(comps.into_iter().rev());
            }
            _ => done.push(c),
        }
    }
    Ok(done.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

/// The paths (relative to `root`) that the source `src` names: itself, or
/// the matches of its glob, sorted. Ignored paths are not there.
pub fn sources(root: &Path, src: &str, ignore: &Ignore) -> Result<Vec<Vec<String>>> {
    let comps = clean(src);
    let mut found: Vec<Vec<String>> = vec![vec![]];
    for c in &comps {
        let mut next = vec![];
        for f in &found {
            if has_glob(c) {
                let dir = resolve_in(root, f, true)?;
                let Ok(rd) = fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| glob(c, n))
                    .collect();
                names.sort();
                for n in names {
                    next.push(f.iter().cloned().chain([n]).collect());
                }
            } else {
                next.push(f.iter().cloned().chain([c.clone()]).collect());
            }
        }
        found = next;
    }
    found.retain(|f| {
        let p: PathBuf = f.iter().collect();
        (!ignore.excluded(&p) || f.is_empty())
            && resolve_in(root, f, true).map(|h| fs::symlink_metadata(h).is_ok()).unwrap_or(false)
    });
    Ok(found)
}

/// One entry a COPY writes: where it comes from and where it goes.
#[derive(Debug, Clone)]
pub struct Item {
    pub host: PathBuf,
    /// Destination, relative to the image root.
    pub dest: PathBuf,
    pub meta: fs::Metadata,
}

/// Everything under directory `rel` of `root` (not `rel` itself), parents first,
/// placed under `dest`. Symlinks are copied as links.
pub fn walk_dir(rel: &[String], host: &Path, dest: &Path, ignore: &Ignore, out: &mut Vec<Item>) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(host)
        .map_err(|e| Error::io(host, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::io(host, e))?;
    names.sort();
    for n in names {
        let name = n.to_string_lossy().into_owned();
        let crel: Vec<String> = rel.iter().cloned().chain([name]).collect();
        if ignore.excluded(&crel.iter().collect::<PathBuf>()) {
            continue;
        }
        let h = host.join(&n);
        let m = fs::symlink_metadata(&h).map_err(|e| Error::io(&h, e))?;
        let d = dest.join(&n);
        let is_dir = m.is_dir();
        out.push(Item { host: h.clone(), dest: d.clone(), meta: m });
        if is_dir {
            walk_dir(&crel, &h, &d, ignore, out)?;
        }
    }
    Ok(())
}

/// A digest of the items' names, types, modes, owners, sizes, link targets and contents.
pub fn hash_items(items: &[Item]) -> Result<String> {
    use std::io::Write;
    let mut h = HashWriter::new(std::io::sink());
    for it in items {
        let m = &it.meta;
        let link = if m.file_type().is_symlink() {
            fs::read_link(&it.host).map_err(|e| Error::io(&it.host, e))?
        } else {
            PathBuf::new()
        };
        writeln!(h, "{}\0{:o}\0{}:{}\0{}\0{}", it.dest.display(), m.mode(), m.uid(), m.gid(), m.len(), link.display())
            .map_err(|e| Error::io(&it.host, e))?;
        if m.is_file() {
            let mut f = fs::File::open(&it.host).map_err(|e| Error::io(&it.host, e))?;
            std::io::copy(&mut f, &mut h).map_err(|e| Error::io(&it.host, e))?;
        }
    }
    Ok(h.sum().0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*.txt", "a.txt") && !glob("*.txt", "a.txtx"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("[a-c]x", "bx") && !glob("[!a-c]x", "bx") && glob("[!a-c]x", "dx"));
        assert!(glob("\\*", "*") && !glob("\\*", "a"));
    }

    #[test]
    fn ignore_rules() {
        let i = Ignore::parse("# comment\n*.log\n/build\n**/tmp\n!keep.log\nsecret/**\n");
        let ex = |p: &str| i.excluded(Path::new(p));
        assert!(ex("a.log") && !ex("keep.log") && !ex("sub/a.log"));
        assert!(ex("build") && ex("build/x/y") && !ex("src/build"));
        assert!(ex("tmp") && ex("a/b/tmp/f"));
        assert!(ex("secret/x") && !ex("secretx"));
        assert!(!ex("src/main.rs"));
    }

    #[test]
    fn symlinks_stay_in_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir_all(r.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/a", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", r.join("a/up")).unwrap();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(resolve_in(r, &s(&["abs", "b"]), true).unwrap(), r.join("a/b"));
        assert_eq!(resolve_in(r, &s(&["a", "up", "a"]), true).unwrap(), r.join("a"));
        assert_eq!(resolve_in(r, &s(&["abs"]), false).unwrap(), r.join("abs"));
        fs::write(r.join("a/x.txt"), "").unwrap();
        fs::write(r.join("a/y.txt"), "").unwrap();
        fs::write(r.join("a/z.log"), "").unwrap();
        let got = sources(r, "/a/*.txt", &Ignore::parse("y.txt\na/y.txt")).unwrap();
        assert_eq!(got, vec![s(&["a", "x.txt"])]);
    }
}
