//! Freezing the containers that run on a bundle while `commit` reads it. A file
//! rewritten during the read would go into the layer half old, half new (or, if
//! its size changed, as a tar entry that disagrees with its header), so like
//! `docker commit` we pause them first. The runtime is asked through its
//! command line (`list --format json`, `pause`, `resume`), which strata and
//! runc share, so containers of either can be frozen.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default state root of strata (and the one `--runtime-root` defaults to).
pub const DEFAULT_RUNTIME_ROOT: &str = "/run/strata";

/// An OCI runtime binary with runc's command line, and its state `--root`.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
}

impl Runtime {
    /// strata beside this executable if it is there (they ship together), else `strata` on PATH.
    pub fn default_binary() -> PathBuf {
        std::env::current_exe()
            .ok()
            .map(|p| p.with_file_name("strata"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("strata"))
    }

    /// The runtime's own default `--root` for this caller: `/run/strata` for root;
    /// for anyone else `$XDG_RUNTIME_DIR/<binary name>`, where rootless runc keeps its
    /// state (`$XDG_RUNTIME_DIR/runc`).
    pub fn default_root(binary: &Path) -> PathBuf {
        let xdg = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|d| d.is_absolute());
        match (nix::unistd::geteuid().is_root(), xdg, binary.file_name()) {
            (false, Some(dir), Some(name)) => dir.join(name),
            _ => PathBuf::from(DEFAULT_RUNTIME_ROOT),
        }
    }

    fn run(&self, args: &[&str]) -> Result<Vec<u8>> {
        let out = Command::new(&self.binary)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::Invalid(format!("--runtime {}: {e}", self.binary.display())))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err.lines().next().unwrap_or("").trim();
            return Err(Error::Invalid(format!(
                "--runtime {} {}: {first} ({})",
                self.binary.display(),
                args.join(" "),
                out.status
            )));
        }
        Ok(out.stdout)
    }

    /// Ids of the running containers whose bundle is `bundle`.
    pub fn running_on(&self, bundle: &Path) -> Result<Vec<String>> {
        if !self.root.is_dir() {
            return Ok(vec![]); // no state root: nothing was ever started there
        }
        let want = std::fs::canonicalize(bundle).map_err(|e| Error::io(bundle, e))?;
        let out = self.run(&["list", "--format", "json"])?;
        // runc prints `null` for an empty list (and nothing at all in some versions).
        let text = if out.iter().all(u8::is_ascii_whitespace) { &b"null"[..] } else { &out[..] };
        let rows: Option<Vec<serde_json::Value>> = serde_json::from_slice(text)
            .map_err(|e| Error::json(format!("`{} list --format json`", self.binary.display()), e))?;
        Ok(rows
            .unwrap_or_default()
            .iter()
            .filter(|r| r["status"] == "running")
            .filter(|r| {
                r["bundle"].as_str().and_then(|b| std::fs::canonicalize(b).ok()).as_deref() == Some(want.as_path())
            })
            .filter_map(|r| r["id"].as_str().map(str::to_string))
            .collect())
    }
}

/// Containers paused by `freeze`; they are resumed when this is dropped,
/// whether the commit worked or not. (A `kill -9` of commit leaves them
/// paused: `strata resume ID` thaws them.)
pub struct Frozen {
    runtime: Runtime,
    pub ids: Vec<String>,
}

/// Pauses every running container of `bundle`.
pub fn freeze(bundle: &Path, runtime: &Runtime) -> Result<Frozen> {
    let mut frozen = Frozen { runtime: runtime.clone(), ids: vec![] };
    for id in runtime.running_on(bundle)? {
        runtime.run(&["pause", &id])?;
        frozen.ids.push(id);
    }
    Ok(frozen)
}

impl Frozen {
    /// Resumes the paused containers; the first failure is the error, naming the container.
    pub fn thaw(mut self) -> Result<()> {
        let mut first = Ok(());
        for id in std::mem::take(&mut self.ids) {
            if let Err(e) = self.runtime.run(&["resume", &id]) {
                if first.is_ok() {
                    first = Err(Error::Invalid(format!("container {id} stays paused: {e}")));
                }
            }
        }
        first
    }
}

impl Drop for Frozen {
    /// On an early return (an error): resume as best we can; `thaw` reports failures.
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.runtime.run(&["resume", id]);
        }
    }
}
